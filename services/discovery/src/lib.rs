//! DiscoveryService: the nearest help point, text search, sites in an H3 cell.
//!
//! The contract is fixed; the exact nearest-neighbour index and its filters arrive with the
//! discovery issue. Until then every RPC answers UNIMPLEMENTED with a message saying so.

use hubdir_node::{Mount, NodeContext, status};
use hubdir_proto::v1::discovery_service_server::{
    DiscoveryService, DiscoveryServiceServer, SERVICE_NAME,
};
use hubdir_proto::v1::{
    FindNearestRequest, FindNearestResponse, ListSitesInCellRequest, ListSitesInCellResponse,
    SearchSitesRequest, SearchSitesResponse,
};
use tonic::service::RoutesBuilder;
use tonic::{Request, Response, Status};

/// How `hubdir serve` and `hubdir-discovery` mount this service.
pub const MOUNT: Mount = Mount {
    service_name: SERVICE_NAME,
    add,
};

fn add(ctx: &NodeContext, routes: &mut RoutesBuilder) {
    let max = ctx.config.server.max_message_bytes;
    routes.add_service(
        DiscoveryServiceServer::new(Discovery)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    );
}

const ARRIVES_WITH: &str = "the discovery issue (the in-memory nearest-neighbour index)";

/// The DiscoveryService implementation.
#[derive(Debug, Clone, Copy)]
pub struct Discovery;

#[tonic::async_trait]
impl DiscoveryService for Discovery {
    async fn find_nearest(
        &self,
        _request: Request<FindNearestRequest>,
    ) -> Result<Response<FindNearestResponse>, Status> {
        // The request holds a searcher's position: it is deliberately neither read nor logged.
        Err(status::not_yet(
            "hubdir.v1.DiscoveryService/FindNearest",
            ARRIVES_WITH,
        ))
    }

    async fn search_sites(
        &self,
        _request: Request<SearchSitesRequest>,
    ) -> Result<Response<SearchSitesResponse>, Status> {
        Err(status::not_yet(
            "hubdir.v1.DiscoveryService/SearchSites",
            ARRIVES_WITH,
        ))
    }

    async fn list_sites_in_cell(
        &self,
        _request: Request<ListSitesInCellRequest>,
    ) -> Result<Response<ListSitesInCellResponse>, Status> {
        Err(status::not_yet(
            "hubdir.v1.DiscoveryService/ListSitesInCell",
            ARRIVES_WITH,
        ))
    }
}
