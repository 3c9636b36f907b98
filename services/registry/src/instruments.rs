//! The registry's metrics.

use std::sync::OnceLock;

use opentelemetry::metrics::Counter;

/// `hubdir.import.rows{outcome}`: BatchUpsertSites rows, by outcome (`created`, `updated`,
/// `unchanged`, `rejected`).
pub fn import_rows() -> &'static Counter<u64> {
    static ROWS: OnceLock<Counter<u64>> = OnceLock::new();
    ROWS.get_or_init(|| {
        opentelemetry::global::meter(hubdir_telemetry::SCOPE)
            .u64_counter("hubdir.import.rows")
            .with_description("Rows of BatchUpsertSites streams, by outcome")
            .build()
    })
}
