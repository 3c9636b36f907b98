//! ConnectivityService: live status from measurement agents, and connectivity metrics.
//!
//! `ReportStatus` takes a stream of measurements from an agent whose token lists the sites it
//! may report for; each is checked (ranges, clock skew, age), classified against the
//! benchmark of the site's country and stored; refused ones are kept in quarantine with their
//! reason (`hubdir connectivity quarantine`). `GetStatus` reads the latest status, UNKNOWN
//! once older than its time to live. `SummarizeConnectivity` computes metrics over a scope and
//! a window (`metrics`). Raw measurements older than the retention period are rolled up into
//! daily rows by a background task.

mod instruments;
pub mod metrics;
mod report;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use hubdir_auth::{Scope, principal};
use hubdir_core::SiteName;
use hubdir_core::connectivity::{Class, State};
use hubdir_core::{CountryCode, ViolationReason, Violations};
use hubdir_node::config::ConnectivityConfig;
use hubdir_node::{Mount, NodeContext, Routing, singleton, status};
use hubdir_proto::convert;
use hubdir_proto::v1::connectivity_service_server::{ConnectivityService, ConnectivityServiceServer, SERVICE_NAME};
use hubdir_proto::v1::summarize_connectivity_request;
use hubdir_proto::v1::{
    ConnectivityStatus, GetStatusRequest, ReportStatusRequest, ReportStatusResponse, SummarizeConnectivityRequest,
    SummarizeConnectivityResponse,
};
use hubdir_store::{SiteQuery, Store};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status, Streaming};

/// How `hubdir serve` and `hubdir-connectivity` mount this service.
pub const MOUNT: Mount = Mount { service_name: SERVICE_NAME, add };

/// Most measurements one `ReportStatus` stream may carry.
pub const MAX_MEASUREMENTS_PER_STREAM: i64 = 100_000;

fn add(ctx: &NodeContext, routing: &mut Routing) {
    let service = Connectivity {
        anonymous_status: ctx.config.auth.anonymous_discovery,
        config: Arc::new(ctx.config.connectivity.clone()),
        store: ctx.store.clone(),
        metrics: ctx.telemetry.metrics,
    };
    // One roll-up in the whole node: the replica holding its lease.
    let (store, config, metrics) = (ctx.store.clone(), service.config.clone(), service.metrics);
    let roll_up = move || roll_up_forever(store.clone(), config.clone(), metrics);
    singleton::spawn(ctx, "connectivity roll-up", "connectivity.roll_up".to_owned(), roll_up);
    let server = hubdir_node::grpc_server!(ConnectivityServiceServer::new(service), ctx);
    routing.grpc.add_service(InterceptedService::new(server, ctx.authenticator.clone()));
}

/// Rolls raw measurements past the retention period up into daily rows, and prunes the
/// quarantine to its age and size bounds, every `roll_up_interval_secs`. The roll-up itself takes its cutoff as an argument
/// (`Store::roll_up`), which is how it is tested with a clock of the test's choosing.
async fn roll_up_forever(store: Arc<Store>, config: Arc<ConnectivityConfig>, metrics: bool) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(config.roll_up_interval_secs.max(1)));
    loop {
        every.tick().await;
        match store.roll_up(Utc::now() - config.retention()).await {
            Ok(done) if done.measurements > 0 => {
                tracing::info!(days = done.days, measurements = done.measurements, "connectivity history rolled up")
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "rolling up connectivity history failed; next time"),
        }
        match store.prune_quarantine(Utc::now() - config.quarantine_retention(), config.quarantine_max_rows).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "old refused measurements pruned from the quarantine"),
            Err(err) => tracing::warn!(error = %err, "pruning the quarantine failed; next time"),
        }
        if metrics {
            instruments::record_quarantine_size(&store).await;
        }
    }
}

/// Past this many bytes of echoed keys and reasons, refusals carry their index and code only.
const MAX_ECHO_BYTES: usize = 1 << 20;

/// Most sites one summary may cover.
pub const MAX_SUMMARY_SITES: usize = 200_000;
/// Longest summary window, in days.
pub const MAX_SUMMARY_DAYS: i64 = 366;

/// The ConnectivityService implementation.
#[derive(Debug, Clone)]
pub struct Connectivity {
    /// `GetStatus` is as public as discovery (`auth.anonymous_discovery`).
    anonymous_status: bool,
    config: Arc<ConnectivityConfig>,
    store: Arc<Store>,
    /// Whether metrics are collected (the quarantine is counted only then).
    metrics: bool,
}

/// Which sites a summary covers.
enum ScopeQuery {
    Site(SiteName),
    Sites(Box<SiteQuery>),
}

impl Connectivity {
    fn scope_query(
        &self,
        scope: Option<summarize_connectivity_request::Scope>,
        out: &mut Violations,
    ) -> Option<ScopeQuery> {
        use summarize_connectivity_request::Scope as S;
        match scope {
            None => {
                out.push("scope", ViolationReason::Required, "give a site, an operator, a country_code or an h3_cell");
                None
            }
            Some(S::Site(name)) => match name.parse() {
                Ok(site) => Some(ScopeQuery::Site(site)),
                Err(_) => {
                    out.push("site", ViolationReason::InvalidFormat, "expected sites/{origin}/{site_id}");
                    None
                }
            },
            Some(S::Operator(operator)) if !operator.is_empty() => {
                Some(ScopeQuery::Sites(Box::new(SiteQuery { operator: Some(operator), ..SiteQuery::default() })))
            }
            Some(S::Operator(_)) => {
                out.push("operator", ViolationReason::Required, "an operator's name");
                None
            }
            Some(S::CountryCode(code)) => match CountryCode::parse(&code) {
                Some(country) => Some(ScopeQuery::Sites(Box::new(SiteQuery {
                    country_code: Some(country.to_string()),
                    ..SiteQuery::default()
                }))),
                None => {
                    out.push("country_code", ViolationReason::InvalidFormat, "an ISO 3166-1 alpha-2 code");
                    None
                }
            },
            Some(S::H3Cell(text)) => match text.parse::<hubdir_geo::CellIndex>() {
                Ok(cell) if cell.resolution() >= hubdir_geo::MIN_LIST_RESOLUTION => {
                    Some(ScopeQuery::Sites(Box::new(SiteQuery {
                        h3_range: Some(hubdir_geo::descendant_range(cell)),
                        ..SiteQuery::default()
                    })))
                }
                _ => {
                    out.push(
                        "h3_cell",
                        ViolationReason::InvalidFormat,
                        "an H3 cell in hexadecimal, resolution 3 or finer",
                    );
                    None
                }
            },
        }
    }

    /// The sites of a scope, by name, with their country.
    async fn sites_in(&self, scope: ScopeQuery) -> Result<HashMap<String, String>, Status> {
        let mut sites = HashMap::new();
        match scope {
            ScopeQuery::Site(name) => {
                let record = self.store.get_site(&name).await.map_err(status::from_store)?;
                let record = record.ok_or_else(|| status::site_not_found(&name))?;
                sites.insert(name.to_string(), record.site.country.to_string());
            }
            ScopeQuery::Sites(mut query) => {
                query.limit = 5000;
                loop {
                    let page = self.store.list_sites(&query).await.map_err(status::from_store)?;
                    let Some(last) = page.last() else { break };
                    query.after_name = Some(last.site.name.to_string());
                    for record in page {
                        sites.insert(record.site.name.to_string(), record.site.country.to_string());
                    }
                    if sites.len() > MAX_SUMMARY_SITES {
                        return Err(status::with_reason(
                            status::Reason::ScopeTooLarge,
                            format!("the scope holds more than {MAX_SUMMARY_SITES} sites: summarise a smaller one"),
                            Default::default(),
                        ));
                    }
                }
            }
        }
        Ok(sites)
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
        let mut echoed = 0usize;
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
                report::record(&self.store, &self.config, &batch, next_index, &principal, self.metrics)
                    .await
                    .map_err(status::from_store)?;
            response.accepted_count += accepted;
            response.duplicate_count += duplicates;
            // The response stays bounded whatever is sent: past the budget, a refusal says
            // its index and reason code only.
            for mut refusal in refused {
                if echoed > MAX_ECHO_BYTES {
                    refusal.idempotency_key.clear();
                    refusal.reason.truncate(refusal.reason.find(':').unwrap_or(refusal.reason.len()));
                }
                echoed += refusal.idempotency_key.len() + refusal.reason.len();
                response.refused.push(refusal);
            }
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
            return Err(status::site_not_found(&site));
        }
        let latest = self.store.latest_status(&site).await.map_err(status::from_store)?;
        let (state, class, latest) = match latest {
            None => (State::Unknown, Class::Unknown, None),
            Some(l) => {
                let (state, class) = l.summary.at(Utc::now());
                (state, class, l.measurement.map(convert::measurement_to_proto))
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
        let SummarizeConnectivityRequest { scope, start_time, end_time } = request.into_inner();
        let mut out = Violations::default();
        let start = start_time.as_ref().and_then(convert::from_timestamp);
        let end = end_time.as_ref().and_then(convert::from_timestamp);
        if start.is_none() {
            out.push("start_time", ViolationReason::Required, "the window's start is required");
        }
        if end.is_none() {
            out.push("end_time", ViolationReason::Required, "the window's end is required");
        }
        if let (Some(start), Some(end)) = (start, end)
            && (end <= start || end - start > chrono::Duration::days(MAX_SUMMARY_DAYS))
        {
            out.push(
                "end_time",
                ViolationReason::OutOfRange,
                format!("must be after start_time, at most {MAX_SUMMARY_DAYS} days later"),
            );
        }
        let query = self.scope_query(scope, &mut out);
        let (Some(start), Some(end), Some(query)) = (start, end, query.filter(|_| out.is_empty())) else {
            return Err(status::invalid_argument(&out));
        };
        let sites = self.sites_in(query).await?;
        let summary =
            metrics::summarize(&self.store, &self.config, &sites, start, end).await.map_err(status::from_store)?;
        Ok(Response::new(summary))
    }
}
