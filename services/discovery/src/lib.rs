//! DiscoveryService: the nearest help point, text search, sites in an H3 cell.
//!
//! The contract is fixed; the exact nearest-neighbour index and its filters arrive with the
//! discovery issue. Until then every RPC answers UNIMPLEMENTED with a message saying so.

use hubdir_auth::{Scope, principal};
use hubdir_node::{Mount, NodeContext, status};
use hubdir_proto::v1::discovery_service_server::{DiscoveryService, DiscoveryServiceServer, SERVICE_NAME};
use hubdir_proto::v1::{
    FindNearestRequest, FindNearestResponse, ListSitesInCellRequest, ListSitesInCellResponse, SearchSitesRequest,
    SearchSitesResponse,
};
use tonic::service::RoutesBuilder;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

/// How `hubdir serve` and `hubdir-discovery` mount this service.
pub const MOUNT: Mount = Mount { service_name: SERVICE_NAME, add };

fn add(ctx: &NodeContext, routes: &mut RoutesBuilder) {
    let max = ctx.config.server.max_message_bytes;
    let server = DiscoveryServiceServer::new(Discovery { anonymous: ctx.config.auth.anonymous_discovery })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    routes.add_service(InterceptedService::new(server, ctx.authenticator.clone()));
}

const ARRIVES_WITH: &str = "the discovery issue (the in-memory nearest-neighbour index)";

/// The DiscoveryService implementation.
#[derive(Debug, Clone, Copy)]
pub struct Discovery {
    /// Whether callers without a token may search (`auth.anonymous_discovery`).
    anonymous: bool,
}

impl Discovery {
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if self.anonymous {
            return Ok(());
        }
        principal(request).require_any(&[Scope::DiscoveryRead, Scope::SitesRead]).map_err(status::from_denied)
    }
}

#[tonic::async_trait]
impl DiscoveryService for Discovery {
    async fn find_nearest(
        &self,
        request: Request<FindNearestRequest>,
    ) -> Result<Response<FindNearestResponse>, Status> {
        self.authorize(&request)?;
        // The request holds a searcher's position: it is deliberately neither read nor logged.
        Err(status::not_yet("hubdir.v1.DiscoveryService/FindNearest", ARRIVES_WITH))
    }

    async fn search_sites(
        &self,
        request: Request<SearchSitesRequest>,
    ) -> Result<Response<SearchSitesResponse>, Status> {
        self.authorize(&request)?;
        Err(status::not_yet("hubdir.v1.DiscoveryService/SearchSites", ARRIVES_WITH))
    }

    async fn list_sites_in_cell(
        &self,
        request: Request<ListSitesInCellRequest>,
    ) -> Result<Response<ListSitesInCellResponse>, Status> {
        self.authorize(&request)?;
        Err(status::not_yet("hubdir.v1.DiscoveryService/ListSitesInCell", ARRIVES_WITH))
    }
}
