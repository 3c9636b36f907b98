//! ConnectivityService: live status from measurement agents, and connectivity metrics.
//!
//! The contract and the tables are in place; accepting reports needs agent tokens and
//! arrives with the connectivity issue. Until then every RPC answers UNIMPLEMENTED.

use hubdir_auth::{Scope, principal};
use hubdir_node::{Mount, NodeContext, status};
use hubdir_proto::v1::connectivity_service_server::{ConnectivityService, ConnectivityServiceServer, SERVICE_NAME};
use hubdir_proto::v1::{
    ConnectivityStatus, GetStatusRequest, ReportStatusRequest, ReportStatusResponse, SummarizeConnectivityRequest,
    SummarizeConnectivityResponse,
};
use tonic::service::RoutesBuilder;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status, Streaming};

/// How `hubdir serve` and `hubdir-connectivity` mount this service.
pub const MOUNT: Mount = Mount { service_name: SERVICE_NAME, add };

fn add(ctx: &NodeContext, routes: &mut RoutesBuilder) {
    let max = ctx.config.server.max_message_bytes;
    let server = ConnectivityServiceServer::new(Connectivity { anonymous_status: ctx.config.auth.anonymous_discovery })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    routes.add_service(InterceptedService::new(server, ctx.authenticator.clone()));
}

const ARRIVES_WITH: &str = "the connectivity issue (agent tokens, status TTLs, metrics)";

/// The ConnectivityService implementation.
#[derive(Debug, Clone, Copy)]
pub struct Connectivity {
    /// `GetStatus` is as public as discovery (`auth.anonymous_discovery`).
    anonymous_status: bool,
}

#[tonic::async_trait]
impl ConnectivityService for Connectivity {
    async fn report_status(
        &self,
        request: Request<Streaming<ReportStatusRequest>>,
    ) -> Result<Response<ReportStatusResponse>, Status> {
        principal(&request).require_any(&[Scope::ConnectivityReport]).map_err(status::from_denied)?;
        Err(status::not_yet("hubdir.v1.ConnectivityService/ReportStatus", ARRIVES_WITH))
    }

    async fn get_status(&self, request: Request<GetStatusRequest>) -> Result<Response<ConnectivityStatus>, Status> {
        if !self.anonymous_status {
            principal(&request).require_any(&[Scope::DiscoveryRead, Scope::SitesRead]).map_err(status::from_denied)?;
        }
        Err(status::not_yet("hubdir.v1.ConnectivityService/GetStatus", ARRIVES_WITH))
    }

    async fn summarize_connectivity(
        &self,
        request: Request<SummarizeConnectivityRequest>,
    ) -> Result<Response<SummarizeConnectivityResponse>, Status> {
        principal(&request).require_any(&[Scope::SitesRead, Scope::SitesWrite]).map_err(status::from_denied)?;
        Err(status::not_yet("hubdir.v1.ConnectivityService/SummarizeConnectivity", ARRIVES_WITH))
    }
}
