//! Reads: sites by name, filtered pages of sites, and the change log.

use hubdir_core::{Kind, Origin, Site, SiteName, SiteRecord, SiteStatus};
use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entity::{change_log, origin_sequences, sites};
use crate::{Store, StoreError, from_micros};

/// Which sites to list; every set field must match. Results come in name order.
#[derive(Debug, Clone, Default)]
pub struct SiteQuery {
    pub origin: Option<Origin>,
    pub country_code: Option<String>,
    pub operator: Option<String>,
    pub kinds: Vec<Kind>,
    pub statuses: Vec<SiteStatus>,
    /// Only sites changed strictly after this instant.
    pub modified_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Only sites whose resolution-15 cell lies in this inclusive range (the descendants of
    /// a coarser cell form one range: `hubdir_geo::descendant_range`).
    pub h3_range: Option<(u64, u64)>,
    /// Only sites whose search keys hold every word as a word prefix.
    pub text: Option<TextMatch>,
    /// Only sites whose name sorts strictly after this one (keyset paging).
    pub after_name: Option<String>,
    pub limit: u64,
}

/// A text condition on the search keys (`hubdir_core::search`): folded query words.
#[derive(Debug, Clone, PartialEq)]
pub enum TextMatch {
    /// Every word starts a word of the display name.
    InName(Vec<String>),
    /// Every word starts a word of the name or address, but not all of them in the name
    /// (the matches `InName` does not return).
    InAddressNotName(Vec<String>),
}

/// `column LIKE '% word%'` for every word, with LIKE's wildcards escaped.
fn all_words(column: sites::Column, words: &[String]) -> Condition {
    words.iter().fold(Condition::all(), |all, word| {
        let escaped = word.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        all.add(Expr::col(column).like(LikeExpr::new(format!("% {escaped}%")).escape('\\')))
    })
}

/// Whether an event wrote or deleted a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Upsert,
    Delete,
    /// A site's connectivity state or class changed (payload: `StatusSummary` JSON).
    Status,
}

/// One event of an origin's change log.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub origin: String,
    pub seq: u64,
    pub site_name: String,
    pub op: ChangeOp,
    /// The site after the change (JSON of `hubdir_core::Site`); `None` for a tombstone.
    pub payload: Option<Vec<u8>>,
    pub time: chrono::DateTime<chrono::Utc>,
    /// The event as its origin signed it; `None` if written without a signer.
    pub signed: Option<crate::SignedBytes>,
}

pub(crate) fn record_from_row(row: sites::Model) -> Result<SiteRecord, StoreError> {
    let site: Site =
        serde_json::from_str(&row.body).map_err(|e| StoreError::Corrupt(format!("site {}: {e}", row.name)))?;
    Ok(SiteRecord {
        site,
        h3_cell: row.h3_cell as u64,
        etag: row.etag,
        update_time: from_micros(row.update_time_us),
        origin_seq: row.origin_seq as u64,
    })
}

/// Rows per `IN (...)` lookup.
const NAMES_PER_LOOKUP: usize = 1000;

/// The stored sites among `names`, by name, through any connection or transaction.
pub(crate) async fn sites_by_name<C: ConnectionTrait>(
    conn: &C,
    mut names: Vec<String>,
) -> Result<HashMap<String, SiteRecord>, StoreError> {
    names.sort();
    names.dedup();
    let mut found = HashMap::with_capacity(names.len());
    for chunk in names.chunks(NAMES_PER_LOOKUP) {
        for row in sites::Entity::find().filter(sites::Column::Name.is_in(chunk.iter().cloned())).all(conn).await? {
            found.insert(row.name.clone(), record_from_row(row)?);
        }
    }
    Ok(found)
}

impl Store {
    /// The stored sites among `names`, by name; missing ones are absent from the map.
    pub async fn get_sites(&self, names: &[SiteName]) -> Result<HashMap<String, SiteRecord>, StoreError> {
        sites_by_name(&self.db, names.iter().map(ToString::to_string).collect()).await
    }

    /// The site, or `None` if it does not exist (or was deleted).
    pub async fn get_site(&self, name: &SiteName) -> Result<Option<SiteRecord>, StoreError> {
        sites::Entity::find_by_id(name.to_string()).one(&self.db).await?.map(record_from_row).transpose()
    }

    /// A page of sites matching `query`, in name order.
    pub async fn list_sites(&self, query: &SiteQuery) -> Result<Vec<SiteRecord>, StoreError> {
        let mut select = sites::Entity::find();
        if let Some(origin) = &query.origin {
            select = select.filter(sites::Column::Origin.eq(origin.as_str()));
        }
        if let Some(country) = &query.country_code {
            select = select.filter(sites::Column::CountryCode.eq(country.as_str()));
        }
        if let Some(operator) = &query.operator {
            select = select.filter(sites::Column::Operator.eq(operator.as_str()));
        }
        if !query.kinds.is_empty() {
            select = select.filter(sites::Column::Kind.is_in(query.kinds.iter().map(|k| k.code())));
        }
        if !query.statuses.is_empty() {
            select = select.filter(sites::Column::Status.is_in(query.statuses.iter().map(|s| s.code())));
        }
        if let Some(after) = query.modified_after {
            select = select.filter(sites::Column::UpdateTimeUs.gt(after.timestamp_micros()));
        }
        if let Some((low, high)) = query.h3_range {
            select = select.filter(sites::Column::H3Cell.between(low as i64, high as i64));
        }
        match &query.text {
            None => {}
            Some(TextMatch::InName(words)) => select = select.filter(all_words(sites::Column::SearchName, words)),
            Some(TextMatch::InAddressNotName(words)) => {
                select = select
                    .filter(all_words(sites::Column::SearchText, words))
                    .filter(all_words(sites::Column::SearchName, words).not());
            }
        }
        if let Some(after) = &query.after_name {
            select = select.filter(sites::Column::Name.gt(after.as_str()));
        }
        select
            .order_by_asc(sites::Column::Name)
            .limit(query.limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(record_from_row)
            .collect()
    }

    /// Up to `limit` events of `origin` after `after_seq`, in sequence order.
    pub async fn changes_after(
        &self,
        origin: &Origin,
        after_seq: u64,
        limit: u64,
    ) -> Result<Vec<ChangeEvent>, StoreError> {
        change_log::Entity::find()
            .filter(change_log::Column::Origin.eq(origin.as_str()))
            .filter(change_log::Column::Seq.gt(after_seq as i64))
            .order_by_asc(change_log::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| {
                let op = match row.op.as_str() {
                    "UPSERT" => ChangeOp::Upsert,
                    "DELETE" => ChangeOp::Delete,
                    "STATUS" => ChangeOp::Status,
                    other => return Err(StoreError::Corrupt(format!("change log op {other:?}"))),
                };
                Ok(ChangeEvent {
                    origin: row.origin,
                    seq: row.seq as u64,
                    site_name: row.site_name,
                    op,
                    payload: row.payload,
                    time: from_micros(row.event_time_us),
                    signed: match (row.event_bytes, row.key_id, row.signature) {
                        (Some(bytes), Some(key_id), Some(signature)) => {
                            Some(crate::SignedBytes { bytes, key_id, signature })
                        }
                        _ => None,
                    },
                })
            })
            .collect()
    }

    /// Every origin's log: its last sequence number and its epoch.
    pub async fn origin_logs(&self) -> Result<Vec<(Origin, u64, String)>, StoreError> {
        origin_sequences::Entity::find()
            .order_by_asc(origin_sequences::Column::Origin)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| {
                let origin = row.origin.parse().map_err(|_| StoreError::Corrupt(format!("origin {:?}", row.origin)))?;
                Ok((origin, row.last_seq as u64, row.epoch))
            })
            .collect()
    }

    /// Every origin this store holds events of, with its last sequence number.
    pub async fn origin_seqs(&self) -> Result<Vec<(Origin, u64)>, StoreError> {
        Ok(self.origin_logs().await?.into_iter().map(|(origin, seq, _)| (origin, seq)).collect())
    }

    /// The last sequence number handed out for `origin`; 0 if it never wrote.
    pub async fn last_seq(&self, origin: &Origin) -> Result<u64, StoreError> {
        Ok(origin_sequences::Entity::find_by_id(origin.to_string())
            .one(&self.db)
            .await?
            .map_or(0, |row| row.last_seq as u64))
    }
}
