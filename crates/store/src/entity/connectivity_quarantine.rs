//! The `connectivity_quarantine` table: refused measurements and why.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "connectivity_quarantine")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub site_name: String,
    pub idempotency_key: String,
    /// `CODE: explanation`.
    pub reason: String,
    /// The measurement as received, JSON.
    #[sea_orm(column_type = "Text")]
    pub body: String,
    pub received_at_us: i64,
    /// Who sent it: the token's subject (empty for rows kept before it was recorded).
    pub principal: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
