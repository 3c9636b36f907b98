//! The index against a brute-force great-circle oracle, on random and adversarial data:
//! poles, the antimeridian, dense clusters, many sites on one point, sparse filters. The
//! oracle computes distances its own way (haversine) and the answers are compared as sites,
//! so a site the filter refuses cannot stand in for a matching one at the same spot.

use std::collections::HashMap;

use hubdir_core::Filter;
use hubdir_core::connectivity::{Class, State, StatusSummary};
use hubdir_core::{Accessibility, Kind, ServiceType, SiteInput, SiteRecord, SiteStatus};
use hubdir_geo::{EARTH_RADIUS_M, SiteIndex};
use proptest::prelude::*;

fn record(i: usize, lat: f64, lng: f64, kind: Kind, wifi: bool, status: SiteStatus) -> Option<SiteRecord> {
    let site = SiteInput {
        name: format!("sites/zz/s{i}"),
        display_name: format!("site {i}"),
        kind: Some(kind),
        country_code: "FJ".into(),
        location: Some((lat, lng)),
        services: if wifi { vec![ServiceType::FreeWifi] } else { vec![] },
        languages: vec![if i.is_multiple_of(3) { "fr".into() } else { "en".into() }],
        accessibility: if i.is_multiple_of(7) { vec![Accessibility::HearingLoop] } else { vec![] },
        free_access: i.is_multiple_of(2),
        time_zone: "Pacific/Fiji".into(),
        status: Some(status),
        ..SiteInput::default()
    }
    .validate()
    .ok()?;
    Some(SiteRecord {
        h3_cell: hubdir_geo::site_cell(site.location)?,
        etag: site.content_etag(),
        update_time: chrono::DateTime::from_timestamp(0, 0)?,
        origin_seq: i as u64,
        site,
    })
}

/// The centres of H3's twelve pentagons, where cell-based indexes have irregular neighbours.
fn pentagon_centres() -> Vec<(f64, f64)> {
    h3o::CellIndex::base_cells()
        .filter(|cell| cell.is_pentagon())
        .map(|cell| {
            let centre = h3o::LatLng::from(cell);
            (centre.lat(), centre.lng())
        })
        .collect()
}

/// Points clustered where exactness is hardest.
fn position() -> impl Strategy<Value = (f64, f64)> {
    let pentagons = pentagon_centres();
    prop_oneof![
        (prop::sample::select(pentagons), -0.5f64..0.5, -0.5f64..0.5)
            .prop_map(|((lat, lng), dlat, dlng)| ((lat + dlat).clamp(-90.0, 90.0), (lng + dlng).clamp(-180.0, 180.0))),
        (-90.0f64..=90.0, -180.0f64..=180.0),
        (89.0f64..=90.0, -180.0f64..=180.0),
        (-90.0f64..=-89.0, -180.0f64..=180.0),
        (-20.0f64..=-12.0, prop_oneof![177.0f64..=180.0, -180.0f64..=-177.0]),
        (-17.8001f64..=-17.7999, 31.0499f64..=31.0501),
        Just((-17.8, 31.05)),
    ]
}

fn site_strategy() -> impl Strategy<Value = ((f64, f64), u8, bool, u8)> {
    (position(), 0u8..9, any::<bool>(), 0u8..20)
}

type Statuses = HashMap<String, StatusSummary>;

/// A status as of `AS_OF`: fresh or expired, by `fresh`.
fn status(state: State, download: Option<f64>, fresh: bool) -> StatusSummary {
    let observed_at = AS_OF - chrono::Duration::minutes(30);
    let expires_at = if fresh { AS_OF + chrono::Duration::minutes(30) } else { AS_OF - chrono::Duration::minutes(1) };
    StatusSummary { state, class: Class::Unknown, download_mbps: download, observed_at, expires_at }
}

const AS_OF: chrono::DateTime<chrono::Utc> = chrono::DateTime::from_timestamp_nanos(1_800_000_000_000_000_000);

/// The oracle's own distance: haversine on latitude and longitude, not the index's chord and
/// atan2 on unit vectors, so a shared mistake cannot hide.
fn haversine_m(lat1: f64, lng1: f64, lat2: f64, lng2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lng2 - lng1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// Haversine loses a few centimetres near antipodes: distances within this are ties.
const TOLERANCE_M: f64 = 0.1;

/// Every site the filter admits within `max`, with its distance, nearest first.
fn oracle(
    records: &[SiteRecord],
    statuses_by_name: &Statuses,
    (lat, lng, max): (f64, f64, Option<f64>),
    filter: &Filter,
) -> Vec<(String, f64)> {
    let statuses = if filter.statuses.is_empty() { vec![SiteStatus::Open] } else { filter.statuses.clone() };
    let mut distances: Vec<(String, f64)> = records
        .iter()
        .filter(|r| {
            let s = &r.site;
            (filter.kinds.is_empty() || filter.kinds.contains(&s.kind))
                && filter.services.iter().all(|x| s.services.contains(x))
                && statuses.contains(&s.status)
                && (filter.languages.is_empty() || s.languages.iter().any(|l| filter.languages.contains(&l.primary())))
                && filter.accessibility.iter().all(|a| s.accessibility.contains(a))
                && (!filter.free_access || s.free_access)
                && {
                    let fresh = statuses_by_name.get(&s.name.to_string()).filter(|st| AS_OF <= st.expires_at);
                    let state = fresh.map_or(State::Unknown, |st| st.state);
                    (filter.connectivity_states.is_empty() || filter.connectivity_states.contains(&state))
                        && filter
                            .min_download_mbps
                            .is_none_or(|min| fresh.and_then(|st| st.download_mbps).is_some_and(|d| d >= min))
                }
        })
        .map(|r| {
            let d = haversine_m(lat, lng, r.site.location.latitude(), r.site.location.longitude());
            (r.site.name.to_string(), d)
        })
        .filter(|(_, d)| max.is_none_or(|m| *d <= m + TOLERANCE_M))
        .collect();
    distances.sort_by(|a, b| a.1.total_cmp(&b.1));
    distances
}

/// The index's answer is right if it is the oracle's k nearest, as sites, where sites at the
/// k-th distance (a tie) may stand for one another, and each distance is the oracle's.
fn check_answer(got: &[(String, f64)], admitted: &[(String, f64)], k: usize, max: Option<f64>) -> Result<(), String> {
    let by_name: HashMap<&str, f64> = admitted.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    // Sites strictly inside `max` must be found; those at its edge may or may not be.
    let sure = admitted.iter().filter(|(_, d)| max.is_none_or(|m| *d <= m - TOLERANCE_M)).count();
    let want = k.min(admitted.len());
    if got.len() > want || got.len() < k.min(sure) {
        return Err(format!("{} sites, the oracle admits {} (k = {k})", got.len(), admitted.len()));
    }
    let Some(kth) = admitted.get(got.len().max(1) - 1).map(|(_, d)| *d) else { return Ok(()) };
    for (name, distance) in got {
        let Some(&oracle) = by_name.get(name.as_str()) else {
            return Err(format!("{name} does not pass the filter (or max distance)"));
        };
        if (oracle - distance).abs() > TOLERANCE_M {
            return Err(format!("{name} at {distance} m; the oracle says {oracle} m"));
        }
        if oracle > kth + TOLERANCE_M {
            return Err(format!("{name} at {oracle} m is past the k-th nearest, {kth} m"));
        }
    }
    for (name, distance) in admitted.iter().take_while(|(_, d)| *d < kth - TOLERANCE_M) {
        if !got.iter().any(|(n, _)| n == name) {
            return Err(format!("{name} at {distance} m was left out"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_index_agrees_with_brute_force(
        sites in prop::collection::vec(site_strategy(), 0..400),
        queries in prop::collection::vec((position(), 1usize..30, prop::option::of(0.0f64..3_000_000.0)), 1..12),
        filter_choice in 0u8..10,
        changes in prop::collection::vec((any::<prop::sample::Index>(), 0u8..6), 0..40),
    ) {
        let records: Vec<SiteRecord> = sites
            .iter()
            .enumerate()
            .filter_map(|(i, ((lat, lng), kind, wifi, status))| {
                let status = match status { 0 => SiteStatus::Closed, 1 => SiteStatus::TemporarilyClosed, _ => SiteStatus::Open };
                record(i, *lat, *lng, Kind::ALL[*kind as usize], *wifi, status)
            })
            .collect();
        // Half bulk-loaded, half inserted one by one, then some closed and some removed:
        // the masks in the tree must follow every change.
        let mut index = <SiteIndex>::from_records(records[..records.len() / 2].to_vec());
        for record in &records[records.len() / 2..] {
            index.upsert(record.clone());
        }
        let mut records = records;
        let mut statuses: Statuses = HashMap::new();
        for (which, change) in changes {
            if records.is_empty() {
                break;
            }
            let i = which.index(records.len());
            match change {
                0 => {
                    index.remove(&records[i].site.name);
                    statuses.remove(&records[i].site.name.to_string());
                    records.remove(i);
                }
                // Connectivity reports: online and fast, offline, online but expired.
                3..=5 => {
                    let st = match change {
                        3 => status(State::Online, Some(50.0), true),
                        4 => status(State::Offline, None, true),
                        _ => status(State::Online, Some(50.0), false),
                    };
                    index.set_status(&records[i].site.name, st);
                    statuses.insert(records[i].site.name.to_string(), st);
                }
                1 => {
                    records[i].site.status = SiteStatus::Closed;
                    index.upsert(records[i].clone());
                }
                _ => {
                    records[i].site.services.clear();
                    records[i].site.accessibility.clear();
                    index.upsert(records[i].clone());
                }
            }
        }
        let filter = match filter_choice {
            0 => Filter::default(),
            1 => Filter { services: vec![ServiceType::FreeWifi], ..Filter::default() },
            2 => Filter { kinds: vec![Kind::PostOffice], statuses: SiteStatus::ALL.to_vec(), ..Filter::default() },
            3 => Filter { languages: vec!["fr".into()], ..Filter::default() },
            4 => Filter { accessibility: vec![Accessibility::HearingLoop], ..Filter::default() },
            5 => Filter { free_access: true, languages: vec!["en".into(), "sw".into()], ..Filter::default() },
            6 => Filter { connectivity_states: vec![State::Online], ..Filter::default() },
            7 => Filter { connectivity_states: vec![State::Unknown, State::Offline], ..Filter::default() },
            8 => Filter { min_download_mbps: Some(10.0), ..Filter::default() },
            // Sparse: one kind and wifi and closed.
            _ => Filter { kinds: vec![Kind::School], services: vec![ServiceType::FreeWifi], statuses: vec![SiteStatus::Closed], ..Filter::default() },
        };
        let filter = Filter { as_of: Some(AS_OF), ..filter };
        // The index read back from its snapshot answers as the index does (every check below
        // runs on both), and writes the same snapshot again; so does an index built from the
        // same sites in another order.
        let snapshot = index.snapshot();
        let restored = <SiteIndex>::from_snapshot(&snapshot.sites, snapshot.payloads.clone().into()).unwrap();
        prop_assert!(restored.snapshot() == snapshot, "the snapshot of a read-back snapshot differs");
        let mut reordered = <SiteIndex>::from_records(records.iter().rev().cloned());
        for (name, status) in &statuses {
            reordered.set_status(&name.parse().unwrap(), *status);
        }
        prop_assert!(reordered.snapshot() == snapshot, "the same sites in another order write other bytes");
        for index in [&index, &restored] {
        for ((lat, lng), k, max) in queries.clone() {
            let got: Vec<(String, f64)> = index
                .nearest(lat, lng, k, max, &filter)
                .iter()
                .map(|n| (n.facts.name.to_string(), n.distance_meters))
                .collect();
            let admitted = oracle(&records, &statuses, (lat, lng, max), &filter);
            if let Err(why) = check_answer(&got, &admitted, k, max) {
                prop_assert!(false, "query ({}, {}) k={} max={:?}: {}; got {:?}", lat, lng, k, max, why, got);
            }
        }
        // Every site the filter admits, without a position: what coverage maps draw.
        let mut matching: Vec<String> = index.matching(&filter).map(|(facts, _)| facts.name.to_string()).collect();
        let mut admitted: Vec<String> = oracle(&records, &statuses, (0.0, 0.0, None), &filter).into_iter().map(|(name, _)| name).collect();
        matching.sort();
        admitted.sort();
        prop_assert_eq!(matching, admitted);
        // The facts kept of each site are the record's, and its status the last reported.
        let mut kept: Vec<_> = index.sites().map(|(facts, status)| (facts.clone(), status.copied())).collect();
        kept.sort_by_key(|(facts, _)| facts.name.to_string());
        let mut expected = records.clone();
        expected.sort_by_key(|r| r.site.name.to_string());
        prop_assert_eq!(kept.len(), expected.len());
        for ((facts, status), record) in kept.iter().zip(&expected) {
            let site = &record.site;
            prop_assert_eq!(&facts.name, &site.name);
            prop_assert_eq!(facts.location, site.location);
            prop_assert_eq!(&facts.country, &site.country);
            prop_assert_eq!((facts.kind, facts.status), (site.kind, site.status));
            for service in ServiceType::ALL {
                prop_assert_eq!(facts.offers(*service), site.services.contains(service));
            }
            prop_assert_eq!(*status, statuses.get(&site.name.to_string()).copied());
        }
        }
    }
}

/// A snapshot cut short anywhere, or with its table or a site's fields pointing past their
/// ends, is refused with an error, never read as a smaller index and never a panic.
#[test]
fn a_damaged_snapshot_is_refused() {
    let records = (0..20)
        .filter_map(|i| record(i, -17.8 + i as f64 * 0.1, 31.05, Kind::ALL[i % 9], i % 2 == 0, SiteStatus::Open));
    let mut index = <SiteIndex>::from_records(records);
    index.set_status(&"sites/zz/s3".parse().unwrap(), status(State::Online, Some(20.0), true));
    let snapshot = index.snapshot();
    assert_eq!(<SiteIndex>::from_snapshot(&snapshot.sites, bytes::Bytes::new()).unwrap().len(), 20);
    for len in 0..snapshot.sites.len() {
        assert!(<SiteIndex>::from_snapshot(&snapshot.sites[..len], bytes::Bytes::new()).is_err(), "cut at {len}");
    }
    let mut longer = snapshot.sites.clone();
    longer.push(0);
    assert!(<SiteIndex>::from_snapshot(&longer, bytes::Bytes::new()).is_err());
    for at in 0..snapshot.sites.len() {
        let mut damaged = snapshot.sites.clone();
        damaged[at] = damaged[at].wrapping_add(0x80);
        // Some bytes (a coordinate's low bits) still read; none may panic.
        let _ = <SiteIndex>::from_snapshot(&damaged, bytes::Bytes::new());
    }
    let payload = <SiteIndex>::from_snapshot(&snapshot.sites, bytes::Bytes::from_static(b"x"));
    assert!(payload.is_err(), "a byte of payload no site claims");
}

#[test]
fn there_are_twelve_pentagons_to_test_around() {
    assert_eq!(pentagon_centres().len(), 12);
}

#[test]
fn updates_and_deletes_are_seen_at_once() {
    let mut index = <SiteIndex>::from_records(record(1, -17.8, 31.05, Kind::PublicLibrary, true, SiteStatus::Open));
    let near = |index: &SiteIndex| index.nearest(-17.8, 31.05, 5, None, &Filter::default());
    assert_eq!(near(&index).len(), 1);
    // Moved 1 degree away: same site, new distance.
    index.upsert(record(1, -18.8, 31.05, Kind::PublicLibrary, true, SiteStatus::Open).unwrap());
    let found = near(&index);
    assert_eq!(found.len(), 1);
    assert!((found[0].distance_meters - 111_195.0).abs() < 100.0, "{}", found[0].distance_meters);
    // Closed sites drop out of the default filter.
    index.upsert(record(1, -18.8, 31.05, Kind::PublicLibrary, true, SiteStatus::Closed).unwrap());
    assert!(near(&index).is_empty());
    index.upsert(record(2, -17.9, 31.05, Kind::PostOffice, false, SiteStatus::Open).unwrap());
    index.remove(&"sites/zz/s2".parse().unwrap());
    assert!(near(&index).is_empty());
    assert_eq!(index.len(), 1);
}

#[test]
fn across_the_antimeridian_and_over_the_pole() {
    let east = record(1, -16.8, 179.99, Kind::Telecentre, false, SiteStatus::Open).unwrap();
    let west = record(2, -16.8, -179.99, Kind::Telecentre, false, SiteStatus::Open).unwrap();
    let far = record(3, -16.8, 170.0, Kind::Telecentre, false, SiteStatus::Open).unwrap();
    let index = <SiteIndex>::from_records([east, west, far]);
    let found = index.nearest(-16.8, -179.999, 2, None, &Filter::default());
    let names: Vec<String> = found.iter().map(|n| n.facts.name.to_string()).collect();
    assert_eq!(names, vec!["sites/zz/s2", "sites/zz/s1"]);
    assert!(found[1].distance_meters < 3_000.0, "{}", found[1].distance_meters);

    let a = record(4, 89.9, 0.0, Kind::Other, false, SiteStatus::Open).unwrap();
    let b = record(5, 89.9, 180.0, Kind::Other, false, SiteStatus::Open).unwrap();
    let index = <SiteIndex>::from_records([a, b]);
    let found = index.nearest(89.95, 180.0, 2, Some(20_000.0), &Filter::default());
    assert_eq!(found.len(), 2, "over the pole the 0° site is 16.7 km away");
}

fn with_hours(i: usize, lat: f64, lng: f64, time_zone: &str, hours: Option<&str>) -> SiteRecord {
    let site = SiteInput {
        name: format!("sites/zz/h{i}"),
        display_name: format!("site {i}"),
        kind: Some(Kind::PostOffice),
        country_code: "WS".into(),
        location: Some((lat, lng)),
        time_zone: time_zone.into(),
        opening_hours: hours.unwrap_or_default().into(),
        ..SiteInput::default()
    }
    .validate()
    .unwrap();
    SiteRecord {
        h3_cell: hubdir_geo::site_cell(site.location).unwrap(),
        etag: site.content_etag(),
        update_time: chrono::DateTime::from_timestamp(0, 0).unwrap(),
        origin_seq: i as u64,
        site,
    }
}

/// Opening hours are read in each site's own zone: Samoa (UTC+13) and American Samoa
/// (UTC-11) are an hour's flight apart and a calendar day apart.
#[test]
fn open_at_reads_each_site_hours_in_its_own_time_zone() {
    let weekdays = Some("Mo-Fr 09:00-17:00");
    let index = <SiteIndex>::from_records([
        with_hours(1, -13.83, -171.76, "Pacific/Apia", weekdays),
        with_hours(2, -14.28, -170.70, "Pacific/Pago_Pago", weekdays),
        with_hours(3, -14.0, -171.0, "Pacific/Apia", None),
        with_hours(4, -14.1, -171.0, "Pacific/Apia", Some("24/7")),
    ]);
    let open_at = |utc: &str| {
        let at = chrono::DateTime::parse_from_rfc3339(utc).unwrap().to_utc();
        let filter = Filter { open_at: Some(at), ..Filter::default() };
        let mut names: Vec<String> =
            index.nearest(-14.0, -171.0, 10, None, &filter).iter().map(|n| n.facts.name.to_string()).collect();
        names.sort();
        names
    };
    // Friday 2026-11-27 20:30 UTC: Saturday 09:30 in Apia (closed), Friday 09:30 in Pago Pago.
    assert_eq!(open_at("2026-11-27T20:30:00Z"), ["sites/zz/h2", "sites/zz/h4"]);
    // Monday 2026-11-23 20:30 UTC: Tuesday 09:30 in Apia, Monday 09:30 in Pago Pago.
    assert_eq!(open_at("2026-11-23T20:30:00Z"), ["sites/zz/h1", "sites/zz/h2", "sites/zz/h4"]);
    // Tuesday 2026-11-24 05:00 UTC: 18:00 in Apia, 18:00 the day before in Pago Pago.
    assert_eq!(open_at("2026-11-24T05:00:00Z"), ["sites/zz/h4"]);
    // Without the filter, the site with no hours is found too.
    assert_eq!(index.nearest(-14.0, -171.0, 10, None, &Filter::default()).len(), 4);
}
