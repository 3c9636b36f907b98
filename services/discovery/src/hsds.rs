//! The Open Referral HSDS 3.0 read API under `/hsds`: `/hsds/` (about the API),
//! `/hsds/services[/{id}]`, `/hsds/service_at_locations[/{id}]`,
//! `/hsds/organizations[/{id}]`, `/hsds/taxonomies[/{id}]` and `/hsds/taxonomy_terms[/{id}]`,
//! as HSDS's `openapi.json` defines them, with its page-number paging (`page` from 1,
//! `per_page` up to [`MAX_PER_PAGE`]) or `format=ndjson` (every result, one per line,
//! streamed a page at a time).
//!
//! Objects map through `hubdir_hsds`, with the ids `hubdir export --format hsds` writes. Lists
//! read the store in name order with the conditions of `hubdir_store::SiteQuery`. With
//! `proximity` (metres) and `postcode`, service-at-locations come from the nearest index,
//! nearest first, within that distance of the centre of this directory's sites with that
//! postcode (the API has no geocoder). Who may read: as for DiscoveryService.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use hubdir_auth::Authenticator;
use hubdir_core::search::{MAX_QUERY_WORDS, query_words};
use hubdir_core::{Filter, Kind, ServiceType, SiteRecord, SiteStatus, ViolationReason, Violations, echo};
use hubdir_hsds::{Shape, SiteIds, Taxonomy};
use hubdir_node::http::{self, Params};
use hubdir_node::status;
use hubdir_store::{SiteQuery, TextMatch};
use serde_json::{Value, json};
use tonic::Status;

use crate::Discovery;
use crate::http::Doors;
use crate::listing::MAX_QUERY_CHARS;

pub const DEFAULT_PER_PAGE: u64 = 50;
/// The last page one may ask for (an offset past `i64::MAX` rows is no database's).
pub const MAX_PAGE: u64 = 10_000_000;
pub const MAX_PER_PAGE: u64 = 500;
/// Organizations nested with their services (`full`) come at most this many to a page...
pub const MAX_FULL_ORGANIZATIONS: u64 = 20;
/// ...each with at most this many services, in name order (`/hsds/services?organization_id=`
/// pages through them all).
pub const NESTED_SERVICES: u64 = 50;
/// A `proximity` may span at most this many sites, or it is refused as too wide.
pub const MAX_WITHIN: usize = 10_000;
/// A postcode's centre is the mean position of at most this many of its sites.
const POSTCODE_SITES: u64 = 1_000;
const MAX_POSTCODE_CHARS: usize = 32;
/// Sites read per store call while streaming ndjson.
const STREAM_PAGE: u64 = 100;
const NDJSON: &str = "application/x-ndjson";
const OPENAPI_URL: &str = "https://raw.githubusercontent.com/openreferral/specification/3.0/schema/openapi.json";

pub(crate) fn routes(discovery: Discovery, authenticator: Authenticator) -> axum::Router {
    axum::Router::new()
        .route("/hsds", get(about))
        .route("/hsds/", get(about))
        .route("/hsds/services", get(services))
        .route("/hsds/services/{id}", get(service))
        .route("/hsds/service_at_locations", get(service_at_locations))
        .route("/hsds/service_at_locations/{id}", get(service_at_location))
        .route("/hsds/organizations", get(organizations))
        .route("/hsds/organizations/{id}", get(organization))
        .route("/hsds/taxonomies", get(taxonomies))
        .route("/hsds/taxonomies/{id}", get(taxonomy))
        .route("/hsds/taxonomy_terms", get(taxonomy_terms))
        .route("/hsds/taxonomy_terms/{id}", get(taxonomy_term))
        .with_state(Doors { discovery, authenticator })
}

/// What a handler answers: one JSON document, or every result as ndjson.
enum Answer {
    Json(Value),
    Lines(Lines),
}

/// Results as ndjson: either all in hand, or sites streamed from the store.
enum Lines {
    InHand(Vec<Value>),
    Sites {
        query: Box<SiteQuery>,
        map: fn(&SiteRecord) -> Value,
    },
    /// Organizations (whose names hold `search`), a page at a time.
    Organizations {
        search: Option<String>,
    },
}

/// Authorises the caller as DiscoveryService does, then answers.
async fn reply(doors: &Doors, headers: &HeaderMap, answer: impl Future<Output = Result<Answer, Status>>) -> Response {
    let allowed =
        http::authenticated(&doors.authenticator, headers, ()).and_then(|request| doors.discovery.authorize(&request));
    match allowed {
        Err(status) => http::error(&status),
        Ok(()) => match answer.await {
            Ok(Answer::Json(body)) => http::respond(StatusCode::OK, http::JSON, &body),
            Ok(Answer::Lines(lines)) => ndjson(doors.discovery.clone(), lines),
            Err(status) => http::error(&status),
        },
    }
}

/// A streamed ndjson body: one store page in memory at a time. A store error mid-stream ends
/// the body early (the status line has gone), which the client sees as a broken transfer.
fn ndjson(discovery: Discovery, lines: Lines) -> Response {
    let body = match lines {
        Lines::InHand(values) => Body::from(values.iter().map(|v| format!("{v}\n")).collect::<String>()),
        Lines::Sites { query, map } => {
            let pages = futures::stream::try_unfold(Some(*query), move |next| {
                let store = discovery.store.clone();
                async move {
                    let Some(mut query) = next else { return Ok(None) };
                    query.limit = STREAM_PAGE;
                    let page = store.list_sites(&query).await?;
                    let text: String = page.iter().map(|r| format!("{}\n", map(r))).collect();
                    let next = page
                        .last()
                        .filter(|_| page.len() as u64 == STREAM_PAGE)
                        .map(|last| SiteQuery { after_name: Some(last.site.name.to_string()), ..query });
                    Ok::<_, hubdir_store::StoreError>(Some((text, next)))
                }
            });
            Body::from_stream(pages)
        }
        Lines::Organizations { search } => {
            let pages = futures::stream::try_unfold(Some(0u64), move |next| {
                let (store, search) = (discovery.store.clone(), search.clone());
                async move {
                    let Some(offset) = next else { return Ok(None) };
                    let page = store.operators(None, search.as_deref(), offset, STREAM_PAGE).await?;
                    let text: String = page
                        .iter()
                        .map(|o| format!("{}\n", hubdir_hsds::organization(&o.operator, o.sites.max(0) as u64)))
                        .collect();
                    let next = (page.len() as u64 == STREAM_PAGE).then_some(offset + STREAM_PAGE);
                    Ok::<_, hubdir_store::StoreError>(Some((text, next)))
                }
            });
            Body::from_stream(pages)
        }
    };
    let mut response = Response::new(body);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    response
}

/// `page`, `per_page` and `format`.
struct Paging {
    page: u64,
    per_page: u64,
    ndjson: bool,
}

impl Paging {
    fn read(params: &Params, out: &mut Violations, max_per_page: u64) -> Paging {
        let page = params.number::<u64>("page", out).unwrap_or(1);
        if !(1..=MAX_PAGE).contains(&page) {
            out.push("page", ViolationReason::OutOfRange, format!("pages count from 1, up to {MAX_PAGE}"));
        }
        let per_page = params.number::<u64>("per_page", out).unwrap_or(DEFAULT_PER_PAGE.min(max_per_page));
        if !(1..=max_per_page).contains(&per_page) {
            out.push("per_page", ViolationReason::OutOfRange, format!("must be in 1..{max_per_page}"));
        }
        let ndjson = match params.get("format") {
            None | Some("json") => false,
            Some("ndjson") => true,
            Some(_) => {
                out.push("format", ViolationReason::UnknownValue, "json or ndjson");
                false
            }
        };
        Paging { page: page.clamp(1, MAX_PAGE), per_page: per_page.clamp(1, max_per_page), ndjson }
    }

    fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(self.per_page)
    }

    /// This page of `records`, each mapped by `map` (only those on the page), as HSDS's page;
    /// or all of them as ndjson.
    fn of_records(&self, records: &[&SiteRecord], map: fn(&SiteRecord) -> Value) -> Answer {
        if self.ndjson {
            return Answer::Lines(Lines::InHand(records.iter().map(|r| map(r)).collect()));
        }
        let page = records.iter().skip(self.offset() as usize).take(self.per_page as usize);
        Answer::Json(hubdir_hsds::page(page.map(|r| map(r)).collect(), records.len() as u64, self.page, self.per_page))
    }

    /// This page of `all`, as HSDS's page; or all of them as ndjson.
    fn of(&self, all: Vec<Value>) -> Answer {
        if self.ndjson {
            return Answer::Lines(Lines::InHand(all));
        }
        let total = all.len() as u64;
        let contents = all.into_iter().skip(self.offset() as usize).take(self.per_page as usize).collect();
        Answer::Json(hubdir_hsds::page(contents, total, self.page, self.per_page))
    }
}

fn invalid_unless_empty(out: &Violations) -> Result<(), Status> {
    if out.is_empty() { Ok(()) } else { Err(status::invalid_argument(out)) }
}

fn not_found(what: &str, id: &str) -> Status {
    Status::not_found(format!("no {what} has the id {}", echo(id)))
}

/// `search`, as folded words (as SearchSites takes them).
fn search_words(params: &Params, out: &mut Violations) -> Option<Vec<String>> {
    let text = params.get("search").filter(|t| !t.trim().is_empty())?;
    if text.chars().count() > MAX_QUERY_CHARS {
        out.push("search", ViolationReason::TooLong, format!("at most {MAX_QUERY_CHARS} characters"));
        return None;
    }
    let words = query_words(text);
    if words.len() > MAX_QUERY_WORDS {
        out.push("search", ViolationReason::TooMany, format!("at most {MAX_QUERY_WORDS} words"));
        return None;
    }
    (!words.is_empty()).then_some(words)
}

/// Which sites the services and service-at-locations filters select; `None`: an id that names
/// nothing here, so nothing matches.
async fn site_query(discovery: &Discovery, params: &Params, out: &mut Violations) -> Result<Option<SiteQuery>, Status> {
    let mut query =
        SiteQuery { text: search_words(params, out).map(TextMatch::InNameOrAddress), ..SiteQuery::default() };
    if let Some(raw) = params.get("modified_after") {
        match chrono::DateTime::parse_from_rfc3339(raw) {
            // "On or after": the store's condition is strictly after.
            Ok(t) => query.modified_after = Some(t.to_utc() - chrono::Duration::microseconds(1)),
            Err(_) => out.push(
                "modified_after",
                ViolationReason::InvalidFormat,
                "an RFC 3339 date-time, e.g. 2024-05-16T00:00:00Z",
            ),
        }
    }
    invalid_unless_empty(out)?;
    if let Some(id) = params.get("taxonomy_term_id") {
        let Some((taxonomy, code)) =
            Taxonomy::all_terms().into_iter().find(|(t, c)| t.term_id(c).eq_ignore_ascii_case(id))
        else {
            return Ok(None);
        };
        match taxonomy {
            Taxonomy::ServiceTypes => query.services.extend(ServiceType::from_code(code)),
            Taxonomy::SiteKinds => query.kinds.extend(Kind::from_code(code)),
        }
    }
    if let Some(id) = params.get("taxonomy_id") {
        let term_taxonomy = params.get("taxonomy_term_id").and_then(|term| {
            Taxonomy::all_terms().into_iter().find(|(t, c)| t.term_id(c).eq_ignore_ascii_case(term)).map(|(t, _)| t)
        });
        match Taxonomy::ALL.into_iter().find(|t| t.id().eq_ignore_ascii_case(id)) {
            None => return Ok(None),
            // A term of another taxonomy: nothing is classified by both.
            Some(taxonomy) if term_taxonomy.is_some_and(|t| t != taxonomy) => return Ok(None),
            // Classified by service type: offering any.
            Some(Taxonomy::ServiceTypes) if query.services.is_empty() => query.services = ServiceType::ALL.to_vec(),
            // Every site has a kind.
            Some(_) => {}
        }
    }
    if let Some(id) = params.get("organization_id") {
        match operator_of(discovery, id).await? {
            Some((operator, _)) => query.operator = Some(operator),
            None => return Ok(None),
        }
    }
    Ok(Some(query))
}

/// The operator whose organization has this id, with its number of sites.
async fn operator_of(discovery: &Discovery, id: &str) -> Result<Option<(String, u64)>, Status> {
    let Some(key) = hubdir_hsds::ids::key_of(id) else { return Ok(None) };
    let candidates = discovery.store.operators(Some(key), None, 0, 16).await.map_err(status::from_store)?;
    Ok(candidates
        .into_iter()
        .find(|c| hubdir_hsds::organization_id(&c.operator).is_some_and(|o| o.eq_ignore_ascii_case(id)))
        .map(|c| (c.operator, c.sites.max(0) as u64)))
}

/// The site one of whose HSDS ids is `id`, as `pick` reads a site's ids.
async fn site_with(discovery: &Discovery, id: &str, pick: fn(&SiteIds) -> &str) -> Result<Option<SiteRecord>, Status> {
    let Some(key) = hubdir_hsds::ids::key_of(id) else { return Ok(None) };
    let query = SiteQuery { site_key: Some(key), limit: 16, ..SiteQuery::default() };
    let candidates = discovery.store.list_sites(&query).await.map_err(status::from_store)?;
    Ok(candidates.into_iter().find(|r| pick(&SiteIds::of(r)).eq_ignore_ascii_case(id)))
}

/// A page (or ndjson) of the sites `query` selects, each mapped by `map`.
async fn sites_page(
    discovery: &Discovery,
    query: Option<SiteQuery>,
    paging: &Paging,
    map: fn(&SiteRecord) -> Value,
) -> Result<Answer, Status> {
    let Some(query) = query else { return Ok(paging.of(Vec::new())) };
    if paging.ndjson {
        return Ok(Answer::Lines(Lines::Sites { query: Box::new(query), map }));
    }
    let store = &discovery.store;
    let total = store.count_sites(&query).await.map_err(status::from_store)?;
    let page = SiteQuery { offset: paging.offset(), limit: paging.per_page, ..query };
    let records = store.list_sites(&page).await.map_err(status::from_store)?;
    Ok(Answer::Json(hubdir_hsds::page(records.iter().map(map).collect(), total, paging.page, paging.per_page)))
}

async fn about(State(doors): State<Doors>, headers: HeaderMap) -> Response {
    reply(&doors, &headers, async {
        Ok(Answer::Json(json!({"version": hubdir_hsds::VERSION, "openapi_url": OPENAPI_URL})))
    })
    .await
}

fn service_list(record: &SiteRecord) -> Value {
    hubdir_hsds::service(record, Shape::List)
}

fn service_full(record: &SiteRecord) -> Value {
    hubdir_hsds::service(record, Shape::Full)
}

/// `minimal`: what HSDS's service list requires, and when it changed.
fn service_minimal(record: &SiteRecord) -> Value {
    let full = hubdir_hsds::service(record, Shape::List);
    json!({"id": full["id"], "name": full["name"], "status": full["status"], "last_modified": full["last_modified"]})
}

async fn services(State(doors): State<Doors>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let answer = async {
        let mut out = Violations::default();
        let params = Params::parse(raw.as_deref(), &mut out);
        let paging = Paging::read(&params, &mut out, MAX_PER_PAGE);
        let (full, minimal) = (params.flag("full", &mut out), params.flag("minimal", &mut out));
        let query = site_query(&doors.discovery, &params, &mut out).await?;
        let map = match (minimal, full) {
            (true, _) => service_minimal,
            (false, true) => service_full,
            (false, false) => service_list,
        };
        sites_page(&doors.discovery, query, &paging, map).await
    };
    reply(&doors, &headers, answer).await
}

async fn service(State(doors): State<Doors>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let answer = async {
        let record = site_with(&doors.discovery, &id, |ids| &ids.service).await?;
        let record = record.ok_or_else(|| not_found("service", &id))?;
        Ok(Answer::Json(service_full(&record)))
    };
    reply(&doors, &headers, answer).await
}

fn service_at_location_list(record: &SiteRecord) -> Value {
    hubdir_hsds::service_at_location(record)
}

/// `full`: the service nested whole.
fn service_at_location_full(record: &SiteRecord) -> Value {
    let mut value = hubdir_hsds::service_at_location(record);
    value["service"] = hubdir_hsds::service(record, Shape::Full);
    value
}

async fn service_at_locations(State(doors): State<Doors>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let answer = async {
        let mut out = Violations::default();
        let params = Params::parse(raw.as_deref(), &mut out);
        let paging = Paging::read(&params, &mut out, MAX_PER_PAGE);
        let full = params.flag("full", &mut out);
        let map = if full { service_at_location_full } else { service_at_location_list };
        let postcode = params.get("postcode").map(str::trim).filter(|p| !p.is_empty());
        let proximity = params.number::<f64>("proximity", &mut out);
        if let Some(metres) = proximity
            && !(metres.is_finite() && metres > 0.0)
        {
            out.push("proximity", ViolationReason::OutOfRange, "a distance in metres, more than 0");
        }
        if proximity.is_some() && postcode.is_none() {
            out.push("postcode", ViolationReason::Required, "proximity is measured from a postcode's centre");
        }
        if postcode.is_some_and(|p| p.chars().count() > MAX_POSTCODE_CHARS) {
            out.push("postcode", ViolationReason::TooLong, format!("at most {MAX_POSTCODE_CHARS} characters"));
        } else if postcode.is_some_and(|p| hubdir_core::search::postcode_key(p).is_empty()) {
            out.push("postcode", ViolationReason::InvalidFormat, "a postcode has letters or digits");
        }
        let query = site_query(&doors.discovery, &params, &mut out).await?;
        let Some(metres) = proximity else {
            let query = query.map(|query| SiteQuery { postcode: postcode.map(str::to_owned), ..query });
            return sites_page(&doors.discovery, query, &paging, map).await;
        };
        let (Some(query), Some(postcode)) = (query, postcode) else { return Ok(paging.of(Vec::new())) };
        let found = near_postcode(&doors.discovery, postcode, metres).await?;
        let kept: Vec<&SiteRecord> = found.iter().filter(|r| query.admits(r)).collect();
        Ok(paging.of_records(&kept, map))
    };
    reply(&doors, &headers, answer).await
}

/// The sites within `metres` of the centre of `postcode`'s sites, nearest first, from the
/// nearest index.
async fn near_postcode(discovery: &Discovery, postcode: &str, metres: f64) -> Result<Vec<SiteRecord>, Status> {
    let query = SiteQuery { postcode: Some(postcode.to_owned()), limit: POSTCODE_SITES, ..SiteQuery::default() };
    let sites = discovery.store.list_sites(&query).await.map_err(status::from_store)?;
    let positions = sites.iter().map(|r| (r.site.location.latitude(), r.site.location.longitude()));
    let Some((latitude, longitude)) = centre(positions) else { return Ok(Vec::new()) };
    discovery.index_loaded().await?;
    let found = {
        // Every status: HSDS says each service's, where the index's default is open only.
        let filter = Filter { statuses: SiteStatus::ALL.to_vec(), ..Filter::default() };
        discovery.index.read().nearest(latitude, longitude, MAX_WITHIN + 1, Some(metres), &filter)
    };
    if found.len() > MAX_WITHIN {
        let mut out = Violations::default();
        let wide = format!("more than {MAX_WITHIN} sites lie within {metres} m of that postcode; ask for less");
        out.push("proximity", ViolationReason::OutOfRange, wide);
        return Err(status::invalid_argument(&out));
    }
    // The index keeps no whole records: read them, nearest first. A site deleted since the
    // index saw it is left out.
    let names: Vec<_> = found.iter().map(|nearby| nearby.facts.name.clone()).collect();
    let mut records = discovery.store.get_sites(&names).await.map_err(status::from_store)?;
    Ok(names.iter().filter_map(|name| records.remove(&name.to_string())).collect())
}

/// The centre of some positions (latitude, longitude): their mean on the unit sphere, so
/// places either side of the antimeridian centre on it, not on the far side of the Earth.
fn centre(positions: impl Iterator<Item = (f64, f64)>) -> Option<(f64, f64)> {
    let (mut x, mut y, mut z, mut count) = (0.0, 0.0, 0.0, 0);
    for (lat, lng) in positions {
        let (lat, lng) = (lat.to_radians(), lng.to_radians());
        count += 1;
        x += lat.cos() * lng.cos();
        y += lat.cos() * lng.sin();
        z += lat.sin();
    }
    (count > 0).then(|| (z.atan2(x.hypot(y)).to_degrees(), y.atan2(x).to_degrees()))
}

async fn service_at_location(State(doors): State<Doors>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let answer = async {
        let record = site_with(&doors.discovery, &id, |ids| &ids.service_at_location).await?;
        let record = record.ok_or_else(|| not_found("service_at_location", &id))?;
        Ok(Answer::Json(service_at_location_full(&record)))
    };
    reply(&doors, &headers, answer).await
}

/// An organization with (up to [`NESTED_SERVICES`] of) its services nested.
async fn organization_full(
    discovery: &Discovery,
    operator: &str,
    sites: u64,
    full_service: bool,
) -> Result<Value, Status> {
    let query = SiteQuery { operator: Some(operator.to_owned()), limit: NESTED_SERVICES, ..SiteQuery::default() };
    let records = discovery.store.list_sites(&query).await.map_err(status::from_store)?;
    let shape = if full_service { Shape::Full } else { Shape::List };
    let mut organization = hubdir_hsds::organization(operator, sites);
    organization["services"] = records.iter().map(|r| hubdir_hsds::service(r, shape)).collect();
    Ok(organization)
}

async fn organizations(State(doors): State<Doors>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let answer = async {
        let mut out = Violations::default();
        let params = Params::parse(raw.as_deref(), &mut out);
        let full = params.flag("full", &mut out);
        let full_service = params.flag("full_service", &mut out);
        let nested = full || full_service;
        let paging = Paging::read(&params, &mut out, if nested { MAX_FULL_ORGANIZATIONS } else { MAX_PER_PAGE });
        if paging.ndjson && nested {
            out.push("format", ViolationReason::UnknownValue, "ndjson lists organizations without their services");
        }
        let search = params.get("search").map(str::trim).filter(|s| !s.is_empty());
        if search.is_some_and(|s| s.chars().count() > MAX_QUERY_CHARS) {
            out.push("search", ViolationReason::TooLong, format!("at most {MAX_QUERY_CHARS} characters"));
        }
        invalid_unless_empty(&out)?;
        if paging.ndjson {
            return Ok(Answer::Lines(Lines::Organizations { search: search.map(str::to_owned) }));
        }
        let store = &doors.discovery.store;
        let page = store.operators(None, search, paging.offset(), paging.per_page).await.map_err(status::from_store)?;
        let total = store.count_operators(None, search).await.map_err(status::from_store)?;
        let mut contents = Vec::with_capacity(page.len());
        for operator in page {
            let sites = operator.sites.max(0) as u64;
            contents.push(match nested {
                true => organization_full(&doors.discovery, &operator.operator, sites, full_service).await?,
                false => hubdir_hsds::organization(&operator.operator, sites),
            });
        }
        Ok(Answer::Json(hubdir_hsds::page(contents, total, paging.page, paging.per_page)))
    };
    reply(&doors, &headers, answer).await
}

async fn organization(
    State(doors): State<Doors>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let answer = async {
        let mut out = Violations::default();
        let params = Params::parse(raw.as_deref(), &mut out);
        let full_service = params.flag("full_service", &mut out);
        invalid_unless_empty(&out)?;
        let (operator, sites) =
            operator_of(&doors.discovery, &id).await?.ok_or_else(|| not_found("organization", &id))?;
        Ok(Answer::Json(organization_full(&doors.discovery, &operator, sites, full_service).await?))
    };
    reply(&doors, &headers, answer).await
}

/// Whether a taxonomy or term's name or description holds every word of `search`.
fn mentions(value: &Value, words: &[String]) -> bool {
    let text = hubdir_core::search::fold(&format!(
        "{} {}",
        value["name"].as_str().unwrap_or(""),
        value["description"].as_str().unwrap_or("")
    ));
    words.iter().all(|w| text.contains(&format!(" {w}")))
}

async fn taxonomies(State(doors): State<Doors>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let answer = async {
        let mut out = Violations::default();
        let params = Params::parse(raw.as_deref(), &mut out);
        let paging = Paging::read(&params, &mut out, MAX_PER_PAGE);
        let words = search_words(&params, &mut out).unwrap_or_default();
        invalid_unless_empty(&out)?;
        let all = Taxonomy::ALL.iter().map(|t| t.to_json()).filter(|t| mentions(t, &words)).collect();
        Ok(paging.of(all))
    };
    reply(&doors, &headers, answer).await
}

async fn taxonomy(State(doors): State<Doors>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let answer = async {
        let found = Taxonomy::ALL.iter().find(|t| t.id().eq_ignore_ascii_case(&id));
        Ok(Answer::Json(found.ok_or_else(|| not_found("taxonomy", &id))?.to_json()))
    };
    reply(&doors, &headers, answer).await
}

async fn taxonomy_terms(State(doors): State<Doors>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let answer = async {
        let mut out = Violations::default();
        let params = Params::parse(raw.as_deref(), &mut out);
        let paging = Paging::read(&params, &mut out, MAX_PER_PAGE);
        let words = search_words(&params, &mut out).unwrap_or_default();
        // Every term is at the top of its taxonomy: `top_only` keeps them all, and no term
        // has a parent to ask for.
        let _top_only = params.flag("top_only", &mut out);
        invalid_unless_empty(&out)?;
        let taxonomy = params.get("taxonomy_id");
        let all = match params.get("parent_id") {
            Some(_) => Vec::new(),
            None => Taxonomy::all_terms()
                .into_iter()
                .filter(|(t, _)| taxonomy.is_none_or(|id| t.id().eq_ignore_ascii_case(id)))
                .map(|(t, code)| t.term(code))
                .filter(|term| mentions(term, &words))
                .collect(),
        };
        Ok(paging.of(all))
    };
    reply(&doors, &headers, answer).await
}

async fn taxonomy_term(State(doors): State<Doors>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let answer = async {
        let found = Taxonomy::all_terms().into_iter().find(|(t, code)| t.term_id(code).eq_ignore_ascii_case(&id));
        let (taxonomy, code) = found.ok_or_else(|| not_found("taxonomy_term", &id))?;
        Ok(Answer::Json(taxonomy.term(code)))
    };
    reply(&doors, &headers, answer).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centres_cross_the_antimeridian() {
        assert_eq!(centre(std::iter::empty()), None);
        let (lat, lng) = centre([(10.0, 179.0), (10.0, -179.0)].into_iter()).unwrap();
        assert!((lat - 10.0).abs() < 0.01 && (lng.abs() - 180.0).abs() < 1e-9, "{lat} {lng}");
    }
}
