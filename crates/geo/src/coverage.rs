//! Who is far from help: the distance from each populated place to the nearest site matching
//! a filter (from the nearest index), rolled up into the people within each distance, the
//! most populated places beyond the farthest, and aggregates per H3 cell.
//!
//! A help point counts wherever it is: a village near a border is served by the post office
//! across it. People are counted where their place is; a layer of places of at least 1,000
//! people (GeoNames) leaves out everyone in smaller places, so every figure is a lower bound
//! of the people it counts.

use std::collections::BTreeMap;

use hubdir_core::Filter;
use hubdir_core::population::Place;

use crate::{CellIndex, Payload, Resolution, SiteIndex, cell_at};

/// The distance in metres from each place to its nearest site matching `filter`, or `None`
/// when no site matches anywhere.
pub fn distances<P: Payload>(index: &SiteIndex<P>, places: &[Place], filter: &Filter) -> Vec<Option<f64>> {
    places
        .iter()
        .map(|place| {
            let (latitude, longitude) = (place.location.latitude(), place.location.longitude());
            index.nearest(latitude, longitude, 1, None, filter).first().map(|nearby| nearby.distance_meters)
        })
        .collect()
}

/// Places per read of the index in [`distances_in_chunks`].
pub const CHUNK: usize = 2_048;

/// [`distances`] on every core, a chunk of places per call of `index` (a read of the index
/// that a writer waits for), so that a long computation never holds the index for long.
pub fn distances_in_chunks<G, P: Payload>(
    index: impl Fn() -> G + Sync,
    places: &[Place],
    filter: &Filter,
) -> Vec<Option<f64>>
where
    G: std::ops::Deref<Target = SiteIndex<P>>,
{
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunks: Vec<&[Place]> = places.chunks(CHUNK).collect();
    let mut out: Vec<Vec<Option<f64>>> = vec![Vec::new(); chunks.len()];
    let per_thread = chunks.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (group, results) in chunks.chunks(per_thread).zip(out.chunks_mut(per_thread)) {
            let index = &index;
            scope.spawn(move || {
                for (chunk, result) in group.iter().zip(results.iter_mut()) {
                    *result = distances(&index(), chunk, filter);
                }
            });
        }
    });
    out.concat()
}

/// People within each distance, and those beyond the farthest.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    pub places: u64,
    pub people: u64,
    /// People within each threshold (in the thresholds' order) of their nearest help point.
    pub within: Vec<u64>,
    /// People beyond the largest threshold, or with no help point at all.
    pub beyond: u64,
    /// Sum of weight × distance over places with a help point, and of their weights: a
    /// place weighs its people, or 1 if it counts none (a layer may list empty places).
    weighted_distance: f64,
    weight_with_distance: u64,
}

impl Tally {
    fn new(thresholds: usize) -> Tally {
        Tally {
            places: 0,
            people: 0,
            within: vec![0; thresholds],
            beyond: 0,
            weighted_distance: 0.0,
            weight_with_distance: 0,
        }
    }

    fn add(&mut self, people: u64, distance: Option<f64>, thresholds_m: &[f64]) {
        self.places += 1;
        self.people += people;
        for (within, threshold) in self.within.iter_mut().zip(thresholds_m) {
            if distance.is_some_and(|d| d <= *threshold) {
                *within += people;
            }
        }
        let largest = thresholds_m.last().copied().unwrap_or(f64::INFINITY);
        if distance.is_none_or(|d| d > largest) {
            self.beyond += people;
        }
        if let Some(distance) = distance {
            let weight = people.max(1);
            self.weighted_distance += weight as f64 * distance;
            self.weight_with_distance += weight;
        }
    }

    /// The mean distance to the nearest help point, weighted by people; `None` when no
    /// place counted has one.
    pub fn mean_distance_m(&self) -> Option<f64> {
        (self.weight_with_distance > 0).then(|| self.weighted_distance / self.weight_with_distance as f64)
    }
}

/// What [`roll_up`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Coverage {
    pub total: Tally,
    /// The most populated places beyond the largest threshold (by index into the places),
    /// most people first, then by id; with their distance (`None`: no help point at all).
    pub farthest: Vec<(usize, Option<f64>)>,
    /// A tally per H3 cell of the resolution asked, in cell order.
    pub cells: Vec<(CellIndex, Tally)>,
}

/// Rolls `distances` (one per place, as [`distances`] gives them) up against ascending
/// `thresholds_m`.
pub fn roll_up(
    places: &[Place],
    distances: &[Option<f64>],
    thresholds_m: &[f64],
    top: usize,
    resolution: Option<Resolution>,
) -> Coverage {
    let largest = thresholds_m.last().copied().unwrap_or(f64::INFINITY);
    let mut total = Tally::new(thresholds_m.len());
    let mut cells: BTreeMap<CellIndex, Tally> = BTreeMap::new();
    let mut farthest = Vec::new();
    for (i, (place, distance)) in places.iter().zip(distances).enumerate() {
        total.add(place.people, *distance, thresholds_m);
        if let Some(cell) = resolution.and_then(|r| cell_at(place.location, r)) {
            cells.entry(cell).or_insert_with(|| Tally::new(thresholds_m.len())).add(
                place.people,
                *distance,
                thresholds_m,
            );
        }
        if distance.is_none_or(|d| d > largest) {
            farthest.push((i, *distance));
        }
    }
    farthest
        .sort_by(|(a, _), (b, _)| places[*b].people.cmp(&places[*a].people).then(places[*a].id.cmp(&places[*b].id)));
    farthest.truncate(top);
    Coverage { total, farthest, cells: cells.into_iter().collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Matcher, great_circle_m, unit_vector};
    use hubdir_core::population::PlaceInput;
    use hubdir_core::{ServiceType, SiteInput, SiteRecord, SiteStatus};
    use proptest::prelude::*;

    fn record(i: usize, lat: f64, lng: f64, services: Vec<ServiceType>, closed: bool) -> SiteRecord {
        let site = SiteInput {
            name: format!("sites/zz/{i}"),
            display_name: format!("Site {i}"),
            kind: Some(hubdir_core::Kind::PostOffice),
            operator: "Post".into(),
            country_code: "ZW".into(),
            location: Some((lat, lng)),
            services,
            time_zone: "UTC".into(),
            status: Some(if closed { SiteStatus::Closed } else { SiteStatus::Open }),
            ..SiteInput::default()
        }
        .validate()
        .unwrap();
        SiteRecord {
            h3_cell: crate::site_cell(site.location).unwrap(),
            site,
            etag: String::new(),
            update_time: chrono::Utc::now(),
            origin_seq: 0,
        }
    }

    fn place(i: usize, lat: f64, lng: f64, people: u64) -> Place {
        PlaceInput {
            id: format!("p{i}"),
            name: format!("Place {i}"),
            country_code: "ZW".into(),
            latitude: lat,
            longitude: lng,
            people: people.to_string(),
        }
        .validate()
        .unwrap()
    }

    /// Positions that crowd the poles and the antimeridian as often as anywhere else.
    fn position() -> impl Strategy<Value = (f64, f64)> {
        let latitude = prop_oneof![-90.0..90.0f64, -90.0..-88.0f64, 88.0..90.0f64];
        let longitude = prop_oneof![-180.0..180.0f64, 178.0..180.0f64, -180.0..-178.0f64];
        (latitude, longitude)
    }

    const SERVICES: [ServiceType; 3] = [ServiceType::FreeWifi, ServiceType::PublicInternet, ServiceType::PostalBanking];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every place's distance is the brute-force minimum over every matching site, and
        /// the roll-up counts what the distances say.
        #[test]
        fn coverage_equals_a_brute_force_oracle(
            sites in prop::collection::vec((position(), prop::collection::btree_set(0..3usize, 0..3), any::<bool>()), 0..60),
            places in prop::collection::vec((position(), prop_oneof![Just(0u64), 0..100_000u64]), 1..40),
            wanted in prop::collection::vec(0..3usize, 0..2),
            thresholds in prop::collection::btree_set(1..20_000_000u64, 1..4),
        ) {
            let records: Vec<SiteRecord> = sites
                .iter()
                .enumerate()
                .map(|(i, ((lat, lng), services, closed))| record(i, *lat, *lng, services.iter().map(|s| SERVICES[*s]).collect(), *closed))
                .collect();
            let index = <SiteIndex>::from_records(records.clone());
            let places: Vec<Place> = places.iter().enumerate().map(|(i, ((lat, lng), people))| place(i, *lat, *lng, *people)).collect();
            let filter = Filter { services: wanted.iter().map(|s| SERVICES[*s]).collect(), ..Filter::default() };
            let thresholds: Vec<f64> = thresholds.into_iter().map(|t| t as f64).collect();

            let found = distances(&index, &places, &filter);
            let mut matcher = Matcher::new(&filter);
            let oracle: Vec<Option<f64>> = places
                .iter()
                .map(|p| {
                    let here = unit_vector(p.location.latitude(), p.location.longitude());
                    records
                        .iter()
                        .filter(|r| matcher.matches(&r.site, None))
                        .map(|r| great_circle_m(here, unit_vector(r.site.location.latitude(), r.site.location.longitude())))
                        .min_by(f64::total_cmp)
                })
                .collect();
            for (got, want) in found.iter().zip(&oracle) {
                match (got, want) {
                    (Some(g), Some(w)) => prop_assert!((g - w).abs() <= 1e-6 * w.max(1.0), "{g} vs {w}"),
                    _ => prop_assert_eq!(got.is_some(), want.is_some()),
                }
            }

            let coverage = roll_up(&places, &oracle, &thresholds, 5, Some(Resolution::Four));
            for (k, threshold) in thresholds.iter().enumerate() {
                let within: u64 = places.iter().zip(&oracle).filter(|(_, d)| d.is_some_and(|d| d <= *threshold)).map(|(p, _)| p.people).sum();
                prop_assert_eq!(coverage.total.within[k], within);
            }
            let largest = *thresholds.last().unwrap();
            let beyond: Vec<usize> = (0..places.len()).filter(|i| oracle[*i].is_none_or(|d| d > largest)).collect();
            prop_assert_eq!(coverage.total.beyond, beyond.iter().map(|i| places[*i].people).sum::<u64>());
            prop_assert_eq!(coverage.total.people, places.iter().map(|p| p.people).sum::<u64>());
            let most = beyond.iter().map(|i| places[*i].people).max();
            prop_assert_eq!(coverage.farthest.first().map(|(i, _)| places[*i].people), most);
            prop_assert!(coverage.farthest.len() == beyond.len().min(5));
            // A cell has a mean distance exactly when one of its places has a help point.
            for (cell, tally) in &coverage.cells {
                let here = |p: &Place| cell_at(p.location, Resolution::Four) == Some(*cell);
                let reached = places.iter().zip(&oracle).any(|(p, d)| d.is_some() && here(p));
                prop_assert_eq!(tally.mean_distance_m().is_some(), reached);
            }
            // The cells partition the places.
            prop_assert_eq!(coverage.cells.iter().map(|(_, t)| t.people).sum::<u64>(), coverage.total.people);
            prop_assert_eq!(coverage.cells.iter().map(|(_, t)| t.beyond).sum::<u64>(), coverage.total.beyond);
        }
    }
}
