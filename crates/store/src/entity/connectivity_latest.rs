//! The `connectivity_latest` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "connectivity_latest")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub site_name: String,
    pub online: bool,
    pub download_mbps: Option<f64>,
    pub upload_mbps: Option<f64>,
    pub latency_ms: Option<f64>,
    pub technology: String,
    pub public_wifi_access_points: Option<i32>,
    pub public_computers: Option<i32>,
    pub power_backup: Option<bool>,
    pub source: String,
    pub observed_at_us: i64,
    pub received_at_us: i64,
    /// The measurement as JSON (`hubdir_core::connectivity::Measurement`).
    #[sea_orm(column_type = "Text", nullable)]
    pub measurement: Option<String>,
    /// The status it gave (`StatusSummary`), JSON.
    #[sea_orm(column_type = "Text", nullable)]
    pub summary: Option<String>,
    /// The status last written to the change log, JSON.
    #[sea_orm(column_type = "Text", nullable)]
    pub logged_summary: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
