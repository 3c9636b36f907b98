//! R*-tree entries that carry a site's filterable traits as a bit mask, and an envelope that
//! ORs the masks of everything below it. A subtree whose mask cannot satisfy a filter holds
//! no matching site, so a filtered search skips it without looking inside: a filter that
//! matches one site in 1,000 does not walk 1,000 sites per result.

use rstar::{AABB, Envelope, Point, RTreeObject};

/// One site in the tree: its unit vector, its slot, its trait mask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    pub point: [f64; 3],
    pub id: u32,
    pub mask: u64,
}

impl RTreeObject for Entry {
    type Envelope = MaskedBox;

    fn envelope(&self) -> MaskedBox {
        MaskedBox { aabb: AABB::from_point(self.point), mask: self.mask }
    }
}

/// A bounding box, and the OR of the trait masks of the entries inside it. After removals
/// the mask may keep bits no entry has any more: a superset only costs a wasted visit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskedBox {
    pub aabb: AABB<[f64; 3]>,
    pub mask: u64,
}

impl Envelope for MaskedBox {
    type Point = [f64; 3];

    fn new_empty() -> Self {
        MaskedBox { aabb: AABB::new_empty(), mask: 0 }
    }

    fn contains_point(&self, point: &[f64; 3]) -> bool {
        self.aabb.contains_point(point)
    }

    fn contains_envelope(&self, other: &Self) -> bool {
        self.aabb.contains_envelope(&other.aabb)
    }

    fn merge(&mut self, other: &Self) {
        self.aabb.merge(&other.aabb);
        self.mask |= other.mask;
    }

    fn merged(&self, other: &Self) -> Self {
        MaskedBox { aabb: self.aabb.merged(&other.aabb), mask: self.mask | other.mask }
    }

    fn intersects(&self, other: &Self) -> bool {
        self.aabb.intersects(&other.aabb)
    }

    fn intersection_area(&self, other: &Self) -> f64 {
        self.aabb.intersection_area(&other.aabb)
    }

    fn area(&self) -> f64 {
        self.aabb.area()
    }

    fn distance_2(&self, point: &[f64; 3]) -> f64 {
        self.aabb.distance_2(point)
    }

    fn min_max_dist_2(&self, point: &[f64; 3]) -> f64 {
        self.aabb.min_max_dist_2(point)
    }

    fn center(&self) -> [f64; 3] {
        self.aabb.center()
    }

    fn perimeter_value(&self) -> f64 {
        self.aabb.perimeter_value()
    }

    fn sort_envelopes<T: RTreeObject<Envelope = Self>>(axis: usize, envelopes: &mut [T]) {
        envelopes.sort_unstable_by(|a, b| a.envelope().center().nth(axis).total_cmp(&b.envelope().center().nth(axis)));
    }

    fn partition_envelopes<T: RTreeObject<Envelope = Self>>(axis: usize, envelopes: &mut [T], selection_size: usize) {
        if selection_size < envelopes.len() {
            envelopes.select_nth_unstable_by(selection_size, |a, b| {
                a.envelope().center().nth(axis).total_cmp(&b.envelope().center().nth(axis))
            });
        }
    }
}
