//! Reads: sites by name and filtered pages of sites.

use hubdir_core::{Kind, Origin, ServiceType, Site, SiteName, SiteRecord, SiteStatus};
use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};

use crate::entity::{site_services, sites};
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
    /// Only sites offering at least one of these services.
    pub services: Vec<ServiceType>,
    /// Only sites whose address has this postcode (compared as
    /// `hubdir_core::search::postcode_key` keys it).
    pub postcode: Option<String>,
    /// Only sites with this lookup key (`hubdir_core::lookup`): the candidates for an id
    /// derived from a site's name.
    pub site_key: Option<i64>,
    /// Only sites whose operator has this lookup key.
    pub operator_key: Option<i64>,
    /// Only sites whose name sorts strictly after this one (keyset paging).
    pub after_name: Option<String>,
    /// Rows of the name-ordered result to skip (page-number paging, as HSDS pages).
    pub offset: u64,
    pub limit: u64,
}

impl SiteQuery {
    /// Whether `record` meets this query's conditions (all but `offset` and `limit`): the
    /// same conditions `Store::list_sites` puts to the database, for sites already in memory
    /// (a test holds the two to agreement).
    pub fn admits(&self, record: &SiteRecord) -> bool {
        let site = &record.site;
        let words_in = |key: &str, words: &[String]| words.iter().all(|w| key.contains(&format!(" {w}")));
        let text = || hubdir_core::search::site_keys(site);
        let name = site.name.to_string();
        self.origin.as_ref().is_none_or(|o| site.name.origin() == o)
            && self.country_code.as_ref().is_none_or(|c| site.country.as_str() == c)
            && self.operator.as_ref().is_none_or(|o| &site.operator == o)
            && (self.kinds.is_empty() || self.kinds.contains(&site.kind))
            && (self.statuses.is_empty() || self.statuses.contains(&site.status))
            && self.modified_after.is_none_or(|t| record.update_time.timestamp_micros() > t.timestamp_micros())
            && self.h3_range.is_none_or(|(low, high)| (low..=high).contains(&record.h3_cell.get()))
            && (self.services.is_empty() || self.services.iter().any(|s| site.services.contains(s)))
            && self
                .site_key
                .is_none_or(|k| k == hubdir_core::lookup::key(&hubdir_core::lookup::site_subject(&site.name)))
            && self
                .operator_key
                .is_none_or(|k| k == hubdir_core::lookup::key(&hubdir_core::lookup::operator_subject(&site.operator)))
            && self.postcode.as_ref().is_none_or(|p| {
                hubdir_core::search::postcode_key(p) == hubdir_core::search::postcode_key(&site.address.postal_code)
            })
            && match &self.text {
                None => true,
                Some(TextMatch::InName(words)) => words_in(&text().0, words),
                Some(TextMatch::InAddressNotName(words)) => {
                    let (in_name, in_text) = text();
                    words_in(&in_text, words) && !words_in(&in_name, words)
                }
                Some(TextMatch::InNameOrAddress(words)) => words_in(&text().1, words),
            }
            && self.after_name.as_ref().is_none_or(|after| name.as_str() > after.as_str())
    }
}

/// An operator (HSDS's organization) and how many sites it runs.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct OperatorCount {
    pub operator: String,
    pub sites: i64,
}

/// A text condition on the search keys (`hubdir_core::search`): folded query words.
#[derive(Debug, Clone, PartialEq)]
pub enum TextMatch {
    /// Every word starts a word of the display name.
    InName(Vec<String>),
    /// Every word starts a word of the name or address, but not all of them in the name
    /// (the matches `InName` does not return).
    InAddressNotName(Vec<String>),
    /// Every word starts a word of the name or address (the two above together).
    InNameOrAddress(Vec<String>),
}

/// `text` with LIKE's wildcards (and the escape character, `\\`) escaped.
fn like_escaped(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// `column LIKE '% word%'` for every word, with LIKE's wildcards escaped.
fn all_words(column: sites::Column, words: &[String]) -> Condition {
    words.iter().fold(Condition::all(), |all, word| {
        all.add(Expr::col(column).like(LikeExpr::new(format!("% {}%", like_escaped(word))).escape('\\')))
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
        selecting(query)
            .order_by_asc(sites::Column::Name)
            .offset((query.offset > 0).then_some(query.offset))
            .limit(query.limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(record_from_row)
            .collect()
    }

    /// How many sites match `query` (its `after_name`, `offset` and `limit` aside).
    #[tracing::instrument(level = "debug", name = "store.count_sites", skip_all)]
    pub async fn count_sites(&self, query: &SiteQuery) -> Result<u64, StoreError> {
        let query = SiteQuery { after_name: None, ..query.clone() };
        Ok(selecting(&query).count(&self.db).await?)
    }

    /// A page of the operators of sites, in name order, each with its number of sites; only
    /// those whose lookup key is `key` if given, and whose name holds `text` (any case) if
    /// given.
    #[tracing::instrument(level = "debug", name = "store.operators", skip_all)]
    pub async fn operators(
        &self,
        key: Option<i64>,
        text: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<OperatorCount>, StoreError> {
        Ok(operators_grouped(key, text)
            .order_by_asc(sites::Column::Operator)
            .offset((offset > 0).then_some(offset))
            .limit(limit)
            .into_model::<OperatorCount>()
            .all(&self.db)
            .await?)
    }

    /// How many operators [`Store::operators`] pages through with the same `key` and `text`.
    #[tracing::instrument(level = "debug", name = "store.count_operators", skip_all)]
    pub async fn count_operators(&self, key: Option<i64>, text: Option<&str>) -> Result<u64, StoreError> {
        Ok(operators_grouped(key, text).count(&self.db).await?)
    }
}

/// Sites grouped by operator, with the conditions of [`Store::operators`].
fn operators_grouped(key: Option<i64>, text: Option<&str>) -> Select<sites::Entity> {
    // A site without an operator belongs to no organization.
    let mut condition = Condition::all().add(sites::Column::Operator.ne(""));
    if let Some(key) = key {
        condition = condition.add(sites::Column::OperatorKey.eq(key));
    }
    if let Some(text) = text {
        condition = condition.add(
            Expr::expr(Func::lower(Expr::col(sites::Column::Operator)))
                .like(LikeExpr::new(format!("%{}%", like_escaped(&text.to_lowercase()))).escape('\\')),
        );
    }
    sites::Entity::find()
        .select_only()
        .column(sites::Column::Operator)
        .column_as(sites::Column::Name.count(), "sites")
        .filter(condition)
        .group_by(sites::Column::Operator)
}

/// The sites matching `query`'s conditions, unordered and unbounded.
fn selecting(query: &SiteQuery) -> Select<sites::Entity> {
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
    if !query.services.is_empty() {
        let offering = Query::select()
            .column(site_services::Column::SiteName)
            .from(site_services::Entity)
            .and_where(site_services::Column::Service.is_in(query.services.iter().map(|s| s.code())))
            .to_owned();
        select = select.filter(sites::Column::Name.in_subquery(offering));
    }
    if let Some(postcode) = &query.postcode {
        select = select.filter(sites::Column::Postcode.eq(hubdir_core::search::postcode_key(postcode)));
    }
    if let Some(key) = query.site_key {
        select = select.filter(sites::Column::SiteKey.eq(key));
    }
    if let Some(key) = query.operator_key {
        select = select.filter(sites::Column::OperatorKey.eq(key));
    }
    match &query.text {
        None => {}
        Some(TextMatch::InName(words)) => select = select.filter(all_words(sites::Column::SearchName, words)),
        Some(TextMatch::InAddressNotName(words)) => {
            select = select
                .filter(all_words(sites::Column::SearchText, words))
                .filter(all_words(sites::Column::SearchName, words).not());
        }
        Some(TextMatch::InNameOrAddress(words)) => select = select.filter(all_words(sites::Column::SearchText, words)),
    }
    if let Some(after) = &query.after_name {
        select = select.filter(sites::Column::Name.gt(after.as_str()));
    }
    select
}
