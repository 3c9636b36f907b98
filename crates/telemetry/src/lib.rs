//! Tracing set-up shared by every hubdir process: structured logs on stderr, human-readable
//! or JSON, filtered by `RUST_LOG`-style directives.
//!
//! The default filter keeps `sqlx` and `sea_orm` at `warn`: at `info` they log statements
//! with their bound values, which would include positions people search from.

use tracing_subscriber::EnvFilter;

/// Where logs go and how they look by default.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,h2=warn,hyper=warn,tower=warn";

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
}

/// Installs the global subscriber. `filter` uses `RUST_LOG` syntax; the crates that log
/// bound statement values are held at `warn` whatever it says, unless it names them.
pub fn init(filter: &str, format: LogFormat) -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_new(with_quiet_sql(filter)).map_err(|e| TelemetryError::Filter(e.to_string()))?;
    // Colour only on a terminal: a log file or a pipe gets plain text, not escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|_| TelemetryError::AlreadyInstalled)
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
