//! What the services read of connectivity: sites' countries and latest statuses.

use std::collections::HashMap;

use hubdir_core::SiteName;
use hubdir_core::connectivity::{Measurement, StatusSummary};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use super::parse;
use crate::chunked::chunks;
use crate::entity::{connectivity_latest, sites};
use crate::{Store, StoreError};

/// The latest status of a site, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    /// The measurement that gave it; `None` for a status a peer announced (measurements stay
    /// with the node that received them).
    pub measurement: Option<Measurement>,
    pub summary: StatusSummary,
}

impl Store {
    /// The country of each stored site among `names` (without reading the sites).
    pub async fn site_countries(&self, names: &[String]) -> Result<HashMap<String, String>, StoreError> {
        let mut found = HashMap::new();
        for chunk in chunks(1, names.iter()) {
            let rows: Vec<(String, String)> = sites::Entity::find()
                .select_only()
                .column(sites::Column::Name)
                .column(sites::Column::CountryCode)
                .filter(sites::Column::Name.is_in(chunk.iter().cloned()))
                .into_tuple()
                .all(&self.db)
                .await?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// The latest status of a site, if it ever reported.
    #[tracing::instrument(level = "debug", name = "store.latest_status", skip_all)]
    pub async fn latest_status(&self, site: &SiteName) -> Result<Option<Latest>, StoreError> {
        let Some(row) = connectivity_latest::Entity::find_by_id(site.to_string()).one(&self.db).await? else {
            return Ok(None);
        };
        latest_from_row(row).map(Some)
    }

    /// Every site's status as its change log last announced it (a STATUS event), for the
    /// discovery index's load: what a reader following the log holds, so that an index built
    /// from the store equals one that replayed the log. A newer measurement that changed
    /// neither state nor class is in `latest_status` and is announced with the next refresh.
    pub async fn logged_summaries(&self) -> Result<Vec<(String, StatusSummary)>, StoreError> {
        connectivity_latest::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(|row| Some((row.site_name.clone(), row.logged_summary?)))
            .map(|(site, text)| Ok((site, parse("status", &text)?)))
            .collect()
    }

    /// The latest status summaries of the named sites that have one.
    pub async fn latest_summaries_of(&self, names: &[String]) -> Result<HashMap<String, StatusSummary>, StoreError> {
        let mut found = HashMap::new();
        for chunk in chunks(1, names.iter()) {
            for row in connectivity_latest::Entity::find()
                .filter(connectivity_latest::Column::SiteName.is_in(chunk.iter().cloned()))
                .all(&self.db)
                .await?
            {
                if let Some(text) = &row.summary {
                    found.insert(row.site_name.clone(), parse("status", text)?);
                }
            }
        }
        Ok(found)
    }
}

fn latest_from_row(row: connectivity_latest::Model) -> Result<Latest, StoreError> {
    let summary = row.summary.ok_or_else(|| StoreError::Corrupt(format!("status of {}", row.site_name)))?;
    let measurement = row.measurement.map(|m| parse("measurement", &m)).transpose()?;
    Ok(Latest { measurement, summary: parse("status", &summary)? })
}
