//! The HTTP/JSON doors of the services, on the gRPC listener. A route calls the same handler
//! as its gRPC method, with the caller authenticated by the same bearer-token check, and
//! answers the same message: as JSON in the proto3 JSON mapping (lowerCamelCase fields,
//! enums by name, defaults omitted), or as GeoJSON (RFC 7946) when asked with
//! `Accept: application/geo+json`. An error is JSON with the gRPC code's HTTP status and the
//! same reason and field violations as the gRPC details. Responses are gzipped for clients
//! that accept it (`serve`).
//!
//! Query strings carry a searcher's position: nothing here logs or traces them.

use std::sync::OnceLock;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use hubdir_auth::Authenticator;
use hubdir_core::{ViolationReason, Violations};
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Map, Value, json};
use tonic::service::Interceptor;
use tonic::{Code, Status};
use tonic_types::StatusExt;

pub const JSON: &str = "application/json";
pub const GEOJSON: &str = "application/geo+json";

/// The contract's descriptors, decoded once; `None` if they do not decode (a build fault,
/// which every JSON answer then reports as INTERNAL).
fn pool() -> Option<&'static DescriptorPool> {
    static POOL: OnceLock<Option<DescriptorPool>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(hubdir_proto::FILE_DESCRIPTOR_SET).ok()).as_ref()
}

/// `message`, a `hubdir.v1` message named `full_name`, in the proto3 JSON mapping.
pub fn to_json(message: &impl prost::Message, full_name: &str) -> Result<Value, Status> {
    let descriptor = pool()
        .and_then(|pool| pool.get_message_by_name(full_name))
        .ok_or_else(|| crate::status::internal(format!("{full_name} is not in the contract's descriptors")))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(|err| crate::status::internal(format!("{full_name} as JSON: {err}")))?;
    serde_json::to_value(&dynamic).map_err(|err| crate::status::internal(format!("{full_name} as JSON: {err}")))
}

/// A JSON body with its status and content type.
pub fn respond(status: StatusCode, content_type: &'static str, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Whether the client asked for GeoJSON rather than JSON (and did not refuse it, `;q=0`).
pub fn wants_geojson(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|range| {
        let mut parts = range.split(';');
        parts.next().is_some_and(|media| media.trim().eq_ignore_ascii_case(GEOJSON)) && quality(parts) > 0.0
    })
}

/// The weight (`q=`) among the parameters of an `Accept` or `Accept-Language` entry: 1 when
/// absent, 0 when malformed, at most 1 (RFC 9110 §12.4.2).
pub fn quality<'a>(mut parameters: impl Iterator<Item = &'a str>) -> f32 {
    let Some(raw) = parameters.find_map(|p| {
        let (name, value) = p.trim().split_once('=')?;
        name.trim().eq_ignore_ascii_case("q").then_some(value.trim())
    }) else {
        return 1.0;
    };
    raw.parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)).unwrap_or(0.0)
}

/// The request a gRPC handler takes, with the caller's principal put in it by the same check
/// the gRPC interceptor makes (a bad token is UNAUTHENTICATED).
pub fn authenticated<T>(
    authenticator: &Authenticator,
    headers: &HeaderMap,
    message: T,
) -> Result<tonic::Request<T>, Status> {
    let mut probe = tonic::Request::new(());
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = tonic::metadata::MetadataValue::try_from(value.as_bytes())
            .map_err(|_| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
        probe.metadata_mut().insert("authorization", value);
    }
    let (metadata, extensions, ()) = authenticator.clone().call(probe)?.into_parts();
    Ok(tonic::Request::from_parts(metadata, extensions, message))
}

/// The HTTP status of a gRPC code, as Google's HTTP mapping gives it.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `INVALID_ARGUMENT` for `Code::InvalidArgument`.
fn code_name(code: Code) -> String {
    let camel = format!("{code:?}");
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// An error as JSON (`{"error": {code, status, message, details}}`, the shape of Google's
/// JSON APIs), with the gRPC status's `ErrorInfo` and `BadRequest` details.
pub fn error(status: &Status) -> Response {
    let http = http_status(status.code());
    let mut details = Vec::new();
    if let Some(info) = status.get_details_error_info() {
        details.push(json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": info.reason,
            "domain": info.domain,
            "metadata": info.metadata,
        }));
    }
    if let Some(bad) = status.get_details_bad_request() {
        let violations: Vec<Value> = bad
            .field_violations
            .into_iter()
            .map(|v| json!({"field": v.field, "reason": v.reason, "description": v.description}))
            .collect();
        details.push(json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations}));
    }
    let body = json!({"error": {
        "code": http.as_u16(),
        "status": code_name(status.code()),
        "message": status.message(),
        "details": details,
    }});
    respond(http, JSON, &body)
}

/// Whether a request is a gRPC call rather than one of the HTTP API's.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/grpc"))
}

/// `http.server.request.duration` (OpenTelemetry's HTTP conventions), until the response
/// starts: by method, route template (`/v1/sites/{origin}/{id}`, never the path's values or
/// the query, which may hold a position) and status. `serve` puts it on the HTTP routes when
/// metrics are collected; gRPC calls have `rpc.server.call.duration` (`crate::calls`).
pub async fn observe(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    static DURATION: OnceLock<opentelemetry::metrics::Histogram<f64>> = OnceLock::new();
    let duration = DURATION.get_or_init(|| {
        opentelemetry::global::meter(hubdir_telemetry::SCOPE)
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("Duration of the HTTP/JSON and page requests this server answered, by route and status")
            .with_boundaries(crate::calls::DURATION_BUCKETS.to_vec())
            .build()
    });
    let route = request.extensions().get::<axum::extract::MatchedPath>().map_or("_OTHER", |p| p.as_str()).to_owned();
    let method = match *request.method() {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::OPTIONS => "OPTIONS",
        _ => "_OTHER",
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let attributes = [
        opentelemetry::KeyValue::new("http.request.method", method),
        opentelemetry::KeyValue::new("http.route", route),
        opentelemetry::KeyValue::new("http.response.status_code", i64::from(response.status().as_u16())),
    ];
    duration.record(started.elapsed().as_secs_f64(), &attributes);
    response
}

/// What answers a path no route has: gRPC's UNIMPLEMENTED to a gRPC call (what tonic answers),
/// a JSON 404 to anything else.
pub async fn not_found(request: axum::extract::Request) -> Response {
    if is_grpc(request.headers()) {
        return Status::unimplemented("").into_http();
    }
    let path = crate::status::truncate(request.uri().path().to_owned(), 200);
    error(&Status::not_found(format!("nothing is served at {path}")))
}

/// A query string's parameters, read with errors that name the parameter.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

/// At most this many parameters are read from one query string.
const MAX_PARAMS: usize = 64;

impl Params {
    pub fn parse(query: Option<&str>, out: &mut Violations) -> Params {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .take(MAX_PARAMS + 1)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if pairs.len() > MAX_PARAMS {
            out.push("query", ViolationReason::TooMany, format!("at most {MAX_PARAMS} parameters"));
        }
        Params(pairs)
    }

    /// The last value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, repeated or comma-separated.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).flat_map(|(_, v)| v.split(',')).filter(|v| !v.is_empty()).collect()
    }

    pub fn number<T: std::str::FromStr>(&self, name: &str, out: &mut Violations) -> Option<T> {
        let raw = self.get(name)?;
        let parsed = raw.trim().parse().ok();
        if parsed.is_none() {
            out.push(name, ViolationReason::InvalidFormat, "must be a number");
        }
        parsed
    }

    pub fn flag(&self, name: &str, out: &mut Violations) -> bool {
        match self.get(name) {
            None => false,
            Some("" | "true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(_) => {
                out.push(name, ViolationReason::InvalidFormat, "must be true or false");
                false
            }
        }
    }
}

/// A site's JSON as a GeoJSON Feature: its location becomes the Point geometry (longitude
/// first), every other field a property, and `extra` (distance, open now...) too.
pub fn feature(site: Value, extra: Map<String, Value>) -> Value {
    let mut properties = match site {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let geometry = properties.remove("location").map_or(Value::Null, |location| {
        let coordinate = |name: &str| location.get(name).and_then(Value::as_f64).unwrap_or(0.0);
        json!({"type": "Point", "coordinates": [coordinate("longitude"), coordinate("latitude")]})
    });
    properties.extend(extra);
    let id = properties.get("name").cloned().unwrap_or(Value::Null);
    json!({"type": "Feature", "id": id, "geometry": geometry, "properties": properties})
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubdir_proto::v1 as pb;

    #[test]
    fn messages_follow_the_proto3_json_mapping() {
        let site = pb::Site {
            name: "sites/zw/a".into(),
            display_name: "A".into(),
            kind: pb::Kind::PublicLibrary.into(),
            location: Some(pb::LatLng { latitude: -17.8, longitude: 31.0 }),
            origin_seq: 7,
            ..pb::Site::default()
        };
        let value = to_json(&site, "hubdir.v1.Site").unwrap();
        assert_eq!(value["displayName"], "A");
        assert_eq!(value["kind"], "KIND_PUBLIC_LIBRARY");
        assert_eq!(value["originSeq"], "7", "64-bit integers are strings in proto3 JSON");
        assert!(value.get("operator").is_none(), "defaults are omitted");
        let feature = feature(value, Map::new());
        assert_eq!(feature["geometry"]["coordinates"], json!([31.0, -17.8]));
        assert_eq!(feature["properties"]["name"], "sites/zw/a");
        assert!(feature["properties"].get("location").is_none());
    }

    #[tokio::test]
    async fn errors_keep_their_reason_and_field_violations() {
        let mut out = Violations::default();
        out.push("location.latitude", ViolationReason::OutOfRange, "must be a number in [-90, 90]");
        let response = error(&crate::status::invalid_argument(&out));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = body(response).await;
        let error = &body["error"];
        assert_eq!((error["code"].as_u64(), error["status"].as_str()), (Some(400), Some("INVALID_ARGUMENT")));
        assert_eq!(error["details"][0]["reason"], "INVALID_ARGUMENT");
        assert_eq!(error["details"][1]["fieldViolations"][0]["field"], "location.latitude");
        assert_eq!(error["details"][1]["fieldViolations"][0]["reason"], "OUT_OF_RANGE");
        assert_eq!(code_name(Code::Ok), "OK");
    }

    /// The body of a response built in memory.
    async fn body(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn accept_weights_are_honoured() {
        let accept = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_static(value));
            wants_geojson(&headers)
        };
        assert!(accept("application/geo+json"));
        assert!(accept("application/json;q=0.5, application/geo+json"));
        assert!(!accept("application/geo+json;q=0"));
        assert!(!accept("application/geo+json;Q=0"));
        assert!(!accept("application/json"));
        assert_eq!(quality("q=2".split(';')), 0.0);
        assert_eq!(quality("q=nan".split(';')), 0.0);
        assert_eq!(quality("level=1".split(';')), 1.0);
    }

    #[test]
    fn params_name_what_is_wrong() {
        let mut out = Violations::default();
        let params = Params::parse(Some("lat=-17.8&lng=abc&service=free_wifi,training&service=x&open"), &mut out);
        assert_eq!(params.number::<f64>("lat", &mut out), Some(-17.8));
        assert_eq!(params.number::<f64>("lng", &mut out), None);
        assert_eq!(params.all("service"), ["free_wifi", "training", "x"]);
        assert!(params.flag("open", &mut out));
        assert_eq!(out.0.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(), ["lng"]);
        let many = vec!["a=1"; 100].join("&");
        Params::parse(Some(&many), &mut out);
        assert_eq!(out.0.last().unwrap().field, "query");
    }
}
