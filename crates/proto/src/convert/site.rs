//! `site.proto`: sites, their enums and the `SiteFilter` queries carry.

use hubdir_core::{
    Accessibility, Address, Contact, Filter, Kind, LanguageTag, ServiceType, Site, SiteInput, SiteRecord, SiteStatus,
    ViolationReason, Violations,
};

use super::{from_timestamp, known, known_list, state_from_proto, timestamp};
use crate::v1 as pb;

pub fn kind_from_proto(raw: i32) -> Option<Option<Kind>> {
    use pb::Kind as P;
    Some(match P::try_from(raw).ok()? {
        P::Unspecified => None,
        P::PublicLibrary => Some(Kind::PublicLibrary),
        P::AcademicLibrary => Some(Kind::AcademicLibrary),
        P::SchoolLibrary => Some(Kind::SchoolLibrary),
        P::PostOffice => Some(Kind::PostOffice),
        P::PostalAgency => Some(Kind::PostalAgency),
        P::Telecentre => Some(Kind::Telecentre),
        P::CommunityCentre => Some(Kind::CommunityCentre),
        P::School => Some(Kind::School),
        P::Other => Some(Kind::Other),
    })
}

pub fn kind_to_proto(kind: Kind) -> pb::Kind {
    use pb::Kind as P;
    match kind {
        Kind::PublicLibrary => P::PublicLibrary,
        Kind::AcademicLibrary => P::AcademicLibrary,
        Kind::SchoolLibrary => P::SchoolLibrary,
        Kind::PostOffice => P::PostOffice,
        Kind::PostalAgency => P::PostalAgency,
        Kind::Telecentre => P::Telecentre,
        Kind::CommunityCentre => P::CommunityCentre,
        Kind::School => P::School,
        Kind::Other => P::Other,
    }
}

pub fn service_from_proto(raw: i32) -> Option<ServiceType> {
    use pb::ServiceType as P;
    match P::try_from(raw).ok()? {
        P::Unspecified => None,
        P::PublicInternet => Some(ServiceType::PublicInternet),
        P::FreeWifi => Some(ServiceType::FreeWifi),
        P::PublicComputers => Some(ServiceType::PublicComputers),
        P::DigitalSkillsTraining => Some(ServiceType::DigitalSkillsTraining),
        P::EGovernmentHelp => Some(ServiceType::EGovernmentHelp),
        P::PostalBanking => Some(ServiceType::PostalBanking),
        P::BillPayment => Some(ServiceType::BillPayment),
        P::HealthPlatformAccess => Some(ServiceType::HealthPlatformAccess),
        P::PrintingAndScanning => Some(ServiceType::PrintingAndScanning),
        P::MobileMoney => Some(ServiceType::MobileMoney),
    }
}

fn service_to_proto(service: ServiceType) -> pb::ServiceType {
    use pb::ServiceType as P;
    match service {
        ServiceType::PublicInternet => P::PublicInternet,
        ServiceType::FreeWifi => P::FreeWifi,
        ServiceType::PublicComputers => P::PublicComputers,
        ServiceType::DigitalSkillsTraining => P::DigitalSkillsTraining,
        ServiceType::EGovernmentHelp => P::EGovernmentHelp,
        ServiceType::PostalBanking => P::PostalBanking,
        ServiceType::BillPayment => P::BillPayment,
        ServiceType::HealthPlatformAccess => P::HealthPlatformAccess,
        ServiceType::PrintingAndScanning => P::PrintingAndScanning,
        ServiceType::MobileMoney => P::MobileMoney,
    }
}

pub fn accessibility_from_proto(raw: i32) -> Option<Accessibility> {
    use pb::AccessibilityFeature as P;
    match P::try_from(raw).ok()? {
        P::Unspecified => None,
        P::StepFreeEntrance => Some(Accessibility::StepFreeEntrance),
        P::WheelchairAccessible => Some(Accessibility::WheelchairAccessible),
        P::AccessibleToilet => Some(Accessibility::AccessibleToilet),
        P::HearingLoop => Some(Accessibility::HearingLoop),
        P::ScreenReader => Some(Accessibility::ScreenReader),
        P::LargePrint => Some(Accessibility::LargePrint),
        P::SignLanguage => Some(Accessibility::SignLanguage),
    }
}

fn accessibility_to_proto(feature: Accessibility) -> pb::AccessibilityFeature {
    use pb::AccessibilityFeature as P;
    match feature {
        Accessibility::StepFreeEntrance => P::StepFreeEntrance,
        Accessibility::WheelchairAccessible => P::WheelchairAccessible,
        Accessibility::AccessibleToilet => P::AccessibleToilet,
        Accessibility::HearingLoop => P::HearingLoop,
        Accessibility::ScreenReader => P::ScreenReader,
        Accessibility::LargePrint => P::LargePrint,
        Accessibility::SignLanguage => P::SignLanguage,
    }
}

/// `None` for an unknown wire value; `Some(None)` for UNSPECIFIED.
pub fn status_from_proto(raw: i32) -> Option<Option<SiteStatus>> {
    use pb::SiteStatus as P;
    Some(match P::try_from(raw).ok()? {
        P::Unspecified => None,
        P::Open => Some(SiteStatus::Open),
        P::TemporarilyClosed => Some(SiteStatus::TemporarilyClosed),
        P::Closed => Some(SiteStatus::Closed),
    })
}

pub fn status_to_proto(status: SiteStatus) -> pb::SiteStatus {
    use pb::SiteStatus as P;
    match status {
        SiteStatus::Open => P::Open,
        SiteStatus::TemporarilyClosed => P::TemporarilyClosed,
        SiteStatus::Closed => P::Closed,
    }
}

/// Decodes and validates a site sent by a client. Output-only fields (`h3_cell`,
/// `update_time`, `origin_seq`) are ignored; `etag` is returned apart, as a precondition.
pub fn site_from_proto(site: pb::Site) -> Result<(Site, Option<String>), Violations> {
    let pb::Site {
        name,
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
        etag,
        update_time: _,
        origin_seq: _,
    } = site;
    let mut out = Violations::default();
    let kind = known(&mut out, "kind".into(), kind, kind_from_proto).flatten();
    let status = known(&mut out, "status".into(), status, status_from_proto).flatten();
    let services = known_list(&mut out, "services", &services, service_from_proto);
    let accessibility = known_list(&mut out, "accessibility", &accessibility, accessibility_from_proto);
    let address = address
        .map(|pb::Address { lines, locality, region, postal_code }| Address { lines, locality, region, postal_code })
        .unwrap_or_default();
    let contact =
        contact.map(|pb::Contact { phone, email, website }| Contact { phone, email, website }).unwrap_or_default();
    let input = SiteInput {
        name,
        display_name,
        kind,
        operator,
        country_code,
        address,
        location: location.map(|pb::LatLng { latitude, longitude }| (latitude, longitude)),
        services,
        service_notes,
        languages,
        accessibility,
        opening_hours,
        time_zone,
        contact,
        status,
        free_access,
    };
    let validated = input.validate();
    match validated {
        Ok(site) if out.is_empty() => Ok((site, (!etag.is_empty()).then_some(etag))),
        Ok(_) => Err(out),
        Err(mut more) => {
            out.0.append(&mut more.0);
            Err(out)
        }
    }
}

/// A site as the API carries it, with its output-only fields empty (what a client sends).
pub fn site_to_proto(site: Site) -> pb::Site {
    let Site {
        name,
        display_name,
        kind,
        operator,
        country,
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
    } = site;
    let Address { lines, locality, region, postal_code } = address;
    let Contact { phone, email, website } = contact;
    pb::Site {
        name: name.to_string(),
        display_name,
        kind: kind_to_proto(kind).into(),
        operator,
        country_code: country.to_string(),
        address: Some(pb::Address { lines, locality, region, postal_code }),
        location: Some(pb::LatLng { latitude: location.latitude(), longitude: location.longitude() }),
        services: services.into_iter().map(|s| service_to_proto(s).into()).collect(),
        service_notes,
        languages: languages.into_iter().map(|l| l.to_string()).collect(),
        accessibility: accessibility.into_iter().map(|a| accessibility_to_proto(a).into()).collect(),
        opening_hours: opening_hours.map(|h| h.to_string()).unwrap_or_default(),
        time_zone: time_zone.to_string(),
        contact: Some(pb::Contact { phone, email, website }),
        status: status_to_proto(status).into(),
        free_access,
        h3_cell: String::new(),
        etag: String::new(),
        update_time: None,
        origin_seq: 0,
    }
}

/// A stored site as the API shows it.
pub fn record_to_proto(record: SiteRecord) -> pb::Site {
    let SiteRecord { site, h3_cell, etag, update_time, origin_seq } = record;
    pb::Site {
        h3_cell: h3_cell.to_string(),
        etag,
        update_time: Some(timestamp(update_time)),
        origin_seq,
        ..site_to_proto(site)
    }
}

/// A `SiteFilter` as the domain's [`Filter`], each bad field recorded in `out` under `filter.`.
pub fn filter_from_proto(filter: pb::SiteFilter, out: &mut Violations) -> Filter {
    let pb::SiteFilter {
        kinds,
        services,
        languages,
        accessibility,
        open,
        open_at,
        connectivity_states,
        min_download_mbps,
        free_access,
        statuses,
    } = filter;
    let open_at = match (open, open_at) {
        (false, None) => None,
        (false, Some(_)) => {
            out.push("filter.open_at", ViolationReason::InvalidFormat, "set it together with filter.open = true");
            None
        }
        (true, None) => Some(chrono::Utc::now()),
        (true, Some(at)) => {
            let at = from_timestamp(&at);
            if at.is_none() {
                out.push("filter.open_at", ViolationReason::OutOfRange, "not a valid instant");
            }
            at
        }
    };
    let kinds = known_list(out, "filter.kinds", &kinds, |v| kind_from_proto(v).flatten());
    let services = known_list(out, "filter.services", &services, service_from_proto);
    let accessibility = known_list(out, "filter.accessibility", &accessibility, accessibility_from_proto);
    let statuses = known_list(out, "filter.statuses", &statuses, |v| status_from_proto(v).flatten());
    let connectivity_states =
        known_list(out, "filter.connectivity_states", &connectivity_states, |v| state_from_proto(v).flatten());
    let languages = languages
        .iter()
        .enumerate()
        .filter_map(|(i, tag)| {
            let parsed = LanguageTag::parse(tag).map(|t| t.primary());
            if parsed.is_none() {
                out.push(
                    format!("filter.languages[{i}]"),
                    ViolationReason::InvalidFormat,
                    format!("{} is not a BCP 47 tag", hubdir_core::echo(tag)),
                );
            }
            parsed
        })
        .collect();
    if !min_download_mbps.is_finite() || min_download_mbps < 0.0 {
        out.push("filter.min_download_mbps", ViolationReason::OutOfRange, "must be a number of Mbit/s, 0 or more");
    }
    Filter {
        kinds,
        services,
        languages,
        accessibility,
        statuses,
        free_access,
        open_at,
        connectivity_states,
        min_download_mbps: (min_download_mbps > 0.0).then_some(min_download_mbps),
        as_of: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> pb::Site {
        pb::Site {
            name: "sites/zw/1".into(),
            display_name: "Bulawayo Public Library".into(),
            kind: pb::Kind::PublicLibrary.into(),
            country_code: "ZW".into(),
            location: Some(pb::LatLng { latitude: -20.15, longitude: 28.58 }),
            services: vec![pb::ServiceType::FreeWifi.into()],
            accessibility: vec![pb::AccessibilityFeature::HearingLoop.into()],
            languages: vec!["en".into(), "nd".into()],
            opening_hours: "Mo-Fr 09:00-17:00".into(),
            time_zone: "Africa/Harare".into(),
            status: pb::SiteStatus::TemporarilyClosed.into(),
            free_access: true,
            etag: "abc".into(),
            ..pb::Site::default()
        }
    }

    #[test]
    fn a_site_survives_the_round_trip() {
        let (site, etag) = site_from_proto(sample()).unwrap();
        assert_eq!(etag.as_deref(), Some("abc"));
        let record = SiteRecord {
            etag: site.content_etag(),
            site: site.clone(),
            h3_cell: "8f2830828052d25".parse().unwrap(),
            update_time: chrono::DateTime::from_timestamp(1_700_000_000, 5).unwrap(),
            origin_seq: 7,
        };
        let back = record_to_proto(record);
        assert_eq!(back.h3_cell, "8f2830828052d25");
        let (again, _) = site_from_proto(back.clone()).unwrap();
        assert_eq!(again, site);
        assert_eq!(back.origin_seq, 7);
        assert_eq!(back.status, i32::from(pb::SiteStatus::TemporarilyClosed));
        assert_eq!(from_timestamp(back.update_time.as_ref().unwrap()).unwrap().timestamp(), 1_700_000_000);
    }

    #[test]
    fn unknown_enum_values_are_named() {
        let mut bad = sample();
        bad.kind = 99;
        bad.services = vec![1, 42];
        bad.accessibility = vec![-1];
        let fields: Vec<String> = site_from_proto(bad).unwrap_err().0.into_iter().map(|v| v.field).collect();
        assert!(fields.contains(&"kind".to_string()), "{fields:?}");
        assert!(fields.contains(&"services[1]".to_string()), "{fields:?}");
        assert!(fields.contains(&"accessibility[0]".to_string()), "{fields:?}");
        // A list past any valid length is one violation, not one per value.
        let mut flood = sample();
        flood.services = vec![4242; 15_000];
        let violations = site_from_proto(flood).unwrap_err();
        let fields: Vec<(&str, &str)> = violations.0.iter().map(|v| (v.field.as_str(), v.reason.code())).collect();
        assert_eq!(fields, [("services", "TOO_MANY")]);
    }

    #[test]
    fn output_only_fields_are_ignored() {
        let mut sent = sample();
        sent.h3_cell = "forged".into();
        sent.origin_seq = 999;
        assert!(site_from_proto(sent).is_ok());
    }
}
