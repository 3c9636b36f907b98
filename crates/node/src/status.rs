//! Domain errors to gRPC statuses, with `google.rpc` details (AIP-193). One exhaustive match
//! per error type, a deliberately small set of codes, and never database text for a client:
//! internal errors reach the client as an opaque message and the log gets the whole chain.

use std::collections::HashMap;

use hubdir_core::Violations;
use hubdir_store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// The `ErrorInfo.domain` of every hubdir error.
pub const ERROR_DOMAIN: &str = "hubdir.v1";

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
    let mut details = ErrorDetails::with_error_info("INVALID_ARGUMENT", ERROR_DOMAIN, metadata);
    details.set_bad_request(kept);
    Status::with_error_details(Code::InvalidArgument, truncate(message, MAX_MESSAGE_BYTES), details)
}

/// A status with an `ErrorInfo` whose reason is machine-readable.
pub fn with_reason(code: Code, reason: &str, message: impl Into<String>, metadata: HashMap<String, String>) -> Status {
    Status::with_error_details(code, message, ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata))
}

/// Maps a store error; database details are logged here and never sent.
pub fn from_store(err: StoreError) -> Status {
    let site = |name: &str| HashMap::from([("site".to_owned(), name.to_owned())]);
    match err {
        StoreError::NotFound(ref name) => with_reason(Code::NotFound, "SITE_NOT_FOUND", err.to_string(), site(name)),
        StoreError::AlreadyExists(ref name) => {
            with_reason(Code::AlreadyExists, "SITE_ALREADY_EXISTS", err.to_string(), site(name))
        }
        // AIP-154: a stale etag is ABORTED, so the client re-reads and retries.
        StoreError::EtagMismatch { ref name, .. } => {
            with_reason(Code::Aborted, "ETAG_MISMATCH", err.to_string(), site(name))
        }
        // A node writes only its own origin; others arrive signed from their peers.
        StoreError::NotOwned { ref origin, .. } => origin_not_owned(origin, err.to_string()),
        StoreError::Unavailable(ref source) => {
            tracing::error!(error = %source, "store unavailable");
            with_reason(
                Code::Unavailable,
                "STORE_UNAVAILABLE",
                "the node's database is unavailable; retry later",
                HashMap::new(),
            )
        }
        StoreError::Database(ref source) => {
            tracing::error!(error = %source, "database error");
            with_reason(Code::Internal, "INTERNAL", "internal error", HashMap::new())
        }
        StoreError::Corrupt(ref what) => {
            tracing::error!(what = %what, "corrupt stored data");
            with_reason(Code::Internal, "INTERNAL", "internal error", HashMap::new())
        }
    }
}

/// PERMISSION_DENIED for a write into an origin this node does not write.
pub fn origin_not_owned(origin: &str, message: String) -> Status {
    let metadata = HashMap::from([("origin".to_owned(), origin.to_owned())]);
    with_reason(Code::PermissionDenied, "ORIGIN_NOT_OWNED", message, metadata)
}

/// UNAUTHENTICATED or PERMISSION_DENIED, with the reason in the message.
pub fn from_denied(denied: hubdir_auth::Denied) -> Status {
    match denied {
        hubdir_auth::Denied::Unauthenticated(why) => {
            with_reason(Code::Unauthenticated, "UNAUTHENTICATED", why, HashMap::new())
        }
        hubdir_auth::Denied::PermissionDenied(why) => {
            with_reason(Code::PermissionDenied, "PERMISSION_DENIED", why, HashMap::new())
        }
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
}
