//! The `peers` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "peers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub node_id: String,
    pub endpoint: String,
    pub public_key: Vec<u8>,
    /// JSON array of the origins this peer may supply.
    #[sea_orm(column_type = "Text")]
    pub allowed_origins: String,
    pub created_at_us: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
