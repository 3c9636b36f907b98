//! The positions `hubdir-loadgen` asks from, as a file that another client (pgbench against
//! PostGIS) can replay too: `latitude,longitude` per line under that header.
//!
//! - `uniform`: uniform on the sphere, so most queries start at sea, far from any site (the
//!   index's hardest case);
//! - `realistic`: where people ask from. Half start near a site of the node's database (at an
//!   exponentially distributed distance, mean 2 km), half near a populated place of a GeoNames
//!   `cities1000` file in the countries the node has sites in, chosen in proportion to its
//!   population (mean 5 km away).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hubdir_geo::EARTH_RADIUS_M;
use hubdir_store::{SiteQuery, Store};

use crate::rng::Rng;

#[derive(clap::Args, Debug)]
pub struct Generate {
    /// `uniform` or `realistic`.
    #[arg(value_enum)]
    kind: Kind,
    /// Where to write the positions (CSV: latitude,longitude).
    #[arg(long)]
    out: PathBuf,
    /// How many positions.
    #[arg(long, default_value_t = 100_000)]
    count: usize,
    /// realistic: the node's database, whose sites the queries start near.
    #[arg(long)]
    db: Option<String>,
    /// realistic: a CSV of populated places with a header naming `country_code`, `latitude`,
    /// `longitude` and `population` (GeoNames cities1000 as `../shared/data` ships it, not
    /// GeoNames' own tab-separated file), whose places the queries start near.
    #[arg(long)]
    places: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Kind {
    Uniform,
    Realistic,
}

/// A position uniform on the sphere.
pub fn uniform(rng: &mut Rng) -> (f64, f64) {
    ((2.0 * rng.unit() - 1.0).asin().to_degrees(), 360.0 * rng.unit() - 180.0)
}

/// The point `metres` from (lat, lng) along `bearing` (radians), on the sphere.
fn offset((lat, lng): (f64, f64), metres: f64, bearing: f64) -> (f64, f64) {
    let (phi, lambda, delta) = (lat.to_radians(), lng.to_radians(), metres / EARTH_RADIUS_M);
    let phi2 = (phi.sin() * delta.cos() + phi.cos() * delta.sin() * bearing.cos()).asin();
    let lambda2 = lambda + (bearing.sin() * delta.sin() * phi.cos()).atan2(delta.cos() - phi.sin() * phi2.sin());
    let lng2 = (lambda2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
    (phi2.to_degrees(), lng2)
}

/// A point at an exponentially distributed distance (mean `mean_m`) from `centre`.
fn near(rng: &mut Rng, centre: (f64, f64), mean_m: f64) -> (f64, f64) {
    let metres = -mean_m * (1.0 - rng.unit()).ln();
    offset(centre, metres, rng.unit() * std::f64::consts::TAU)
}

pub async fn generate(args: Generate) -> anyhow::Result<()> {
    let mut rng = Rng(args.seed);
    let positions: Vec<(f64, f64)> = match args.kind {
        Kind::Uniform => (0..args.count).map(|_| uniform(&mut rng)).collect(),
        Kind::Realistic => {
            let db = args.db.as_deref().context("realistic positions need --db (the node's database)")?;
            let places = args.places.as_deref().context("realistic positions need --places (GeoNames cities1000)")?;
            let (sites, countries) = sites(db).await?;
            anyhow::ensure!(!sites.is_empty(), "{db} holds no sites");
            let (places, cumulative) = populated(places, &countries)?;
            anyhow::ensure!(!places.is_empty(), "no populated place in the sites' countries");
            let total = *cumulative.last().unwrap_or(&1);
            (0..args.count)
                .map(|i| {
                    if i % 2 == 0 {
                        let site = sites[rng.below(sites.len())];
                        near(&mut rng, site, 2_000.0)
                    } else {
                        let pick = rng.next() % total;
                        let at = cumulative.partition_point(|&c| c <= pick).min(places.len() - 1);
                        near(&mut rng, places[at], 5_000.0)
                    }
                })
                .collect()
        }
    };
    let file = std::fs::File::create(&args.out).with_context(|| format!("cannot write {}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    writeln!(out, "latitude,longitude")?;
    for (lat, lng) in &positions {
        writeln!(out, "{lat:.6},{lng:.6}")?;
    }
    out.flush()?;
    eprintln!("wrote {} positions to {}", positions.len(), args.out.display());
    Ok(())
}

/// Every site's position, and the countries they are in.
async fn sites(db: &str) -> anyhow::Result<(Vec<(f64, f64)>, HashSet<String>)> {
    let store = Store::connect(db).await.with_context(|| format!("cannot open {db}"))?;
    let (mut positions, mut countries) = (Vec::new(), HashSet::new());
    let mut query = SiteQuery { limit: 5000, ..SiteQuery::default() };
    loop {
        let page = store.list_sites(&query).await?;
        let Some(last) = page.last() else { break };
        query.after_name = Some(last.site.name.to_string());
        for record in &page {
            positions.push((record.site.location.latitude(), record.site.location.longitude()));
            countries.insert(record.site.country.to_string());
        }
        if positions.len() % 100_000 < 5000 {
            eprintln!("read {} sites", positions.len());
        }
    }
    Ok((positions, countries))
}

/// Places, and their populations summed in order (at least 1 each), to pick in proportion.
type Weighted = (Vec<(f64, f64)>, Vec<u64>);

/// The places in `countries`, with their cumulative populations.
fn populated(path: &Path, countries: &HashSet<String>) -> anyhow::Result<Weighted> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let header = reader.headers()?.clone();
    let column = |name: &str| {
        header.iter().position(|h| h == name).with_context(|| format!("{} has no column {name}", path.display()))
    };
    let (country, lat, lng, people) =
        (column("country_code")?, column("latitude")?, column("longitude")?, column("population")?);
    let (mut places, mut cumulative, mut total) = (Vec::new(), Vec::new(), 0u64);
    for (row, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{} row {}", path.display(), row + 1))?;
        if !countries.contains(&record[country]) {
            continue;
        }
        let number = |i: usize| record[i].parse::<f64>().with_context(|| format!("row {}: {}", row + 1, &record[i]));
        places.push((number(lat)?, number(lng)?));
        total += record[people].parse::<u64>().unwrap_or(0).max(1);
        cumulative.push(total);
    }
    Ok((places, cumulative))
}

/// Reads a positions file.
pub fn read(path: &Path) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{} row {}", path.display(), row + 1))?;
        let parse = |i: usize| -> anyhow::Result<f64> {
            let value = record.get(i).with_context(|| format!("{} row {}: two columns", path.display(), row + 1))?;
            let value: f64 =
                value.trim().parse().with_context(|| format!("{} row {}: {value}", path.display(), row + 1))?;
            Ok(value)
        };
        let (lat, lng) = (parse(0)?, parse(1)?);
        anyhow::ensure!(
            (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lng),
            "{} row {}: ({lat}, {lng}) is not a position",
            path.display(),
            row + 1
        );
        out.push((lat, lng));
    }
    anyhow::ensure!(!out.is_empty(), "{} holds no positions", path.display());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubdir_geo::unit_vector;

    #[test]
    fn an_offset_lands_at_its_distance_even_across_the_antimeridian() {
        for (centre, metres, bearing) in
            [((-17.8, 179.99), 5_000.0, 1.2), ((60.0, 10.0), 2_000.0, 4.0), ((0.0, -180.0), 100.0, 4.7)]
        {
            let (lat, lng) = offset(centre, metres, bearing);
            assert!((-180.0..=180.0).contains(&lng), "{lng}");
            let d = hubdir_geo::great_circle_m(unit_vector(centre.0, centre.1), unit_vector(lat, lng));
            assert!((d - metres).abs() < 0.01, "{d} m, not {metres}");
        }
    }
}
