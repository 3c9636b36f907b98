//! FederationService: signed change feeds between national nodes.
//!
//! The contract (signed event envelope, per-origin cursors with epochs, digests) and the
//! change log it reads are in place; node keys, signing and the pull/apply loop arrive with
//! the federation issue. Until then every RPC answers UNIMPLEMENTED.

use std::pin::Pin;

use hubdir_auth::{Scope, principal};
use hubdir_node::{Mount, NodeContext, status};
use hubdir_proto::v1::federation_service_server::{FederationService, FederationServiceServer, SERVICE_NAME};
use hubdir_proto::v1::{
    GetDigestRequest, GetDigestResponse, GetNodeInfoRequest, NodeInfo, SubscribeRequest, SubscribeResponse,
};
use tokio_stream::Stream;
use tonic::service::RoutesBuilder;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

/// How `hubdir serve` and `hubdir-federation` mount this service.
pub const MOUNT: Mount = Mount { service_name: SERVICE_NAME, add };

fn add(ctx: &NodeContext, routes: &mut RoutesBuilder) {
    let max = ctx.config.server.max_message_bytes;
    let server = FederationServiceServer::new(Federation).max_decoding_message_size(max).max_encoding_message_size(max);
    routes.add_service(InterceptedService::new(server, ctx.authenticator.clone()));
}

/// Every federation RPC is for peer nodes holding a `federation.sync` token.
fn peer_only<T>(request: &Request<T>) -> Result<(), Status> {
    principal(request).require_any(&[Scope::FederationSync]).map_err(status::from_denied)
}

const ARRIVES_WITH: &str = "the federation issue (node keys, signed events, Subscribe)";

/// The FederationService implementation.
#[derive(Debug, Clone, Copy)]
pub struct Federation;

#[tonic::async_trait]
impl FederationService for Federation {
    type SubscribeStream = Pin<Box<dyn Stream<Item = Result<SubscribeResponse, Status>> + Send>>;

    async fn get_node_info(&self, request: Request<GetNodeInfoRequest>) -> Result<Response<NodeInfo>, Status> {
        peer_only(&request)?;
        Err(status::not_yet("hubdir.v1.FederationService/GetNodeInfo", ARRIVES_WITH))
    }

    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        peer_only(&request)?;
        Err(status::not_yet("hubdir.v1.FederationService/Subscribe", ARRIVES_WITH))
    }

    async fn get_digest(&self, request: Request<GetDigestRequest>) -> Result<Response<GetDigestResponse>, Status> {
        peer_only(&request)?;
        Err(status::not_yet("hubdir.v1.FederationService/GetDigest", ARRIVES_WITH))
    }
}
