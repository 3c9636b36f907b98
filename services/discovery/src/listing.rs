//! `SearchSites` and `ListSitesInCell`: pages of sites read from the store in name order,
//! with the same filters as `FindNearest`.
//!
//! The store narrows by country, cell range, status, text and name; the rest of
//! the filter is checked here on each row. One call reads at most [`SCAN_BUDGET`] rows: a
//! sparse filter may answer a short (even empty) page with a token to continue, as AIP-158
//! allows, rather than scanning a whole country in one request.

use hubdir_core::Filter;
use hubdir_core::search::{MAX_QUERY_WORDS, query_words};
use hubdir_core::{CountryCode, SiteRecord, ViolationReason, Violations};
use hubdir_geo::{CellIndex, MIN_LIST_RESOLUTION};
use hubdir_node::page_token::{self, PageTokens};
use hubdir_node::status;
use hubdir_proto::convert;
use hubdir_proto::v1::{
    self as pb, ListSitesInCellRequest, ListSitesInCellResponse, SearchSitesRequest, SearchSitesResponse,
};
use hubdir_store::{SiteQuery, Store, TextMatch};
use prost::Message;
use tonic::Status;

/// The most stored rows one call reads.
pub const SCAN_BUDGET: usize = 10_000;
/// Rows per store read while scanning.
const ROWS_PER_READ: u64 = 500;
/// Longest text query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

pub const SEARCH_PAGE: (i32, i32) = (50, 500);
pub const CELL_PAGE: (i32, i32) = (100, 1000);

fn page_size(out: &mut Violations, requested: i32, (default, max): (i32, i32)) -> usize {
    match requested {
        0 => default as usize,
        n if (1..=max).contains(&n) => n as usize,
        _ => {
            out.push("page_size", ViolationReason::OutOfRange, format!("must be in 1..{max}, or 0 for {default}"));
            default as usize
        }
    }
}

/// A cell from its hexadecimal form, no coarser than [`MIN_LIST_RESOLUTION`].
fn cell(out: &mut Violations, field: &str, text: &str) -> Option<CellIndex> {
    let Ok(cell) = text.parse::<CellIndex>() else {
        let shown = hubdir_core::echo(text);
        out.push(field, ViolationReason::InvalidFormat, format!("{shown} is not an H3 cell index in hexadecimal"));
        return None;
    };
    if cell.resolution() < MIN_LIST_RESOLUTION {
        out.push(
            field,
            ViolationReason::OutOfRange,
            format!(
                "resolution {} is coarser than the coarsest this server lists, {}; list its children instead",
                u8::from(cell.resolution()),
                u8::from(MIN_LIST_RESOLUTION)
            ),
        );
        return None;
    }
    Some(cell)
}

/// What one scan found, and where the next one starts (`None`: nothing is left).
struct Scanned {
    records: Vec<SiteRecord>,
    resume_after: Option<String>,
}

/// Reads rows matching `query` in name order after `query.after_name`, keeps those `filter`
/// accepts, and stops at `want` of them or after `budget` rows.
async fn scan(
    store: &Store,
    mut query: SiteQuery,
    filter: &Filter,
    want: usize,
    budget: &mut usize,
) -> Result<Scanned, Status> {
    let mut records = Vec::new();
    let mut matcher = hubdir_geo::Matcher::new(filter);
    loop {
        query.limit = ROWS_PER_READ.min(*budget as u64).max(1);
        let rows = store.list_sites(&query).await.map_err(status::from_store)?;
        let exhausted = (rows.len() as u64) < query.limit;
        let names: Vec<String> = rows.iter().map(|r| r.site.name.to_string()).collect();
        let statuses = store.latest_summaries_of(&names).await.map_err(status::from_store)?;
        for (record, name) in rows.into_iter().zip(names) {
            *budget = budget.saturating_sub(1);
            let matches = matcher.matches(&record.site, statuses.get(&name));
            query.after_name = Some(name);
            if matches {
                records.push(record);
                if records.len() == want {
                    return Ok(Scanned { records, resume_after: query.after_name });
                }
            }
            if *budget == 0 {
                return Ok(Scanned { records, resume_after: query.after_name });
            }
        }
        if exhausted {
            return Ok(Scanned { records, resume_after: None });
        }
    }
}

/// The fingerprint a page token is bound to.
fn fingerprint(parts: &[&str], filter: &Option<pb::SiteFilter>) -> String {
    let filter = filter.as_ref().map(|f| f.encode_to_vec()).unwrap_or_default();
    let filter: String = filter.iter().map(|b| format!("{b:02x}")).collect();
    let mut all = parts.to_vec();
    all.push(&filter);
    page_token::fingerprint(&all)
}

pub async fn in_cell(
    store: &Store,
    tokens: &PageTokens,
    request: ListSitesInCellRequest,
) -> Result<ListSitesInCellResponse, Status> {
    let ListSitesInCellRequest { h3_cell, filter, page_size: requested, page_token: token, view } = request;
    let mut out = Violations::default();
    let cell = cell(&mut out, "h3_cell", &h3_cell);
    let want = page_size(&mut out, requested, CELL_PAGE);
    let fingerprint = fingerprint(&[&h3_cell], &filter);
    let filter = convert::filter_from_proto(filter.unwrap_or_default(), &mut out);
    let view = convert::view_from_proto(view, "view", &mut out);
    let after = tokens.decode(&token, &fingerprint).unwrap_or_else(|v| {
        out.0.extend(v.0);
        None
    });
    let Some(cell) = cell.filter(|_| out.is_empty()) else { return Err(status::invalid_argument(&out)) };
    let query = SiteQuery {
        h3_range: Some(hubdir_geo::descendant_range(cell)),
        statuses: filter.statuses_or_open(),
        after_name: after,
        ..SiteQuery::default()
    };
    let mut budget = SCAN_BUDGET;
    let found = scan(store, query, &filter, want, &mut budget).await?;
    Ok(ListSitesInCellResponse {
        sites: found
            .records
            .into_iter()
            .map(|record| convert::in_view(convert::record_to_proto(record), view))
            .collect(),
        next_page_token: found.resume_after.map(|after| tokens.encode(&after, &fingerprint)).unwrap_or_default(),
    })
}

/// Search results come in two groups, each in name order: sites whose display name holds
/// every word, then sites that match only through their address.
const GROUPS: usize = 2;

fn text_match(group: usize, words: &[String]) -> TextMatch {
    if group == 0 { TextMatch::InName(words.to_vec()) } else { TextMatch::InAddressNotName(words.to_vec()) }
}

pub async fn search(
    store: &Store,
    tokens: &PageTokens,
    request: SearchSitesRequest,
) -> Result<SearchSitesResponse, Status> {
    let SearchSitesRequest { query, country_code, h3_cell, filter, page_size: requested, page_token: token, view } =
        request;
    let mut out = Violations::default();
    let words = query_words(&query);
    if query.chars().count() > MAX_QUERY_CHARS {
        out.push("query", ViolationReason::TooLong, format!("at most {MAX_QUERY_CHARS} characters"));
    } else if words.is_empty() {
        out.push("query", ViolationReason::Required, "give at least one word to look for");
    } else if words.len() > MAX_QUERY_WORDS {
        out.push("query", ViolationReason::TooMany, format!("at most {MAX_QUERY_WORDS} different words"));
    }
    let country = (!country_code.is_empty()).then(|| CountryCode::parse(&country_code));
    if country.as_ref().is_some_and(Option::is_none) {
        out.push(
            "country_code",
            ViolationReason::InvalidFormat,
            format!("{} is not an ISO 3166-1 alpha-2 code", hubdir_core::echo(&country_code)),
        );
    }
    let cell = (!h3_cell.is_empty()).then(|| cell(&mut out, "h3_cell", &h3_cell)).flatten();
    if country_code.is_empty() && h3_cell.is_empty() {
        out.push("country_code", ViolationReason::Required, "search within a country (or an H3 cell: h3_cell)");
    }
    let want = page_size(&mut out, requested, SEARCH_PAGE);
    let fingerprint = fingerprint(&[&query, &country_code, &h3_cell], &filter);
    let filter = convert::filter_from_proto(filter.unwrap_or_default(), &mut out);
    let view = convert::view_from_proto(view, "view", &mut out);
    let resume = tokens
        .decode(&token, &fingerprint)
        .map(|after| after.map(|a| a.split_once('\t').map(|(g, n)| (g.parse::<usize>(), n.to_owned()))))
        .unwrap_or_else(|v| {
            out.0.extend(v.0);
            None
        });
    let (mut group, mut after) = match resume {
        None => (0, None),
        Some(Some((Ok(group), name))) if group < GROUPS => (group, Some(name)),
        Some(_) => {
            out.push("page_token", ViolationReason::InvalidFormat, "not a page token this server issued");
            (0, None)
        }
    };
    if !out.is_empty() {
        return Err(status::invalid_argument(&out));
    }
    let mut sites = Vec::new();
    let mut budget = SCAN_BUDGET;
    let mut next_page_token = String::new();
    while group < GROUPS {
        let query = SiteQuery {
            country_code: country.clone().flatten().map(|c| c.to_string()),
            h3_range: cell.map(hubdir_geo::descendant_range),
            text: Some(text_match(group, &words)),
            statuses: filter.statuses_or_open(),
            after_name: after.take(),
            ..SiteQuery::default()
        };
        let found = scan(store, query, &filter, want - sites.len(), &mut budget).await?;
        sites.extend(found.records.into_iter().map(|record| convert::in_view(convert::record_to_proto(record), view)));
        match found.resume_after {
            Some(name) => {
                next_page_token = tokens.encode(&format!("{group}\t{name}"), &fingerprint);
                break;
            }
            None if sites.len() == want && group + 1 < GROUPS => {
                next_page_token = tokens.encode(&format!("{}\t", group + 1), &fingerprint);
                break;
            }
            None => group += 1,
        }
    }
    Ok(SearchSitesResponse { sites, next_page_token })
}
