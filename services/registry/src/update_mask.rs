//! AIP-134 partial updates: copy the fields named in `update_mask` from the request's site
//! onto the stored one.

use hubdir_core::{ViolationReason, Violations};
use hubdir_proto::v1::{Address, Contact, Site};

/// Fields a client may change, as `update_mask` paths. `*` means all of them.
pub const WRITABLE: &[&str] = &[
    "display_name",
    "kind",
    "operator",
    "country_code",
    "address",
    "address.lines",
    "address.locality",
    "address.region",
    "address.postal_code",
    "location",
    "services",
    "service_notes",
    "languages",
    "accessibility",
    "opening_hours",
    "time_zone",
    "contact",
    "contact.phone",
    "contact.email",
    "contact.website",
    "status",
    "free_access",
];

/// Output-only or identifying fields: naming them in a mask is an error, not a no-op.
const FIXED: &[&str] = &["name", "h3_cell", "etag", "update_time", "origin_seq"];

/// The stored site with the masked fields taken from `patch`.
pub fn apply(mut stored: Site, patch: Site, paths: &[String]) -> Result<Site, Violations> {
    let mut out = Violations::default();
    if paths.is_empty() {
        out.push("update_mask", ViolationReason::Required, "name the fields to change, or `*` for all");
        return Err(out);
    }
    for (i, path) in paths.iter().enumerate() {
        if path == "*" {
            replace_all(&mut stored, patch.clone());
        } else if WRITABLE.contains(&path.as_str()) {
            copy(&mut stored, &patch, path);
        } else if FIXED.contains(&path.as_str()) {
            out.push(
                format!("update_mask.paths[{i}]"),
                ViolationReason::InvalidFormat,
                format!("{path} cannot be changed"),
            );
        } else {
            out.push(
                format!("update_mask.paths[{i}]"),
                ViolationReason::UnknownValue,
                format!("{path:?} is not a field of Site"),
            );
        }
    }
    if out.is_empty() { Ok(stored) } else { Err(out) }
}

/// Every writable field from `patch`; destructured so a new field must be decided on here.
fn replace_all(stored: &mut Site, patch: Site) {
    let Site {
        name: _,
        display_name,
        kind,
        operator,
        country_code,
        address,
        location,
        services,
        service_notes,
        languages,
        accessibility,
        opening_hours,
        time_zone,
        contact,
        status,
        free_access,
        h3_cell: _,
        etag: _,
        update_time: _,
        origin_seq: _,
    } = patch;
    stored.display_name = display_name;
    stored.kind = kind;
    stored.operator = operator;
    stored.country_code = country_code;
    stored.address = address;
    stored.location = location;
    stored.services = services;
    stored.service_notes = service_notes;
    stored.languages = languages;
    stored.accessibility = accessibility;
    stored.opening_hours = opening_hours;
    stored.time_zone = time_zone;
    stored.contact = contact;
    stored.status = status;
    stored.free_access = free_access;
}

fn copy(stored: &mut Site, patch: &Site, path: &str) {
    let address = |site: &mut Site| site.address.get_or_insert_with(Address::default).clone();
    let contact = |site: &mut Site| site.contact.get_or_insert_with(Contact::default).clone();
    let from_address = patch.address.clone().unwrap_or_default();
    let from_contact = patch.contact.clone().unwrap_or_default();
    match path {
        "display_name" => stored.display_name.clone_from(&patch.display_name),
        "kind" => stored.kind = patch.kind,
        "operator" => stored.operator.clone_from(&patch.operator),
        "country_code" => stored.country_code.clone_from(&patch.country_code),
        "address" => stored.address.clone_from(&patch.address),
        "address.lines" => stored.address = Some(Address { lines: from_address.lines, ..address(stored) }),
        "address.locality" => stored.address = Some(Address { locality: from_address.locality, ..address(stored) }),
        "address.region" => stored.address = Some(Address { region: from_address.region, ..address(stored) }),
        "address.postal_code" => {
            stored.address = Some(Address { postal_code: from_address.postal_code, ..address(stored) });
        }
        "location" => stored.location = patch.location,
        "services" => stored.services.clone_from(&patch.services),
        "service_notes" => stored.service_notes.clone_from(&patch.service_notes),
        "languages" => stored.languages.clone_from(&patch.languages),
        "accessibility" => stored.accessibility.clone_from(&patch.accessibility),
        "opening_hours" => stored.opening_hours.clone_from(&patch.opening_hours),
        "time_zone" => stored.time_zone.clone_from(&patch.time_zone),
        "contact" => stored.contact.clone_from(&patch.contact),
        "contact.phone" => stored.contact = Some(Contact { phone: from_contact.phone, ..contact(stored) }),
        "contact.email" => stored.contact = Some(Contact { email: from_contact.email, ..contact(stored) }),
        "contact.website" => stored.contact = Some(Contact { website: from_contact.website, ..contact(stored) }),
        "status" => stored.status = patch.status,
        "free_access" => stored.free_access = patch.free_access,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubdir_proto::v1::LatLng;

    fn stored() -> Site {
        Site {
            name: "sites/zw/1".into(),
            display_name: "Old".into(),
            operator: "ZimPost".into(),
            address: Some(Address { locality: "Harare".into(), postal_code: "0000".into(), ..Address::default() }),
            location: Some(LatLng { latitude: -17.8, longitude: 31.0 }),
            etag: "e1".into(),
            ..Site::default()
        }
    }

    #[test]
    fn only_masked_fields_change() {
        let patch = Site {
            display_name: "New".into(),
            operator: "Someone else".into(),
            address: Some(Address { locality: "Bulawayo".into(), ..Address::default() }),
            ..Site::default()
        };
        let merged = apply(stored(), patch, &["display_name".into(), "address.locality".into()]).unwrap();
        assert_eq!(merged.display_name, "New");
        assert_eq!(merged.operator, "ZimPost");
        let address = merged.address.unwrap();
        assert_eq!(address.locality, "Bulawayo");
        assert_eq!(address.postal_code, "0000", "a sibling sub-field was lost");
        assert_eq!(merged.etag, "e1");
    }

    #[test]
    fn star_replaces_every_writable_field_but_not_the_name() {
        let patch = Site { name: "sites/ke/9".into(), display_name: "All new".into(), ..Site::default() };
        let merged = apply(stored(), patch, &["*".into()]).unwrap();
        assert_eq!(merged.name, "sites/zw/1");
        assert_eq!(merged.display_name, "All new");
        assert_eq!(merged.location, None);
    }

    #[test]
    fn bad_paths_are_named() {
        let err =
            apply(stored(), Site::default(), &["display_name".into(), "etag".into(), "colour".into()]).unwrap_err();
        let fields: Vec<_> = err.0.iter().map(|v| (v.field.as_str(), v.reason.code())).collect();
        assert_eq!(fields, vec![("update_mask.paths[1]", "INVALID_FORMAT"), ("update_mask.paths[2]", "UNKNOWN_VALUE")]);
        assert_eq!(apply(stored(), Site::default(), &[]).unwrap_err().0[0].field, "update_mask");
    }
}
