//! The `change_log` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "change_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub origin: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub site_name: String,
    /// `UPSERT`, `DELETE` or `STATUS`.
    pub op: String,
    /// The site after the change as JSON; `None` for a delete (a tombstone).
    pub payload: Option<Vec<u8>>,
    pub event_time_us: i64,
    /// Set once the origin signs the event (federation).
    pub key_id: Option<String>,
    pub signature: Option<Vec<u8>>,
    /// The exact bytes signed (a serialised `hubdir.v1.ChangeEvent`), forwarded unchanged.
    pub event_bytes: Option<Vec<u8>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
