//! Connectivity's metrics.

use std::sync::OnceLock;

use opentelemetry::metrics::{Counter, Gauge};

pub struct Instruments {
    /// `hubdir.connectivity.measurements{outcome, reason}`: `accepted`, `duplicate`, or
    /// `refused` with the refusal's code.
    pub measurements: Counter<u64>,
    /// `hubdir.connectivity.quarantine.rows`: refused measurements kept, after each batch
    /// that added some and after each pruning.
    pub quarantine_rows: Gauge<u64>,
}

pub fn get() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter(hubdir_telemetry::SCOPE);
        Instruments {
            measurements: meter
                .u64_counter("hubdir.connectivity.measurements")
                .with_description("Connectivity measurements received, by outcome and refusal reason")
                .build(),
            quarantine_rows: meter
                .u64_gauge("hubdir.connectivity.quarantine.rows")
                .with_description("Refused measurements kept in the quarantine")
                .build(),
        }
    })
}

/// Counts the quarantine for `hubdir.connectivity.quarantine.rows`; a failed count is
/// skipped (the next one reports), never an error of the call that asked.
pub async fn record_quarantine_size(store: &hubdir_store::Store) {
    match store.quarantine_size().await {
        Ok(rows) => get().quarantine_rows.record(rows, &[]),
        Err(err) => tracing::debug!(error = %err, "counting the quarantine failed"),
    }
}
