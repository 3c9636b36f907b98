//! Connectivity measurements: raw history, the latest per site, the change-log events that
//! tell followers about state changes (`ingest`), what the services read (`reads`), the
//! daily roll-up that replaces old raw rows (`roll_up`), and the quarantine of refused
//! measurements (`quarantine`).

mod ingest;
mod quarantine;
mod reads;
mod roll_up;

pub use ingest::Recorded;
pub(crate) use ingest::upsert_latest;
pub(crate) use quarantine::cut;
pub use quarantine::{QUARANTINE_BODY_BYTES, QUARANTINE_FIELD_BYTES, Quarantined};
pub use reads::Latest;
pub use roll_up::{RollUp, SAMPLES_PER_PAGE, Sample};

use crate::StoreError;

pub(super) fn json<T: serde::Serialize>(value: &T) -> String {
    // Plain structs of numbers, strings and enums always serialise.
    serde_json::to_string(value).unwrap_or_default()
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}
