//! The node's public signing keys, as published to peers: the private key never comes here.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, DbErr, EntityTrait, QueryOrder};

use crate::entity::node_keys;
use crate::{Store, StoreError, from_micros, to_micros};

/// A public key this node has signed with, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedKey {
    pub key_id: String,
    pub public_key: Vec<u8>,
    pub valid_from: DateTime<Utc>,
    /// Set once the key was retired.
    pub valid_until: Option<DateTime<Utc>>,
}

impl Store {
    /// Records a key the node signs with from `now` on, unless it is already recorded (its
    /// first recorded instant stays its start of validity).
    pub async fn publish_key(&self, key_id: &str, public_key: &[u8], now: DateTime<Utc>) -> Result<(), StoreError> {
        let row = node_keys::ActiveModel {
            key_id: Set(key_id.to_owned()),
            public_key: Set(public_key.to_vec()),
            valid_from_us: Set(to_micros(now)),
            valid_until_us: Set(None),
        };
        match node_keys::Entity::insert(row)
            .on_conflict(OnConflict::column(node_keys::Column::KeyId).do_nothing().to_owned())
            .exec(&self.db)
            .await
        {
            Ok(_) | Err(DbErr::RecordNotInserted) => {}
            Err(e) => return Err(e.into()),
        }
        // A key id names one key forever: the same id with other bytes is a corrupt store.
        let stored = node_keys::Entity::find_by_id(key_id.to_owned()).one(&self.db).await?;
        if stored.is_some_and(|row| row.public_key != public_key) {
            return Err(StoreError::Corrupt(format!("key id {key_id} is recorded for another key")));
        }
        Ok(())
    }

    /// Every key the node has published, oldest first.
    pub async fn published_keys(&self) -> Result<Vec<PublishedKey>, StoreError> {
        Ok(node_keys::Entity::find()
            .order_by_asc(node_keys::Column::ValidFromUs)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| PublishedKey {
                key_id: row.key_id,
                public_key: row.public_key,
                valid_from: from_micros(row.valid_from_us),
                valid_until: row.valid_until_us.map(from_micros),
            })
            .collect())
    }
}

impl Store {
    /// Every live site of `origin` with the seq of its last change, in byte-wise name order.
    pub async fn site_versions(&self, origin: &str) -> Result<Vec<(String, u64)>, StoreError> {
        use sea_orm::{ColumnTrait, QueryFilter, QuerySelect};
        let mut rows: Vec<(String, i64)> = crate::entity::sites::Entity::find()
            .select_only()
            .column(crate::entity::sites::Column::Name)
            .column(crate::entity::sites::Column::OriginSeq)
            .filter(crate::entity::sites::Column::Origin.eq(origin))
            .into_tuple()
            .all(&self.db)
            .await?;
        // Byte-wise, whatever the database's collation.
        rows.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(rows.into_iter().map(|(name, seq)| (name, seq as u64)).collect())
    }
}
