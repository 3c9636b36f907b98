//! `discovery.proto`: how much of each site an answer carries (`SiteView`).

use hubdir_core::Violations;

use super::known;
use crate::v1 as pb;

/// A request's `view`, FULL when unset; an unknown value is a violation of `field`.
pub fn view_from_proto(raw: i32, field: &str, out: &mut Violations) -> pb::SiteView {
    match known(out, field.to_owned(), raw, |raw| pb::SiteView::try_from(raw).ok()) {
        Some(pb::SiteView::Basic) => pb::SiteView::Basic,
        _ => pb::SiteView::Full,
    }
}

/// The fields of `site` that `view` asks for: BASIC keeps what a list of help points shows
/// (see `SiteView` in the contract), FULL keeps everything.
pub fn in_view(site: pb::Site, view: pb::SiteView) -> pb::Site {
    if view != pb::SiteView::Basic {
        return site;
    }
    let pb::Site {
        name,
        display_name,
        kind,
        location,
        services,
        status,
        free_access,
        accessibility,
        operator: _,
        country_code: _,
        address: _,
        service_notes: _,
        languages: _,
        opening_hours: _,
        time_zone: _,
        contact: _,
        h3_cell: _,
        etag: _,
        update_time: _,
        origin_seq: _,
    } = site;
    pb::Site { name, display_name, kind, location, services, status, free_access, accessibility, ..pb::Site::default() }
}

/// Whether a site is open now, as FindNearest answers it.
pub fn open_now_to_proto(open: Option<bool>) -> pb::OpenNow {
    match open {
        None => pb::OpenNow::Unspecified,
        Some(true) => pb::OpenNow::Open,
        Some(false) => pb::OpenNow::Closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_keeps_the_listed_fields_and_full_keeps_all() {
        let site = pb::Site {
            name: "sites/zw/a".into(),
            display_name: "A".into(),
            operator: "operators/x".into(),
            free_access: true,
            opening_hours: "Mo-Fr 08:00-17:00".into(),
            origin_seq: 7,
            ..pb::Site::default()
        };
        let basic = in_view(site.clone(), pb::SiteView::Basic);
        assert_eq!((basic.name.as_str(), basic.display_name.as_str(), basic.free_access), ("sites/zw/a", "A", true));
        assert_eq!((basic.operator.as_str(), basic.opening_hours.as_str(), basic.origin_seq), ("", "", 0));
        assert_eq!(in_view(site.clone(), pb::SiteView::Full), site);
        let mut out = Violations::default();
        assert_eq!(view_from_proto(0, "view", &mut out), pb::SiteView::Full);
        assert_eq!(view_from_proto(1, "view", &mut out), pb::SiteView::Basic);
        assert!(out.is_empty());
        view_from_proto(9, "view", &mut out);
        assert_eq!(out.0[0].field, "view");
    }
}
