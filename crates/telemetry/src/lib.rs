//! Telemetry shared by every hubdir process: structured logs on stderr (human-readable or
//! JSON, filtered by `RUST_LOG`-style directives) and, when configured, OpenTelemetry traces
//! and metrics exported over OTLP and metrics served as Prometheus text.
//!
//! The default log filter keeps `sqlx` and `sea_orm` at `warn`: at `info` they log statements
//! with their bound values, which would include positions people search from.
//!
//! With nothing configured nothing is exported: no provider is installed, so the metric
//! instruments the crates create are no-ops and hubdir's spans (all at DEBUG, below the
//! default log filter) are never created.

mod exporters;
pub mod propagation;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use exporters::{Telemetry, TelemetryConfig};

/// Where logs go and how they look by default.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,h2=warn,hyper=warn,tower=warn";

/// The instrumentation scope of every hubdir meter and tracer.
pub const SCOPE: &str = "hubdir";

/// How log lines are written: `log.format`, `text` or `json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log.filter is not a valid filter: {0}")]
    Filter(String),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
    #[error("cannot set up the OTLP {signal} exporter (telemetry.otlp_endpoint or OTEL_EXPORTER_OTLP_*): {cause}")]
    Otlp { signal: &'static str, cause: String },
    #[error("cannot set up the Prometheus exporter: {0}")]
    Prometheus(String),
    #[error("telemetry.trace_sample_ratio must be between 0 and 1, not {0}")]
    SampleRatio(f64),
}

/// What the process is, for the exported resource (`service.name`, `hubdir.node.id`).
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    /// The binary: `hubdir`, `hubdir-discovery`, ...
    pub service_name: String,
    pub node_id: String,
}

/// Installs the global subscriber and, when configured, the OpenTelemetry providers. `filter`
/// uses `RUST_LOG` syntax; the crates that log bound statement values are held at `warn`
/// whatever it says, unless it names them. Keep the returned handle, and shut it down on exit
/// so that the last spans and metrics are sent.
pub fn init(
    filter: &str,
    format: LogFormat,
    config: &TelemetryConfig,
    process: &ProcessInfo,
) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_new(with_quiet_sql(filter)).map_err(|e| TelemetryError::Filter(e.to_string()))?;
    let telemetry = Telemetry::start(config, process)?;
    // Colour only on a terminal: a log file or a pipe gets plain text, not escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let logs = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    let spans = telemetry.span_layer();
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(spans)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(telemetry)
}

/// For commands that call a node (`hubdir import --node`, `hubdir agent`): when the standard
/// `OTEL_EXPORTER_OTLP_*` variables name a collector, their spans are exported, so that a call
/// and the node's answer form one trace. Installs no log output: these commands print their
/// own. Shut the handle down before exiting.
pub fn init_client(process: &ProcessInfo) -> Result<Telemetry, TelemetryError> {
    let telemetry = Telemetry::start(&TelemetryConfig::default(), process)?;
    if let Some(spans) = telemetry.span_layer() {
        tracing_subscriber::registry().with(spans).try_init().map_err(|_| TelemetryError::AlreadyInstalled)?;
    }
    Ok(telemetry)
}

/// Appends `sqlx=warn` and `sea_orm=warn` unless the filter mentions those targets itself.
fn with_quiet_sql(filter: &str) -> String {
    let mut out = filter.to_owned();
    for target in ["sqlx", "sea_orm"] {
        if !filter.contains(target) {
            out.push_str(&format!(",{target}=warn"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_statement_logging_stays_quiet_unless_asked_for() {
        assert_eq!(with_quiet_sql("debug"), "debug,sqlx=warn,sea_orm=warn");
        assert_eq!(with_quiet_sql("trace,sqlx=debug"), "trace,sqlx=debug,sea_orm=warn");
    }
}
