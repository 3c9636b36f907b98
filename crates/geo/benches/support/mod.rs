//! What the geo benchmarks share: a deterministic generator and sites scattered around real
//! help points' positions (`seeds.csv`, see SEEDS.md).

#![allow(dead_code)]

use hubdir_core::{Accessibility, Kind, ServiceType, SiteInput, SiteRecord};
use hubdir_geo::EARTH_RADIUS_M;

/// SplitMix64: a small deterministic generator, so every run sees the same data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A point at `distance_m` from (lat, lng) in a random direction.
pub fn scatter(rng: &mut Rng, (lat, lng): (f64, f64), mean_m: f64) -> (f64, f64) {
    let distance = -mean_m * (1.0 - rng.unit()).ln();
    let bearing = rng.unit() * std::f64::consts::TAU;
    let (phi, lambda, delta) = (lat.to_radians(), lng.to_radians(), distance / EARTH_RADIUS_M);
    let phi2 = (phi.sin() * delta.cos() + phi.cos() * delta.sin() * bearing.cos()).asin();
    let lambda2 = lambda + (bearing.sin() * delta.sin() * phi.cos()).atan2(delta.cos() - phi.sin() * phi2.sin());
    let lng2 = (lambda2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
    (phi2.to_degrees(), lng2)
}

pub fn seeds() -> Vec<(&'static str, (f64, f64))> {
    include_str!("../seeds.csv")
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut parts = line.split(',');
            let source = parts.next()?;
            Some((source, (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?)))
        })
        .collect()
}

/// What the benchmark needs of each site besides the record.
pub struct Point {
    pub lat: f64,
    pub lng: f64,
    pub kind: Kind,
    pub rare: bool,
}

pub fn generate(n: usize, rng: &mut Rng) -> (Vec<SiteRecord>, Vec<Point>) {
    let seeds = seeds();
    let mut records = Vec::with_capacity(n);
    let mut points = Vec::with_capacity(n);
    let epoch = chrono::DateTime::from_timestamp(0, 0).unwrap_or_default();
    while records.len() < n {
        let (source, seed) = seeds[rng.below(seeds.len())];
        let (lat, lng) = scatter(rng, seed, 3_000.0);
        let kind = Kind::ALL[rng.below(8)];
        let rare = rng.below(1000) == 0;
        let (country, zone) = if source == "in" { ("IN", "Asia/Kolkata") } else { ("US", "America/Chicago") };
        let i = records.len();
        let input = SiteInput {
            name: format!("sites/bench/s{i}"),
            display_name: format!("Help point {i}"),
            kind: Some(kind),
            country_code: country.into(),
            location: Some((lat, lng)),
            services: vec![ServiceType::ALL[rng.below(ServiceType::ALL.len())]],
            accessibility: if rare { vec![Accessibility::HearingLoop] } else { vec![] },
            languages: vec![if source == "in" { "hi".into() } else { "en".into() }],
            opening_hours: if rng.below(2) == 0 { "Mo-Fr 09:00-17:00".into() } else { String::new() },
            time_zone: zone.into(),
            ..SiteInput::default()
        };
        let Ok(site) = input.validate() else { continue };
        let Some(h3_cell) = hubdir_geo::site_cell(site.location) else { continue };
        records.push(SiteRecord { etag: String::new(), h3_cell, update_time: epoch, origin_seq: i as u64, site });
        points.push(Point { lat, lng, kind, rare });
    }
    (records, points)
}
