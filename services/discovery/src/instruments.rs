//! The discovery index's metrics.

use std::sync::OnceLock;

use opentelemetry::metrics::Gauge;

pub struct Instruments {
    /// `hubdir.index.sites`: sites in the index.
    pub sites: Gauge<u64>,
    /// `hubdir.index.applied_seq{origin}`: the last change-log seq the index has applied.
    pub applied_seq: Gauge<u64>,
    /// `hubdir.index.load.duration`: how long the last full load took, in seconds.
    pub load_duration: Gauge<f64>,
}

pub fn get() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter(hubdir_telemetry::SCOPE);
        Instruments {
            sites: meter.u64_gauge("hubdir.index.sites").with_description("Sites in the discovery index").build(),
            applied_seq: meter
                .u64_gauge("hubdir.index.applied_seq")
                .with_description("The last change-log seq the discovery index has applied, by origin")
                .build(),
            load_duration: meter
                .f64_gauge("hubdir.index.load.duration")
                .with_unit("s")
                .with_description("How long the discovery index's last full load took")
                .build(),
        }
    })
}
