//! The follower's metrics, per peer (and origin).

use std::sync::OnceLock;

use opentelemetry::metrics::{Counter, Gauge};

pub struct Instruments {
    /// `hubdir.federation.events{peer, outcome}`: events received, by what became of them:
    /// `applied`, `duplicate`, `gap`, or a rejection's reason code.
    pub events: Counter<u64>,
    /// `hubdir.federation.lag{peer, origin}`: seconds between an origin's write and its
    /// application here, at the last event applied; 0 once the peer says it is caught up.
    pub lag: Gauge<f64>,
    /// `hubdir.federation.reconnects{peer}`: attempts to subscribe after the first.
    pub reconnects: Counter<u64>,
    /// `hubdir.federation.connected{peer}`: 1 while a subscription is open, else 0.
    pub connected: Gauge<u64>,
}

pub fn get() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter(hubdir_telemetry::SCOPE);
        Instruments {
            events: meter
                .u64_counter("hubdir.federation.events")
                .with_description("Federated events received from a peer, by outcome (applied, duplicate, gap, or the rejection's reason)")
                .build(),
            lag: meter
                .f64_gauge("hubdir.federation.lag")
                .with_unit("s")
                .with_description("Seconds between an origin's write and its application here, at the last event applied; 0 once caught up")
                .build(),
            reconnects: meter
                .u64_counter("hubdir.federation.reconnects")
                .with_description("Attempts to subscribe to a peer after the first (failed ones included)")
                .build(),
            connected: meter
                .u64_gauge("hubdir.federation.connected")
                .with_description("1 while a subscription to the peer is open, else 0")
                .build(),
        }
    })
}
