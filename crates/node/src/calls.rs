//! Every call the server answers passes here, inside tonic's deadline: the per-connection
//! limit on calls in progress (past it a call is shed at once with RESOURCE_EXHAUSTED and
//! counted), a span following the OpenTelemetry RPC conventions (continuing the caller's W3C
//! trace context), and `rpc.server.call.duration` by method and status code.
//!
//! The span and the metric end when the response does: for a streaming response, when its
//! last message and status have gone. A response dropped before its status (a deadline, a
//! client that went away) counts as CANCELLED.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use tonic::body::Body;
use tracing::Instrument;

use crate::connections::ConnectionInfo;

/// The `rpc.server.call.duration` histogram's bucket bounds, in seconds: 50 µs to 60 s.
pub(crate) const DURATION_BUCKETS: [f64; 16] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 60.0];

struct Instruments {
    duration: Histogram<f64>,
    shed: Counter<u64>,
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter(hubdir_telemetry::SCOPE);
        Instruments {
            duration: meter
                .f64_histogram("rpc.server.call.duration")
                .with_unit("s")
                .with_description("Duration of the calls this server answered, by method and gRPC status code")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            shed: meter
                .u64_counter("hubdir.server.shed")
                .with_description("Calls and connections refused at once because a limit was reached, by limit")
                .build(),
        }
    })
}

/// Counts one call or connection shed at `limit` (`requests_per_connection`, `connections`).
pub fn count_shed(limit: &'static str) {
    instruments().shed.add(1, &[KeyValue::new("limit", limit)]);
}

/// Wraps the routes: see the module's documentation.
#[derive(Debug, Clone)]
pub struct CallLayer {
    /// Whether spans are exported; when not, none is built.
    pub traces: bool,
    /// Whether metrics are collected; when not, calls are not timed.
    pub metrics: bool,
    /// The services served: a call to any other is labelled `_OTHER`, so that made-up paths
    /// cannot grow the metric's series without bound.
    pub services: Arc<[&'static str]>,
}

/// The label of a service or method the server does not have.
const OTHER: &str = "_OTHER";

impl<S> tower::Layer<S> for CallLayer {
    type Service = Calls<S>;

    fn layer(&self, inner: S) -> Calls<S> {
        Calls { inner, layer: self.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct Calls<S> {
    inner: S,
    layer: CallLayer,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Calls<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<http::Response<Body>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // gRPC-Web arrives here translated to gRPC.
        let grpc = crate::http::is_grpc(request.headers());
        let slot = match request.extensions().get::<ConnectionInfo>().map(ConnectionInfo::take_slot) {
            Some(None) => {
                count_shed("requests_per_connection");
                return Box::pin(std::future::ready(Ok(shed_response(grpc))));
            }
            Some(Some(slot)) => Some(slot),
            None => None,
        };
        // The RPC span and metric follow the RPC conventions: an HTTP/JSON request (no gRPC
        // status) is not an RPC, and is only held to the same per-connection budget.
        if !grpc || (!self.layer.traces && !self.layer.metrics) {
            // Nothing observed: only the slot is held until the response starts.
            let response = self.inner.call(request);
            return Box::pin(async move {
                let response = response.await;
                drop(slot);
                response
            });
        }
        let (service, method) = named(&self.layer.services, request.uri().path());
        let span = if self.layer.traces {
            let span = tracing::debug_span!(
                "rpc",
                otel.name = %format_args!("{service}/{method}"),
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                rpc.system = "grpc",
                rpc.service = %service,
                rpc.method = %method,
                rpc.grpc.status_code = tracing::field::Empty,
            );
            hubdir_telemetry::propagation::continue_trace(&span, request.headers());
            span
        } else {
            tracing::Span::none()
        };
        let call = Call {
            metrics: self.layer.metrics,
            span: span.clone(),
            started: Instant::now(),
            attributes: [
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", service.to_owned()),
                KeyValue::new("rpc.method", method.to_owned()),
            ],
            code: None,
        };
        let response = self.inner.call(request).instrument(span);
        Box::pin(async move {
            let response = response.await?;
            // The slot is a call in progress until its response starts, as tonic counted it.
            drop(slot);
            let (parts, body) = response.into_parts();
            let mut call = call;
            // An error answers at once (trailers-only): its status is in the headers.
            call.code = grpc_status(&parts.headers);
            let body = if call.code.is_some() { body } else { Body::new(Observed { inner: body, call }) };
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

/// `/hubdir.v1.DiscoveryService/FindNearest` → (`hubdir.v1.DiscoveryService`, `FindNearest`);
/// `_OTHER` for both when the service is not one of `services`.
fn named<'a>(services: &[&str], path: &'a str) -> (&'a str, &'a str) {
    let path = path.strip_prefix('/').unwrap_or(path);
    match path.rsplit_once('/') {
        Some((service, method)) if services.contains(&service) => (service, method),
        _ => (OTHER, OTHER),
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers.get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// What tonic's own load shedding answered, so gRPC clients see no difference; an HTTP
/// client gets the same error as JSON (429).
fn shed_response(grpc: bool) -> http::Response<Body> {
    let status = tonic::Status::resource_exhausted("Too many active requests for the connection");
    if grpc { status.into_http() } else { crate::http::error(&status).map(Body::new) }
}

/// One call until its status is known; recorded when dropped.
struct Call {
    metrics: bool,
    span: tracing::Span,
    started: Instant,
    attributes: [KeyValue; 3],
    code: Option<i32>,
}

/// The codes the RPC conventions call a server error.
fn is_server_error(code: i32) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

impl Drop for Call {
    fn drop(&mut self) {
        let code = self.code.unwrap_or(tonic::Code::Cancelled as i32);
        if self.metrics {
            let mut attributes = self.attributes.to_vec();
            // A method the service does not have is not a series of its own.
            if code == tonic::Code::Unimplemented as i32 {
                attributes[2] = KeyValue::new("rpc.method", OTHER);
            }
            attributes.push(KeyValue::new("rpc.grpc.status_code", i64::from(code)));
            instruments().duration.record(self.started.elapsed().as_secs_f64(), &attributes);
        }
        self.span.record("rpc.grpc.status_code", code);
        if is_server_error(code) {
            self.span.record("otel.status_code", "ERROR");
        }
    }
}

/// A streamed response body, watched for the status in its trailers.
struct Observed {
    inner: Body,
    call: Call,
}

impl http_body::Body for Observed {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
        {
            self.call.code = grpc_status(trailers);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_names_a_served_service_and_its_method_and_anything_else_is_other() {
        let served = ["hubdir.v1.DiscoveryService"];
        let name = |path| named(&served, path);
        assert_eq!(name("/hubdir.v1.DiscoveryService/FindNearest"), ("hubdir.v1.DiscoveryService", "FindNearest"));
        assert_eq!(name("/made.up.Service/Anything"), (OTHER, OTHER));
        assert_eq!(name("/odd"), (OTHER, OTHER));
    }

    /// A shed gRPC call is RESOURCE_EXHAUSTED as tonic says it; a shed HTTP request is a 429
    /// with the same status as JSON, not a gRPC answer an HTTP client cannot read.
    #[test]
    fn a_shed_request_is_answered_in_its_own_protocol() {
        let grpc = shed_response(true);
        assert_eq!((grpc.status(), grpc_status(grpc.headers())), (http::StatusCode::OK, Some(8)));
        let json = shed_response(false);
        assert_eq!(json.status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(json.headers()[http::header::CONTENT_TYPE], "application/json");
    }
}
