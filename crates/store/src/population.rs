//! Population layers (`hubdir_core::population`): each replaced whole in one transaction, so a
//! reader sees the old layer or the new one, never a mix; read by scope in one query.

use hubdir_core::population::{Place, PlaceInput};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::chunked::insert_all;
use crate::entity::{population_layers, population_places};
use crate::{Store, StoreError, from_micros, to_micros};

/// A layer as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub name: String,
    pub source: String,
    pub year: i32,
    pub places: u64,
    pub people: u64,
    pub imported_at: chrono::DateTime<chrono::Utc>,
}

impl From<population_layers::Model> for Layer {
    fn from(row: population_layers::Model) -> Layer {
        Layer {
            name: row.name,
            source: row.source,
            year: row.year,
            places: row.places.max(0) as u64,
            people: row.people.max(0) as u64,
            imported_at: from_micros(row.imported_at_us),
        }
    }
}

/// Which places of a layer to read.
#[derive(Debug, Clone, PartialEq)]
pub enum PlaceScope {
    World,
    /// ISO 3166-1 alpha-2.
    Country(String),
    /// Places whose resolution-15 cell lies in this inclusive range (a coarser cell's
    /// descendants: `hubdir_geo::descendant_range`).
    Cells(u64, u64),
}

impl Store {
    /// Replaces the layer `name` (or creates it) with `places`, whose ids must be distinct.
    #[tracing::instrument(level = "debug", name = "store.replace_population_layer", skip_all)]
    pub async fn replace_population_layer(
        &self,
        name: &str,
        source: &str,
        year: i32,
        places: &[Place],
    ) -> Result<Layer, StoreError> {
        let people: u64 = places.iter().map(|p| p.people).sum();
        let layer = population_layers::ActiveModel {
            name: Set(name.to_owned()),
            source: Set(source.to_owned()),
            year: Set(year),
            places: Set(places.len() as i64),
            people: Set(people.min(i64::MAX as u64) as i64),
            imported_at_us: Set(to_micros(chrono::Utc::now())),
        };
        let rows = places.iter().map(|place| population_places::ActiveModel {
            layer: Set(name.to_owned()),
            id: Set(place.id.clone()),
            name: Set(place.name.clone()),
            country_code: Set(place.country.to_string()),
            latitude: Set(place.location.latitude()),
            longitude: Set(place.location.longitude()),
            h3_cell: Set(hubdir_geo::site_cell(place.location).map_or(0, |cell| cell.get() as i64)),
            people: Set(place.people.min(i64::MAX as u64) as i64),
        });
        let (_sqlite_turn, txn) = self.begin_write().await?;
        population_places::Entity::delete_many().filter(population_places::Column::Layer.eq(name)).exec(&txn).await?;
        insert_all(&txn, rows).await?;
        let upsert = OnConflict::column(population_layers::Column::Name)
            .update_columns([
                population_layers::Column::Source,
                population_layers::Column::Year,
                population_layers::Column::Places,
                population_layers::Column::People,
                population_layers::Column::ImportedAtUs,
            ])
            .to_owned();
        population_layers::Entity::insert(layer).on_conflict(upsert).exec_without_returning(&txn).await?;
        txn.commit().await?;
        self.population_layer(name).await?.ok_or_else(|| StoreError::Corrupt(format!("layer {name} vanished")))
    }

    /// The layer, if imported.
    pub async fn population_layer(&self, name: &str) -> Result<Option<Layer>, StoreError> {
        Ok(population_layers::Entity::find_by_id(name.to_owned()).one(&self.db).await?.map(Layer::from))
    }

    /// Every layer, by name.
    pub async fn population_layers(&self) -> Result<Vec<Layer>, StoreError> {
        let rows =
            population_layers::Entity::find().order_by_asc(population_layers::Column::Name).all(&self.db).await?;
        Ok(rows.into_iter().map(Layer::from).collect())
    }

    /// The layer's places in `scope`, by id.
    #[tracing::instrument(level = "debug", name = "store.population_places", skip_all)]
    pub async fn population_places(&self, layer: &str, scope: &PlaceScope) -> Result<Vec<Place>, StoreError> {
        let mut select = population_places::Entity::find().filter(population_places::Column::Layer.eq(layer));
        select = match scope {
            PlaceScope::World => select,
            PlaceScope::Country(code) => select.filter(population_places::Column::CountryCode.eq(code.as_str())),
            PlaceScope::Cells(low, high) => {
                select.filter(population_places::Column::H3Cell.between(*low as i64, *high as i64))
            }
        };
        let rows = select.order_by_asc(population_places::Column::Id).all(&self.db).await?;
        rows.into_iter()
            .map(|row| {
                let id = row.id.clone();
                PlaceInput {
                    id: row.id,
                    name: row.name,
                    country_code: row.country_code,
                    latitude: row.latitude,
                    longitude: row.longitude,
                    people: row.people.to_string(),
                }
                .validate()
                .map_err(|v| StoreError::Corrupt(format!("population place {layer}/{id}: {v}")))
            })
            .collect()
    }
}
