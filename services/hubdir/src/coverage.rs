//! `hubdir coverage`: who is far from help, from a node's database, printed as a table and
//! drawn as a map (SVG) or written as GeoJSON cells. It loads the index as a node does and asks
//! CoverageService's own handler, so the figures are the ones the RPC gives.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use hubdir_coverage::Coverage;
use hubdir_geo::CellIndex;
use hubdir_node::site_index::LiveIndex;
use hubdir_proto::v1::coverage_service_server::CoverageService;
use hubdir_proto::v1::{self as pb, ComputeCoverageRequest, ComputeCoverageResponse};
use plotters::prelude::*;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct CoverageArgs {
    #[command(flatten)]
    node: hubdir_node::NodeArgs,
    /// The population layer (`hubdir population import --layer`).
    #[arg(long, default_value = "geonames-cities1000")]
    layer: String,
    /// Count the people of this country (ISO 3166-1 alpha-2)...
    #[arg(long, conflicts_with_all = ["cell", "world"])]
    country: Option<String>,
    /// ...or of this H3 cell (hexadecimal)...
    #[arg(long, conflicts_with = "world")]
    cell: Option<String>,
    /// ...or of the whole layer.
    #[arg(long)]
    world: bool,
    /// A help point offers this service (repeat for several, all required): public-internet,
    /// free-wifi, e-government-help...
    #[arg(long = "service", value_name = "SERVICE")]
    services: Vec<String>,
    /// A help point is online now (a connected help point).
    #[arg(long)]
    online: bool,
    /// A help point's services are free of charge.
    #[arg(long)]
    free: bool,
    /// Distances in km, ascending.
    #[arg(long, value_delimiter = ',', default_values_t = [1.0, 5.0, 10.0, 25.0])]
    km: Vec<f64>,
    /// How many of the most populated places beyond the largest distance to list.
    #[arg(long, default_value_t = 10)]
    top: i32,
    /// H3 resolution of the map's and the GeoJSON's cells (4 to 7).
    #[arg(long, default_value_t = 5)]
    resolution: i32,
    /// Draw the map here (SVG).
    #[arg(long, value_name = "FILE.svg")]
    map: Option<PathBuf>,
    /// Write the cells here as a GeoJSON FeatureCollection (opens in QGIS or geojson.io).
    #[arg(long, value_name = "FILE")]
    geojson: Option<PathBuf>,
}

/// A site's service as the CLI takes it: `public-internet` or `PUBLIC_INTERNET`.
fn service(name: &str) -> anyhow::Result<pb::ServiceType> {
    let wire = format!("SERVICE_TYPE_{}", name.to_ascii_uppercase().replace('-', "_"));
    pb::ServiceType::from_str_name(&wire)
        .filter(|s| *s != pb::ServiceType::Unspecified)
        .with_context(|| format!("--service {name}: not a service type (e.g. public-internet, free-wifi)"))
}

pub async fn run(args: &CoverageArgs, out: &mut impl Write) -> anyhow::Result<()> {
    use pb::compute_coverage_request::Scope;
    let scope = match (&args.country, &args.cell, args.world) {
        (Some(country), _, _) => Scope::CountryCode(country.to_ascii_uppercase()),
        (_, Some(cell), _) => Scope::H3Cell(cell.clone()),
        (_, _, true) => Scope::World(true),
        _ => anyhow::bail!("say whose people to count: --country CC, --cell H3 or --world"),
    };
    let map_wanted = args.map.is_some() || args.geojson.is_some();
    if let Some(map) = &args.map
        && map.extension().and_then(|e| e.to_str()) != Some("svg")
    {
        anyhow::bail!("--map {}: maps are drawn as SVG (name the file .svg)", map.display());
    }
    let filter = pb::SiteFilter {
        services: args.services.iter().map(|s| service(s).map(i32::from)).collect::<anyhow::Result<_>>()?,
        connectivity_states: if args.online { vec![pb::ConnectivityState::Online.into()] } else { Vec::new() },
        free_access: args.free,
        ..pb::SiteFilter::default()
    };
    let request = ComputeCoverageRequest {
        scope: Some(scope),
        population_layer: args.layer.clone(),
        filter: Some(filter.clone()),
        thresholds_meters: args.km.iter().map(|km| km * 1000.0).collect(),
        top_places: args.top,
        cell_resolution: if map_wanted { args.resolution } else { 0 },
    };

    let store = Arc::new(args.node.open_store().await?);
    eprintln!("loading the sites...");
    let started = std::time::Instant::now();
    let index = LiveIndex::load_once(&store).await?;
    let coverage = Coverage::local(store, index.clone());
    eprintln!("loaded {} sites in {:.2} s; computing...", index.read().len(), started.elapsed().as_secs_f64());
    let computing = std::time::Instant::now();
    let answer = coverage
        .compute_coverage(tonic::Request::new(request))
        .await
        .map_err(|status| anyhow::anyhow!("{:?}: {}", status.code(), status.message()))?;
    let answer = answer.into_inner();
    // The RPC's own work: reading the layer's places, the distances, the roll-up.
    eprintln!("computed in {:.2} s", computing.elapsed().as_secs_f64());
    table(&answer, args, out)?;
    if let Some(path) = &args.geojson {
        std::fs::write(path, geojson(&answer)?.to_string())
            .with_context(|| format!("cannot write {}", path.display()))?;
        writeln!(out, "cells: {}", path.display())?;
    }
    if let Some(path) = &args.map {
        let sites = matching_sites(&index, &filter, &answer)?;
        draw(path, &answer, &sites, args)?;
        writeln!(out, "map: {}", path.display())?;
    }
    Ok(())
}

fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn table(answer: &ComputeCoverageResponse, args: &CoverageArgs, out: &mut impl Write) -> std::io::Result<()> {
    let what = if args.services.is_empty() { "any service".to_owned() } else { args.services.join(" + ") };
    writeln!(
        out,
        "help points: {what}{}{}; people: layer {} ({}, {}), a lower bound",
        if args.online { ", online now" } else { "" },
        if args.free { ", free" } else { "" },
        args.layer,
        answer.population_source,
        answer.population_year
    )?;
    writeln!(out, "{:>8} places, {:>15} people", thousands(answer.places), thousands(answer.people))?;
    for within in &answer.within {
        let km = within.distance_meters / 1000.0;
        writeln!(out, "  within {km:>5} km  {:>15}  {:>5.1}%", thousands(within.people), within.share * 100.0)?;
    }
    let largest = answer.within.last().map_or(0.0, |w| w.distance_meters / 1000.0);
    writeln!(
        out,
        "  beyond {largest:>5} km  {:>15}  {:>5.1}%",
        thousands(answer.people_beyond),
        answer.share_beyond * 100.0
    )?;
    if !answer.far_places.is_empty() {
        writeln!(out, "most populated places beyond {largest} km:")?;
        for place in &answer.far_places {
            let distance =
                place.distance_meters.map_or("no help point".to_owned(), |d| format!("{:.1} km", d / 1000.0));
            writeln!(out, "  {:<32} {}  {:>12}  {distance}", place.name, place.country_code, thousands(place.people))?;
        }
    }
    Ok(())
}

/// The cell's outline, longitude first, closed.
fn outline(cell: &str) -> anyhow::Result<Vec<(f64, f64)>> {
    let cell: CellIndex = cell.parse().with_context(|| format!("the node answered a bad cell {cell}"))?;
    let mut ring: Vec<(f64, f64)> = cell.boundary().iter().map(|v| (v.lng(), v.lat())).collect();
    // A cell across the antimeridian: keep its longitudes on one side.
    if ring.iter().any(|p| p.0 > 90.0) && ring.iter().any(|p| p.0 < -90.0) {
        for point in &mut ring {
            if point.0 < 0.0 {
                point.0 += 360.0;
            }
        }
    }
    if let Some(first) = ring.first().copied() {
        ring.push(first);
    }
    Ok(ring)
}

fn geojson(answer: &ComputeCoverageResponse) -> anyhow::Result<serde_json::Value> {
    let mut features = Vec::with_capacity(answer.cells.len());
    for cell in &answer.cells {
        let ring: Vec<[f64; 2]> = outline(&cell.h3_cell)?.into_iter().map(|(x, y)| [x, y]).collect();
        let mut properties = json!({
            "h3_cell": cell.h3_cell,
            "places": cell.places,
            "people": cell.people,
            "people_beyond": cell.people_beyond,
            "mean_distance_km": cell.mean_distance_meters.map(|d| (d / 10.0).round() / 100.0),
        });
        for (within, count) in answer.within.iter().zip(&cell.people_within) {
            properties[format!("people_within_{}km", within.distance_meters / 1000.0)] = json!(count);
        }
        features.push(json!({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": properties,
        }));
    }
    Ok(json!({"type": "FeatureCollection", "features": features}))
}

/// At most this many sites are drawn; more are thinned evenly, and the legend says so.
const MAX_DRAWN_SITES: usize = 5_000;

/// The positions (longitude, latitude) of the sites matching `filter` around the cells.
fn matching_sites(
    index: &LiveIndex,
    filter: &pb::SiteFilter,
    answer: &ComputeCoverageResponse,
) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut violations = hubdir_core::Violations::default();
    let filter = hubdir_proto::convert::filter_from_proto(filter.clone(), &mut violations);
    let wrap = wraps(answer)?;
    let bounds = extent(answer)?;
    let index = index.read();
    Ok(index
        .matching(&filter)
        .map(|(site, _)| (shifted(site.location.longitude(), wrap), site.location.latitude()))
        .filter(|(x, y)| *y >= bounds.2 && *y <= bounds.3 && *x >= bounds.0 && *x <= bounds.1)
        .collect())
}

/// Whether the cells straddle the antimeridian (the Aleutians, Fiji, Chukotka): then the map
/// runs east past 180° rather than across the whole world.
fn wraps(answer: &ComputeCoverageResponse) -> anyhow::Result<bool> {
    let (mut far_east, mut far_west) = (false, false);
    for cell in &answer.cells {
        for (x, _) in outline(&cell.h3_cell)? {
            far_east |= x > 90.0;
            far_west |= x < -90.0;
        }
    }
    Ok(far_east && far_west)
}

/// A longitude on the map: west of the antimeridian moved past 180° when the map wraps.
fn shifted(longitude: f64, wrap: bool) -> f64 {
    if wrap && longitude < 0.0 { longitude + 360.0 } else { longitude }
}

/// A cell's outline as the map draws it.
fn outline_on_map(cell: &str, wrap: bool) -> anyhow::Result<Vec<(f64, f64)>> {
    Ok(outline(cell)?.into_iter().map(|(x, y)| (shifted(x, wrap), y)).collect())
}

/// West, east, south, north of the cells, with a margin.
fn extent(answer: &ComputeCoverageResponse) -> anyhow::Result<(f64, f64, f64, f64)> {
    let wrap = wraps(answer)?;
    let (mut west, mut east, mut south, mut north) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for cell in &answer.cells {
        for (x, y) in outline_on_map(&cell.h3_cell, wrap)? {
            (west, east, south, north) = (west.min(x), east.max(x), south.min(y), north.max(y));
        }
    }
    anyhow::ensure!(west <= east, "no populated cell to draw: is the layer empty in this scope?");
    let margin = ((east - west).max(north - south) * 0.03).max(0.1);
    Ok((west - margin, east + margin, (south - margin).max(-90.0), (north + margin).min(90.0)))
}

/// Colours from near (green) to far (red), one per distance band, then grey for "no help
/// point at all".
fn band_colour(band: usize, bands: usize) -> RGBColor {
    let t = if bands <= 1 { 0.0 } else { band as f64 / (bands - 1) as f64 };
    let (r, g) = if t < 0.5 { (2.0 * t, 1.0) } else { (1.0, 2.0 * (1.0 - t)) };
    RGBColor((40.0 + 200.0 * r) as u8, (40.0 + 160.0 * g) as u8, 60)
}

fn draw(
    path: &Path,
    answer: &ComputeCoverageResponse,
    sites: &[(f64, f64)],
    args: &CoverageArgs,
) -> anyhow::Result<()> {
    let wrap = wraps(answer)?;
    let (west, east, south, north) = extent(answer)?;
    // Equirectangular, shrunk east-west by the cosine of the middle latitude.
    let aspect = (east - west) * ((south + north) / 2.0).to_radians().cos() / (north - south);
    let width = 1200u32;
    let map_height = ((width as f64 - 40.0) / aspect.max(0.2)).clamp(300.0, 1600.0) as u32;
    let height = map_height + 130;
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (map_area, legend_area) = root.split_vertically(map_height);
    let mut chart = ChartBuilder::on(&map_area).margin(20).build_cartesian_2d(west..east, south..north)?;

    let limits: Vec<f64> = answer.within.iter().map(|w| w.distance_meters).collect();
    let bands = limits.len() + 1;
    for cell in &answer.cells {
        let band = match cell.mean_distance_meters {
            None => bands,
            Some(d) => limits.iter().position(|limit| d <= *limit).unwrap_or(limits.len()),
        };
        let colour = if band == bands { RGBColor(160, 160, 160) } else { band_colour(band, bands) };
        let ring = outline_on_map(&cell.h3_cell, wrap)?;
        chart.draw_series(std::iter::once(Polygon::new(ring, colour.mix(0.85).filled())))?;
    }
    let step = sites.len().div_ceil(MAX_DRAWN_SITES).max(1);
    chart.draw_series(sites.iter().step_by(step).map(|(x, y)| Circle::new((*x, *y), 1, BLACK.filled())))?;

    // The legend: one swatch per band, the grey of no help point, the sites' dot.
    let mut labels: Vec<String> = Vec::new();
    let mut lower = 0.0;
    for limit in &limits {
        labels.push(format!("{}-{} km", lower / 1000.0, limit / 1000.0));
        lower = *limit;
    }
    labels.push(format!("over {} km", lower / 1000.0));
    let font = ("sans-serif", 16).into_font();
    let title = format!(
        "Population-weighted distance to the nearest help point ({}), {} people in {} places; cells at H3 resolution {}",
        if args.services.is_empty() { "any".to_owned() } else { args.services.join(" + ") },
        thousands(answer.people),
        thousands(answer.places),
        args.resolution
    );
    legend_area.draw(&Text::new(title, (20, 10), font.clone()))?;
    for (i, label) in labels.iter().enumerate() {
        let x = 20 + (i as i32) * 170;
        legend_area.draw(&Rectangle::new([(x, 40), (x + 24, 60)], band_colour(i, bands).filled()))?;
        legend_area.draw(&Text::new(label.clone(), (x + 30, 42), font.clone()))?;
    }
    let x = 20 + (labels.len() as i32) * 170;
    legend_area.draw(&Rectangle::new([(x, 40), (x + 24, 60)], RGBColor(160, 160, 160).filled()))?;
    legend_area.draw(&Text::new("no help point", (x + 30, 42), font.clone()))?;
    let shown = if step == 1 {
        format!("{} help points", thousands(sites.len() as i64))
    } else {
        format!("1 in {step} of {} help points", thousands(sites.len() as i64))
    };
    legend_area.draw(&Circle::new((26, 90), 3, BLACK.filled()))?;
    legend_area.draw(&Text::new(shown, (40, 82), font.clone()))?;
    let credit = format!(
        "People: {} ({}). Places under the layer's threshold are absent.",
        answer.population_source, answer.population_year
    );
    legend_area.draw(&Text::new(credit, (420, 82), font))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(positions: &[(f64, f64)]) -> ComputeCoverageResponse {
        let cells = positions
            .iter()
            .map(|(lat, lng)| pb::CellCoverage {
                h3_cell: {
                    let place = hubdir_core::population::PlaceInput {
                        id: "p".into(),
                        country_code: "FJ".into(),
                        latitude: *lat,
                        longitude: *lng,
                        people: "1".into(),
                        ..Default::default()
                    };
                    let location = place.validate().unwrap().location;
                    hubdir_geo::cell_at(location, hubdir_geo::Resolution::Five).unwrap().to_string()
                },
                ..pb::CellCoverage::default()
            })
            .collect();
        ComputeCoverageResponse { cells, ..ComputeCoverageResponse::default() }
    }

    #[test]
    fn a_map_across_the_antimeridian_runs_past_180_degrees_not_round_the_world() {
        // Fiji: Suva at 178.4 E, Vanua Balavu at 178.9 W.
        let fiji = cells(&[(-18.14, 178.44), (-17.23, -178.95)]);
        assert!(wraps(&fiji).unwrap());
        let (west, east, _, _) = extent(&fiji).unwrap();
        assert!(west > 170.0 && east < 190.0, "{west} {east}");
        assert_eq!(shifted(-178.95, true), 181.05);
        // India does not wrap.
        let india = cells(&[(28.6, 77.2), (13.1, 80.3)]);
        assert!(!wraps(&india).unwrap());
        assert!(extent(&india).unwrap().0 > 70.0);
    }
}
