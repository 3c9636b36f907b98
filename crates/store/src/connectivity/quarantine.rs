//! Refused measurements, kept with why for the operator, bounded in size and age.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::chunked::insert_all;
use crate::entity::connectivity_quarantine;
use crate::{Store, StoreError, from_micros, to_micros};

/// A refused measurement kept for an operator to inspect. Stored truncated (see
/// [`QUARANTINE_FIELD_BYTES`]): a refused request never costs more than a few KB to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    /// Who sent it: the token's subject.
    pub principal: String,
    /// The site it was filed under: empty when the sender may not report for the site it
    /// named, so nobody can file fakes under another's site.
    pub site: String,
    pub idempotency_key: String,
    /// `CODE: explanation`.
    pub reason: String,
    /// The measurement as received (JSON), if it could be read at all.
    pub body: String,
    pub received_at: DateTime<Utc>,
}

/// The most bytes kept of each field of a refused measurement, and of its body.
pub const QUARANTINE_FIELD_BYTES: usize = 256;
pub const QUARANTINE_BODY_BYTES: usize = 2048;

/// `text` cut to at most `max` bytes at a character boundary, marked when cut.
pub(crate) fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub(3);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

impl Store {
    /// Keeps refused measurements, with their reasons, each field truncated.
    pub async fn quarantine(&self, items: Vec<Quarantined>) -> Result<(), StoreError> {
        let rows = items.into_iter().map(|q| connectivity_quarantine::ActiveModel {
            principal: Set(cut(q.principal, QUARANTINE_FIELD_BYTES)),
            site_name: Set(cut(q.site, QUARANTINE_FIELD_BYTES)),
            idempotency_key: Set(cut(q.idempotency_key, QUARANTINE_FIELD_BYTES)),
            reason: Set(cut(q.reason, QUARANTINE_FIELD_BYTES)),
            body: Set(cut(q.body, QUARANTINE_BODY_BYTES)),
            received_at_us: Set(to_micros(q.received_at)),
            ..Default::default()
        });
        insert_all(&self.db, rows).await
    }

    /// How many refused measurements are kept.
    pub async fn quarantine_size(&self) -> Result<u64, StoreError> {
        Ok(connectivity_quarantine::Entity::find().count(&self.db).await?)
    }

    /// Drops refused measurements received before `before`, then the oldest beyond
    /// `max_rows`; returns how many went.
    pub async fn prune_quarantine(&self, before: DateTime<Utc>, max_rows: u64) -> Result<u64, StoreError> {
        let mut removed = connectivity_quarantine::Entity::delete_many()
            .filter(connectivity_quarantine::Column::ReceivedAtUs.lt(to_micros(before)))
            .exec(&self.db)
            .await?
            .rows_affected;
        let newest_dropped: Option<i64> = connectivity_quarantine::Entity::find()
            .select_only()
            .column(connectivity_quarantine::Column::Id)
            .order_by_desc(connectivity_quarantine::Column::Id)
            .offset(max_rows)
            .limit(1)
            .into_tuple()
            .one(&self.db)
            .await?;
        if let Some(id) = newest_dropped {
            removed += connectivity_quarantine::Entity::delete_many()
                .filter(connectivity_quarantine::Column::Id.lte(id))
                .exec(&self.db)
                .await?
                .rows_affected;
        }
        Ok(removed)
    }

    /// The most recent refused measurements, newest first, optionally for one site or of
    /// one sender.
    pub async fn list_quarantine(
        &self,
        site: Option<&str>,
        principal: Option<&str>,
        limit: u64,
    ) -> Result<Vec<Quarantined>, StoreError> {
        let mut select = connectivity_quarantine::Entity::find();
        if let Some(site) = site {
            select = select.filter(connectivity_quarantine::Column::SiteName.eq(site));
        }
        if let Some(principal) = principal {
            select = select.filter(connectivity_quarantine::Column::Principal.eq(principal));
        }
        Ok(select
            .order_by_desc(connectivity_quarantine::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| Quarantined {
                principal: row.principal,
                site: row.site_name,
                idempotency_key: row.idempotency_key,
                reason: row.reason,
                body: row.body,
                received_at: from_micros(row.received_at_us),
            })
            .collect())
    }
}
