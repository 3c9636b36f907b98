//! ConnectivityService: live status from measurement agents, and connectivity metrics.
//!
//! `ReportStatus` takes a stream of measurements from an agent whose token lists the sites it
//! may report for; each is checked (ranges, clock skew, age), classified against the
//! benchmark of the site's country and stored; refused ones are kept in quarantine with their
//! reason (`hubdir connectivity quarantine`). `GetStatus` reads the latest status, UNKNOWN
//! once older than its time to live. `SummarizeConnectivity` answers UNIMPLEMENTED until the
//! metrics land.

mod report;

use std::sync::Arc;

use chrono::Utc;
use hubdir_auth::{Scope, principal};
use hubdir_core::SiteName;
use hubdir_core::connectivity::{Class, Measurement, Source, State, Technology};
use hubdir_core::{ViolationReason, Violations};
use hubdir_node::config::ConnectivityConfig;
use hubdir_node::{Mount, NodeContext, status};
use hubdir_proto::convert;
use hubdir_proto::v1::connectivity_service_server::{ConnectivityService, ConnectivityServiceServer, SERVICE_NAME};
use hubdir_proto::v1::{
    self as pb, ConnectivityStatus, GetStatusRequest, ReportStatusRequest, ReportStatusResponse,
    SummarizeConnectivityRequest, SummarizeConnectivityResponse,
};
use hubdir_store::Store;
use tonic::service::RoutesBuilder;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status, Streaming};

pub use report::measurement_from_proto;

/// How `hubdir serve` and `hubdir-connectivity` mount this service.
pub const MOUNT: Mount = Mount { service_name: SERVICE_NAME, add };

/// Most measurements one `ReportStatus` stream may carry.
pub const MAX_MEASUREMENTS_PER_STREAM: i64 = 100_000;

fn add(ctx: &NodeContext, routes: &mut RoutesBuilder) {
    let max = ctx.config.server.max_message_bytes;
    let service = Connectivity {
        anonymous_status: ctx.config.auth.anonymous_discovery,
        config: Arc::new(ctx.config.connectivity.clone()),
        store: ctx.store.clone(),
    };
    let server = ConnectivityServiceServer::new(service).max_decoding_message_size(max).max_encoding_message_size(max);
    routes.add_service(InterceptedService::new(server, ctx.authenticator.clone()));
}

/// The ConnectivityService implementation.
#[derive(Debug, Clone)]
pub struct Connectivity {
    /// `GetStatus` is as public as discovery (`auth.anonymous_discovery`).
    anonymous_status: bool,
    config: Arc<ConnectivityConfig>,
    store: Arc<Store>,
}

fn technology_to_proto(t: Technology) -> pb::AccessTechnology {
    match t {
        Technology::Unspecified => pb::AccessTechnology::Unspecified,
        Technology::Fibre => pb::AccessTechnology::Fibre,
        Technology::Dsl => pb::AccessTechnology::Dsl,
        Technology::Cable => pb::AccessTechnology::Cable,
        Technology::Cellular => pb::AccessTechnology::Cellular,
        Technology::Satellite => pb::AccessTechnology::Satellite,
        Technology::FixedWireless => pb::AccessTechnology::FixedWireless,
        Technology::Other => pb::AccessTechnology::Other,
    }
}

/// A stored measurement as the API carries it.
pub fn measurement_to_proto(m: Measurement) -> pb::Measurement {
    let Measurement {
        site,
        observed_at,
        online,
        download_mbps,
        upload_mbps,
        latency_ms,
        jitter_ms,
        packet_loss_ratio,
        technology,
        public_wifi_access_points,
        public_computers,
        power_backup,
        source,
        idempotency_key,
    } = m;
    let count = |n: Option<u32>| n.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    pb::Measurement {
        site: site.to_string(),
        observe_time: Some(convert::timestamp(observed_at)),
        online,
        download_mbps,
        upload_mbps,
        latency_ms,
        jitter_ms,
        packet_loss_ratio,
        technology: technology_to_proto(technology).into(),
        public_wifi_access_points: count(public_wifi_access_points),
        public_computers: count(public_computers),
        power_backup,
        source: match source {
            Source::Agent => pb::MeasurementSource::Agent,
            Source::OperatorReport => pb::MeasurementSource::OperatorReport,
            Source::Manual => pb::MeasurementSource::Manual,
        }
        .into(),
        idempotency_key,
    }
}

#[tonic::async_trait]
impl ConnectivityService for Connectivity {
    async fn report_status(
        &self,
        request: Request<Streaming<ReportStatusRequest>>,
    ) -> Result<Response<ReportStatusResponse>, Status> {
        let principal = principal(&request).clone();
        principal.require_any(&[Scope::ConnectivityReport]).map_err(status::from_denied)?;
        let mut stream = request.into_inner();
        let mut response = ReportStatusResponse::default();
        let mut next_index = 0i64;
        // Each message is stored as it arrives: a broken stream keeps what came before.
        while let Some(message) = stream.message().await? {
            let batch = message.measurements;
            if next_index + batch.len() as i64 > MAX_MEASUREMENTS_PER_STREAM {
                let mut out = Violations::default();
                out.push(
                    "measurements",
                    ViolationReason::TooMany,
                    format!("at most {MAX_MEASUREMENTS_PER_STREAM} per stream; earlier messages were stored"),
                );
                return Err(status::invalid_argument(&out));
            }
            let (accepted, duplicates, refused) =
                report::record(&self.store, &self.config, &batch, next_index, &principal)
                    .await
                    .map_err(status::from_store)?;
            response.accepted_count += accepted;
            response.duplicate_count += duplicates;
            response.refused.extend(refused);
            next_index += batch.len() as i64;
        }
        Ok(Response::new(response))
    }

    async fn get_status(&self, request: Request<GetStatusRequest>) -> Result<Response<ConnectivityStatus>, Status> {
        if !self.anonymous_status {
            principal(&request).require_any(&[Scope::DiscoveryRead, Scope::SitesRead]).map_err(status::from_denied)?;
        }
        let name = request.into_inner().name;
        let site: SiteName = name.strip_suffix("/connectivity").and_then(|s| s.parse().ok()).ok_or_else(|| {
            let mut out = Violations::default();
            out.push("name", ViolationReason::InvalidFormat, "expected sites/{origin}/{site_id}/connectivity");
            status::invalid_argument(&out)
        })?;
        if self.store.get_site(&site).await.map_err(status::from_store)?.is_none() {
            return Err(status::from_store(hubdir_store::StoreError::NotFound(site.to_string())));
        }
        let latest = self.store.latest_status(&site).await.map_err(status::from_store)?;
        let (state, class, latest) = match latest {
            None => (State::Unknown, Class::Unknown, None),
            Some(l) => {
                let (state, class) = l.summary.at(Utc::now());
                (state, class, Some(measurement_to_proto(l.measurement)))
            }
        };
        Ok(Response::new(ConnectivityStatus {
            name,
            state: convert::state_to_proto(state).into(),
            class: convert::class_to_proto(class).into(),
            latest,
        }))
    }

    async fn summarize_connectivity(
        &self,
        request: Request<SummarizeConnectivityRequest>,
    ) -> Result<Response<SummarizeConnectivityResponse>, Status> {
        principal(&request).require_any(&[Scope::SitesRead, Scope::SitesWrite]).map_err(status::from_denied)?;
        Err(status::not_yet(
            "hubdir.v1.ConnectivityService/SummarizeConnectivity",
            "the rest of the connectivity issue (history roll-ups and metrics)",
        ))
    }
}
