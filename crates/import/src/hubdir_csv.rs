//! hubdir's own CSV format: what `hubdir export --format csv` writes and `hubdir import`
//! reads without a mapping. UTF-8, comma-separated, one header row with these columns (any
//! order); list columns separate their values with `;`, address lines with ` | `.
//!
//! | column | content |
//! |---|---|
//! | `name` | `sites/{origin}/{site_id}` |
//! | `kind`, `status` | codes such as `PUBLIC_LIBRARY`, `OPEN` |
//! | `services`, `accessibility` | codes such as `FREE_WIFI;PUBLIC_COMPUTERS` |
//! | `service_notes` | free text |
//! | `languages` | BCP 47 tags such as `en;sn` |
//! | `latitude`, `longitude` | decimal degrees, WGS84 |
//! | `opening_hours` | OpenStreetMap syntax; `time_zone` IANA |
//! | `free_access` | `true` or `false` |
//! | `update_time` | written on export, ignored on import |

use hubdir_core::{Accessibility, Address, Contact, Kind, ServiceType, Site, SiteInput, SiteRecord, SiteStatus};

use crate::{Record, RowError, coordinates};

/// The columns, in the order export writes them.
pub const COLUMNS: [&str; 23] = [
    "name",
    "display_name",
    "kind",
    "operator",
    "country_code",
    "latitude",
    "longitude",
    "address_lines",
    "locality",
    "region",
    "postal_code",
    "services",
    "service_notes",
    "languages",
    "accessibility",
    "opening_hours",
    "time_zone",
    "phone",
    "email",
    "website",
    "status",
    "free_access",
    "update_time",
];

/// One exported row, in [`COLUMNS`] order.
pub fn to_row(record: &SiteRecord) -> [String; 23] {
    let s = &record.site;
    let codes = |items: Vec<&str>| items.join(";");
    [
        s.name.to_string(),
        s.display_name.clone(),
        s.kind.code().into(),
        s.operator.clone(),
        s.country.to_string(),
        s.location.latitude().to_string(),
        s.location.longitude().to_string(),
        s.address.lines.join(" | "),
        s.address.locality.clone(),
        s.address.region.clone(),
        s.address.postal_code.clone(),
        codes(s.services.iter().map(|x| x.code()).collect()),
        s.service_notes.clone(),
        codes(s.languages.iter().map(|x| x.as_str()).collect()),
        codes(s.accessibility.iter().map(|x| x.code()).collect()),
        s.opening_hours.as_ref().map(|h| h.to_string()).unwrap_or_default(),
        s.time_zone.to_string(),
        s.contact.phone.clone(),
        s.contact.email.clone(),
        s.contact.website.clone(),
        s.status.code().into(),
        s.free_access.to_string(),
        record.update_time.to_rfc3339(),
    ]
}

/// Columns an import needs (the rest may be absent).
pub const REQUIRED: [&str; 7] = ["name", "display_name", "kind", "country_code", "latitude", "longitude", "time_zone"];

fn list(value: &str, separator: &str) -> Vec<String> {
    value.split(separator).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect()
}

/// A row of hubdir's CSV as a validated site, or every problem found.
pub fn site(record: &Record) -> Result<Site, Vec<RowError>> {
    let site_id = record.get("name").rsplit('/').next().unwrap_or_default().to_owned();
    let mut errors = Vec::new();
    let mut push = |field: &str, reason: &str, message: String| {
        errors.push(RowError {
            row: record.row,
            line: record.line,
            site_id: site_id.clone(),
            field: field.to_owned(),
            reason: reason.to_owned(),
            message,
        });
    };
    let mut codes = |field: &str, parse: &dyn Fn(&str) -> bool| -> Vec<String> {
        let values = list(record.get(field), ";");
        for v in &values {
            if !parse(v) {
                push(field, "UNKNOWN_VALUE", format!("{v:?} is not a known value"));
            }
        }
        values
    };
    let services: Vec<ServiceType> = codes("services", &|v| ServiceType::from_code(v).is_some())
        .iter()
        .filter_map(|v| ServiceType::from_code(v))
        .collect();
    let accessibility: Vec<Accessibility> = codes("accessibility", &|v| Accessibility::from_code(v).is_some())
        .iter()
        .filter_map(|v| Accessibility::from_code(v))
        .collect();
    let kind = Kind::from_code(record.get("kind"));
    if kind.is_none() && !record.get("kind").is_empty() {
        push("kind", "UNKNOWN_VALUE", format!("{:?} is not a kind", record.get("kind")));
    }
    let status = SiteStatus::from_code(record.get("status"));
    if status.is_none() && !record.get("status").is_empty() {
        push("status", "UNKNOWN_VALUE", format!("{:?} is not a site status", record.get("status")));
    }
    let free_access = match record.get("free_access") {
        "" | "false" => false,
        "true" => true,
        other => {
            push("free_access", "INVALID_FORMAT", format!("{other:?} is not true or false"));
            false
        }
    };
    let location = match coordinates::check(record.get("latitude"), record.get("longitude"), None) {
        Ok(pair) => Some(pair),
        Err(e) => {
            push(e.field, e.reason, e.message);
            None
        }
    };
    let input = SiteInput {
        name: record.get("name").to_owned(),
        display_name: record.get("display_name").to_owned(),
        kind,
        operator: record.get("operator").to_owned(),
        country_code: record.get("country_code").to_owned(),
        address: Address {
            lines: list(record.get("address_lines"), " | "),
            locality: record.get("locality").to_owned(),
            region: record.get("region").to_owned(),
            postal_code: record.get("postal_code").to_owned(),
        },
        location,
        services,
        service_notes: record.get("service_notes").to_owned(),
        languages: list(record.get("languages"), ";"),
        accessibility,
        opening_hours: record.get("opening_hours").to_owned(),
        time_zone: record.get("time_zone").to_owned(),
        contact: Contact {
            phone: record.get("phone").to_owned(),
            email: record.get("email").to_owned(),
            website: record.get("website").to_owned(),
        },
        status,
        free_access,
    };
    crate::report::validated(input, errors, record, &site_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pairs: &[(&str, &str)]) -> Record {
        Record { row: 3, line: 4, values: pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect() }
    }

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("name", "sites/zw/a1"),
            ("display_name", "Harare Library"),
            ("kind", "PUBLIC_LIBRARY"),
            ("country_code", "ZW"),
            ("latitude", "-17.83"),
            ("longitude", "31.05"),
            ("time_zone", "Africa/Harare"),
            ("services", "FREE_WIFI;PUBLIC_COMPUTERS"),
            ("address_lines", "1 First Street | Floor 2"),
            ("free_access", "true"),
            ("service_notes", "Help with pension forms on Tuesdays"),
        ]
    }

    #[test]
    fn a_row_reads_back_with_its_lists() {
        let site = site(&record(&good())).unwrap();
        assert_eq!(site.services.len(), 2);
        assert_eq!(site.address.lines, vec!["1 First Street", "Floor 2"]);
        assert!(site.free_access);
        assert_eq!(site.service_notes, "Help with pension forms on Tuesdays");
    }

    #[test]
    fn bad_values_name_their_column() {
        let mut pairs = good();
        pairs.push(("accessibility", "RAMP"));
        pairs[7] = ("services", "FREE_WIFI;TELEPORT");
        pairs[9] = ("free_access", "sometimes");
        let errors = site(&record(&pairs)).unwrap_err();
        let fields: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.reason.as_str())).collect();
        assert_eq!(
            fields,
            vec![("services", "UNKNOWN_VALUE"), ("accessibility", "UNKNOWN_VALUE"), ("free_access", "INVALID_FORMAT")]
        );
        assert_eq!((errors[0].row, errors[0].site_id.as_str()), (3, "a1"));
    }
}
