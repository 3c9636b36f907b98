//! Population layers: replaced whole, read by scope, and a failed replacement leaves the
//! layer as it was.

use super::*;
use hubdir_core::population::{Place, PlaceInput};
use hubdir_store::PlaceScope;

on_both_backends!(layers_are_replaced_whole_and_read_by_scope,);

fn place(id: &str, country: &str, lat: f64, lng: f64, people: u64) -> Place {
    PlaceInput {
        id: id.into(),
        name: format!("Place {id}"),
        country_code: country.into(),
        latitude: lat,
        longitude: lng,
        people: people.to_string(),
    }
    .validate()
    .unwrap()
}

async fn layers_are_replaced_whole_and_read_by_scope(store: Arc<Store>) {
    assert_eq!(store.population_layer("cities").await.unwrap(), None);
    let first = [
        place("1", "ZW", -17.83, 31.05, 1_500_000),
        place("2", "ZW", -20.15, 28.58, 650_000),
        place("3", "ZA", -26.20, 28.05, 4_400_000),
    ];
    let layer = store.replace_population_layer("cities", "test", 2024, &first).await.unwrap();
    assert_eq!((layer.places, layer.people, layer.year), (3, 6_550_000, 2024));
    let ids = |places: Vec<Place>| places.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(ids(store.population_places("cities", &PlaceScope::World).await.unwrap()), ["1", "2", "3"]);
    let zimbabwe = store.population_places("cities", &PlaceScope::Country("ZW".into())).await.unwrap();
    assert_eq!(zimbabwe, first[..2].to_vec());
    // Harare's resolution-5 cell holds Harare only.
    let harare = hubdir_geo::cell_at(first[0].location, hubdir_geo::Resolution::Five).unwrap();
    let (low, high) = hubdir_geo::descendant_range(harare);
    assert_eq!(ids(store.population_places("cities", &PlaceScope::Cells(low, high)).await.unwrap()), ["1"]);
    // Another layer is apart.
    store.replace_population_layer("other", "test", 2020, &first[2..]).await.unwrap();

    // Re-importing replaces every place.
    let second = [place("9", "ZW", -18.97, 32.67, 200_000)];
    store.replace_population_layer("cities", "test v2", 2025, &second).await.unwrap();
    assert_eq!(ids(store.population_places("cities", &PlaceScope::World).await.unwrap()), ["9"]);
    assert_eq!(store.population_layer("cities").await.unwrap().unwrap().source, "test v2");

    // A replacement that fails (two places with one id) writes nothing: the layer stays.
    let clash = [place("7", "ZW", -18.0, 31.0, 1), place("7", "ZW", -18.1, 31.1, 2)];
    assert!(store.replace_population_layer("cities", "clash", 2026, &clash).await.is_err());
    assert_eq!(ids(store.population_places("cities", &PlaceScope::World).await.unwrap()), ["9"]);
    assert_eq!(store.population_layer("cities").await.unwrap().unwrap().year, 2025);
    let layers: Vec<String> = store.population_layers().await.unwrap().into_iter().map(|l| l.name).collect();
    assert_eq!(layers, ["cities", "other"]);
}
