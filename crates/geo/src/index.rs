//! The in-memory nearest-neighbour index: every site as a point on the unit sphere in 3D, in
//! an R*-tree. Straight-line (chord) distance in 3D grows with great-circle distance, so the
//! tree's Euclidean nearest neighbours are exactly the nearest sites on the sphere, with no
//! seam at the antimeridian and no singularity at the poles. Filters are evaluated while the
//! tree yields candidates in distance order, so a filtered query stops at the k-th match.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use hubdir_core::{Accessibility, Kind, ServiceType, Site, SiteName, SiteRecord, SiteStatus};
use rstar::RTree;
use rstar::primitives::GeomWithData;

/// Mean Earth radius (IUGG), metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

type Entry = GeomWithData<[f64; 3], u32>;

/// A position as a unit vector.
pub fn unit_vector(latitude: f64, longitude: f64) -> [f64; 3] {
    let (lat, lng) = (latitude.to_radians(), longitude.to_radians());
    [lat.cos() * lng.cos(), lat.cos() * lng.sin(), lat.sin()]
}

/// Great-circle distance between two unit vectors, in metres (atan2 form: accurate for tiny
/// and for antipodal angles).
pub fn great_circle_m(a: [f64; 3], b: [f64; 3]) -> f64 {
    let cross = [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
    let sin = (cross[0] * cross[0] + cross[1] * cross[1] + cross[2] * cross[2]).sqrt();
    let cos = a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    sin.atan2(cos) * EARTH_RADIUS_M
}

fn bit<T: PartialEq>(all: &[T], value: &T) -> u32 {
    all.iter().position(|v| v == value).map_or(0, |i| 1 << i)
}

/// What a query asks of a site besides being near. Empty lists match everything, except
/// `statuses`, whose empty default is OPEN only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// The site's kind is one of these.
    pub kinds: Vec<Kind>,
    /// The site offers all of these.
    pub services: Vec<ServiceType>,
    /// The site helps in at least one of these languages (primary subtags, lower case).
    pub languages: Vec<String>,
    /// The site has all of these features.
    pub accessibility: Vec<Accessibility>,
    /// The site's status is one of these; empty means OPEN.
    pub statuses: Vec<SiteStatus>,
    /// Only sites whose public services are free.
    pub free_access: bool,
    /// Only sites whose opening hours say they are open at this instant, in their own time
    /// zone. Sites without opening hours are not known to be open, so they do not match.
    pub open_at: Option<DateTime<Utc>>,
}

/// A filter compiled to bit masks, checked per candidate without allocating.
struct Compiled<'f> {
    kinds: u32,
    services: u32,
    accessibility: u32,
    statuses: u32,
    languages: &'f [String],
    free_access: bool,
    open_at: Option<DateTime<Utc>>,
}

impl Filter {
    fn compile(&self) -> Compiled<'_> {
        let mask = |bits: u32, all: u32| if bits == 0 { all } else { bits };
        Compiled {
            kinds: mask(self.kinds.iter().map(|k| bit(Kind::ALL, k)).fold(0, |a, b| a | b), u32::MAX),
            services: self.services.iter().map(|s| bit(ServiceType::ALL, s)).fold(0, |a, b| a | b),
            accessibility: self.accessibility.iter().map(|a| bit(Accessibility::ALL, a)).fold(0, |a, b| a | b),
            statuses: mask(
                self.statuses.iter().map(|s| bit(SiteStatus::ALL, s)).fold(0, |a, b| a | b),
                bit(SiteStatus::ALL, &SiteStatus::Open),
            ),
            languages: &self.languages,
            free_access: self.free_access,
            open_at: self.open_at,
        }
    }
}

/// What a filter looks at in a site, precomputed as bit masks.
#[derive(Debug)]
struct Traits {
    kind: u32,
    services: u32,
    accessibility: u32,
    status: u32,
    free_access: bool,
    languages: Vec<String>,
    /// Parsed once per distinct text and shared by every site with the same hours.
    hours: Option<Arc<Hours>>,
    time_zone: Tz,
}

type Hours = opening_hours::OpeningHours;

/// Parsed opening hours by their text: most sites share a handful of schedules.
#[derive(Debug, Default)]
struct HoursCache(HashMap<String, Option<Arc<Hours>>>);

impl HoursCache {
    fn get(&mut self, text: &str) -> Option<Arc<Hours>> {
        if let Some(parsed) = self.0.get(text) {
            return parsed.clone();
        }
        // Stored hours were validated with the same grammar; one that still fails to
        // evaluate is treated as unknown (never open), not as an error.
        let parsed = text.parse::<Hours>().ok().map(Arc::new);
        self.0.insert(text.to_owned(), parsed.clone());
        parsed
    }
}

impl Traits {
    fn of(site: &Site, hours: &mut HoursCache) -> Traits {
        Traits {
            kind: bit(Kind::ALL, &site.kind),
            services: site.services.iter().map(|s| bit(ServiceType::ALL, s)).fold(0, |a, b| a | b),
            accessibility: site.accessibility.iter().map(|a| bit(Accessibility::ALL, a)).fold(0, |a, b| a | b),
            status: bit(SiteStatus::ALL, &site.status),
            free_access: site.free_access,
            languages: site.languages.iter().map(|l| l.primary()).collect(),
            hours: site.opening_hours.as_ref().and_then(|h| hours.get(h.as_str())),
            // Validated on the way in: a stored zone always parses.
            time_zone: Tz::from_str(site.time_zone.as_str()).unwrap_or(Tz::UTC),
        }
    }

    fn matches(&self, f: &Compiled<'_>) -> bool {
        self.kind & f.kinds != 0
            && self.services & f.services == f.services
            && self.accessibility & f.accessibility == f.accessibility
            && self.status & f.statuses != 0
            && (!f.free_access || self.free_access)
            && (f.languages.is_empty() || self.languages.iter().any(|l| f.languages.contains(l)))
            && f.open_at.is_none_or(|at| self.is_open(at))
    }

    fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.hours.as_ref().is_some_and(|hours| hours.is_open(at.with_timezone(&self.time_zone).naive_local()))
    }
}

impl Filter {
    /// Whether one site matches, for callers that read sites from the store rather than the
    /// index (text search, cell listings). The same rules as [`SiteIndex::nearest`].
    pub fn matches(&self, site: &Site) -> bool {
        Traits::of(site, &mut HoursCache::default()).matches(&self.compile())
    }
}

/// What the index keeps per site: its position, its traits, the record it returns.
#[derive(Debug)]
struct Slot {
    point: [f64; 3],
    traits: Traits,
    record: Arc<SiteRecord>,
}

impl Slot {
    fn new(record: SiteRecord, hours: &mut HoursCache) -> Slot {
        let site = &record.site;
        Slot {
            point: unit_vector(site.location.latitude(), site.location.longitude()),
            traits: Traits::of(site, hours),
            record: Arc::new(record),
        }
    }
}

/// A site near the query point.
#[derive(Debug, Clone)]
pub struct Nearby {
    pub record: Arc<SiteRecord>,
    pub distance_meters: f64,
}

/// Every site, by position and by name.
#[derive(Debug, Default)]
pub struct SiteIndex {
    tree: RTree<Entry>,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    by_name: HashMap<SiteName, u32>,
    hours: HoursCache,
}

impl SiteIndex {
    /// Builds the index in one bulk load.
    pub fn from_records(records: impl IntoIterator<Item = SiteRecord>) -> SiteIndex {
        let mut index = SiteIndex::default();
        let mut entries = Vec::new();
        for record in records {
            let name = record.site.name.clone();
            if let Some(old) = index.by_name.get(&name).copied() {
                index.slots[old as usize] = None;
                index.free.push(old);
            }
            let slot = Slot::new(record, &mut index.hours);
            let id = index.slots.len() as u32;
            entries.push(Entry::new(slot.point, id));
            index.slots.push(Some(slot));
            index.by_name.insert(name, id);
        }
        entries.retain(|e| index.slots[e.data as usize].is_some());
        index.tree = RTree::bulk_load(entries);
        index
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Adds a site or replaces its previous version.
    pub fn upsert(&mut self, record: SiteRecord) {
        let name = record.site.name.clone();
        self.remove(&name);
        let slot = Slot::new(record, &mut self.hours);
        let point = slot.point;
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(slot);
                id
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        };
        self.tree.insert(Entry::new(point, id));
        self.by_name.insert(name, id);
    }

    /// Removes a site; absent sites are ignored.
    pub fn remove(&mut self, name: &SiteName) {
        if let Some(id) = self.by_name.remove(name) {
            if let Some(slot) = self.slots[id as usize].take() {
                self.tree.remove(&Entry::new(slot.point, id));
            }
            self.free.push(id);
        }
    }

    /// The `k` sites nearest to (latitude, longitude) that match `filter`, within
    /// `max_distance_m` if given, nearest first, by great-circle distance.
    pub fn nearest(
        &self,
        latitude: f64,
        longitude: f64,
        k: usize,
        max_distance_m: Option<f64>,
        filter: &Filter,
    ) -> Vec<Nearby> {
        let query = unit_vector(latitude, longitude);
        let compiled = filter.compile();
        // The chord that spans the distance limit; beyond it no candidate can qualify.
        let max_chord_2 = max_distance_m.map(|d| {
            let angle = (d / EARTH_RADIUS_M).min(std::f64::consts::PI);
            let chord = 2.0 * (angle / 2.0).sin();
            // A hair of slack so rounding never drops a site exactly at the limit; the
            // great-circle check below decides.
            chord * chord * (1.0 + 1e-9) + 1e-15
        });
        let mut out = Vec::with_capacity(k);
        if k == 0 {
            return out;
        }
        for (entry, chord_2) in self.tree.nearest_neighbor_iter_with_distance_2(query) {
            if max_chord_2.is_some_and(|limit| chord_2 > limit) {
                break;
            }
            let Some(slot) = &self.slots[entry.data as usize] else { continue };
            if !slot.traits.matches(&compiled) {
                continue;
            }
            let distance_meters = great_circle_m(query, slot.point);
            if max_distance_m.is_some_and(|d| distance_meters > d) {
                continue;
            }
            out.push(Nearby { record: slot.record.clone(), distance_meters });
            if out.len() == k {
                break;
            }
        }
        out
    }
}
