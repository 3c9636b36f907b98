//! `discovery.proto`: how much of each site an answer carries (`SiteView`).

use hubdir_core::{SiteRecord, Violations};
use prost::Message;
use prost::bytes::Bytes;

use super::{known, record_to_proto};
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
    match view {
        pb::SiteView::Basic => split_basic(site).0,
        _ => site,
    }
}

/// A site as its BASIC fields and all the others: two disjoint halves.
fn split_basic(site: pb::Site) -> (pb::Site, pb::Site) {
    let pb::Site {
        name,
        display_name,
        kind,
        location,
        services,
        status,
        free_access,
        accessibility,
        operator,
        country_code,
        address,
        service_notes,
        languages,
        opening_hours,
        time_zone,
        contact,
        h3_cell,
        etag,
        update_time,
        origin_seq,
    } = site;
    let basic = pb::Site {
        name,
        display_name,
        kind,
        location,
        services,
        status,
        free_access,
        accessibility,
        ..pb::Site::default()
    };
    let rest = pb::Site {
        operator,
        country_code,
        address,
        service_notes,
        languages,
        opening_hours,
        time_zone,
        contact,
        h3_cell,
        etag,
        update_time,
        origin_seq,
        ..pb::Site::default()
    };
    (basic, rest)
}

/// A site's wire encoding (`hubdir.v1.Site`), made once when it enters the nearest index so
/// that FindNearest copies bytes instead of converting and encoding per answer. The BASIC
/// fields come first and the rest after (protobuf fields may come in any order), so the BASIC
/// view is a prefix of the FULL one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncodedSite {
    bytes: Bytes,
    basic_len: usize,
}

impl EncodedSite {
    pub fn of(record: &SiteRecord) -> EncodedSite {
        let (basic, rest) = split_basic(record_to_proto(record.clone()));
        let (basic, rest) = (basic.encode_to_vec(), rest.encode_to_vec());
        // Exactly the bytes: the index keeps a million of these.
        let mut bytes = Vec::with_capacity(basic.len() + rest.len());
        bytes.extend_from_slice(&basic);
        bytes.extend_from_slice(&rest);
        EncodedSite { bytes: Bytes::from(bytes), basic_len: basic.len() }
    }

    /// The encoding of the site in `view` (sharing these bytes, not copying them).
    pub fn in_view(&self, view: pb::SiteView) -> Bytes {
        match view {
            pb::SiteView::Basic => self.bytes.slice(..self.basic_len),
            _ => self.bytes.clone(),
        }
    }

    /// What an index snapshot keeps of it: the length of the BASIC prefix, then the bytes.
    pub fn write_snapshot(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.basic_len as u32).to_le_bytes());
        out.extend_from_slice(&self.bytes);
    }

    /// Reads back what [`write_snapshot`](EncodedSite::write_snapshot) wrote, sharing `bytes`
    /// (not copying them); `None` if they are too short for the prefix they claim.
    pub fn read_snapshot(bytes: Bytes) -> Option<EncodedSite> {
        let (head, _) = bytes.split_first_chunk::<4>()?;
        let basic_len = u32::from_le_bytes(*head) as usize;
        let bytes = bytes.slice(4..);
        (basic_len <= bytes.len()).then_some(EncodedSite { bytes, basic_len })
    }

    /// Bytes held, for memory accounting.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
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
