//! `ListSites` request validation.

use hubdir_core::{CountryCode, Origin, ViolationReason, Violations};
use hubdir_node::page_token;
use hubdir_proto::convert;
use hubdir_proto::v1::ListSitesRequest;
use hubdir_store::SiteQuery;

/// Default and largest `ListSites` page.
pub const DEFAULT_PAGE_SIZE: u64 = 100;
pub const MAX_PAGE_SIZE: u64 = 1000;

/// Validates a `ListSitesRequest` into a store query, without the page position.
pub(crate) fn list_query(req: &ListSitesRequest) -> Result<(SiteQuery, String), Violations> {
    let ListSitesRequest { page_size, page_token: _, origin, country_code, operator, kinds, statuses, modified_after } =
        req;
    let mut out = Violations::default();
    let limit = match *page_size {
        n if n < 0 => {
            out.push("page_size", ViolationReason::OutOfRange, "must not be negative");
            DEFAULT_PAGE_SIZE
        }
        0 => DEFAULT_PAGE_SIZE,
        n => (n as u64).min(MAX_PAGE_SIZE),
    };
    let origin = if origin.is_empty() {
        None
    } else {
        origin.parse::<Origin>().map_err(|e| out.push("origin", ViolationReason::InvalidFormat, e.to_string())).ok()
    };
    let country_code = if country_code.is_empty() {
        None
    } else {
        if CountryCode::parse(country_code).is_none() {
            out.push(
                "country_code",
                ViolationReason::UnknownValue,
                format!("{country_code:?} is not an ISO 3166-1 alpha-2 code"),
            );
        }
        Some(country_code.clone())
    };
    let kinds = kinds
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| match convert::kind_from_proto(*raw) {
            Some(Some(kind)) => Some(kind),
            _ => {
                out.push(format!("kinds[{i}]"), ViolationReason::UnknownValue, format!("{raw} is not a kind"));
                None
            }
        })
        .collect::<Vec<_>>();
    let statuses = statuses
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| match convert::status_from_proto(*raw) {
            Some(Some(status)) => Some(status),
            _ => {
                out.push(
                    format!("statuses[{i}]"),
                    ViolationReason::UnknownValue,
                    format!("{raw} is not a site status"),
                );
                None
            }
        })
        .collect::<Vec<_>>();
    let modified_after = match modified_after {
        None => None,
        Some(ts) => {
            let parsed = convert::from_timestamp(ts);
            if parsed.is_none() {
                out.push("modified_after", ViolationReason::OutOfRange, "not a valid timestamp");
            }
            parsed
        }
    };
    if !out.is_empty() {
        return Err(out);
    }
    let kind_codes: Vec<&str> = kinds.iter().map(|k| k.code()).collect();
    let status_codes: Vec<&str> = statuses.iter().map(|s| s.code()).collect();
    let modified = modified_after.map(|t| t.timestamp_micros().to_string()).unwrap_or_default();
    let filters = page_token::fingerprint(&[
        origin.as_ref().map_or("", Origin::as_str),
        country_code.as_deref().unwrap_or(""),
        operator,
        &kind_codes.join(","),
        &status_codes.join(","),
        &modified,
    ]);
    let operator = (!operator.is_empty()).then(|| operator.clone());
    let query = SiteQuery {
        origin,
        country_code,
        operator,
        kinds,
        statuses,
        modified_after,
        after_name: None,
        limit,
        ..SiteQuery::default()
    };
    Ok((query, filters))
}
