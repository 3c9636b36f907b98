//! The `origin_sequences` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "origin_sequences")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub origin: String,
    pub last_seq: i64,
    /// Identifies this incarnation of the origin's log; a wiped and recreated database
    /// gets a new epoch, so followers resync instead of silently diverging.
    pub epoch: String,
    /// Up to this seq the log may have holes (compacted, or filled by a snapshot): a follower
    /// behind it needs a snapshot, not the events.
    pub compacted_through: i64,
    /// Whether this log is applied from peers (another node's origin) rather than written
    /// here; fixed when the row is created.
    pub remote: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
