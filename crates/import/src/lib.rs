//! Importers: the files publishers already have, turned into validated sites and row errors.
//!
//! A [`Mapping`] (a TOML file) says how a source's columns become a site's fields: column
//! templates, constants, value maps, coordinate columns, delimiter and encoding. A source
//! ([`read_csv`], [`read_geojson`]) yields [`Record`]s, or a [`RowError`] for a row that
//! cannot even be read (invalid bytes, with their byte offset). [`Mapping::site`] turns a
//! record into a site or into every problem found, each naming its field and reason.
//! Suspicious coordinates (sentinels, placeholders, swapped, outside the declared extent) are
//! rejected with a reason, never silently fixed.

mod coordinates;
pub mod hubdir_csv;
mod mapping;
mod population;
mod record;
mod report;
mod sources;

pub use mapping::{Encoding, Mapping, MappingError};
pub use population::{Columns, PopulationMapping, PopulationMappingError};
pub use record::Record;
pub use report::{FIELD_DROPPED, OnInvalidOptional, RowError, Summary, write_errors};
pub use sources::{SourceError, hubdir_csv_records, read_csv, read_geojson, records};
