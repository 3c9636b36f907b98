//! Open Referral HSDS 3.0 for hubdir: the JSON objects a site maps to, with stable ids
//! (`ids`). `hubdir export --format hsds` and the HSDS API (`services/discovery`) both map
//! through here, so they agree.
//!
//! Per site: one service (what the site offers, named after the site), at one location (the
//! site's place), linked by one service-at-location. The site's operator is the service's
//! organization. Two taxonomies classify services through attributes: the service types a
//! site offers, and its kind.

pub mod ids;

use hubdir_core::lookup::{operator_subject, site_subject};
use hubdir_core::{Kind, ServiceType, SiteRecord, SiteStatus};
use serde_json::{Value, json};

/// The HSDS version served and exported.
pub const VERSION: &str = "3.0";

/// How much of an object: HSDS's list shape (one-to-one fields, as its `*_list` schemas
/// have them) or fully nested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    List,
    Full,
}

/// The ids of a site's HSDS objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteIds {
    pub service: String,
    pub location: String,
    pub service_at_location: String,
    /// Its operator's organization; none when the site names no operator.
    pub organization: Option<String>,
}

impl SiteIds {
    pub fn of(record: &SiteRecord) -> SiteIds {
        let subject = site_subject(&record.site.name);
        SiteIds {
            service: ids::uuid(&subject, "service"),
            location: ids::uuid(&subject, "location"),
            service_at_location: ids::uuid(&subject, "service_at_location"),
            organization: organization_id(&record.site.operator),
        }
    }
}

/// The organization id of an operator; none for the empty operator.
pub fn organization_id(operator: &str) -> Option<String> {
    (!operator.is_empty()).then(|| ids::uuid(&operator_subject(operator), "organization"))
}

/// An HSDS `uri`: only absolute http(s) URLs of printable ASCII pass; anything else a
/// publisher typed is left out rather than served as a broken link.
fn uri(text: &str) -> Option<&str> {
    let absolute = text.starts_with("https://") || text.starts_with("http://");
    (absolute && text.len() > "https://".len() && text.bytes().all(|b| b.is_ascii_graphic())).then_some(text)
}

fn status(status: SiteStatus) -> &'static str {
    match status {
        SiteStatus::Open => "active",
        SiteStatus::TemporarilyClosed => "temporarily closed",
        SiteStatus::Closed => "inactive",
    }
}

/// `PUBLIC_INTERNET` reads "Public internet".
fn label(code: &str) -> String {
    let words = code.replace('_', " ").to_lowercase();
    let mut chars = words.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The two taxonomies, with their terms' codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taxonomy {
    /// What a site offers (`ServiceType`).
    ServiceTypes,
    /// What kind of place a site is (`Kind`).
    SiteKinds,
}

impl Taxonomy {
    pub const ALL: [Taxonomy; 2] = [Taxonomy::ServiceTypes, Taxonomy::SiteKinds];

    fn slug(self) -> &'static str {
        match self {
            Taxonomy::ServiceTypes => "service-types",
            Taxonomy::SiteKinds => "site-kinds",
        }
    }

    fn subject(self) -> String {
        format!("hubdir-taxonomy:{}", self.slug())
    }

    pub fn id(self) -> String {
        ids::uuid(&self.subject(), "taxonomy")
    }

    /// The taxonomy as HSDS's `taxonomy` object.
    pub fn to_json(self) -> Value {
        let (name, description) = match self {
            Taxonomy::ServiceTypes => {
                ("hubdir service types", "What a help point offers: public internet, free wifi, e-government help...")
            }
            Taxonomy::SiteKinds => {
                ("hubdir site kinds", "What kind of place a help point is: public library, post office, telecentre...")
            }
        };
        json!({ "id": self.id(), "name": name, "description": description, "version": "1" })
    }

    /// Its terms' codes, in the contract's order.
    pub fn codes(self) -> Vec<&'static str> {
        match self {
            Taxonomy::ServiceTypes => ServiceType::ALL.iter().map(|s| s.code()).collect(),
            Taxonomy::SiteKinds => Kind::ALL.iter().map(|k| k.code()).collect(),
        }
    }

    pub fn term_id(self, code: &str) -> String {
        ids::uuid(&self.subject(), &format!("term-{code}"))
    }

    /// The term for `code`, as HSDS's `taxonomy_term` object.
    pub fn term(self, code: &str) -> Value {
        let name = label(code);
        let description = match self {
            Taxonomy::ServiceTypes => format!("The help point offers: {}.", name.to_lowercase()),
            Taxonomy::SiteKinds => format!("The help point is a {}.", name.to_lowercase()),
        };
        json!({
            "id": self.term_id(code),
            "code": code,
            "name": name,
            "description": description,
            "taxonomy": self.to_json()["name"],
            "taxonomy_id": self.id(),
        })
    }

    /// Every term of every taxonomy, taxonomy by taxonomy.
    pub fn all_terms() -> Vec<(Taxonomy, &'static str)> {
        Taxonomy::ALL.iter().flat_map(|t| t.codes().into_iter().map(move |code| (*t, code))).collect()
    }
}

/// An organization (an operator) in HSDS's list shape, with how many sites it runs.
pub fn organization(operator: &str, sites: u64) -> Value {
    json!({
        "id": organization_id(operator),
        "name": operator,
        "description": format!("Operates {sites} help point{} in this directory.", if sites == 1 { "" } else { "s" }),
    })
}

/// The site's service: list shape, or with its organization, its service-at-location (and
/// location) and its attributes nested.
pub fn service(record: &SiteRecord, shape: Shape) -> Value {
    let site = &record.site;
    let ids = SiteIds::of(record);
    let offers: Vec<&str> = site.services.iter().map(|s| s.code()).collect();
    let mut description = format!("{} ({}). Offers: {}.", site.display_name, site.kind.code(), offers.join(", "));
    if !site.service_notes.is_empty() {
        description = format!("{description} {}", site.service_notes);
    }
    let mut service = json!({
        "id": ids.service,
        "name": site.display_name,
        "status": status(site.status),
        "description": description,
        "last_modified": record.update_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    if let Some(organization) = &ids.organization {
        service["organization_id"] = json!(organization);
    }
    if site.contact.email.contains('@') {
        service["email"] = json!(site.contact.email);
    }
    if let Some(url) = uri(&site.contact.website) {
        service["url"] = json!(url);
    }
    if site.free_access {
        service["fees_description"] = json!("Free of charge.");
    }
    if shape == Shape::Full {
        if ids.organization.is_some() {
            // The count of sites is the organization listing's; nested, the name says enough.
            service["organization"] = json!({
                "id": ids.organization,
                "name": site.operator,
                "description": format!("Operator of {}.", site.display_name),
            });
        }
        service["service_at_locations"] = json!([{
            "id": ids.service_at_location,
            "service_id": ids.service,
            "location_id": ids.location,
            "location": location(record),
        }]);
        let subject = site_subject(&site.name);
        let terms = site
            .services
            .iter()
            .map(|s| (Taxonomy::ServiceTypes, s.code()))
            .chain([(Taxonomy::SiteKinds, site.kind.code())]);
        service["attributes"] = terms
            .map(|(taxonomy, code)| {
                json!({
                    "id": ids::uuid(&subject, &format!("attribute-{code}")),
                    "link_id": ids.service,
                    "link_type": taxonomy.slug(),
                    "link_entity": "service",
                    "taxonomy_term_id": taxonomy.term_id(code),
                    "taxonomy_term": taxonomy.term(code),
                })
            })
            .collect();
    }
    service
}

/// The site's place: position, address, phone, languages, accessibility, opening hours.
pub fn location(record: &SiteRecord) -> Value {
    let site = &record.site;
    let name = site.name.to_string();
    let subject = site_subject(&site.name);
    let id = ids::uuid(&subject, "location");
    let mut location = json!({
        "id": id,
        "location_type": "physical",
        "name": site.display_name,
        "latitude": site.location.latitude(),
        "longitude": site.location.longitude(),
        "external_identifier": name,
        "external_identifier_type": "hubdir site name",
        "languages": site.languages.iter().map(|l| json!({
            "id": ids::uuid(&subject, &format!("language-{l}")), "location_id": id, "code": l.as_str(),
        })).collect::<Vec<_>>(),
        "accessibility": site.accessibility.iter().map(|a| json!({
            "id": ids::uuid(&subject, &format!("accessibility-{}", a.code())), "location_id": id, "description": a.code(),
        })).collect::<Vec<_>>(),
    });
    if let Some(organization) = organization_id(&site.operator) {
        location["organization_id"] = json!(organization);
    }
    if let Some(first) = site.address.lines.first() {
        location["addresses"] = json!([{
            "id": ids::uuid(&subject, "address"),
            "location_id": id,
            "address_1": first,
            "address_2": site.address.lines[1..].join(", "),
            "city": site.address.locality,
            "state_province": site.address.region,
            "postal_code": site.address.postal_code,
            "country": site.country.as_str(),
            "address_type": "physical",
        }]);
    }
    if !site.contact.phone.is_empty() {
        location["phones"] =
            json!([{ "id": ids::uuid(&subject, "phone"), "location_id": id, "number": site.contact.phone }]);
    }
    if let Some(hours) = &site.opening_hours {
        location["schedules"] = json!([{
            "id": ids::uuid(&subject, "schedule"),
            "location_id": id,
            "description": format!("{} (OpenStreetMap opening_hours, time zone {})", hours, site.time_zone),
        }]);
    }
    location
}

/// The site's service-at-location with its location and (list-shaped) service nested, as
/// HSDS's `service_at_location_list` items carry them.
pub fn service_at_location(record: &SiteRecord) -> Value {
    let ids = SiteIds::of(record);
    json!({
        "id": ids.service_at_location,
        "service_id": ids.service,
        "location_id": ids.location,
        "location": location(record),
        "service": service(record, Shape::List),
    })
}

/// A page of HSDS results: its `Page` fields around `contents`. `page` counts from 1.
pub fn page(contents: Vec<Value>, total_items: u64, page: u64, per_page: u64) -> Value {
    let total_pages = total_items.div_ceil(per_page.max(1));
    json!({
        "total_items": total_items,
        "total_pages": total_pages,
        "page_number": page,
        "size": contents.len(),
        "first_page": page == 1,
        "last_page": page >= total_pages,
        "empty": contents.is_empty(),
        "contents": contents,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_uris_and_pages() {
        assert_eq!(label("E_GOVERNMENT_HELP"), "E government help");
        assert_eq!(uri("https://tpl.ca/albion"), Some("https://tpl.ca/albion"));
        for bad in ["tpl.ca", "https://", "https://bad url", "https://bibliothèque.fr", "javascript:alert(1)"] {
            assert_eq!(uri(bad), None, "{bad}");
        }
        let empty = page(Vec::new(), 0, 1, 50);
        assert_eq!((empty["total_pages"].as_u64(), empty["last_page"].as_bool()), (Some(0), Some(true)));
        let middle = page(vec![json!({}); 10], 25, 2, 10);
        assert_eq!(middle["total_pages"], 3);
        assert_eq!((middle["first_page"].as_bool(), middle["last_page"].as_bool()), (Some(false), Some(false)));
        assert_eq!(organization_id(""), None);
        let terms = Taxonomy::all_terms();
        assert_eq!(terms.len(), ServiceType::ALL.len() + Kind::ALL.len());
        let ids: std::collections::HashSet<String> = terms.iter().map(|(t, code)| t.term_id(code)).collect();
        assert_eq!(ids.len(), terms.len(), "term ids are distinct");
    }
}
