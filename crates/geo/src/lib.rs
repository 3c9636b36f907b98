//! H3 helpers and the in-memory nearest-neighbour index.

mod index;

pub use index::{EARTH_RADIUS_M, Filter, Nearby, SiteIndex, great_circle_m, unit_vector};

use h3o::{CellIndex, LatLng as H3LatLng, Resolution};
use hubdir_core::LatLng;

/// The resolution of the cell stored with every site (about 1 m²): any coarser cell is its
/// parent, so one stored value answers queries at every resolution.
pub const SITE_CELL_RESOLUTION: Resolution = Resolution::Fifteen;

/// The H3 cell at `resolution` containing a position. `None` only for non-finite
/// coordinates, which a validated [`LatLng`] never has.
fn cell_at(location: LatLng, resolution: Resolution) -> Option<CellIndex> {
    H3LatLng::new(location.latitude(), location.longitude()).ok().map(|ll| ll.to_cell(resolution))
}

/// The resolution-15 cell stored with a site, in its integer form.
pub fn site_cell(location: LatLng) -> Option<u64> {
    cell_at(location, SITE_CELL_RESOLUTION).map(u64::from)
}

/// The canonical hexadecimal form of a stored cell; empty if `cell` is not a valid index.
pub fn cell_to_string(cell: u64) -> String {
    CellIndex::try_from(cell).map(|c| c.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubdir_core::SiteInput;
    use proptest::prelude::*;

    fn at(lat: f64, lng: f64) -> LatLng {
        SiteInput {
            name: "sites/zz/1".into(),
            display_name: "x".into(),
            kind: Some(hubdir_core::Kind::Other),
            country_code: "FJ".into(),
            location: Some((lat, lng)),
            time_zone: "Pacific/Fiji".into(),
            ..SiteInput::default()
        }
        .validate()
        .unwrap()
        .location
    }

    proptest! {
        #[test]
        fn site_cell_contains_the_point_and_round_trips_as_text(
            lat in -90.0f64..=90.0, lng in -180.0f64..=180.0,
        ) {
            prop_assume!(!(lat == 0.0 && lng == 0.0));
            let cell = site_cell(at(lat, lng)).unwrap();
            let index = CellIndex::try_from(cell).unwrap();
            prop_assert_eq!(index.resolution(), SITE_CELL_RESOLUTION);
            let text = cell_to_string(cell);
            prop_assert_eq!(text.parse::<CellIndex>().unwrap(), index);
            // A resolution-15 cell is under a metre across: its centre is the point.
            let centre = H3LatLng::from(index);
            let d = centre.distance_m(H3LatLng::new(lat, lng).unwrap());
            prop_assert!(d < 1.0, "centre {d} m away");
        }
    }

    #[test]
    fn antimeridian_and_poles_have_cells() {
        for (lat, lng) in [(90.0, 0.0), (-90.0, 0.0), (-17.7, 180.0), (-17.7, -180.0)] {
            assert!(site_cell(at(lat, lng)).is_some());
        }
        assert_eq!(cell_to_string(0), "");
    }
}
