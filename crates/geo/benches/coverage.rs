//! Coverage against a brute-force baseline in the same run: every GeoNames place's distance
//! to its nearest help point, as CoverageService computes it (`distances_in_chunks` on every
//! core, then `roll_up`), and the same distances by scanning every site.
//!
//! cargo bench -p hubdir-geo --bench coverage
//!
//! HUBDIR_GEONAMES is GeoNames' cities1000.csv and HUBDIR_INDIA_POST India Post's CSV (by
//! default `../shared/data/...` beside the repository); without them the benchmark says so
//! and stops.
//!
//! - World: every place against 1,000,000 sites scattered around India Post and US library
//!   seeds (as `nearest`). A brute force over every place would take hours: it runs over an
//!   evenly spaced sample of the places and is scaled to all of them (the output says so).
//! - India: the Indian places against India Post's offices (their published coordinates; rows
//!   without a position in India's extent skipped); brute force over every place.

mod support;

use std::time::{Duration, Instant};

use hubdir_core::population::{Place, PlaceInput};
use hubdir_core::{Filter, Kind, SiteInput, SiteRecord};
use hubdir_geo::coverage::{distances_in_chunks, roll_up};
use hubdir_geo::{SiteIndex, great_circle_m, unit_vector};
use support::{Rng, generate};

const THRESHOLDS_M: [f64; 4] = [1_000.0, 5_000.0, 10_000.0, 25_000.0];

fn data_file(variable: &str, default: &str) -> Option<String> {
    let path = std::env::var(variable).unwrap_or_else(|_| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data")
            .join(default)
            .display()
            .to_string()
    });
    if std::path::Path::new(&path).is_file() {
        Some(path)
    } else {
        eprintln!("{path} is missing: set {variable}");
        None
    }
}

fn rows(path: &str) -> Vec<csv::StringRecord> {
    let mut reader = csv::Reader::from_path(path).expect("read the CSV");
    reader.records().filter_map(Result::ok).collect()
}

fn places(path: &str) -> Vec<Place> {
    rows(path)
        .into_iter()
        .filter_map(|r| {
            PlaceInput {
                id: r[0].to_owned(),
                name: r[1].to_owned(),
                country_code: r[2].to_owned(),
                latitude: r[4].parse().ok()?,
                longitude: r[5].parse().ok()?,
                people: r[6].to_owned(),
            }
            .validate()
            .ok()
        })
        .collect()
}

fn india_post(path: &str) -> Vec<SiteRecord> {
    let epoch = chrono::DateTime::from_timestamp(0, 0).unwrap_or_default();
    rows(path)
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let (lat, lng): (f64, f64) = (r[9].parse().ok()?, r[10].parse().ok()?);
            if !(6.0..38.0).contains(&lat) || !(68.0..98.0).contains(&lng) {
                return None;
            }
            let site = SiteInput {
                name: format!("sites/in-post/{i}"),
                display_name: r[3].to_owned(),
                kind: Some(Kind::PostOffice),
                country_code: "IN".into(),
                location: Some((lat, lng)),
                time_zone: "Asia/Kolkata".into(),
                ..SiteInput::default()
            }
            .validate()
            .ok()?;
            let h3_cell = hubdir_geo::site_cell(site.location)?;
            Some(SiteRecord { site, h3_cell, etag: String::new(), update_time: epoch, origin_seq: 0 })
        })
        .collect()
}

/// The nearest site of every place by scanning them all.
fn brute_force(records: &[SiteRecord], places: &[Place]) -> Vec<f64> {
    let sites: Vec<[f64; 3]> =
        records.iter().map(|r| unit_vector(r.site.location.latitude(), r.site.location.longitude())).collect();
    places
        .iter()
        .map(|p| {
            let here = unit_vector(p.location.latitude(), p.location.longitude());
            sites.iter().map(|s| great_circle_m(here, *s)).fold(f64::INFINITY, f64::min)
        })
        .collect()
}

/// Times the coverage of `places` (best of three), checks it against the brute force over
/// every `sample`-th place, and prints both.
fn run(name: &str, records: Vec<SiteRecord>, places: &[Place], sample: usize) {
    let sites = records.len();
    let index = <SiteIndex>::from_records(records.clone());
    let filter = Filter::default();
    let mut best = Duration::MAX;
    let mut distances = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        distances = distances_in_chunks(|| &index, places, &filter);
        let coverage = roll_up(places, &distances, &THRESHOLDS_M, 10, None);
        std::hint::black_box(coverage);
        best = best.min(started.elapsed());
    }
    let sampled: Vec<Place> = places.iter().step_by(sample).cloned().collect();
    let started = Instant::now();
    let brute = brute_force(&records, &sampled);
    let brute_time = started.elapsed().as_secs_f64() * places.len() as f64 / sampled.len() as f64;
    for (i, exact) in brute.iter().enumerate() {
        let got = distances[i * sample].unwrap_or(f64::INFINITY);
        assert!((got - exact).abs() <= 1e-6 * exact.max(1.0), "place {}: {got} vs {exact}", i * sample);
    }
    let scaled = if sample > 1 { format!(" (scaled from 1 place in {sample})") } else { String::new() };
    println!(
        "{name}: {} places x {sites} sites: coverage {:.3} s; brute force {:.1} s{scaled}; ratio {:.0}x; threads {}",
        places.len(),
        best.as_secs_f64(),
        brute_time,
        brute_time / best.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
}

fn main() {
    let (Some(geonames), Some(india)) = (
        data_file("HUBDIR_GEONAMES", "geonames-cities1000/cities1000.csv"),
        data_file("HUBDIR_INDIA_POST", "india-post/india_post_offices.csv"),
    ) else {
        return;
    };
    let all = places(&geonames);
    let sites: usize = std::env::var("HUBDIR_BENCH_SITES").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let (records, _) = generate(sites, &mut Rng(7));
    run("world", records, &all, 200);
    let indian: Vec<Place> = all.iter().filter(|p| p.country.as_str() == "IN").cloned().collect();
    run("India", india_post(&india), &indian, 1);
}
