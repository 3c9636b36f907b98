//! Population layers: where people live, as places with a count, to measure who is far from
//! help. A layer is named, has a source and a year, and is replaced whole on re-import.

use crate::validate::{check_text, lat_lng};
use crate::{CountryCode, LatLng, ViolationReason, Violations};

/// Longest layer name, place id and place name, in characters.
pub const NAME_CHARS: usize = 200;
/// The most people one place may count: more than the world's, so that no sum over a layer
/// (at most a billion places) can overflow.
pub const MAX_PEOPLE: u64 = 10_000_000_000;

/// A populated place (or the centre of a populated H3 cell) of a layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    /// Unique within its layer.
    pub id: String,
    pub name: String,
    pub country: CountryCode,
    pub location: LatLng,
    pub people: u64,
}

/// A place as a source gives it, unchecked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlaceInput {
    pub id: String,
    pub name: String,
    pub country_code: String,
    pub latitude: f64,
    pub longitude: f64,
    /// As written, so that a negative or fractional count is named, not wrapped.
    pub people: String,
}

impl PlaceInput {
    /// The place, or every problem, each naming its field.
    pub fn validate(self) -> Result<Place, Violations> {
        let mut out = Violations::default();
        if self.id.is_empty() {
            out.push("id", ViolationReason::Required, "every place needs an id, unique in its layer");
        }
        check_text(&mut out, "id", &self.id, NAME_CHARS);
        check_text(&mut out, "name", &self.name, NAME_CHARS);
        let country = CountryCode::parse(&self.country_code);
        if country.is_none() {
            out.push("country_code", ViolationReason::InvalidFormat, "an ISO 3166-1 alpha-2 code, e.g. IN");
        }
        let location = lat_lng(&mut out, self.latitude, self.longitude);
        let people = self.people.trim().parse::<u64>().ok();
        match people {
            None => out.push("population", ViolationReason::InvalidFormat, "a whole number of people, 0 or more"),
            Some(n) if n > MAX_PEOPLE => {
                out.push("population", ViolationReason::OutOfRange, format!("at most {MAX_PEOPLE} people"))
            }
            Some(_) => {}
        }
        match (country, location, people) {
            (Some(country), Some(location), Some(people)) if out.is_empty() => {
                Ok(Place { id: self.id, name: self.name, country, location, people })
            }
            _ => Err(out),
        }
    }
}

/// A layer's name: what `--layer` and `population_layer` give; letters, digits, `-`, `_`
/// and `.`, so it reads the same in a URL, a file name and a log.
pub fn check_layer_name(name: &str) -> Result<(), Violations> {
    let mut out = Violations::default();
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 64 || !name.chars().all(fine) {
        out.push(
            "population_layer",
            ViolationReason::InvalidFormat,
            "1 to 64 letters, digits, '-', '_' or '.', e.g. geonames-cities1000",
        );
    }
    if out.is_empty() { Ok(()) } else { Err(out) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> PlaceInput {
        PlaceInput {
            id: "1275339".into(),
            name: "Mumbai".into(),
            country_code: "IN".into(),
            latitude: 19.07283,
            longitude: 72.88261,
            people: "12691836".into(),
        }
    }

    #[test]
    fn places_validate_or_name_every_bad_field() {
        let place = input().validate().unwrap();
        assert_eq!((place.people, place.country.as_str()), (12_691_836, "IN"));
        let bad =
            PlaceInput { id: String::new(), country_code: "XX".into(), latitude: 91.0, people: "-3".into(), ..input() };
        let fields: Vec<String> = bad.validate().unwrap_err().0.into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["id", "country_code", "location.latitude", "population"]);
        assert!(PlaceInput { people: "2.5".into(), ..input() }.validate().is_err());
        assert!(PlaceInput { people: "10000000001".into(), ..input() }.validate().is_err());
        assert!(check_layer_name("geonames-cities1000").is_ok());
        for bad in ["", "a b", "../x", &"x".repeat(65)] {
            assert!(check_layer_name(bad).is_err(), "{bad}");
        }
    }
}
