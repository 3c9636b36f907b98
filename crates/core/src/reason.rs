//! Why a request failed, in one machine-readable word: the `google.rpc.ErrorInfo.reason` of
//! every hubdir error (AIP-193), all in one enum so that the README's table, the gRPC code
//! each maps to (`hubdir_node::status`) and the token interceptor agree.

/// The `ErrorInfo.domain` of every hubdir error.
pub const ERROR_DOMAIN: &str = "hubdir.v1";

/// Every reason a hubdir error may carry. The README's table of reasons lists exactly these
/// (a test checks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A malformed or missing field; the details name each one.
    InvalidArgument,
    /// No token where one is needed, or a bad one.
    Unauthenticated,
    /// The token lacks the grant.
    PermissionDenied,
    /// A write into an origin this node does not write (it applies it from its peers).
    OriginNotOwned,
    SiteNotFound,
    /// No population layer of that name has been imported.
    LayerNotFound,
    SiteAlreadyExists,
    /// The etag sent is not the stored one: re-read and retry.
    EtagMismatch,
    /// The database is unreachable or busy, or the write lost a deadlock: retry.
    StoreUnavailable,
    /// The discovery index is still loading after start: retry shortly.
    IndexLoading,
    /// This process runs without a node key, so it has no identity to publish.
    NoNodeKey,
    /// A summary's scope holds more sites than one call reads.
    ScopeTooLarge,
    /// Anything else; the details are only in the node's log.
    Internal,
}

impl Reason {
    pub const ALL: [Reason; 13] = [
        Reason::InvalidArgument,
        Reason::Unauthenticated,
        Reason::PermissionDenied,
        Reason::OriginNotOwned,
        Reason::SiteNotFound,
        Reason::LayerNotFound,
        Reason::SiteAlreadyExists,
        Reason::EtagMismatch,
        Reason::StoreUnavailable,
        Reason::IndexLoading,
        Reason::NoNodeKey,
        Reason::ScopeTooLarge,
        Reason::Internal,
    ];

    /// The reason as it travels: `SITE_NOT_FOUND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidArgument => "INVALID_ARGUMENT",
            Reason::Unauthenticated => "UNAUTHENTICATED",
            Reason::PermissionDenied => "PERMISSION_DENIED",
            Reason::OriginNotOwned => "ORIGIN_NOT_OWNED",
            Reason::SiteNotFound => "SITE_NOT_FOUND",
            Reason::LayerNotFound => "LAYER_NOT_FOUND",
            Reason::SiteAlreadyExists => "SITE_ALREADY_EXISTS",
            Reason::EtagMismatch => "ETAG_MISMATCH",
            Reason::StoreUnavailable => "STORE_UNAVAILABLE",
            Reason::IndexLoading => "INDEX_LOADING",
            Reason::NoNodeKey => "NO_NODE_KEY",
            Reason::ScopeTooLarge => "SCOPE_TOO_LARGE",
            Reason::Internal => "INTERNAL",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new variant must be added to `ALL` (and so to the README's table): this match stops
    /// compiling until it is given its place.
    fn place(reason: Reason) -> usize {
        match reason {
            Reason::InvalidArgument => 0,
            Reason::Unauthenticated => 1,
            Reason::PermissionDenied => 2,
            Reason::OriginNotOwned => 3,
            Reason::SiteNotFound => 4,
            Reason::LayerNotFound => 5,
            Reason::SiteAlreadyExists => 6,
            Reason::EtagMismatch => 7,
            Reason::StoreUnavailable => 8,
            Reason::IndexLoading => 9,
            Reason::NoNodeKey => 10,
            Reason::ScopeTooLarge => 11,
            Reason::Internal => 12,
        }
    }

    #[test]
    fn all_lists_every_variant_in_its_place() {
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(place(*reason), i, "{reason}");
        }
    }

    #[test]
    fn every_reason_is_listed_once_with_a_distinct_word() {
        let words: std::collections::HashSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(words.len(), Reason::ALL.len());
    }
}
