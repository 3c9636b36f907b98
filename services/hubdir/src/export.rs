//! `hubdir export`: every site of a node's database as HSDS 3.0 JSON, GeoJSON (RFC 7946) or
//! CSV, streamed page by page.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use hubdir_core::{SiteRecord, SiteStatus};
use hubdir_import::hubdir_csv;
use hubdir_store::{SiteQuery, Store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PAGE: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// HSDS 3.0, shaped as the API's paginated `service_at_location` list (one page): per
    /// site one service-at-location embedding its location and its service.
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

/// A stable UUID (version 5 layout, SHA-256 based) for a site's HSDS object of `kind`: the
/// same site always exports with the same ids.
fn uuid(site_name: &str, kind: &str) -> String {
    let digest = Sha256::digest(format!("hubdir:{site_name}#{kind}"));
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn hsds(record: &SiteRecord) -> Value {
    let site = &record.site;
    let name = site.name.to_string();
    let (service_id, location_id) = (uuid(&name, "service"), uuid(&name, "location"));
    let offers: Vec<&str> = site.services.iter().map(|s| s.code()).collect();
    let mut service = json!({
        "id": service_id,
        "name": site.display_name,
        "status": match site.status {
            SiteStatus::Open => "active",
            SiteStatus::TemporarilyClosed => "temporarily closed",
            SiteStatus::Closed => "inactive",
        },
        "description": format!("{} ({}). Offers: {}.", site.display_name, site.kind.code(), offers.join(", ")),
    });
    if !site.contact.email.is_empty() {
        service["email"] = json!(site.contact.email);
    }
    if !site.contact.website.is_empty() {
        service["url"] = json!(site.contact.website);
    }
    let mut location = json!({
        "id": location_id,
        "location_type": "physical",
        "name": site.display_name,
        "latitude": site.location.latitude(),
        "longitude": site.location.longitude(),
        "external_identifier": name,
        "external_identifier_type": "hubdir site name",
        "languages": site.languages.iter().map(|l| json!({
            "id": uuid(&name, &format!("language-{l}")), "location_id": location_id, "code": l.as_str(),
        })).collect::<Vec<_>>(),
        "accessibility": site.accessibility.iter().map(|a| json!({
            "id": uuid(&name, &format!("accessibility-{}", a.code())), "location_id": location_id, "description": a.code(),
        })).collect::<Vec<_>>(),
    });
    if let Some(first) = site.address.lines.first() {
        location["addresses"] = json!([{
            "id": uuid(&name, "address"),
            "location_id": location_id,
            "address_1": first,
            "address_2": site.address.lines[1..].join(", "),
            "city": site.address.locality,
            "state_province": site.address.region,
            "postal_code": site.address.postal_code,
            "country": site.country.as_str(),
            "address_type": "physical",
        }]);
    }
    if !site.contact.phone.is_empty() {
        location["phones"] =
            json!([{ "id": uuid(&name, "phone"), "location_id": location_id, "number": site.contact.phone }]);
    }
    if let Some(hours) = &site.opening_hours {
        location["schedules"] = json!([{
            "id": uuid(&name, "schedule"),
            "location_id": location_id,
            "description": format!("{} (OpenStreetMap opening_hours, time zone {})", hours, site.time_zone),
        }]);
    }
    json!({
        "id": uuid(&name, "service_at_location"),
        "service_id": service_id,
        "location_id": location_id,
        "location": location,
        "service": service,
    })
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
                    write!(out, "{}{}", if first { "" } else { "," }, hsds(record))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_stable_and_well_formed() {
        let a = uuid("sites/zw/1", "service");
        assert_eq!(a, uuid("sites/zw/1", "service"));
        assert_ne!(a, uuid("sites/zw/1", "location"));
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), vec![8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('5'));
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
    }
}
