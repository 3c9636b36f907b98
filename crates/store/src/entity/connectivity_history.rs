//! The `connectivity_history` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "connectivity_history")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub site_name: String,
    pub idempotency_key: String,
    pub online: bool,
    pub download_mbps: Option<f64>,
    pub upload_mbps: Option<f64>,
    pub latency_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub packet_loss_ratio: Option<f64>,
    pub technology: String,
    pub source: String,
    pub observed_at_us: i64,
    pub received_at_us: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
