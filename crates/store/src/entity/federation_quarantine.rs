//! The `federation_quarantine` table: peers' events, verified against their origin's key, that
//! this node could not apply, and why.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "federation_quarantine")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The peer that delivered it.
    pub peer: String,
    pub origin: String,
    pub seq: i64,
    pub site_name: String,
    /// Why it could not be applied (truncated).
    pub reason: String,
    pub received_at_us: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
