//! The `population_places` table: the places of every population layer.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "population_places")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub layer: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub country_code: String,
    pub latitude: f64,
    pub longitude: f64,
    /// The place's H3 resolution-15 cell, so a cell scope is one range.
    pub h3_cell: i64,
    pub people: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
