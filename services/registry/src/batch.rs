//! `BatchUpsertSites`: many rows from a client stream, one result per row.
//!
//! Row by row (the default): every valid row is written, in transactions of `CHUNK` rows as
//! they arrive, and every invalid or unauthorised row is reported with its errors. Atomic
//! (`atomic` set on the first message): if any row is refused, nothing is written and the
//! call fails with INVALID_ARGUMENT listing the refused fields as `sites[ROW].FIELD`; otherwise
//! all rows are written in one transaction. Either way a row identical to the stored site is
//! UNCHANGED and appends nothing to the change log, so replaying a batch is a no-op; a name
//! repeated within one stream is refused (DUPLICATE). A row may not overwrite a stored site
//! that another operator or origin owns (PERMISSION_DENIED on `operator` or `name`).

use std::collections::HashSet;

use hubdir_auth::{Denied, Principal};
use hubdir_core::{Origin, Site, SiteName, ViolationReason, Violations};
use hubdir_node::status;
use hubdir_proto::convert;
use hubdir_proto::v1::{BatchUpsertSitesRequest, BatchUpsertSitesResponse, FieldError, RowOutcome, RowResult};
use hubdir_store::{Applied, Change, Precondition, Store, Write};
use opentelemetry::KeyValue;
use tonic::{Status, Streaming};

/// The most rows one stream may carry; larger imports use several streams.
pub const MAX_BATCH_ROWS: usize = 50_000;
/// Rows per transaction in row-by-row mode.
const CHUNK: usize = 500;
/// The most field violations an atomic refusal lists.
const MAX_LISTED_VIOLATIONS: usize = 100;
/// The most bytes of encoded sites an atomic batch holds before it is written.
pub const MAX_ATOMIC_BYTES: usize = 64 << 20;
/// Echoed names are cut to this many bytes.
const ECHO_BYTES: usize = 160;
/// The most errors one row reports, and the longest description.
const MAX_ROW_ERRORS: usize = 20;
const MAX_DESCRIPTION_BYTES: usize = 512;
/// Past this many bytes of echoed names and errors in one response, rows report their first
/// error's field and reason only, and no name: the response stays bounded whatever is sent.
const MAX_ECHO_BYTES: usize = 1 << 20;

pub async fn run(
    store: &Store,
    own: &Origin,
    caller: &Principal,
    mut stream: Streaming<BatchUpsertSitesRequest>,
) -> Result<BatchUpsertSitesResponse, Status> {
    let mut atomic = None;
    let mut results = Results::default();
    let mut atomic_bytes = 0usize;
    let mut pending: Vec<(usize, Site)> = Vec::new();
    let mut seen = HashSet::new();
    while let Some(message) = stream.message().await? {
        let BatchUpsertSitesRequest { sites, atomic: requested } = message;
        let atomic = *atomic.get_or_insert(requested);
        for site in sites {
            let row = results.rows.len();
            if row >= MAX_BATCH_ROWS {
                let mut v = Violations::default();
                v.push("sites", ViolationReason::TooMany, format!("a batch holds at most {MAX_BATCH_ROWS} rows; send more in another stream (rows before this one in row-by-row mode are written, and replaying them is a no-op)"));
                return Err(status::invalid_argument(&v));
            }
            if atomic {
                atomic_bytes += prost::Message::encoded_len(&site);
                if atomic_bytes > MAX_ATOMIC_BYTES {
                    let mut v = Violations::default();
                    v.push("sites", ViolationReason::TooLong, format!("an atomic batch holds at most {MAX_ATOMIC_BYTES} bytes of sites; nothing was written: split it, or send it row by row"));
                    return Err(status::invalid_argument(&v));
                }
            }
            let name = results.echo(&site.name);
            let mut result =
                RowResult { row: row as i64, name, outcome: RowOutcome::Unspecified.into(), errors: vec![] };
            match convert::site_from_proto(site) {
                Err(violations) => results.reject(&mut result, convert::field_errors(&violations)),
                // Another node's origin arrives only through its signed feed.
                Ok((site, _etag)) if site.name.origin() != own => results.reject(
                    &mut result,
                    vec![field_error(
                        "name",
                        "ORIGIN_NOT_OWNED",
                        format!(
                            "origin {} is not this node's ({own}): it arrives from its own node",
                            site.name.origin()
                        ),
                    )],
                ),
                Ok((site, _etag)) => match caller.require_publisher_of(&site.name, &site.operator) {
                    Err(denied) => results.reject(&mut result, vec![denied_error(caller, &site.name, denied)]),
                    // One name twice in a stream would make every replay flip it back and forth.
                    Ok(()) if !seen.insert(site.name.clone()) => results.reject(
                        &mut result,
                        vec![field_error(
                            "name",
                            "DUPLICATE",
                            format!("{} is already an earlier row of this batch", site.name),
                        )],
                    ),
                    Ok(()) => pending.push((row, site)),
                },
            }
            results.rows.push(result);
            if !atomic && pending.len() >= CHUNK {
                let owned = keep_own_sites(store, caller, &mut pending, &mut results).await?;
                flush(store, owned, &mut results.rows).await?;
            }
        }
    }
    let owned = keep_own_sites(store, caller, &mut pending, &mut results).await?;
    let results = &mut results.rows;
    if atomic == Some(true) {
        refuse_if_any_rejected(results)?;
    }
    flush(store, owned, results).await?;

    let count = |outcome: RowOutcome| results.iter().filter(|r| r.outcome == i32::from(outcome)).count() as i64;
    for (outcome, label) in [
        (RowOutcome::Created, "created"),
        (RowOutcome::Updated, "updated"),
        (RowOutcome::Unchanged, "unchanged"),
        (RowOutcome::Rejected, "rejected"),
    ] {
        crate::instruments::import_rows().add(count(outcome) as u64, &[KeyValue::new("outcome", label)]);
    }
    Ok(BatchUpsertSitesResponse {
        created_count: count(RowOutcome::Created),
        updated_count: count(RowOutcome::Updated),
        unchanged_count: count(RowOutcome::Unchanged),
        rejected_count: count(RowOutcome::Rejected),
        results: std::mem::take(results),
    })
}

/// Rejects pending rows that would overwrite a site another operator runs, and turns the
/// rest into writes guarded by what was read: the stored etag, or absence. A site changed
/// between the read and the write fails the chunk with ABORTED rather than slip through.
async fn keep_own_sites(
    store: &Store,
    caller: &Principal,
    pending: &mut Vec<(usize, Site)>,
    results: &mut Results,
) -> Result<Vec<(usize, Write)>, Status> {
    let names: Vec<SiteName> = pending.iter().map(|(_, site)| site.name.clone()).collect();
    let stored = store.get_sites(&names).await.map_err(status::from_store)?;
    let mut writes = Vec::with_capacity(pending.len());
    for (row, site) in pending.drain(..) {
        let precondition = match stored.get(&site.name.to_string()) {
            None => Precondition::Absent,
            Some(record) => match caller.require_publisher_of(&record.site.name, &record.site.operator) {
                Ok(()) => Precondition::Etag(record.etag.clone()),
                Err(denied) => {
                    results.reject_row(row, vec![denied_error(caller, &record.site.name, denied)]);
                    continue;
                }
            },
        };
        writes.push((row, Write { change: Change::Upsert(Box::new(site)), precondition }));
    }
    Ok(writes)
}

/// The rows' results, with the bytes they echo kept under [`MAX_ECHO_BYTES`].
#[derive(Default)]
struct Results {
    rows: Vec<RowResult>,
    echoed: usize,
}

impl Results {
    fn within_budget(&self) -> bool {
        self.echoed <= MAX_ECHO_BYTES
    }

    /// A row's name as echoed back: cut, and dropped once the budget is spent.
    fn echo(&mut self, name: &str) -> String {
        if !self.within_budget() {
            return String::new();
        }
        let name = status::truncate(name.to_owned(), ECHO_BYTES);
        self.echoed += name.len();
        name
    }

    fn reject(&mut self, result: &mut RowResult, mut errors: Vec<FieldError>) {
        errors.truncate(if self.within_budget() { MAX_ROW_ERRORS } else { 1 });
        for error in &mut errors {
            error.description = if self.within_budget() {
                status::truncate(std::mem::take(&mut error.description), MAX_DESCRIPTION_BYTES)
            } else {
                String::new()
            };
            self.echoed += error.field.len() + error.reason.len() + error.description.len();
        }
        result.outcome = RowOutcome::Rejected.into();
        result.errors = errors;
    }

    fn reject_row(&mut self, row: usize, errors: Vec<FieldError>) {
        let mut result = std::mem::take(&mut self.rows[row]);
        self.reject(&mut result, errors);
        self.rows[row] = result;
    }
}

fn field_error(field: &str, reason: &str, description: String) -> FieldError {
    FieldError { field: field.into(), reason: reason.into(), description }
}

/// A refusal names the field that differs from the token's grant: the origin (in `name`) or
/// the `operator`.
fn denied_error(caller: &Principal, name: &SiteName, denied: Denied) -> FieldError {
    let field = if caller.origin.as_ref() == Some(name.origin()) { "operator" } else { "name" };
    field_error(field, "PERMISSION_DENIED", denied.to_string())
}

fn refuse_if_any_rejected(results: &[RowResult]) -> Result<(), Status> {
    let rejected: Vec<&RowResult> = results.iter().filter(|r| r.outcome == i32::from(RowOutcome::Rejected)).collect();
    let Some(first) = rejected.first() else { return Ok(()) };
    let violations = rejected
        .iter()
        .flat_map(|row| {
            row.errors
                .iter()
                .map(|e| status::field_violation(&format!("sites[{}].{}", row.row, e.field), &e.reason, &e.description))
        })
        .take(MAX_LISTED_VIOLATIONS)
        .collect();
    let first_error = first.errors.first().map(|e| format!("sites[{}].{}: {}", first.row, e.field, e.description));
    let message = format!(
        "atomic batch refused, nothing written: {} of {} rows are invalid or not yours to publish; first: {}",
        rejected.len(),
        results.len(),
        first_error.unwrap_or_default()
    );
    Err(status::bad_request(message, violations))
}

/// Writes the rows in one transaction and records each row's outcome.
async fn flush(store: &Store, writes: Vec<(usize, Write)>, results: &mut [RowResult]) -> Result<(), Status> {
    if writes.is_empty() {
        return Ok(());
    }
    let (rows, writes): (Vec<usize>, Vec<Write>) = writes.into_iter().unzip();
    let applied = store.write(writes).await.map_err(status::from_store)?;
    for (row, applied) in rows.into_iter().zip(applied) {
        results[row].outcome = match applied {
            Applied::Created(_) => RowOutcome::Created,
            Applied::Updated(_) => RowOutcome::Updated,
            Applied::Unchanged(_) => RowOutcome::Unchanged,
            Applied::Deleted { .. } | Applied::AlreadyAbsent(_) => RowOutcome::Unspecified,
        }
        .into();
    }
    Ok(())
}
