//! The `connectivity_daily` table: one row per site and UTC day, rolled up from raw
//! measurements once they pass the retention period.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "connectivity_daily")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub site_name: String,
    /// Days since 1970-01-01 (UTC).
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: i64,
    pub measurements: i64,
    pub online_count: i64,
    pub download_count: i64,
    pub download_median: Option<f64>,
    pub download_p10: Option<f64>,
    pub upload_count: i64,
    pub upload_median: Option<f64>,
    pub upload_p10: Option<f64>,
    pub latency_count: i64,
    pub latency_median: Option<f64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
