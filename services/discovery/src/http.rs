//! `GET /v1/nearest`: FindNearest over HTTP, answered by the same handler, as JSON or GeoJSON.
//!
//! `lat`, `lng` (required), `k` (1..100, default 10), `service` (repeatable or
//! comma-separated: `free_wifi`, `public_internet`...; all required), `open` (open now),
//! `online` (connectivity ONLINE now), `free` (free access), `max_distance` (metres) and `view`
//! (`basic` | `full`, default full).

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use hubdir_auth::Authenticator;
use hubdir_core::{ViolationReason, Violations, limits};
use hubdir_node::http::{self, Params};
use hubdir_node::status;
use hubdir_proto::v1::discovery_service_server::DiscoveryService;
use hubdir_proto::v1::{self as pb, FindNearestRequest, FindNearestResponse};
use serde_json::{Map, Value, json};

use crate::Discovery;

/// What the HTTP routes (the API's and the page's) call: the service, and the check that puts
/// the caller in a request.
#[derive(Debug, Clone)]
pub(crate) struct Doors {
    pub(crate) discovery: Discovery,
    pub(crate) authenticator: Authenticator,
}

pub(crate) fn routes(discovery: Discovery, authenticator: Authenticator) -> axum::Router {
    axum::Router::new().route("/v1/nearest", get(nearest)).with_state(Doors { discovery, authenticator })
}

async fn nearest(State(doors): State<Doors>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let answer = async {
        let request = nearest_request(query.as_deref())?;
        let request = http::authenticated(&doors.authenticator, &headers, request)?;
        doors.discovery.find_nearest(request).await
    };
    let geojson = http::wants_geojson(&headers);
    let body = answer.await.and_then(|response| match geojson {
        true => {
            response.get_ref().decoded().map_err(|err| status::internal(err.to_string())).and_then(feature_collection)
        }
        false => http::to_json(response.get_ref(), "hubdir.v1.FindNearestResponse"),
    });
    let mut response = match body {
        Ok(body) => http::respond(StatusCode::OK, if geojson { http::GEOJSON } else { http::JSON }, &body),
        Err(status) => http::error(&status),
    };
    // The URL holds a position: no cache keeps the answer.
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

/// Service types by their short names (`free_wifi`, `public-internet`, any case), as the API
/// and the page take them; an unknown one, or more than there are, is a violation of `service`.
pub(crate) fn services(names: &[&str], out: &mut Violations) -> Vec<pb::ServiceType> {
    let names: Vec<&str> = names.iter().copied().filter(|n| !n.is_empty()).collect();
    if names.len() > limits::ENUM_VALUES {
        out.push("service", ViolationReason::TooMany, format!("at most {} services", limits::ENUM_VALUES));
        return Vec::new();
    }
    let mut found = Vec::with_capacity(names.len());
    for name in names {
        let wire = format!("SERVICE_TYPE_{}", name.to_ascii_uppercase().replace('-', "_"));
        match pb::ServiceType::from_str_name(&wire).filter(|s| *s != pb::ServiceType::Unspecified) {
            Some(service) => found.push(service),
            None => {
                out.push("service", ViolationReason::UnknownValue, "not a service type (e.g. free_wifi)");
                break;
            }
        }
    }
    found
}

/// The FindNearest request a query string asks; the position goes nowhere but the request.
fn nearest_request(query: Option<&str>) -> Result<FindNearestRequest, tonic::Status> {
    let mut out = Violations::default();
    let params = Params::parse(query, &mut out);
    let mut coordinate = |name: &str| {
        let value = params.number::<f64>(name, &mut out);
        if params.get(name).is_none() {
            out.push(name, ViolationReason::Required, "where to search from is required");
        }
        value.unwrap_or(f64::NAN)
    };
    let (latitude, longitude) = (coordinate("lat"), coordinate("lng"));
    let max_results = params.number::<i32>("k", &mut out).unwrap_or(0);
    let max_distance_meters = params.number::<f64>("max_distance", &mut out).unwrap_or(0.0);
    let services = services(&params.all("service"), &mut out).into_iter().map(i32::from).collect();
    let online = params.flag("online", &mut out);
    let filter = pb::SiteFilter {
        services,
        open: params.flag("open", &mut out),
        free_access: params.flag("free", &mut out),
        connectivity_states: if online { vec![pb::ConnectivityState::Online.into()] } else { Vec::new() },
        ..pb::SiteFilter::default()
    };
    let view = match params.get("view") {
        None | Some("full") => pb::SiteView::Full,
        Some("basic") => pb::SiteView::Basic,
        Some(_) => {
            out.push("view", ViolationReason::UnknownValue, "basic or full");
            pb::SiteView::Full
        }
    };
    if !out.is_empty() {
        return Err(status::invalid_argument(&out));
    }
    Ok(FindNearestRequest {
        location: Some(pb::LatLng { latitude, longitude }),
        max_results,
        max_distance_meters,
        filter: Some(filter),
        view: view.into(),
    })
}

/// The answer as an RFC 7946 FeatureCollection: a Point per site, nearest first, with the
/// site's fields, its distance, whether it is open now and its connectivity as properties.
fn feature_collection(response: FindNearestResponse) -> Result<Value, tonic::Status> {
    let features = response
        .results
        .into_iter()
        .map(|nearby| {
            let mut extra = Map::new();
            extra.insert("distanceMeters".into(), json!(nearby.distance_meters));
            let open = pb::OpenNow::try_from(nearby.open_now).unwrap_or_default();
            extra.insert("openNow".into(), json!(open.as_str_name()));
            if let Some(connectivity) = &nearby.connectivity {
                extra.insert("connectivity".into(), http::to_json(connectivity, "hubdir.v1.ConnectivityStatus")?);
            }
            let site = match &nearby.site {
                Some(site) => http::to_json(site, "hubdir.v1.Site")?,
                None => Value::Null,
            };
            Ok(http::feature(site, extra))
        })
        .collect::<Result<Vec<Value>, tonic::Status>>()?;
    Ok(json!({"type": "FeatureCollection", "features": features}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_string_becomes_the_request_or_names_its_bad_parameters() {
        let request =
            nearest_request(Some("lat=-17.83&lng=31.05&k=3&service=free_wifi,public-internet&online&view=basic"))
                .unwrap();
        assert_eq!(request.location, Some(pb::LatLng { latitude: -17.83, longitude: 31.05 }));
        assert_eq!((request.max_results, request.view), (3, pb::SiteView::Basic.into()));
        let filter = request.filter.unwrap();
        assert_eq!(filter.services, [pb::ServiceType::FreeWifi as i32, pb::ServiceType::PublicInternet as i32]);
        assert_eq!(filter.connectivity_states, [pb::ConnectivityState::Online as i32]);

        let status = nearest_request(Some("lng=x&service=teleport&view=tiny")).unwrap_err();
        let details = tonic_types::StatusExt::get_details_bad_request(&status).unwrap();
        let fields: Vec<&str> = details.field_violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["lat", "lng", "service", "view"]);
    }
}
