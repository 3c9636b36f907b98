//! The `sites` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sites")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub origin: String,
    pub site_id: String,
    pub display_name: String,
    pub kind: String,
    pub operator: String,
    pub country_code: String,
    pub latitude: f64,
    pub longitude: f64,
    /// H3 resolution-15 cell; H3 indexes fit in 63 bits.
    pub h3_cell: i64,
    pub status: String,
    /// The whole validated site as JSON (`hubdir_core::Site`).
    #[sea_orm(column_type = "Text")]
    pub body: String,
    pub etag: String,
    pub update_time_us: i64,
    pub origin_seq: i64,
    /// The folded display name (`hubdir_core::search::site_keys`).
    #[sea_orm(column_type = "Text")]
    pub search_name: String,
    /// The folded display name and address.
    #[sea_orm(column_type = "Text")]
    pub search_text: String,
    /// The address's postcode as `hubdir_core::search::postcode_key` keys it.
    pub postcode: String,
    /// `hubdir_core::lookup::key` of the site's subject: HSDS ids of the site begin with it.
    pub site_key: i64,
    /// `hubdir_core::lookup::key` of the operator's subject: its HSDS organization's id.
    pub operator_key: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
