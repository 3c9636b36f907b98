//! How a source's columns become a site: the mapping file.
//!
//! ```toml
//! [source]
//! format = "csv"                 # csv | geojson
//! delimiter = ";"                # csv only; default ","
//! encoding = "windows-1252"      # utf-8 (default) | windows-1252
//! null_values = ["NA", "-1"]     # read as empty
//!
//! [site]
//! origin = "in-post"
//! id = "{pincode}-{officename}"  # a template: {column} is the column's value
//! display_name = "{officename}"
//! kind = { column = "officetype", map = { HO = "POST_OFFICE", BO = "POSTAL_AGENCY" } }
//! status = { column = "closed", map = { "*" = "CLOSED" }, default = "OPEN" }  # prefix keys
//! country_code = "IN"            # no braces: a constant
//! latitude = "{latitude}"
//! longitude = "{longitude}"
//! time_zone = "Asia/Kolkata"
//! services = ["POSTAL_BANKING", { value = "FREE_WIFI", when = "WiFi" }]
//!
//! [checks]
//! bounds = [6.0, 68.0, 37.5, 97.5]   # min_lat, min_lng, max_lat, max_lng
//! ```
//!
//! In GeoJSON sources the properties are the columns, and `$latitude` / `$longitude` are the
//! Point geometry's coordinates.

use std::collections::BTreeMap;
use std::path::Path;

use hubdir_core::{Accessibility, Address, Contact, Kind, ServiceType, Site, SiteInput, SiteStatus};
use serde::Deserialize;

use crate::coordinates::{self, Bounds};
use crate::{Record, RowError};

/// A whole mapping file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub source: SourceSpec,
    pub site: SiteSpec,
    #[serde(default)]
    pub checks: Checks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Geojson,
    /// Any JSON document holding an array of objects (HSDS 3.0 lists, Overpass API output):
    /// each object is flattened into dotted columns (`location.addresses.0.city`).
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Encoding {
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "windows-1252")]
    Windows1252,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub format: Format,
    #[serde(default)]
    pub delimiter: Option<char>,
    #[serde(default)]
    pub encoding: Encoding,
    #[serde(default)]
    pub null_values: Vec<String>,
    /// json only: the dotted path of the array of records (`contents`, `elements`); empty
    /// when the document itself is the array.
    #[serde(default)]
    pub records: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// `[min_lat, min_lng, max_lat, max_lng]`: points outside are refused as OUTSIDE_EXTENT.
    pub bounds: Option<Bounds>,
    /// A row whose only faults are in optional fields (address, contact, hours, languages,
    /// notes, accessibility): `"reject_row"` (the default) or `"drop_field"`.
    #[serde(default)]
    pub on_invalid_optional: crate::OnInvalidOptional,
}

/// A field's value: a template string (a constant when it has no `{column}`), or a column or
/// template whose value goes through a map, with a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Template(String),
    Spec(Spec),
}

/// The table form of a [`Value`]. Unknown keys are refused, so a typo cannot pass raw
/// values through unnoticed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    #[serde(default)]
    pub column: Option<String>,
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    #[serde(default)]
    pub default: Option<String>,
}

/// An item of a list field: always there, or only when a column is truthy (`1`, `1.0`,
/// `true`, `yes`, `y`), or (with `is`) when the column holds one of the given values.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Item {
    Always(String),
    When(When),
}

/// The conditional form of an [`Item`]; unknown keys are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    pub value: String,
    pub when: String,
    #[serde(default)]
    pub is: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    pub origin: String,
    pub id: Value,
    pub display_name: Value,
    pub kind: Value,
    #[serde(default)]
    pub operator: Option<Value>,
    pub country_code: Value,
    pub latitude: Value,
    pub longitude: Value,
    #[serde(default)]
    pub address_lines: Vec<Value>,
    #[serde(default)]
    pub locality: Option<Value>,
    #[serde(default)]
    pub region: Option<Value>,
    #[serde(default)]
    pub postal_code: Option<Value>,
    #[serde(default)]
    pub services: Vec<Item>,
    #[serde(default)]
    pub service_notes: Option<Value>,
    #[serde(default)]
    pub languages: Vec<Item>,
    #[serde(default)]
    pub accessibility: Vec<Item>,
    #[serde(default)]
    pub opening_hours: Option<Value>,
    pub time_zone: Value,
    #[serde(default)]
    pub phone: Option<Value>,
    #[serde(default)]
    pub email: Option<Value>,
    #[serde(default)]
    pub website: Option<Value>,
    #[serde(default)]
    pub status: Option<Value>,
    #[serde(default)]
    pub free_access: Option<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("cannot read mapping {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("mapping {path} is invalid: {source}")]
    Parse { path: String, source: toml::de::Error },
    #[error("mapping {path} is invalid: {reason}")]
    Invalid { path: String, reason: String },
    #[error("mapping names columns the source does not have: {0:?}")]
    MissingColumns(Vec<String>),
}

/// Problems found while mapping one row.
struct Problems<'a> {
    record: &'a Record,
    site_id: String,
    errors: Vec<RowError>,
}

impl Problems<'_> {
    fn push(&mut self, field: &str, reason: &str, message: String) {
        self.errors.push(RowError {
            row: self.record.row,
            line: self.record.line,
            site_id: self.site_id.clone(),
            field: field.to_owned(),
            reason: reason.to_owned(),
            message,
        });
    }
}

fn falsy(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().as_str(), "" | "0" | "0.0" | "false" | "no" | "n")
}

fn truthy(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().as_str(), "1" | "1.0" | "true" | "yes" | "y")
}

/// Replaces characters a site id may not hold with `-`.
fn slug(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.trim().chars() {
        let keep = c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        let c = if keep { c } else { '-' };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_owned()
}

impl Mapping {
    pub fn load(path: &Path) -> Result<Mapping, MappingError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| MappingError::Read { path: path.display().to_string(), source })?;
        let mapping: Mapping =
            toml::from_str(&text).map_err(|source| MappingError::Parse { path: path.display().to_string(), source })?;
        mapping.check().map_err(|reason| MappingError::Invalid { path: path.display().to_string(), reason })?;
        Ok(mapping)
    }

    /// What the types cannot say: one source per value, and a one-byte delimiter.
    fn check(&self) -> Result<(), String> {
        if self.source.delimiter.is_some_and(|d| !d.is_ascii()) {
            return Err("source.delimiter must be one ASCII character".into());
        }
        let s = &self.site;
        let values = [&s.id, &s.display_name, &s.kind, &s.country_code, &s.latitude, &s.longitude, &s.time_zone];
        let optional = [&s.operator, &s.locality, &s.region, &s.postal_code, &s.service_notes, &s.opening_hours];
        let more = [&s.phone, &s.email, &s.website, &s.status, &s.free_access];
        let all = values.into_iter().chain(optional.into_iter().chain(more).flatten()).chain(&s.address_lines);
        for value in all {
            if let Value::Spec(Spec { column: Some(c), template: Some(t), .. }) = value {
                return Err(format!("a value names both column {c:?} and template {t:?}; give one"));
            }
        }
        Ok(())
    }

    /// Every column the mapping reads.
    pub fn columns(&self) -> Vec<String> {
        let s = &self.site;
        let mut values: Vec<&Value> =
            vec![&s.id, &s.display_name, &s.kind, &s.country_code, &s.latitude, &s.longitude, &s.time_zone];
        values.extend(s.address_lines.iter());
        for v in [
            &s.operator,
            &s.locality,
            &s.region,
            &s.postal_code,
            &s.service_notes,
            &s.opening_hours,
            &s.phone,
            &s.email,
            &s.website,
            &s.status,
            &s.free_access,
        ]
        .into_iter()
        .flatten()
        {
            values.push(v);
        }
        let mut columns: Vec<String> = values.into_iter().flat_map(Value::columns).collect();
        for item in s.services.iter().chain(&s.languages).chain(&s.accessibility) {
            if let Item::When(When { when, .. }) = item {
                columns.push(when.clone());
            }
        }
        columns.sort();
        columns.dedup();
        columns
    }

    /// Fails naming every column the mapping reads that `headers` lacks.
    pub fn check_columns(&self, headers: &[String]) -> Result<(), MappingError> {
        let missing: Vec<String> = self.columns().into_iter().filter(|c| !headers.contains(c)).collect();
        if missing.is_empty() { Ok(()) } else { Err(MappingError::MissingColumns(missing)) }
    }

    fn raw<'r>(&self, record: &'r Record, column: &str) -> &'r str {
        let value = record.get(column);
        if self.source.null_values.iter().any(|n| n == value) { "" } else { value }
    }

    fn template(&self, record: &Record, template: &str) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            match rest[start..].find('}') {
                Some(end) => {
                    out.push_str(self.raw(record, &rest[start + 1..start + end]));
                    rest = &rest[start + end + 1..];
                }
                None => {
                    out.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out.trim().to_owned()
    }

    fn value(&self, record: &Record, value: &Value, field: &str, problems: &mut Problems) -> String {
        match value {
            Value::Template(t) => self.template(record, t),
            Value::Spec(Spec { column, template, map, default }) => {
                let raw = match (column, template) {
                    (Some(c), _) => self.raw(record, c).to_owned(),
                    (None, Some(t)) => self.template(record, t),
                    (None, None) => String::new(),
                };
                if map.is_empty() {
                    return if raw.is_empty() { default.clone().unwrap_or_default() } else { raw };
                }
                match (lookup(map, &raw), default) {
                    (Some(mapped), _) => mapped.clone(),
                    (None, Some(default)) => default.clone(),
                    (None, None) => {
                        problems.push(field, "UNMAPPED_VALUE", format!("{raw:?} is not in the mapping's value map"));
                        String::new()
                    }
                }
            }
        }
    }

    fn items(&self, record: &Record, items: &[Item]) -> Vec<String> {
        items
            .iter()
            .filter_map(|item| match item {
                Item::Always(value) => Some(self.template(record, value)),
                Item::When(When { value, when, is }) => {
                    let raw = self.raw(record, when);
                    let present = if is.is_empty() { truthy(raw) } else { is.iter().any(|v| v == raw) };
                    present.then(|| self.template(record, value))
                }
            })
            .filter(|v| !v.is_empty())
            .collect()
    }

    fn optional(&self, record: &Record, value: &Option<Value>, field: &str, problems: &mut Problems) -> String {
        value.as_ref().map(|v| self.value(record, v, field, problems)).unwrap_or_default()
    }

    /// The record as a validated site with the notes of any optional field dropped (see
    /// `checks.on_invalid_optional`), or every problem found (each naming its field).
    pub fn site(&self, record: &Record) -> Result<(Site, Vec<RowError>), Vec<RowError>> {
        let s = &self.site;
        let mut problems = Problems { record, site_id: String::new(), errors: Vec::new() };
        let site_id = slug(&self.value(record, &s.id, "id", &mut problems));
        problems.site_id = site_id.clone();

        let codes = |values: Vec<String>, field: &str, problems: &mut Problems, parse: &dyn Fn(&str) -> bool| {
            for v in &values {
                if !parse(v) {
                    problems.push(field, "UNKNOWN_VALUE", format!("{v:?} is not a known value"));
                }
            }
            values
        };
        let kind_text = self.value(record, &s.kind, "kind", &mut problems);
        let kind = Kind::from_code(&kind_text);
        if kind.is_none() && !kind_text.is_empty() {
            problems.push("kind", "UNKNOWN_VALUE", format!("{kind_text:?} is not a kind"));
        }
        let status_text = self.optional(record, &s.status, "status", &mut problems);
        let status = if status_text.is_empty() { None } else { SiteStatus::from_code(&status_text) };
        if status.is_none() && !status_text.is_empty() {
            problems.push("status", "UNKNOWN_VALUE", format!("{status_text:?} is not a site status"));
        }
        let services =
            codes(self.items(record, &s.services), "services", &mut problems, &|v| ServiceType::from_code(v).is_some());
        let accessibility = codes(self.items(record, &s.accessibility), "accessibility", &mut problems, &|v| {
            Accessibility::from_code(v).is_some()
        });

        let lat = self.value(record, &s.latitude, "latitude", &mut problems);
        let lng = self.value(record, &s.longitude, "longitude", &mut problems);
        let location = match coordinates::check(&lat, &lng, self.checks.bounds.as_ref()) {
            Ok(pair) => Some(pair),
            Err(e) => {
                problems.push(e.field, e.reason, e.message);
                None
            }
        };

        let input = SiteInput {
            name: format!("sites/{}/{}", s.origin, site_id),
            display_name: self.value(record, &s.display_name, "display_name", &mut problems),
            kind,
            operator: self.optional(record, &s.operator, "operator", &mut problems),
            country_code: self.value(record, &s.country_code, "country_code", &mut problems),
            address: Address {
                lines: s
                    .address_lines
                    .iter()
                    .map(|v| self.value(record, v, "address.lines", &mut problems))
                    .filter(|l| !l.is_empty())
                    .collect(),
                locality: self.optional(record, &s.locality, "address.locality", &mut problems),
                region: self.optional(record, &s.region, "address.region", &mut problems),
                postal_code: self.optional(record, &s.postal_code, "address.postal_code", &mut problems),
            },
            location,
            services: services.iter().filter_map(|v| ServiceType::from_code(v)).collect(),
            service_notes: self.optional(record, &s.service_notes, "service_notes", &mut problems),
            languages: self.items(record, &s.languages),
            accessibility: accessibility.iter().filter_map(|v| Accessibility::from_code(v)).collect(),
            opening_hours: self.optional(record, &s.opening_hours, "opening_hours", &mut problems),
            time_zone: self.value(record, &s.time_zone, "time_zone", &mut problems),
            contact: Contact {
                phone: self.optional(record, &s.phone, "phone", &mut problems),
                email: self.optional(record, &s.email, "email", &mut problems),
                website: self.optional(record, &s.website, "website", &mut problems),
            },
            status,
            free_access: {
                let value = self.optional(record, &s.free_access, "free_access", &mut problems);
                if !truthy(&value) && !falsy(&value) {
                    problems.push(
                        "free_access",
                        "INVALID_FORMAT",
                        format!("{} is neither true nor false", hubdir_core::echo(&value)),
                    );
                }
                truthy(&value)
            },
        };
        crate::report::validated_with(input, problems.errors, record, &site_id, self.checks.on_invalid_optional)
    }
}

/// An exact key first; else the longest `prefix*` key that `raw` (non-empty) starts with.
fn lookup<'m>(map: &'m BTreeMap<String, String>, raw: &str) -> Option<&'m String> {
    map.get(raw).or_else(|| {
        map.iter()
            .filter_map(|(k, v)| k.strip_suffix('*').map(|prefix| (prefix, v)))
            .filter(|(prefix, _)| !raw.is_empty() && raw.starts_with(prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, v)| v)
    })
}

impl Value {
    fn columns(&self) -> Vec<String> {
        let template_columns = |t: &str| -> Vec<String> {
            t.split('{').skip(1).filter_map(|part| part.split_once('}').map(|(c, _)| c.to_owned())).collect()
        };
        match self {
            Value::Template(t) => template_columns(t),
            Value::Spec(Spec { column: Some(c), .. }) => vec![c.clone()],
            Value::Spec(Spec { template: Some(t), .. }) => template_columns(t),
            Value::Spec(_) => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FIELD_DROPPED;
    use std::collections::HashMap;

    const MAPPING: &str = r#"
        [source]
        format = "csv"
        null_values = ["NA"]
        [site]
        origin = "in-post"
        id = "{pincode}-{officename}"
        display_name = "{officename}"
        kind = { column = "officetype", map = { HO = "POST_OFFICE", PO = "POST_OFFICE", BO = "POSTAL_AGENCY" } }
        operator = "India Post"
        country_code = "IN"
        latitude = "{latitude}"
        longitude = "{longitude}"
        region = "{statename}"
        postal_code = "{pincode}"
        time_zone = "Asia/Kolkata"
        services = ["POSTAL_BANKING", { value = "FREE_WIFI", when = "wifi" }]
        languages = ["hi", "en"]
        [checks]
        bounds = [6.0, 68.0, 37.5, 97.5]
    "#;

    fn record(values: &[(&str, &str)]) -> Record {
        Record {
            row: 7,
            line: 8,
            values: values.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect::<HashMap<_, _>>(),
        }
    }

    fn row(lat: &str, lng: &str, kind: &str) -> Record {
        record(&[
            ("pincode", "110090"),
            ("officename", "Khajoori Khas BO"),
            ("officetype", kind),
            ("statename", "DELHI"),
            ("latitude", lat),
            ("longitude", lng),
            ("wifi", "1.0"),
        ])
    }

    #[test]
    fn a_good_row_becomes_a_site() {
        let mapping: Mapping = toml::from_str(MAPPING).unwrap();
        let (site, _) = mapping.site(&row("28.6922500", "77.3042222", "BO")).unwrap();
        assert_eq!(site.name.to_string(), "sites/in-post/110090-Khajoori-Khas-BO");
        assert_eq!(site.kind, Kind::PostalAgency);
        assert_eq!(site.services.len(), 2);
        assert_eq!(site.address.postal_code, "110090");
    }

    #[test]
    fn bad_rows_name_their_field_row_and_reason() {
        let mapping: Mapping = toml::from_str(MAPPING).unwrap();
        let errors = mapping.site(&row("NA", "NA", "BO")).unwrap_err();
        assert_eq!((errors[0].row, errors[0].line), (7, 8));
        assert_eq!((errors[0].field.as_str(), errors[0].reason.as_str()), ("location", "MISSING_COORDINATES"));
        assert_eq!(errors.len(), 1, "the missing position was reported twice: {errors:?}");
        let errors = mapping.site(&row("28.6", "77.3", "XX")).unwrap_err();
        assert_eq!((errors[0].field.as_str(), errors[0].reason.as_str()), ("kind", "UNMAPPED_VALUE"));
    }

    /// 14 English libraries were lost for an e-mail address without `@`: with
    /// `on_invalid_optional = "drop_field"` the site is kept without it and the report says
    /// so; a refused position or kind still rejects the row; the default rejects as before.
    #[test]
    fn drop_field_keeps_a_site_without_a_refused_optional_field_only() {
        let with = |policy: &str| {
            let text = MAPPING.replace("[site]", "[site]\nemail = \"{email}\"\nopening_hours = \"{hours}\"");
            toml::from_str::<Mapping>(&format!("{text}on_invalid_optional = \"{policy}\"\n")).unwrap()
        };
        let bad_contact = |lat: &str, kind: &str| {
            let mut r = row(lat, "77.3042222", kind);
            r.values.insert("email".into(), "library.example.org".into());
            r.values.insert("hours".into(), "whenever".into());
            r
        };
        let (site, dropped) = with("drop_field").site(&bad_contact("28.6922500", "BO")).unwrap();
        assert_eq!((site.contact.email.as_str(), site.opening_hours.as_ref()), ("", None));
        assert_eq!(site.address.postal_code, "110090", "only the refused fields go");
        let fields: Vec<(&str, &str)> = dropped.iter().map(|e| (e.field.as_str(), e.reason.as_str())).collect();
        assert_eq!(fields, [("opening_hours", FIELD_DROPPED), ("contact.email", FIELD_DROPPED)]);
        assert!(dropped[1].message.starts_with("INVALID_FORMAT: "), "{}", dropped[1].message);
        assert_eq!((dropped[0].row, dropped[0].line), (7, 8));

        // A fault outside the optional fields rejects the row, with every reason.
        let errors = with("drop_field").site(&bad_contact("95.0", "BO")).unwrap_err();
        assert!(errors.iter().any(|e| e.field == "contact.email"), "{errors:?}");
        assert!(errors.iter().any(|e| e.reason == "OUTSIDE_EXTENT" || e.reason == "OUT_OF_RANGE"), "{errors:?}");
        let errors = with("drop_field").site(&bad_contact("28.6922500", "XX")).unwrap_err();
        assert!(errors.iter().any(|e| e.reason == "UNMAPPED_VALUE"), "{errors:?}");
        // The default, and "reject_row", reject the row.
        let errors = with("reject_row").site(&bad_contact("28.6922500", "BO")).unwrap_err();
        assert_eq!(errors[0].reason, "INVALID_FORMAT");
        let default: Mapping = toml::from_str(&MAPPING.replace("[site]", "[site]\nemail = \"{email}\"")).unwrap();
        assert!(default.site(&bad_contact("28.6922500", "BO")).is_err());
    }

    #[test]
    fn the_mapping_lists_its_columns() {
        let mapping: Mapping = toml::from_str(MAPPING).unwrap();
        let headers: Vec<String> =
            ["pincode", "officename", "officetype", "statename", "latitude", "longitude"].map(String::from).to_vec();
        let err = mapping.check_columns(&headers).unwrap_err().to_string();
        assert!(err.contains("wifi"), "{err}");
    }

    #[test]
    fn typos_in_value_tables_are_refused() {
        let typo = MAPPING.replace("map = { HO", "mapp = { HO");
        assert!(toml::from_str::<Mapping>(&typo).is_err());
        let typo = MAPPING.replace("when = \"wifi\"", "whenn = \"wifi\"");
        assert!(toml::from_str::<Mapping>(&typo).is_err());
    }

    #[test]
    fn map_keys_may_be_prefixes() {
        let map: BTreeMap<String, String> =
            [("980*", "MC"), ("9*", "XX"), ("97411", "exact"), ("*", "any")].map(|(k, v)| (k.into(), v.into())).into();
        assert_eq!(lookup(&map, "98000").unwrap(), "MC");
        assert_eq!(lookup(&map, "97411").unwrap(), "exact");
        assert_eq!(lookup(&map, "97400").unwrap(), "XX");
        assert_eq!(lookup(&map, "1").unwrap(), "any");
        assert_eq!(lookup(&map, ""), None);
    }

    #[test]
    fn slugs_keep_ids_legal() {
        assert_eq!(slug(" 110090-Khajoori Khas B.O. "), "110090-Khajoori-Khas-B.O");
        assert_eq!(slug("AK0001/002"), "AK0001-002");
    }
}
