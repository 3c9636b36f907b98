//! The Prometheus text endpoint: `GET /metrics` on its own plaintext listener
//! (`telemetry.prometheus_listen`), apart from the gRPC port, so scrapers need no TLS client
//! certificate and the public port serves nothing but the API.

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use hubdir_telemetry::Telemetry;
use tokio::net::TcpListener;

/// The content type of the Prometheus text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves until aborted.
pub async fn serve(listener: TcpListener, telemetry: Arc<Telemetry>) {
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(%address, "serving Prometheus metrics at /metrics");
    let metrics = move || {
        let telemetry = telemetry.clone();
        async move {
            match telemetry.prometheus_text() {
                Some(text) => ([(header::CONTENT_TYPE, TEXT_FORMAT)], text).into_response(),
                None => (StatusCode::SERVICE_UNAVAILABLE, "metrics are not collected").into_response(),
            }
        }
    };
    let app = axum::Router::new().route("/metrics", axum::routing::get(metrics));
    if let Err(err) = axum::serve(listener, app).await {
        tracing::warn!(error = %err, "the Prometheus endpoint stopped");
    }
}
