//! "Help near me", the page a person opens at `/`: plain HTML and CSS with a little
//! JavaScript, nothing fetched from anywhere else. With JavaScript, "Use my location" asks the
//! browser for the position, rounds it to about 100 m and fetches the answer from `/near`
//! (an HTML fragment); without, the form submits to `/near`, which renders the whole page.
//! Either way the answer comes from the same FindNearest (and, for a typed place, SearchSites)
//! handlers as gRPC, and one renderer (`results`) draws it. The position goes nowhere but the
//! request: no log, no cookie, no cache (`Cache-Control: no-store`), no referrer.
//!
//! Strings come from one catalogue per language (`page/i18n/*.json`), chosen by
//! `Accept-Language`; a key missing from a catalogue falls back to English.

use std::sync::OnceLock;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use hubdir_auth::Authenticator;
use hubdir_core::Violations;
use hubdir_node::http::{self as node_http, Params};
use hubdir_proto::v1::discovery_service_server::DiscoveryService;
use hubdir_proto::v1::{self as pb, FindNearestRequest, NearbySite, SearchSitesRequest};
use serde_json::{Map, Value};
use tonic::Code;

use crate::Discovery;
use crate::http::Doors;

include!(concat!(env!("OUT_DIR"), "/catalogues.rs"));

const INDEX: &str = include_str!("../page/index.html");
const APP_JS: &str = include_str!("../page/app.js");
const STYLE: &str = include_str!("../page/style.css");

/// Help points a page shows.
const RESULTS: i32 = 10;

/// What the browser may do with the page: nothing from elsewhere, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

#[derive(Debug)]
struct Catalogue {
    language: &'static str,
    strings: Map<String, Value>,
}

fn catalogues() -> &'static [Catalogue] {
    static ALL: OnceLock<Vec<Catalogue>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: Vec<Catalogue> = CATALOGUES
            .iter()
            .map(|(language, json)| Catalogue {
                language,
                // build.rs has checked each is a JSON object of strings.
                strings: serde_json::from_str(json).unwrap_or_default(),
            })
            .collect();
        // English first: the fallback (build.rs makes sure there is one).
        all.sort_by_key(|c| c.language != "en");
        all
    })
}

impl Catalogue {
    /// The text of `key`, in this language or else in English.
    fn t<'a>(&'a self, key: &'a str) -> &'a str {
        [self, &catalogues()[0]].iter().find_map(|c| c.strings.get(key).and_then(Value::as_str)).unwrap_or(key)
    }

    /// The text of `key` with `{name}` replaced by each value (escaped).
    fn fill(&self, key: &str, values: &[(&str, &str)]) -> String {
        values
            .iter()
            .fold(escape(self.t(key)), |text, (name, value)| text.replace(&format!("{{{name}}}"), &escape(value)))
    }
}

/// The catalogue `Accept-Language` prefers most (`fr-CA;q=0.8` counts as `fr`); English when
/// none matches.
fn choose(accept_language: Option<&str>) -> &'static Catalogue {
    let mut best: Option<(f32, &Catalogue)> = None;
    for range in accept_language.unwrap_or_default().split(',').take(20) {
        let mut parts = range.trim().split(';');
        let tag = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = hubdir_node::http::quality(parts);
        let primary = tag.split('-').next().unwrap_or_default();
        if let Some(c) = catalogues().iter().find(|c| c.language == primary)
            && q > 0.0
            && best.is_none_or(|(b, _)| q > b)
        {
            best = Some((q, c));
        }
    }
    best.map_or(&catalogues()[0], |(_, c)| c)
}

/// A coordinate to 3 decimals: about 111 m of latitude at most.
fn round(degrees: f64) -> f64 {
    (degrees * 1000.0).round() / 1000.0
}

/// `text` safe inside HTML text and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The short name of a proto enum value: `SERVICE_TYPE_FREE_WIFI` -> `free_wifi`.
fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_ascii_lowercase()
}

pub(crate) fn routes(discovery: Discovery, authenticator: Authenticator) -> axum::Router {
    axum::Router::new()
        .route("/", get(home))
        .route("/near", get(near))
        .route("/page/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/page/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .with_state(Doors { discovery, authenticator })
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = Response::new(axum::body::Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}

/// What the form held, to show it again.
#[derive(Debug, Default)]
struct Form {
    q: String,
    country: String,
    lat: String,
    lng: String,
    service: String,
}

async fn home(headers: HeaderMap) -> Response {
    let t = choose(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
    html(StatusCode::OK, render_page(t, &Form::default(), "", ""))
}

async fn near(State(doors): State<Doors>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let t = choose(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
    let mut ignored = Violations::default();
    let params = Params::parse(query.as_deref(), &mut ignored);
    let text = |name: &str| params.get(name).unwrap_or_default().trim().chars().take(200).collect::<String>();
    let form = Form {
        q: text("q"),
        country: text("country").to_ascii_uppercase(),
        lat: text("lat"),
        lng: text("lng"),
        service: text("service"),
    };
    let (status, results, message) = match answer(&doors, &headers, t, &form).await {
        Ok(results) => (StatusCode::OK, results, String::new()),
        Err((status, message)) => (status, String::new(), message),
    };
    let body = if params.get("fragment").is_some() {
        if message.is_empty() { results } else { format!("<p>{message}</p>") }
    } else {
        render_page(t, &form, &results, &message)
    };
    html(status, body)
}

/// The results for what the form asks, or the HTTP status and the message to show.
async fn answer(
    doors: &Doors,
    headers: &HeaderMap,
    t: &Catalogue,
    form: &Form,
) -> Result<String, (StatusCode, String)> {
    let failed = |status: tonic::Status| {
        let message = match status.code() {
            Code::InvalidArgument => t.fill("invalid", &[("problem", status.message())]),
            _ => escape(t.t("error")),
        };
        (node_http::http_status(status.code()), message)
    };
    let (location, heading) = if !form.lat.is_empty() || !form.lng.is_empty() {
        // Rounded here too, as the script rounds: a typed position is used no finer than
        // about 100 m.
        let number = |text: &str| round(text.replace(',', ".").parse::<f64>().unwrap_or(f64::NAN));
        (pb::LatLng { latitude: number(&form.lat), longitude: number(&form.lng) }, escape(t.t("results_heading")))
    } else if !form.q.is_empty() && !form.country.is_empty() {
        // A typed place: the first site whose name or address holds its words is where to
        // search from.
        let request = SearchSitesRequest {
            query: form.q.clone(),
            country_code: form.country.clone(),
            page_size: 1,
            view: pb::SiteView::Basic.into(),
            ..SearchSitesRequest::default()
        };
        let request = node_http::authenticated(&doors.authenticator, headers, request).map_err(failed)?;
        let found = doors.discovery.search_sites(request).await.map_err(failed)?.into_inner();
        let Some(location) = found.sites.into_iter().next().and_then(|site| site.location) else {
            return Err((StatusCode::OK, t.fill("no_place", &[("place", &form.q), ("country", &form.country)])));
        };
        (location, t.fill("results_near", &[("place", &form.q)]))
    } else {
        return Err((StatusCode::OK, escape(t.t("need_place"))));
    };
    let mut out = Violations::default();
    let services = crate::http::services(&[form.service.as_str()], &mut out).into_iter().map(i32::from).collect();
    if !out.is_empty() {
        return Err(failed(hubdir_node::status::invalid_argument(&out)));
    }
    let request = FindNearestRequest {
        location: Some(location),
        max_results: RESULTS,
        max_distance_meters: 0.0,
        filter: Some(pb::SiteFilter { services, ..pb::SiteFilter::default() }),
        view: pb::SiteView::Basic.into(),
    };
    let request = node_http::authenticated(&doors.authenticator, headers, request).map_err(failed)?;
    let found = doors.discovery.find_nearest(request).await.map_err(failed)?.into_inner();
    let found = found.decoded().map_err(|err| failed(hubdir_node::status::internal(err.to_string())))?;
    Ok(results(t, &heading, &found.results))
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    // The URL may hold a position: kept by no cache and sent to no other site.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-language"));
    response
}

fn render_page(t: &Catalogue, form: &Form, results: &str, status: &str) -> String {
    let mut options = format!("<option value=\"\">{}</option>", escape(t.t("any_service")));
    for service in (1..).map_while(|value| pb::ServiceType::try_from(value).ok()) {
        let code = short(service.as_str_name(), "SERVICE_TYPE_");
        let selected = if code.eq_ignore_ascii_case(&form.service) { " selected" } else { "" };
        options.push_str(&format!(
            "<option value=\"{code}\"{selected}>{}</option>",
            escape(t.t(&format!("service.{code}")))
        ));
    }
    // The strings the script shows, as JSON that cannot close its <script> element.
    let strings: Map<String, Value> = ["searching", "locating", "location_denied", "error"]
        .iter()
        .map(|key| ((*key).to_owned(), Value::from(t.t(key))))
        .collect();
    let strings = Value::Object(strings).to_string().replace('<', "\\u003c");
    let mut page = String::with_capacity(INDEX.len() + results.len() + 2048);
    let mut rest = INDEX;
    while let Some(start) = rest.find("{{") {
        page.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            rest = &rest[start..];
            break;
        };
        let slot = &rest[start + 2..start + end];
        match slot {
            "lang" => page.push_str(t.language),
            "q" => page.push_str(&escape(&form.q)),
            "country" => page.push_str(&escape(&form.country)),
            "lat" => page.push_str(&escape(&form.lat)),
            "lng" => page.push_str(&escape(&form.lng)),
            "service_options" => page.push_str(&options),
            "results" => page.push_str(results),
            "status" => page.push_str(status),
            "strings" => page.push_str(&strings),
            key => page.push_str(&escape(t.t(key.strip_prefix("t:").unwrap_or(key)))),
        }
        rest = &rest[start + end + 2..];
    }
    page.push_str(rest);
    page
}

/// The help points found, nearest first: what each offers, whether it is open and online now,
/// and how to get there.
fn results(t: &Catalogue, heading: &str, found: &[NearbySite]) -> String {
    let mut out = format!("<h2>{heading}</h2>");
    if found.is_empty() {
        out.push_str(&format!("<p>{}</p>", escape(t.t("no_results"))));
        return out;
    }
    out.push_str("<ol class=\"sites\">");
    for nearby in found {
        let Some(site) = &nearby.site else { continue };
        let distance = if nearby.distance_meters < 995.0 {
            t.fill("m", &[("n", &format!("{:.0}", (nearby.distance_meters / 10.0).round() * 10.0))])
        } else {
            t.fill("km", &[("n", &format!("{:.1}", nearby.distance_meters / 1000.0))])
        };
        let kind = escape(t.t(&format!("kind.{}", short(site.kind().as_str_name(), "KIND_"))));
        let fact =
            |yes: bool, key: &str| format!("<li{}>{}</li>", if yes { " class=\"yes\"" } else { "" }, escape(t.t(key)));
        let mut facts = match nearby.open_now() {
            pb::OpenNow::Open => fact(true, "open_now"),
            pb::OpenNow::Closed => fact(false, "closed_now"),
            pb::OpenNow::Unspecified => fact(false, "hours_unknown"),
        };
        let state = nearby.connectivity.as_ref().map(|c| c.state()).unwrap_or_default();
        facts.push_str(&match state {
            pb::ConnectivityState::Online => fact(true, "online_now"),
            // Online, but below its country's benchmark: say so rather than promise a good line.
            pb::ConnectivityState::Degraded => fact(true, "online_degraded"),
            pb::ConnectivityState::Offline => fact(false, "offline_now"),
            _ => fact(false, "online_unknown"),
        });
        if site.free_access {
            facts.push_str(&fact(true, "free_access"));
        }
        let step_free = [pb::AccessibilityFeature::StepFreeEntrance, pb::AccessibilityFeature::WheelchairAccessible];
        if site.accessibility().any(|a| step_free.contains(&a)) {
            facts.push_str(&fact(true, "step_free"));
        }
        let services: Vec<String> = site
            .services()
            .map(|s| escape(t.t(&format!("service.{}", short(s.as_str_name(), "SERVICE_TYPE_")))))
            .collect();
        let directions = site.location.as_ref().map_or(String::new(), |l| {
            let (lat, lng) = (l.latitude, l.longitude);
            format!(
                "<p><a href=\"geo:{lat:.6},{lng:.6}\">{}</a> · <a href=\"https://www.openstreetmap.org/directions?to=\
                 {lat:.6}%2C{lng:.6}\" rel=\"noreferrer\">{}</a></p>",
                escape(t.t("directions")),
                escape(t.t("openstreetmap")),
            )
        });
        out.push_str(&format!(
            "<li class=\"site\"><h3>{name}</h3><p class=\"meta\">{distance} · {kind}</p><ul class=\"facts\">{facts}</ul>\
             <p>{services_label}: {services}</p>{directions}</li>",
            name = escape(&site.display_name),
            services_label = escape(t.t("services")),
            services = services.join(", "),
        ));
    }
    out.push_str("</ol>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_has_every_english_key_and_nothing_else() {
        let english = &catalogues()[0];
        assert_eq!(english.language, "en");
        assert!(catalogues().iter().any(|c| c.language == "fr"));
        for catalogue in catalogues() {
            let missing: Vec<&String> =
                english.strings.keys().filter(|k| !catalogue.strings.contains_key(*k)).collect();
            let extra: Vec<&String> = catalogue.strings.keys().filter(|k| !english.strings.contains_key(*k)).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{}: missing {missing:?}, unknown {extra:?}",
                catalogue.language
            );
        }
        // Every slot of the page names a key English has.
        for slot in INDEX.split("{{t:").skip(1) {
            let key = slot.split("}}").next().unwrap();
            assert!(english.strings.contains_key(key), "index.html asks for {key}");
        }
        for value in 1..=10 {
            let service = pb::ServiceType::try_from(value).unwrap();
            assert!(
                english.strings.contains_key(&format!("service.{}", short(service.as_str_name(), "SERVICE_TYPE_")))
            );
        }
    }

    #[test]
    fn accept_language_picks_the_preferred_catalogue() {
        assert_eq!(choose(Some("fr-CA,fr;q=0.9,en;q=0.8")).language, "fr");
        assert_eq!(choose(Some("de-DE,en;q=0.5,fr;q=0.7")).language, "fr");
        assert_eq!(choose(Some("de")).language, "en");
        assert_eq!(choose(None).language, "en");
        assert_eq!(choose(Some("fr;q=0")).language, "en");
    }

    #[test]
    fn publishers_text_is_escaped() {
        let site = pb::Site { display_name: "<script>alert(1)</script> & \"co\"".into(), ..pb::Site::default() };
        let nearby = NearbySite { site: Some(site), ..NearbySite::default() };
        let html = results(&catalogues()[0], "h", &[nearby]);
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;co&quot;"), "{html}");
        assert!(!html.contains("<script>"));
        let form = Form { q: "\"><script>".into(), ..Form::default() };
        assert!(!render_page(&catalogues()[0], &form, "", "").contains("\"><script>"));
    }

    #[test]
    fn a_degraded_line_is_not_shown_as_plain_online() {
        let at = |state: pb::ConnectivityState| {
            let connectivity = pb::ConnectivityStatus { state: state.into(), ..pb::ConnectivityStatus::default() };
            let nearby = NearbySite {
                site: Some(pb::Site::default()),
                connectivity: Some(connectivity),
                ..NearbySite::default()
            };
            results(&catalogues()[0], "h", &[nearby])
        };
        assert!(at(pb::ConnectivityState::Online).contains(">Online now<"));
        let degraded = at(pb::ConnectivityState::Degraded);
        assert!(degraded.contains("Online now, slow connection") && !degraded.contains(">Online now<"), "{degraded}");
    }
}
