//! FindNearest's answer as a server sends it.
//!
//! [`FindNearestAnswer`] is wire-identical to the generated `v1::FindNearestResponse`, which
//! clients decode, but each result holds its site as bytes: the site's encoding made once when
//! it entered the nearest index ([`crate::convert::EncodedSite`]). Answering copies those
//! bytes instead of cloning, converting and encoding every site per request. The servers are
//! generated with this type for FindNearest (see `build.rs`).

use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::v1 as pb;

/// These messages mirror the generated ones field by field: a field added to the contract
/// must break the build here, as every conversion's whole-message destructuring does.
const _: fn(pb::FindNearestResponse) = |pb::FindNearestResponse { results: _ }| ();
const _: fn(pb::NearbySite) = |pb::NearbySite { site: _, distance_meters: _, connectivity: _, open_now: _ }| ();

/// `hubdir.v1.FindNearestResponse`, as sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindNearestAnswer {
    /// Nearest first.
    pub results: Vec<NearbyAnswer>,
}

/// `hubdir.v1.NearbySite` with its site already encoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NearbyAnswer {
    /// The encoded `hubdir.v1.Site`, in the view asked for.
    pub site: Bytes,
    pub distance_meters: f64,
    pub connectivity: Option<pb::ConnectivityStatus>,
    /// A `hubdir.v1.OpenNow`.
    pub open_now: i32,
}

impl FindNearestAnswer {
    /// The answer as a client decodes it, for a server's own pages and GeoJSON.
    pub fn decoded(&self) -> Result<pb::FindNearestResponse, DecodeError> {
        pb::FindNearestResponse::decode(self.encode_to_vec().as_slice())
    }
}

impl Message for FindNearestAnswer {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for result in &self.results {
            encoding::message::encode(1, result, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => encoding::message::merge_repeated(wire_type, &mut self.results, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        encoding::message::encoded_len_repeated(1, &self.results)
    }

    fn clear(&mut self) {
        self.results.clear();
    }
}

impl Message for NearbyAnswer {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        // A message field is present even when empty, as the generated code writes `Some`.
        encoding::bytes::encode(1, &self.site, buf);
        if self.distance_meters != 0.0 {
            encoding::double::encode(2, &self.distance_meters, buf);
        }
        if let Some(connectivity) = &self.connectivity {
            encoding::message::encode(3, connectivity, buf);
        }
        if self.open_now != 0 {
            encoding::int32::encode(4, &self.open_now, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => encoding::bytes::merge(wire_type, &mut self.site, buf, ctx),
            2 => encoding::double::merge(wire_type, &mut self.distance_meters, buf, ctx),
            3 => encoding::message::merge(wire_type, self.connectivity.get_or_insert_default(), buf, ctx),
            4 => encoding::int32::merge(wire_type, &mut self.open_now, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        encoding::bytes::encoded_len(1, &self.site)
            + if self.distance_meters != 0.0 { encoding::double::encoded_len(2, &self.distance_meters) } else { 0 }
            + self.connectivity.as_ref().map_or(0, |c| encoding::message::encoded_len(3, c))
            + if self.open_now != 0 { encoding::int32::encoded_len(4, &self.open_now) } else { 0 }
    }

    fn clear(&mut self) {
        *self = NearbyAnswer::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{EncodedSite, in_view, record_to_proto};
    use hubdir_core::{SiteInput, SiteRecord};
    use proptest::prelude::*;

    fn record(display_name: &str, operator: &str, notes: &str, languages: Vec<String>, seq: u64) -> SiteRecord {
        let site = SiteInput {
            name: "sites/zw/harare-central".into(),
            display_name: display_name.into(),
            kind: Some(hubdir_core::Kind::PostOffice),
            operator: operator.into(),
            country_code: "ZW".into(),
            location: Some((-17.8292, 31.0522)),
            time_zone: "Africa/Harare".into(),
            services: vec![hubdir_core::ServiceType::FreeWifi, hubdir_core::ServiceType::EGovernmentHelp],
            service_notes: notes.into(),
            languages,
            opening_hours: "Mo-Fr 08:00-16:30".into(),
            free_access: true,
            ..SiteInput::default()
        }
        .validate()
        .unwrap();
        SiteRecord {
            etag: site.content_etag(),
            site,
            h3_cell: "8f2830828052d25".parse().unwrap(),
            update_time: chrono::DateTime::from_timestamp(1_700_000_000, 5).unwrap(),
            origin_seq: seq,
        }
    }

    proptest! {
        /// The prepared bytes, in both views, decode to exactly what converting the record
        /// afresh gives, and an answer built from them decodes as the generated response that
        /// clients use, equal to the one built the old way.
        #[test]
        fn prepared_answers_decode_as_a_fresh_encoding(
            display_name in "[A-Za-zé][A-Za-zé ]{0,39}",
            operator in "[a-z ]{0,20}",
            notes in "[a-z ]{0,60}",
            languages in proptest::collection::vec("(en|fr|sn|nd)", 0..3),
            seq in 1u64..u64::MAX,
            distance in 0.0f64..2.0e7,
            open_now in 0i32..3,
            state in 0i32..4,
        ) {
            let mut languages = languages;
            languages.dedup();
            let record = record(&display_name, &operator, &notes, languages, seq);
            let encoded = EncodedSite::of(&record);
            for view in [pb::SiteView::Full, pb::SiteView::Basic] {
                let fresh = in_view(record_to_proto(record.clone()), view);
                prop_assert_eq!(pb::Site::decode(encoded.in_view(view)).unwrap(), fresh.clone());
                let connectivity = pb::ConnectivityStatus {
                    name: format!("{}/connectivity", fresh.name),
                    state,
                    class: 0,
                    latest: None,
                };
                let answer = FindNearestAnswer {
                    results: vec![
                        NearbyAnswer { site: encoded.in_view(view), distance_meters: distance, connectivity: Some(connectivity.clone()), open_now },
                        NearbyAnswer::default(),
                    ],
                };
                let bytes = answer.encode_to_vec();
                prop_assert_eq!(bytes.len(), answer.encoded_len());
                let expected = pb::FindNearestResponse {
                    results: vec![
                        pb::NearbySite { site: Some(fresh), distance_meters: distance, connectivity: Some(connectivity), open_now },
                        pb::NearbySite { site: Some(pb::Site::default()), ..pb::NearbySite::default() },
                    ],
                };
                prop_assert_eq!(pb::FindNearestResponse::decode(bytes.as_slice()).unwrap(), expected.clone());
                prop_assert_eq!(FindNearestAnswer::decode(bytes.as_slice()).unwrap(), answer);
            }
            // BASIC is a strict prefix of FULL.
            prop_assert!(encoded.in_view(pb::SiteView::Full).starts_with(&encoded.in_view(pb::SiteView::Basic)));
        }
    }
}
