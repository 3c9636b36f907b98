//! sea-orm entities, one module per table. The schema itself is defined by the frozen
//! migrations in `crate::migration`; a test round-trips a row through every entity on both
//! backends so the two cannot drift apart.

pub mod change_log;
pub mod connectivity_daily;
pub mod connectivity_history;
pub mod connectivity_latest;
pub mod connectivity_quarantine;
pub mod federation_quarantine;
pub mod node_keys;
pub mod origin_sequences;
pub mod peer_cursors;
pub mod peers;
pub mod population_layers;
pub mod population_places;
pub mod site_services;
pub mod sites;
