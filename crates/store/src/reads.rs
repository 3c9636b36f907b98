//! Reads: sites by name and filtered pages of sites.

use hubdir_core::{Kind, Origin, Site, SiteName, SiteRecord, SiteStatus};
use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entity::sites;
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

pub(crate) fn record_from_row(row: sites::Model) -> Result<SiteRecord, StoreError> {
    let site: Site =
        serde_json::from_str(&row.body).map_err(|e| StoreError::Corrupt(format!("site {}: {e}", row.name)))?;
    let h3_cell = hubdir_core::H3Cell::new(row.h3_cell as u64)
        .ok_or_else(|| StoreError::Corrupt(format!("site {}: h3_cell {} is not a cell", row.name, row.h3_cell)))?;
    Ok(SiteRecord {
        site,
        h3_cell,
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
    #[tracing::instrument(level = "debug", name = "store.get_sites", skip_all)]
    pub async fn get_sites(&self, names: &[SiteName]) -> Result<HashMap<String, SiteRecord>, StoreError> {
        sites_by_name(&self.db, names.iter().map(ToString::to_string).collect()).await
    }

    /// The site, or `None` if it does not exist (or was deleted).
    #[tracing::instrument(level = "debug", name = "store.get_site", skip_all)]
    pub async fn get_site(&self, name: &SiteName) -> Result<Option<SiteRecord>, StoreError> {
        sites::Entity::find_by_id(name.to_string()).one(&self.db).await?.map(record_from_row).transpose()
    }

    /// A page of sites matching `query`, in name order.
    #[tracing::instrument(level = "debug", name = "store.list_sites", skip_all)]
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
}
