//! Population layers from files: a [`PopulationMapping`] (TOML) says which CSV columns give a
//! place's id, name, country, position (a point, or an H3 cell's centre) and people. GeoNames'
//! `cities1000` layout needs no mapping ([`PopulationMapping::geonames`]).
//!
//! ```toml
//! source = "Census of India 2011, district centroids"
//! year = 2011
//! delimiter = ","            # optional
//! encoding = "utf-8"         # or "windows-1252"; optional
//! country_code = "IN"        # every row's country, when the file has no country column
//! [columns]
//! id = "district_code"
//! name = "district"          # optional
//! latitude = "lat"           # a point...
//! longitude = "lon"
//! # h3_cell = "h3"           # ...or an H3 cell (hexadecimal), counted at its centre
//! population = "persons"
//! ```

use std::path::Path;

use hubdir_core::population::{Place, PlaceInput};
use serde::Deserialize;

use crate::mapping::Encoding;
use crate::{Record, RowError};

/// How a population file's columns become places.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopulationMapping {
    /// Where the counts come from (cited with every figure).
    pub source: String,
    /// The year the counts describe.
    pub year: i32,
    #[serde(default = "comma")]
    pub delimiter: char,
    #[serde(default)]
    pub encoding: Encoding,
    /// Every row's country, for a file without a country column.
    #[serde(default)]
    pub country_code: Option<String>,
    pub columns: Columns,
}

fn comma() -> char {
    ','
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub latitude: Option<String>,
    #[serde(default)]
    pub longitude: Option<String>,
    #[serde(default)]
    pub h3_cell: Option<String>,
    pub population: String,
}

/// A population mapping that cannot be used, before any row is read.
#[derive(Debug, thiserror::Error)]
pub enum PopulationMappingError {
    #[error("cannot read population mapping {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("population mapping {path}: {message}")]
    Invalid { path: String, message: String },
    #[error("the file has no column {column:?}, which the population mapping names (its columns: {found})")]
    MissingColumn { column: String, found: String },
}

/// GeoNames' columns, as `cities1000.csv` has them.
const GEONAMES_HEADER: [&str; 9] = [
    "geonameid",
    "name",
    "country_code",
    "admin1_code",
    "latitude",
    "longitude",
    "population",
    "timezone",
    "feature_code",
];

impl PopulationMapping {
    /// GeoNames `cities1000` (CC BY 4.0): places of at least 1,000 people.
    pub fn geonames() -> PopulationMapping {
        PopulationMapping {
            source: "GeoNames cities1000 (CC BY 4.0)".into(),
            year: 2019,
            delimiter: ',',
            encoding: Encoding::Utf8,
            country_code: None,
            columns: Columns {
                id: "geonameid".into(),
                name: Some("name".into()),
                country: Some("country_code".into()),
                latitude: Some("latitude".into()),
                longitude: Some("longitude".into()),
                h3_cell: None,
                population: "population".into(),
            },
        }
    }

    /// Whether a CSV header is GeoNames' layout.
    pub fn is_geonames(header: &[String]) -> bool {
        header.iter().map(String::as_str).eq(GEONAMES_HEADER)
    }

    pub fn load(path: &Path) -> Result<PopulationMapping, PopulationMappingError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| PopulationMappingError::Read { path: shown.clone(), source })?;
        let mapping: PopulationMapping = toml::from_str(&text)
            .map_err(|e| PopulationMappingError::Invalid { path: shown.clone(), message: e.message().to_owned() })?;
        let c = &mapping.columns;
        let point = c.latitude.is_some() && c.longitude.is_some();
        if point == c.h3_cell.is_some() || c.latitude.is_some() != c.longitude.is_some() {
            let message = "columns needs latitude and longitude, or h3_cell (one of the two)".to_owned();
            return Err(PopulationMappingError::Invalid { path: shown, message });
        }
        if c.country.is_some() == mapping.country_code.is_some() {
            let message = "give a country column or a country_code for every row (one of the two)".to_owned();
            return Err(PopulationMappingError::Invalid { path: shown, message });
        }
        Ok(mapping)
    }

    /// Every column the mapping reads must be in the header.
    pub fn check_columns(&self, header: &[String]) -> Result<(), PopulationMappingError> {
        let c = &self.columns;
        let named = [
            Some(&c.id),
            c.name.as_ref(),
            c.country.as_ref(),
            c.latitude.as_ref(),
            c.longitude.as_ref(),
            c.h3_cell.as_ref(),
            Some(&c.population),
        ];
        for column in named.into_iter().flatten() {
            if !header.contains(column) {
                return Err(PopulationMappingError::MissingColumn { column: column.clone(), found: header.join(", ") });
            }
        }
        Ok(())
    }

    /// The place a row gives, or every problem, each naming its column's field.
    pub fn place(&self, record: &Record) -> Result<Place, Vec<RowError>> {
        let c = &self.columns;
        let id = record.get(&c.id).to_owned();
        let error = |field: &str, reason: &str, message: String| RowError {
            row: record.row,
            line: record.line,
            site_id: id.clone(),
            field: field.to_owned(),
            reason: reason.to_owned(),
            message,
        };
        let mut errors = Vec::new();
        let number = |column: &Option<String>, field: &str, errors: &mut Vec<RowError>| {
            let text = column.as_ref().map_or("", |column| record.get(column));
            text.parse::<f64>().unwrap_or_else(|_| {
                errors.push(error(field, "INVALID_FORMAT", format!("{} is not a number", hubdir_core::echo(text))));
                f64::NAN
            })
        };
        let (latitude, longitude) = match &c.h3_cell {
            Some(column) => {
                let text = record.get(column);
                match text.parse::<h3o::CellIndex>() {
                    Ok(cell) => {
                        let centre = h3o::LatLng::from(cell);
                        (centre.lat(), centre.lng())
                    }
                    Err(_) => {
                        let shown = hubdir_core::echo(text);
                        errors.push(error("h3_cell", "INVALID_FORMAT", format!("{shown} is not an H3 cell index")));
                        (f64::NAN, f64::NAN)
                    }
                }
            }
            None => (
                number(&c.latitude, "location.latitude", &mut errors),
                number(&c.longitude, "location.longitude", &mut errors),
            ),
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let input = PlaceInput {
            id: id.clone(),
            name: c.name.as_ref().map_or_else(String::new, |column| record.get(column).to_owned()),
            country_code: match (&c.country, &self.country_code) {
                (Some(column), _) => record.get(column).to_owned(),
                (None, code) => code.clone().unwrap_or_default(),
            },
            latitude,
            longitude,
            people: record.get(&c.population).to_owned(),
        };
        input.validate().map_err(|violations| {
            violations.0.into_iter().map(|v| error(&v.field, v.reason.code(), v.description)).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn record(values: &[(&str, &str)]) -> Record {
        Record {
            row: 7,
            line: 8,
            values: values.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>(),
        }
    }

    #[test]
    fn rows_become_places_or_errors_naming_their_field() {
        let geonames = PopulationMapping::geonames();
        let header: Vec<String> = GEONAMES_HEADER.iter().map(|s| s.to_string()).collect();
        assert!(PopulationMapping::is_geonames(&header));
        geonames.check_columns(&header).unwrap();
        let place = geonames
            .place(&record(&[
                ("geonameid", "1275339"),
                ("name", "Mumbai"),
                ("country_code", "IN"),
                ("latitude", "19.07283"),
                ("longitude", "72.88261"),
                ("population", "12691836"),
            ]))
            .unwrap();
        assert_eq!((place.id.as_str(), place.people), ("1275339", 12_691_836));
        let errors = geonames
            .place(&record(&[
                ("geonameid", "1"),
                ("country_code", "ZZ"),
                ("latitude", "x"),
                ("longitude", "72"),
                ("population", "-1"),
            ]))
            .unwrap_err();
        assert_eq!(
            (errors[0].field.as_str(), errors[0].reason.as_str(), errors[0].row),
            ("location.latitude", "INVALID_FORMAT", 7)
        );
        let errors = geonames
            .place(&record(&[
                ("geonameid", "1"),
                ("country_code", "ZZ"),
                ("latitude", "19"),
                ("longitude", "72"),
                ("population", "-1"),
            ]))
            .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["country_code", "population"]);

        // An H3 grid with one country for every row: the cell's centre.
        let grid = PopulationMapping {
            country_code: Some("IN".into()),
            columns: Columns {
                id: "h3".into(),
                name: None,
                country: None,
                latitude: None,
                longitude: None,
                h3_cell: Some("h3".into()),
                population: "people".into(),
            },
            ..PopulationMapping::geonames()
        };
        let mumbai = h3o::LatLng::new(19.07283, 72.88261).unwrap().to_cell(h3o::Resolution::Seven).to_string();
        let place = grid.place(&record(&[("h3", &mumbai), ("people", "1200")])).unwrap();
        let off = (place.location.latitude() - 19.07283).abs() + (place.location.longitude() - 72.88261).abs();
        assert!(off < 0.05, "{:?}", place.location);
        assert!(grid.place(&record(&[("h3", "nope"), ("people", "1")])).unwrap_err()[0].field == "h3_cell");
        assert!(grid.check_columns(&["h3".to_owned()]).is_err());

        // The example mapping loads as this grid; a mapping with both a point and a cell does not.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/mappings");
        let example = PopulationMapping::load(&root.join("population-h3-grid.toml")).unwrap();
        assert_eq!(example.columns, Columns { population: "population".into(), ..grid.columns.clone() });
        let dir = tempfile::tempdir().unwrap();
        let both = dir.path().join("both.toml");
        std::fs::write(&both, "source = \"x\"\nyear = 1\ncountry_code = \"IN\"\n[columns]\nid = \"a\"\nh3_cell = \"a\"\nlatitude = \"b\"\nlongitude = \"c\"\npopulation = \"d\"\n").unwrap();
        let refused = PopulationMapping::load(&both).unwrap_err().to_string();
        assert!(refused.contains("latitude and longitude, or h3_cell"), "{refused}");
    }
}
