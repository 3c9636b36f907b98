//! `GET /v1/sites/{origin}/{id}`: GetSite over HTTP, answered by the same handler, as JSON or
//! as a GeoJSON Feature, with the site's etag as a weak `ETag` per format (`If-None-Match`
//! answers 304).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use hubdir_auth::Authenticator;
use hubdir_node::http;
use hubdir_proto::v1::GetSiteRequest;
use hubdir_proto::v1::registry_service_server::RegistryService;
use serde_json::Map;

use crate::Registry;

#[derive(Debug, Clone)]
struct Doors {
    registry: Registry,
    authenticator: Authenticator,
}

pub(crate) fn routes(registry: Registry, authenticator: Authenticator) -> axum::Router {
    axum::Router::new().route("/v1/sites/{origin}/{id}", get(site)).with_state(Doors { registry, authenticator })
}

async fn site(State(doors): State<Doors>, headers: HeaderMap, Path((origin, id)): Path<(String, String)>) -> Response {
    let answer = async {
        let request = GetSiteRequest { name: format!("sites/{origin}/{id}") };
        let request = http::authenticated(&doors.authenticator, &headers, request)?;
        doors.registry.get_site(request).await
    };
    let site = match answer.await {
        Ok(site) => site.into_inner(),
        Err(status) => return http::error(&status),
    };
    // Weak, and one per representation (JSON, GeoJSON): the same version of a site is sent
    // in two formats, gzipped or not (RFC 9110 §8.8.3).
    let geojson = http::wants_geojson(&headers);
    let tag = format!("W/\"{}{}\"", site.etag, if geojson { "-geo" } else { "" });
    let unchanged = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|wanted| {
        wanted.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == tag.trim_start_matches("W/"))
    });
    let mut response = if unchanged {
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        match http::to_json(&site, "hubdir.v1.Site") {
            Ok(json) if geojson => http::respond(StatusCode::OK, http::GEOJSON, &http::feature(json, Map::new())),
            Ok(json) => http::respond(StatusCode::OK, http::JSON, &json),
            Err(status) => return http::error(&status),
        }
    };
    if let Ok(etag) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("accept"));
    response
}
