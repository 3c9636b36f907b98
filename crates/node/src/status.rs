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

/// INVALID_ARGUMENT with a message of the caller's and the given field violations.
pub fn bad_request(message: String, field_violations: Vec<FieldViolation>) -> Status {
    let mut details = ErrorDetails::with_error_info("INVALID_ARGUMENT", ERROR_DOMAIN, HashMap::new());
    details.set_bad_request(field_violations);
    Status::with_error_details(Code::InvalidArgument, message, details)
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
