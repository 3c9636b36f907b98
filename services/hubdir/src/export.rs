//! `hubdir export`: every site of a node's database as HSDS 3.0 JSON, GeoJSON (RFC 7946) or
//! CSV, streamed page by page.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use hubdir_core::SiteRecord;
use hubdir_import::hubdir_csv;
use hubdir_store::{SiteQuery, Store};
use serde_json::{Value, json};

const PAGE: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// HSDS 3.0, shaped as the API's paginated `service_at_location` list (one page): per
    /// site one service-at-location embedding its location and its service, with the ids the
    /// HSDS API serves (`hubdir_hsds`).
    Hsds,
    /// A GeoJSON FeatureCollection of Points, longitude first.
    Geojson,
    /// hubdir's own CSV (see `hubdir_import::hubdir_csv`): imports back without a mapping.
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// What to write: HSDS 3.0 JSON, GeoJSON or hubdir's CSV.
    #[arg(long, value_enum)]
    format: ExportFormat,
    #[command(flatten)]
    node: hubdir_node::NodeArgs,
    /// Where to write; standard output if absent.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn geojson_feature(record: &SiteRecord) -> Value {
    let site = &record.site;
    json!({
        "type": "Feature",
        // RFC 7946: longitude first.
        "geometry": { "type": "Point", "coordinates": [site.location.longitude(), site.location.latitude()] },
        "properties": {
            "name": site.name.to_string(),
            "display_name": site.display_name,
            "kind": site.kind.code(),
            "operator": site.operator,
            "country_code": site.country.as_str(),
            "services": site.services.iter().map(|s| s.code()).collect::<Vec<_>>(),
            "languages": site.languages.iter().map(|l| l.as_str()).collect::<Vec<_>>(),
            "opening_hours": site.opening_hours.as_ref().map(|h| h.as_str()),
            "time_zone": site.time_zone.as_str(),
            "status": site.status.code(),
            "free_access": site.free_access,
            "h3_cell": record.h3_cell.to_string(),
            "etag": record.etag,
            "update_time": record.update_time.to_rfc3339(),
        },
    })
}

/// Calls `f` with every page of sites, in name order; returns how many sites there were.
async fn each_page(store: &Store, mut f: impl FnMut(&[SiteRecord]) -> anyhow::Result<()>) -> anyhow::Result<u64> {
    let mut query = SiteQuery { limit: PAGE, ..SiteQuery::default() };
    let mut count = 0u64;
    loop {
        let page = store.list_sites(&query).await?;
        let Some(last) = page.last() else { return Ok(count) };
        query.after_name = Some(last.site.name.to_string());
        f(&page)?;
        count += page.len() as u64;
    }
}

/// Writes every site; returns how many.
pub async fn run(args: &ExportArgs) -> anyhow::Result<u64> {
    let store = args.node.open_store().await?;
    let out: Box<dyn Write> = match &args.out {
        Some(path) => {
            Box::new(std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::new(out);
    let count = match args.format {
        ExportFormat::Csv => {
            let mut writer = csv::Writer::from_writer(&mut out);
            writer.write_record(hubdir_csv::COLUMNS)?;
            let count = each_page(&store, |page| {
                for record in page {
                    writer.write_record(hubdir_csv::to_row(record))?;
                }
                Ok(())
            })
            .await?;
            writer.flush()?;
            count
        }
        ExportFormat::Geojson => {
            write!(out, "{{\"type\":\"FeatureCollection\",\"features\":[")?;
            let mut first = true;
            let count = each_page(&store, |page| {
                for record in page {
                    write!(out, "{}{}", if first { "" } else { "," }, geojson_feature(record))?;
                    first = false;
                }
                Ok(())
            })
            .await?;
            writeln!(out, "]}}")?;
            count
        }
        ExportFormat::Hsds => {
            write!(out, "{{\"contents\":[")?;
            let mut first = true;
            let count = each_page(&store, |page| {
                for record in page {
                    write!(out, "{}{}", if first { "" } else { "," }, hubdir_hsds::service_at_location(record))?;
                    first = false;
                }
                Ok(())
            })
            .await?;
            // The rest of HSDS's page envelope: everything on one page.
            writeln!(
                out,
                "],\"total_items\":{count},\"total_pages\":1,\"page_number\":1,\"size\":{count},\"first_page\":true,\"last_page\":true,\"empty\":{}}}",
                count == 0
            )?;
            count
        }
    };
    out.flush()?;
    Ok(count)
}
