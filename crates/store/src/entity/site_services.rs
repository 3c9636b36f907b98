//! The `site_services` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "site_services")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub site_name: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub service: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
