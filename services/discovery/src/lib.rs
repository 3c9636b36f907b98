//! DiscoveryService: the nearest help point, text search, sites in an H3 cell.
//!
//! `FindNearest` answers from an in-memory index (`hubdir_geo::SiteIndex`) that is loaded at
//! start and follows the change log. `SearchSites` and `ListSitesInCell` page through the
//! store (`listing`), with the same filters. The position a person searches from is personal data:
//! it is read only to run the query, never logged or stored.

mod hsds;
mod http;
mod listing;
mod page;

use std::sync::Arc;
use std::time::Duration;

use hubdir_auth::{Scope, principal};
use hubdir_core::Filter;
use hubdir_core::connectivity::{Class, State};
use hubdir_core::{ViolationReason, Violations};
use hubdir_geo::Nearby;
use hubdir_node::{Mount, NodeContext, Routing, status};
use hubdir_proto::answer::{FindNearestAnswer, NearbyAnswer};
use hubdir_proto::convert;
use hubdir_proto::v1::discovery_service_server::{DiscoveryService, DiscoveryServiceServer, SERVICE_NAME};
use hubdir_proto::v1::{
    self as pb, FindNearestRequest, ListSitesInCellRequest, ListSitesInCellResponse, SearchSitesRequest,
    SearchSitesResponse,
};
use hubdir_store::Store;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use hubdir_node::site_index::{LiveIndex, Prepared};

/// How long a query waits for the index's first load before answering UNAVAILABLE.
const INDEX_WAIT: Duration = Duration::from_secs(10);

/// Default and largest `max_results`.
pub const DEFAULT_RESULTS: i32 = 10;
pub const MAX_RESULTS: i32 = 100;

/// How `hubdir serve` and `hubdir-discovery` mount this service.
pub const MOUNT: Mount = Mount { service_name: SERVICE_NAME, add };

fn add(ctx: &NodeContext, routing: &mut Routing) {
    let discovery = Discovery {
        anonymous: ctx.config.auth.anonymous_discovery,
        // NOT_SERVING in health until the index has loaded: FindNearest cannot answer before.
        index: ctx.site_index_for(SERVICE_NAME),
        store: ctx.store.clone(),
        tokens: ctx.page_tokens.clone(),
    };
    routing.add_http(http::routes(discovery.clone(), ctx.authenticator.clone()));
    routing.add_http(page::routes(discovery.clone(), ctx.authenticator.clone()));
    routing.add_http(hsds::routes(discovery.clone(), ctx.authenticator.clone()));
    let server = hubdir_node::grpc_server!(DiscoveryServiceServer::new(discovery), ctx);
    routing.grpc.add_service(InterceptedService::new(server, ctx.authenticator.clone()));
}

/// The DiscoveryService implementation.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// Whether callers without a token may search (`auth.anonymous_discovery`).
    anonymous: bool,
    index: LiveIndex,
    /// Text search and cell listings read the store directly.
    store: Arc<Store>,
    tokens: hubdir_node::page_token::PageTokens,
}

impl Discovery {
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if self.anonymous {
            return Ok(());
        }
        principal(request).require_any(&[Scope::DiscoveryRead, Scope::SitesRead]).map_err(status::from_denied)
    }

    /// Right after start the index may still be loading: waits for it, within reason.
    async fn index_loaded(&self) -> Result<(), Status> {
        self.index.loaded(INDEX_WAIT).await
    }
}

/// What a validated FindNearest asks.
struct Query {
    latitude: f64,
    longitude: f64,
    k: usize,
    max_distance_m: Option<f64>,
    filter: Filter,
    view: pb::SiteView,
}

fn query_from(request: FindNearestRequest) -> Result<Query, Status> {
    let FindNearestRequest { location, max_results, max_distance_meters, filter, view } = request;
    let mut out = Violations::default();
    let (latitude, longitude) = match location {
        None => {
            out.push("location", ViolationReason::Required, "where to search from is required");
            (0.0, 0.0)
        }
        Some(pb::LatLng { latitude, longitude }) => {
            if !latitude.is_finite() || !(-90.0..=90.0).contains(&latitude) {
                out.push("location.latitude", ViolationReason::OutOfRange, "must be a number in [-90, 90]");
            }
            if !longitude.is_finite() || !(-180.0..=180.0).contains(&longitude) {
                out.push("location.longitude", ViolationReason::OutOfRange, "must be a number in [-180, 180]");
            }
            (latitude, longitude)
        }
    };
    let k = match max_results {
        0 => DEFAULT_RESULTS,
        n if (1..=MAX_RESULTS).contains(&n) => n,
        _ => {
            out.push(
                "max_results",
                ViolationReason::OutOfRange,
                format!("must be in 1..{MAX_RESULTS}, or 0 for {DEFAULT_RESULTS}"),
            );
            DEFAULT_RESULTS
        }
    };
    if !max_distance_meters.is_finite() || max_distance_meters < 0.0 {
        out.push(
            "max_distance_meters",
            ViolationReason::OutOfRange,
            "must be 0 (no limit) or a positive number of metres",
        );
    }
    let filter = convert::filter_from_proto(filter.unwrap_or_default(), &mut out);
    let view = convert::view_from_proto(view, "view", &mut out);
    if !out.is_empty() {
        return Err(status::invalid_argument(&out));
    }
    let max_distance_m = (max_distance_meters > 0.0).then_some(max_distance_meters);
    Ok(Query { latitude, longitude, k: k as usize, max_distance_m, filter, view })
}

/// One result: the site's bytes as the index prepared them, in the view asked for.
fn nearby_to_proto(nearby: Nearby<Prepared>, now: chrono::DateTime<chrono::Utc>, view: pb::SiteView) -> NearbyAnswer {
    let Nearby { facts, payload: Prepared { site }, distance_meters, status, open_now } = nearby;
    let (state, class) = status.map_or((State::Unknown, Class::Unknown), |s| s.at(now));
    let name = format!("{}/connectivity", facts.name);
    NearbyAnswer {
        site: site.in_view(view),
        distance_meters,
        connectivity: Some(pb::ConnectivityStatus {
            name,
            state: convert::state_to_proto(state).into(),
            class: convert::class_to_proto(class).into(),
            // The measurement itself: GetStatus.
            latest: None,
        }),
        open_now: convert::open_now_to_proto(open_now).into(),
    }
}

#[tonic::async_trait]
impl DiscoveryService for Discovery {
    async fn find_nearest(&self, request: Request<FindNearestRequest>) -> Result<Response<FindNearestAnswer>, Status> {
        self.authorize(&request)?;
        self.index_loaded().await?;
        // The searcher's position lives only in this query; nothing logs or keeps it.
        let query = query_from(request.into_inner())?;
        // One instant judges every status's freshness, in the filter and in the answer.
        let now = chrono::Utc::now();
        let filter = Filter { as_of: Some(now), ..query.filter };
        let found = {
            // No field: the position stays out of the span.
            let _span = tracing::debug_span!("index.nearest", k = query.k).entered();
            self.index.read().nearest(query.latitude, query.longitude, query.k, query.max_distance_m, &filter)
        };
        let results = found.into_iter().map(|nearby| nearby_to_proto(nearby, now, query.view)).collect();
        Ok(Response::new(FindNearestAnswer { results }))
    }

    async fn search_sites(
        &self,
        request: Request<SearchSitesRequest>,
    ) -> Result<Response<SearchSitesResponse>, Status> {
        self.authorize(&request)?;
        listing::search(&self.store, &self.tokens, request.into_inner()).await.map(Response::new)
    }

    async fn list_sites_in_cell(
        &self,
        request: Request<ListSitesInCellRequest>,
    ) -> Result<Response<ListSitesInCellResponse>, Status> {
        self.authorize(&request)?;
        listing::in_cell(&self.store, &self.tokens, request.into_inner()).await.map(Response::new)
    }
}
