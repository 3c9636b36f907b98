//! H3 helpers and the in-memory nearest-neighbour index.

pub mod coverage;
mod filter;
mod index;
mod masked;
mod snapshot;
mod sphere;

pub use filter::Matcher;
pub use h3o::{CellIndex, Resolution};
pub use index::{Facts, Nearby, Payload, SiteIndex};
pub use snapshot::{Snapshot, SnapshotError};
pub use sphere::{EARTH_RADIUS_M, great_circle_m, unit_vector};

use h3o::LatLng as H3LatLng;
use hubdir_core::LatLng;

/// The resolution of the cell stored with every site (about 1 m²): any coarser cell is its
/// parent, so one stored value answers queries at every resolution.
pub const SITE_CELL_RESOLUTION: Resolution = Resolution::Fifteen;

/// The H3 cell at `resolution` containing a position. `None` only for non-finite
/// coordinates, which a validated [`LatLng`] never has.
pub fn cell_at(location: LatLng, resolution: Resolution) -> Option<CellIndex> {
    H3LatLng::new(location.latitude(), location.longitude()).ok().map(|ll| ll.to_cell(resolution))
}

/// The resolution-15 cell stored with a site.
pub fn site_cell(location: LatLng) -> Option<hubdir_core::H3Cell> {
    cell_at(location, SITE_CELL_RESOLUTION).and_then(|cell| hubdir_core::H3Cell::new(u64::from(cell)))
}

/// The coarsest resolution whose cells may be listed: a resolution-3 cell covers about
/// 12,400 km² on average, a whole region of sites to page through in name order.
pub const MIN_LIST_RESOLUTION: Resolution = Resolution::Three;

/// The inclusive range of stored (resolution-15) cells inside `cell`. An H3 index orders its
/// fields from coarse to fine (base cell, then one 3-bit digit per resolution), so the
/// descendants of a cell at the finest resolution are exactly the indexes between its own
/// digits followed by all zeros and by all sevens (digit 7 is unused, so the upper end
/// bounds without being a cell).
pub fn descendant_range(cell: CellIndex) -> (u64, u64) {
    const RESOLUTION_SHIFT: u32 = 52;
    const DIGIT_BITS: u32 = 3;
    let index = u64::from(cell);
    let resolution = u8::from(cell.resolution()) as u32;
    let finer_digits = (15 - resolution) * DIGIT_BITS;
    let finer_mask = if finer_digits == 0 { 0 } else { (1u64 << finer_digits) - 1 };
    let at_fifteen = (index & !(0xF << RESOLUTION_SHIFT)) | (15 << RESOLUTION_SHIFT);
    (at_fifteen & !finer_mask, at_fifteen | finer_mask)
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
            let index = CellIndex::try_from(cell.get()).unwrap();
            prop_assert_eq!(index.resolution(), SITE_CELL_RESOLUTION);
            // hubdir_core::H3Cell shows and parses cells as h3o does.
            let text = cell.to_string();
            prop_assert_eq!(&text, &index.to_string());
            prop_assert_eq!(text.parse::<hubdir_core::H3Cell>().unwrap(), cell);
            // A resolution-15 cell is under a metre across: its centre is the point.
            let centre = H3LatLng::from(index);
            let d = centre.distance_m(H3LatLng::new(lat, lng).unwrap());
            prop_assert!(d < 1.0, "centre {d} m away");
        }
    }

    proptest! {
        #[test]
        fn a_cell_holds_exactly_the_sites_in_its_descendant_range(
            lat in -90.0f64..=90.0, lng in -180.0f64..=180.0, res in 0u8..=15, other_res in 0u8..=15,
            dlat in -0.05f64..0.05, dlng in -0.05f64..0.05,
        ) {
            prop_assume!(!(lat == 0.0 && lng == 0.0));
            let stored = site_cell(at(lat, lng)).unwrap().get();
            let resolution = Resolution::try_from(res).unwrap();
            let cell = CellIndex::try_from(stored).unwrap().parent(resolution).unwrap();
            let (low, high) = descendant_range(cell);
            prop_assert!((low..=high).contains(&stored));
            // A nearby point is in the range exactly when it is in the cell.
            let (lat2, lng2) = ((lat + dlat).clamp(-90.0, 90.0), (lng + dlng).clamp(-180.0, 180.0));
            prop_assume!(!(lat2 == 0.0 && lng2 == 0.0));
            let near = site_cell(at(lat2, lng2)).unwrap().get();
            let inside = CellIndex::try_from(near).unwrap().parent(resolution) == Some(cell);
            prop_assert_eq!((low..=high).contains(&near), inside);
            // And a cell of another resolution at that point has its own range.
            let coarse = Resolution::try_from(other_res).unwrap();
            let other = CellIndex::try_from(near).unwrap().parent(coarse).unwrap();
            let (low2, high2) = descendant_range(other);
            prop_assert!((low2..=high2).contains(&near));
        }
    }

    #[test]
    fn antimeridian_and_poles_have_cells() {
        for (lat, lng) in [(90.0, 0.0), (-90.0, 0.0), (-17.7, 180.0), (-17.7, -180.0)] {
            assert!(site_cell(at(lat, lng)).is_some());
        }
        assert_eq!(hubdir_core::H3Cell::new(0), None);
    }
}
