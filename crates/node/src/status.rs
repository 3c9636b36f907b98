//! Domain errors to gRPC statuses, with `google.rpc` details (AIP-193). One exhaustive match
//! per error type, a deliberately small set of codes, and never database text for a client:
//! internal errors reach the client as an opaque message and the log gets the whole chain.
//! Each [`Reason`] has one gRPC code, given here; handlers build statuses through the named
//! constructors below rather than by hand.

use std::collections::HashMap;

use hubdir_core::Violations;
pub use hubdir_core::{ERROR_DOMAIN, Reason};
use hubdir_store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// The gRPC code every error with this reason carries.
pub fn code(reason: Reason) -> Code {
    match reason {
        Reason::InvalidArgument => Code::InvalidArgument,
        Reason::Unauthenticated => Code::Unauthenticated,
        Reason::PermissionDenied | Reason::OriginNotOwned => Code::PermissionDenied,
        Reason::SiteNotFound | Reason::LayerNotFound => Code::NotFound,
        Reason::SiteAlreadyExists => Code::AlreadyExists,
        // AIP-154: a stale etag is ABORTED, so the client re-reads and retries.
        Reason::EtagMismatch => Code::Aborted,
        Reason::StoreUnavailable | Reason::IndexLoading => Code::Unavailable,
        Reason::NoNodeKey | Reason::ScopeTooLarge => Code::FailedPrecondition,
        Reason::Internal => Code::Internal,
    }
}

/// INVALID_ARGUMENT with one `BadRequest` field violation per refused field.
pub fn invalid_argument(violations: &Violations) -> Status {
    let field_violations =
        violations.0.iter().map(|v| field_violation(&v.field, v.reason.code(), &v.description)).collect();
    bad_request(violations.to_string(), field_violations)
}

/// One `google.rpc.BadRequest.FieldViolation` with its machine-readable reason.
pub fn field_violation(field: &str, reason: &str, description: &str) -> FieldViolation {
    FieldViolation { reason: reason.to_owned(), ..FieldViolation::new(field, description) }
}

/// The most bytes of field violations one error carries: gRPC clients refuse trailers past
/// 8-16 KB, and an error must never be larger than it needs to be.
pub const MAX_VIOLATION_BYTES: usize = 8 * 1024;
/// The longest error message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Cuts `text` to at most `max` bytes, at a character boundary, saying so.
pub fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub(32);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let total = text.len();
        text.truncate(end);
        text.push_str(&format!("... ({total} bytes in all)"));
    }
    text
}

/// INVALID_ARGUMENT with a message of the caller's and the given field violations: as many
/// as fit in [`MAX_VIOLATION_BYTES`], then one `TRUNCATED` entry counting those left out
/// (also in the `ErrorInfo` metadata as `omitted_violations`).
pub fn bad_request(message: String, field_violations: Vec<FieldViolation>) -> Status {
    let total = field_violations.len();
    let mut kept = Vec::new();
    let mut size = 0;
    for violation in field_violations {
        let violation = FieldViolation {
            field: truncate(violation.field, 256),
            description: truncate(violation.description, 512),
            ..violation
        };
        size += violation.field.len() + violation.reason.len() + violation.description.len();
        if size > MAX_VIOLATION_BYTES {
            break;
        }
        kept.push(violation);
    }
    let mut metadata = HashMap::new();
    let omitted = total - kept.len();
    if omitted > 0 {
        metadata.insert("omitted_violations".to_owned(), omitted.to_string());
        kept.push(field_violation("", "TRUNCATED", &format!("{omitted} more field violations left out")));
    }
    let mut details = ErrorDetails::with_error_info(Reason::InvalidArgument.as_str(), ERROR_DOMAIN, metadata);
    details.set_bad_request(kept);
    Status::with_error_details(Code::InvalidArgument, truncate(message, MAX_MESSAGE_BYTES), details)
}

/// A status with the code of `reason` and an `ErrorInfo` carrying it.
pub fn with_reason(reason: Reason, message: impl Into<String>, metadata: HashMap<String, String>) -> Status {
    let details = ErrorDetails::with_error_info(reason.as_str(), ERROR_DOMAIN, metadata);
    Status::with_error_details(code(reason), message, details)
}

fn naming_site(name: &str) -> HashMap<String, String> {
    HashMap::from([("site".to_owned(), truncate(name.to_owned(), 256))])
}

/// NOT_FOUND: no site of that name.
pub fn site_not_found(name: &impl std::fmt::Display) -> Status {
    let name = &name.to_string();
    with_reason(Reason::SiteNotFound, format!("site {name} does not exist"), naming_site(name))
}

/// ABORTED: the etag sent is not the stored one.
pub fn etag_mismatch(name: &impl std::fmt::Display) -> Status {
    let name = &name.to_string();
    with_reason(
        Reason::EtagMismatch,
        format!("site {name} has changed since the etag sent was read: re-read it"),
        naming_site(name),
    )
}

/// INTERNAL with an opaque message; `what` goes to the log only.
pub fn internal(what: impl std::fmt::Display) -> Status {
    tracing::error!(what = %what, "internal error");
    with_reason(Reason::Internal, "internal error", HashMap::new())
}

/// UNAVAILABLE: the database cannot be reached now; `source` goes to the log only.
pub fn store_unavailable(source: impl std::fmt::Display) -> Status {
    tracing::error!(error = %source, "store unavailable");
    with_reason(Reason::StoreUnavailable, "the node's database is unavailable; retry later", HashMap::new())
}

/// Maps a store error; database details are logged here and never sent.
pub fn from_store(err: StoreError) -> Status {
    match err {
        StoreError::NotFound(ref name) => site_not_found(name),
        StoreError::AlreadyExists(ref name) => {
            with_reason(Reason::SiteAlreadyExists, err.to_string(), naming_site(name))
        }
        StoreError::EtagMismatch { ref name, .. } => etag_mismatch(name),
        // A node writes only its own origin; others arrive signed from their peers.
        StoreError::NotOwned { ref origin, .. } => origin_not_owned(origin, err.to_string()),
        StoreError::Unavailable(source) => store_unavailable(source),
        StoreError::Connect { target, cause } => store_unavailable(format!("{target}: {cause}")),
        StoreError::Database(source) => internal(format!("database error: {source}")),
        StoreError::Corrupt(what) => internal(format!("corrupt stored data: {what}")),
        StoreError::Schema(what) => internal(format!("database schema: {what}")),
    }
}

/// PERMISSION_DENIED for a write into an origin this node does not write.
pub fn origin_not_owned(origin: &str, message: String) -> Status {
    let metadata = HashMap::from([("origin".to_owned(), origin.to_owned())]);
    with_reason(Reason::OriginNotOwned, message, metadata)
}

/// UNAUTHENTICATED or PERMISSION_DENIED, with the reason in the message.
pub fn from_denied(denied: hubdir_auth::Denied) -> Status {
    match denied {
        hubdir_auth::Denied::Unauthenticated(why) => with_reason(Reason::Unauthenticated, why, HashMap::new()),
        hubdir_auth::Denied::PermissionDenied(why) => with_reason(Reason::PermissionDenied, why, HashMap::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubdir_core::ViolationReason;

    fn db_err() -> sea_orm::DbErr {
        sea_orm::DbErr::Custom("relation \"sites\" does not exist at character 15".into())
    }

    #[test]
    fn every_store_error_has_its_code_and_no_database_text() {
        let cases = [
            (StoreError::NotFound("sites/zw/1".into()), Code::NotFound, "SITE_NOT_FOUND"),
            (StoreError::AlreadyExists("sites/zw/1".into()), Code::AlreadyExists, "SITE_ALREADY_EXISTS"),
            (
                StoreError::EtagMismatch { name: "sites/zw/1".into(), expected: "x".into() },
                Code::Aborted,
                "ETAG_MISMATCH",
            ),
            (
                StoreError::NotOwned { origin: "fr".into(), why: hubdir_store::NotOwned::AppliedFromPeers },
                Code::PermissionDenied,
                "ORIGIN_NOT_OWNED",
            ),
            (StoreError::Unavailable(db_err()), Code::Unavailable, "STORE_UNAVAILABLE"),
            (StoreError::Database(db_err()), Code::Internal, "INTERNAL"),
            (StoreError::Corrupt("bad json at sites/zw/1".into()), Code::Internal, "INTERNAL"),
        ];
        for (err, code, reason) in cases {
            let status = from_store(err);
            assert_eq!(status.code(), code);
            assert!(!status.message().contains("relation"), "{}", status.message());
            assert!(!status.message().contains("bad json"), "{}", status.message());
            let info = status.get_details_error_info().expect("ErrorInfo attached");
            assert_eq!(info.reason, reason);
            assert_eq!(info.domain, ERROR_DOMAIN);
        }
    }

    /// Finding 4: 100,000 violations made 13.9 MB of trailers, past what clients accept.
    #[test]
    fn error_details_are_capped_with_a_count_of_what_was_left_out() {
        let violations: Vec<FieldViolation> = (0..100_000)
            .map(|i| field_violation(&format!("sites[{i}].name"), "INVALID_FORMAT", &"x".repeat(2000)))
            .collect();
        let status = bad_request("m".repeat(1 << 20), violations);
        assert!(status.message().len() <= MAX_MESSAGE_BYTES);
        let bad = status.get_details_bad_request().unwrap();
        let size: usize = bad.field_violations.iter().map(|v| v.field.len() + v.description.len()).sum();
        assert!(size <= MAX_VIOLATION_BYTES + 100, "{size}");
        let last = bad.field_violations.last().unwrap();
        assert_eq!(last.reason, "TRUNCATED");
        let kept = bad.field_violations.len() - 1;
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.metadata["omitted_violations"], (100_000 - kept).to_string());
        assert!(status.details().len() < 16 * 1024, "{} bytes of details", status.details().len());
    }

    #[test]
    fn violations_become_field_violations() {
        let mut v = Violations::default();
        v.push("location.latitude", ViolationReason::OutOfRange, "must be in [-90, 90]");
        v.push("name", ViolationReason::InvalidFormat, "bad");
        let status = invalid_argument(&v);
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status.get_details_bad_request().unwrap();
        let fields: Vec<_> = bad.field_violations.iter().map(|f| (f.field.as_str(), f.reason.as_str())).collect();
        assert_eq!(fields, vec![("location.latitude", "OUT_OF_RANGE"), ("name", "INVALID_FORMAT")]);
    }

    /// The README's table of reasons is the API's documentation: it must list exactly the
    /// reasons there are, each with the code it travels with.
    #[test]
    fn the_readme_table_lists_every_reason_with_its_code() {
        let readme = include_str!("../../../README.md");
        let table = readme.split("| situation | code | reason |").nth(1).expect("README has the table of reasons");
        let mut listed = Vec::new();
        for row in table.lines().skip(2).take_while(|line| line.starts_with('|')) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let word = |cell: &str| cell.split('`').nth(1).unwrap_or_default().to_owned();
            listed.push((word(cells[2]), word(cells[3])));
        }
        let mut expected: Vec<(String, String)> = Reason::ALL
            .iter()
            .map(|&r| (format!("{:?}", code(r)), r.as_str().to_owned()))
            .map(|(code, reason)| (screaming(&code), reason))
            .collect();
        listed.sort();
        expected.sort();
        assert_eq!(listed, expected, "README.md's table of reasons differs from hubdir_core::Reason");
    }

    /// `NotFound` -> `NOT_FOUND`, as gRPC spells its codes.
    fn screaming(camel: &str) -> String {
        let mut out = String::new();
        for (i, c) in camel.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    }
}
