//! CoverageService: who is far from help. A population layer's places (`hubdir population
//! import`) against the sites of the live nearest index (`hubdir_node::site_index`), which
//! DiscoveryService shares in the same process: every place's distance to its nearest
//! matching site, rolled up by `hubdir_geo::coverage`. No query per place reaches the store.
//!
//! One computation runs at a time per process (others wait their turn), spread over the
//! machine's cores, a chunk of places per read of the index so that writers to the index
//! never wait long. Results carry no position finer than the cells they were asked for.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hubdir_auth::{Scope, principal};
use hubdir_core::connectivity::State;
use hubdir_core::population::{Place, check_layer_name};
use hubdir_core::{CountryCode, Filter, Kind, Reason, ServiceType, SiteStatus, ViolationReason, Violations};
use hubdir_geo::coverage::{self, Coverage as RolledUp, Tally};
use hubdir_geo::{CellIndex, Resolution};
use hubdir_node::site_index::LiveIndex;
use hubdir_node::{Mount, NodeContext, Routing, status};
use hubdir_proto::convert;
use hubdir_proto::v1::coverage_service_server::{CoverageService, CoverageServiceServer, SERVICE_NAME};
use hubdir_proto::v1::{
    self as pb, ComputeCoverageRequest, ComputeCoverageResponse, SummarizeCountryRequest, SummarizeCountryResponse,
};
use hubdir_store::{Layer, PlaceScope, Store};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

/// Distances asked when a request gives none, in metres.
pub const DEFAULT_THRESHOLDS_M: [f64; 4] = [1_000.0, 5_000.0, 10_000.0, 25_000.0];
pub const MAX_THRESHOLDS: usize = 8;
/// Half the Earth's circumference: no two places are farther apart.
const MAX_DISTANCE_M: f64 = 20_037_509.0;
pub const DEFAULT_TOP: i32 = 10;
pub const MAX_TOP: i32 = 100;
/// The finest position a far place is returned at when no cells were asked for.
const PLACE_RESOLUTION: Resolution = Resolution::Seven;
/// How long a computation waits for the index's first load.
const INDEX_WAIT: Duration = Duration::from_secs(10);
/// "Near a connected help point" in a country's summary.
const CONNECTED_M: f64 = 5_000.0;

/// How `hubdir serve` mounts this service.
pub const MOUNT: Mount = Mount { service_name: SERVICE_NAME, add };

fn add(ctx: &NodeContext, routing: &mut Routing) {
    let coverage = Coverage {
        anonymous: ctx.config.auth.anonymous_discovery,
        index: ctx.site_index_for(SERVICE_NAME),
        store: ctx.store.clone(),
        turn: Arc::new(tokio::sync::Semaphore::new(1)),
    };
    let server = hubdir_node::grpc_server!(CoverageServiceServer::new(coverage), ctx);
    routing.grpc.add_service(InterceptedService::new(server, ctx.authenticator.clone()));
}

/// The CoverageService implementation.
#[derive(Debug, Clone)]
pub struct Coverage {
    /// Whether callers without a token may ask (`auth.anonymous_discovery`).
    anonymous: bool,
    index: LiveIndex,
    store: Arc<Store>,
    /// One computation at a time.
    turn: Arc<tokio::sync::Semaphore>,
}

impl Coverage {
    /// The service over `index` and `store`, answering anyone: for `hubdir coverage`, which
    /// runs it in-process on a database it opened itself.
    pub fn local(store: Arc<Store>, index: LiveIndex) -> Coverage {
        Coverage { anonymous: true, index, store, turn: Arc::new(tokio::sync::Semaphore::new(1)) }
    }

    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if self.anonymous {
            return Ok(());
        }
        principal(request).require_any(&[Scope::SitesRead, Scope::SitesWrite]).map_err(status::from_denied)
    }

    async fn layer(&self, name: &str) -> Result<Layer, Status> {
        self.store.population_layer(name).await.map_err(status::from_store)?.ok_or_else(|| {
            status::with_reason(
                Reason::LayerNotFound,
                format!(
                    "no population layer {}: `hubdir population import --layer` makes one",
                    hubdir_core::echo(name)
                ),
                Default::default(),
            )
        })
    }

    /// The turn of one computation: taken before the places are read, so a queue of callers
    /// holds no layer in memory, and released only when the work it covers has ended.
    async fn turn(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.index.loaded(INDEX_WAIT).await?;
        self.turn.clone().acquire_owned().await.map_err(|_| status::internal("the coverage turn closed"))
    }

    /// Runs `work` off the async runtime, holding `turn` until it ends, even if the caller
    /// has gone: a cancelled call cannot start a second computation beside a running one.
    async fn blocking<T: Send + 'static>(
        turn: tokio::sync::OwnedSemaphorePermit,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Status> {
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            work()
        })
        .await
        .map_err(|err| status::internal(format!("the coverage computation failed: {err}")))
    }

    /// Every place's distance to its nearest site matching `filter`, on every core, one chunk
    /// of places per read of the index.
    async fn distances(
        &self,
        turn: tokio::sync::OwnedSemaphorePermit,
        places: Arc<Vec<Place>>,
        filter: Filter,
    ) -> Result<Vec<Option<f64>>, Status> {
        let index = self.index.clone();
        Coverage::blocking(turn, move || coverage::distances_in_chunks(|| index.read(), &places, &filter)).await
    }
}

fn layer_name(out: &mut Violations, name: &str) {
    if let Err(violations) = check_layer_name(name) {
        out.0.extend(violations.0);
    }
}

fn country(out: &mut Violations, field: &str, code: &str) -> Option<CountryCode> {
    let country = CountryCode::parse(code);
    if country.is_none() {
        out.push(field, ViolationReason::InvalidFormat, "an ISO 3166-1 alpha-2 code, e.g. IN");
    }
    country
}

/// What a validated ComputeCoverage asks.
struct Asked {
    scope: PlaceScope,
    layer: String,
    filter: Filter,
    thresholds_m: Vec<f64>,
    top: usize,
    resolution: Option<Resolution>,
}

fn asked(request: ComputeCoverageRequest) -> Result<Asked, Status> {
    use pb::compute_coverage_request::Scope as S;
    let ComputeCoverageRequest { scope, population_layer, filter, thresholds_meters, top_places, cell_resolution } =
        request;
    let mut out = Violations::default();
    let scope = match scope {
        None | Some(S::World(false)) => {
            out.push("scope", ViolationReason::Required, "a country_code, an h3_cell, or world = true");
            PlaceScope::World
        }
        Some(S::World(true)) => PlaceScope::World,
        Some(S::CountryCode(code)) => {
            country(&mut out, "country_code", &code).map_or(PlaceScope::World, |c| PlaceScope::Country(c.to_string()))
        }
        Some(S::H3Cell(text)) => match text.parse::<CellIndex>() {
            Ok(cell) => {
                let (low, high) = hubdir_geo::descendant_range(cell);
                PlaceScope::Cells(low, high)
            }
            Err(_) => {
                out.push("h3_cell", ViolationReason::InvalidFormat, "an H3 cell index in hexadecimal");
                PlaceScope::World
            }
        },
    };
    layer_name(&mut out, &population_layer);
    let filter = convert::filter_from_proto(filter.unwrap_or_default(), &mut out);
    let thresholds_m = if thresholds_meters.is_empty() { DEFAULT_THRESHOLDS_M.to_vec() } else { thresholds_meters };
    if thresholds_m.len() > MAX_THRESHOLDS {
        out.push("thresholds_meters", ViolationReason::TooMany, format!("at most {MAX_THRESHOLDS} distances"));
    }
    let in_range = thresholds_m.iter().all(|d| d.is_finite() && *d > 0.0 && *d <= MAX_DISTANCE_M);
    if !in_range || thresholds_m.windows(2).any(|w| w[0] >= w[1]) {
        out.push(
            "thresholds_meters",
            ViolationReason::OutOfRange,
            format!("distances in metres, ascending, each more than 0 and at most {MAX_DISTANCE_M}"),
        );
    }
    let top = match top_places {
        0 => DEFAULT_TOP,
        n if (1..=MAX_TOP).contains(&n) => n,
        _ => {
            out.push("top_places", ViolationReason::OutOfRange, format!("in 1..{MAX_TOP}, or 0 for {DEFAULT_TOP}"));
            DEFAULT_TOP
        }
    } as usize;
    let resolution = match cell_resolution {
        0 => None,
        4..=7 => Resolution::try_from(cell_resolution as u8).ok(),
        _ => {
            out.push("cell_resolution", ViolationReason::OutOfRange, "4 to 7, or 0 for no cells");
            None
        }
    };
    if !out.is_empty() {
        return Err(status::invalid_argument(&out));
    }
    Ok(Asked { scope, layer: population_layer, filter, thresholds_m, top, resolution })
}

/// A country's open sites as `SummarizeCountry` counts them.
struct SiteTally {
    sites: u64,
    internet: u64,
    online: u64,
    kinds: BTreeMap<Kind, u64>,
    speeds: Vec<f64>,
}

/// One pass over the index (off the async runtime: a million sites).
fn tally_sites(index: &LiveIndex, country: &CountryCode, now: chrono::DateTime<chrono::Utc>) -> SiteTally {
    let mut tally = SiteTally { sites: 0, internet: 0, online: 0, kinds: BTreeMap::new(), speeds: Vec::new() };
    for (site, status) in index.read().sites() {
        if &site.country != country || site.status != SiteStatus::Open {
            continue;
        }
        tally.sites += 1;
        *tally.kinds.entry(site.kind).or_default() += 1;
        tally.internet += u64::from(site.offers(ServiceType::PublicInternet));
        if let Some(status) = status.filter(|s| s.at(now).0 == State::Online) {
            tally.online += 1;
            tally.speeds.extend(status.download_mbps);
        }
    }
    tally
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

fn response(
    rolled: RolledUp,
    places: &[Place],
    thresholds_m: &[f64],
    resolution: Option<Resolution>,
    layer: &Layer,
) -> ComputeCoverageResponse {
    let RolledUp { total, farthest, cells } = rolled;
    let people = total.people;
    let within = thresholds_m
        .iter()
        .zip(&total.within)
        .map(|(d, p)| pb::DistanceCoverage { distance_meters: *d, people: *p as i64, share: share(*p, people) })
        .collect();
    let far_places = farthest
        .into_iter()
        .map(|(i, distance)| {
            let place = &places[i];
            let cell = hubdir_geo::cell_at(place.location, resolution.unwrap_or(PLACE_RESOLUTION));
            pb::FarPlace {
                name: place.name.clone(),
                country_code: place.country.to_string(),
                people: place.people as i64,
                distance_meters: distance,
                h3_cell: cell.map(|c| c.to_string()).unwrap_or_default(),
            }
        })
        .collect();
    let cells = cells
        .into_iter()
        .map(|(cell, tally)| pb::CellCoverage {
            h3_cell: cell.to_string(),
            places: tally.places as i64,
            people: tally.people as i64,
            people_within: tally.within.iter().map(|p| *p as i64).collect(),
            people_beyond: tally.beyond as i64,
            mean_distance_meters: tally.mean_distance_m(),
        })
        .collect();
    ComputeCoverageResponse {
        places: total.places as i64,
        people: people as i64,
        within,
        people_beyond: total.beyond as i64,
        share_beyond: share(total.beyond, people),
        far_places,
        cells,
        population_source: layer.source.clone(),
        population_year: layer.year,
    }
}

#[tonic::async_trait]
impl CoverageService for Coverage {
    async fn compute_coverage(
        &self,
        request: Request<ComputeCoverageRequest>,
    ) -> Result<Response<ComputeCoverageResponse>, Status> {
        self.authorize(&request)?;
        let asked = asked(request.into_inner())?;
        let layer = self.layer(&asked.layer).await?;
        let turn = self.turn().await?;
        let places =
            Arc::new(self.store.population_places(&layer.name, &asked.scope).await.map_err(status::from_store)?);
        // One instant judges every status's freshness.
        let filter = Filter { as_of: Some(chrono::Utc::now()), ..asked.filter };
        let distances = self.distances(turn, places.clone(), filter).await?;
        let rolled = coverage::roll_up(&places, &distances, &asked.thresholds_m, asked.top, asked.resolution);
        Ok(Response::new(response(rolled, &places, &asked.thresholds_m, asked.resolution, &layer)))
    }

    async fn summarize_country(
        &self,
        request: Request<SummarizeCountryRequest>,
    ) -> Result<Response<SummarizeCountryResponse>, Status> {
        self.authorize(&request)?;
        let SummarizeCountryRequest { country_code, population_layer } = request.into_inner();
        let mut out = Violations::default();
        let country = country(&mut out, "country_code", &country_code);
        layer_name(&mut out, &population_layer);
        let Some(country) = country.filter(|_| out.is_empty()) else { return Err(status::invalid_argument(&out)) };
        let layer = self.layer(&population_layer).await?;
        let scope = PlaceScope::Country(country.to_string());
        let turn = self.turn().await?;
        let places = Arc::new(self.store.population_places(&layer.name, &scope).await.map_err(status::from_store)?);
        let now = chrono::Utc::now();
        let connected = Filter { connectivity_states: vec![State::Online], as_of: Some(now), ..Filter::default() };
        let index = self.index.clone();
        let (near, tally) = Coverage::blocking(turn, move || {
            let distances = coverage::distances_in_chunks(|| index.read(), &places, &connected);
            let near: Tally = coverage::roll_up(&places, &distances, &[CONNECTED_M], 0, None).total;
            (near, tally_sites(&index, &country, now))
        })
        .await?;
        let SiteTally { sites, internet, online, kinds, mut speeds } = tally;
        let mut by_kind: Vec<(Kind, u64)> = kinds.into_iter().collect();
        by_kind.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let people = near.people;
        Ok(Response::new(SummarizeCountryResponse {
            country_code: country_code.to_ascii_uppercase(),
            sites: sites as i64,
            sites_by_kind: by_kind
                .into_iter()
                .map(|(kind, n)| pb::KindCount { kind: convert::kind_to_proto(kind).into(), sites: n as i64 })
                .collect(),
            people: people as i64,
            sites_per_100k_people: if people == 0 { 0.0 } else { sites as f64 * 100_000.0 / people as f64 },
            share_offering_public_internet: share(internet, sites),
            share_online_now: share(online, sites),
            median_download_mbps: hubdir_core::connectivity::median(&mut speeds),
            share_people_within_5km_of_connected: share(near.within[0], people),
            population_source: layer.source,
            population_year: layer.year,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_field_by_field() {
        let status = asked(ComputeCoverageRequest {
            scope: Some(pb::compute_coverage_request::Scope::CountryCode("XX".into())),
            population_layer: "a b".into(),
            thresholds_meters: vec![5_000.0, 1_000.0],
            top_places: 1_000,
            cell_resolution: 9,
            ..ComputeCoverageRequest::default()
        })
        .err()
        .unwrap();
        let details = tonic_types::StatusExt::get_details_bad_request(&status).unwrap();
        let fields: Vec<&str> = details.field_violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["country_code", "population_layer", "thresholds_meters", "top_places", "cell_resolution"]);
        let fine = asked(ComputeCoverageRequest {
            scope: Some(pb::compute_coverage_request::Scope::World(true)),
            population_layer: "geonames".into(),
            ..ComputeCoverageRequest::default()
        })
        .ok()
        .unwrap();
        assert_eq!((fine.thresholds_m, fine.top, fine.resolution), (DEFAULT_THRESHOLDS_M.to_vec(), 10, None));
    }
}
