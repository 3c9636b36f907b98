//! The in-memory nearest-neighbour index: every site as a point on the unit sphere in 3D, in
//! an R*-tree. Straight-line (chord) distance in 3D grows with great-circle distance, so the
//! tree's Euclidean nearest neighbours are exactly the nearest sites on the sphere, with no
//! seam at the antimeridian and no singularity at the poles. The search is best-first over the
//! tree's nodes, nearest first, and skips every subtree whose trait mask (`masked`) rules the
//! filter out; a filtered query stops at the k-th match.

use std::collections::{BinaryHeap, HashMap};
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use hubdir_core::connectivity::{State, StatusSummary};
use hubdir_core::{Accessibility, Kind, ServiceType, Site, SiteName, SiteRecord, SiteStatus};
use rstar::{Envelope, PointDistance, RTree, RTreeNode};

use crate::masked::Entry;

/// Mean Earth radius (IUGG), metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

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
    /// The site's connectivity state is one of these (a site without a fresh status is
    /// UNKNOWN); empty matches every state.
    pub connectivity_states: Vec<State>,
    /// The site's fresh status measured at least this download speed, Mbit/s.
    pub min_download_mbps: Option<f64>,
    /// The instant statuses are judged fresh at; `None` is now.
    pub as_of: Option<DateTime<Utc>>,
}

/// Where each trait lives in a site's 64-bit mask (`masked::Entry`). Kinds and statuses are
/// one-of groups; services, accessibility features, free access and "has opening hours" are
/// single bits a filter may require; languages are hashed into a 12-bit Bloom field, exact
/// only after the per-site check.
mod bits {
    pub const KIND: u32 = 0; // 9 kinds
    pub const STATUS: u32 = 12; // 3 statuses
    pub const SERVICE: u32 = 16; // 10 services
    pub const ACCESSIBILITY: u32 = 28; // 7 features
    pub const FREE_ACCESS: u64 = 1 << 36;
    pub const HAS_HOURS: u64 = 1 << 37;
    /// ONLINE, DEGRADED, OFFLINE as last reported, then "no status at all".
    pub const STATE: u32 = 40;
    pub const LANGUAGE: u32 = 48;
    pub const LANGUAGE_BUCKETS: u64 = 12;
}

fn group<T: PartialEq>(all: &[T], values: impl IntoIterator<Item = T>, shift: u32) -> u64 {
    values.into_iter().map(|v| u64::from(bit(all, &v)) << shift).fold(0, |a, b| a | b)
}

/// The Bloom bit of a primary language subtag.
fn language_bit(primary: &str) -> u64 {
    let hash = primary.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    1 << (bits::LANGUAGE as u64 + hash % bits::LANGUAGE_BUCKETS)
}

/// A filter compiled to masks: `any` groups need at least one common bit (0: no
/// constraint), `all` bits must all be present. Checked the same way on a subtree's OR-mask
/// (could anything below match?) and on a site's own mask.
#[derive(Debug)]
struct Compiled<'f> {
    any: [u64; 4],
    all: u64,
    languages: &'f [String],
    open_at: Option<DateTime<Utc>>,
    states: &'f [State],
    min_download_mbps: Option<f64>,
    as_of: DateTime<Utc>,
}

const STATES: &[State] = &[State::Online, State::Degraded, State::Offline, State::Unknown];

/// The state bit of a site's last reported status (UNKNOWN: it has none).
fn state_bit(status: Option<&StatusSummary>) -> u64 {
    u64::from(bit(STATES, &status.map_or(State::Unknown, |s| s.state))) << bits::STATE
}

impl Compiled<'_> {
    fn admits(&self, mask: u64) -> bool {
        mask & self.all == self.all && self.any.iter().all(|g| *g == 0 || mask & g != 0)
    }
}

impl Filter {
    fn compile(&self) -> Compiled<'_> {
        let statuses = self.statuses_or_open();
        let mut all = group(ServiceType::ALL, self.services.iter().copied(), bits::SERVICE)
            | group(Accessibility::ALL, self.accessibility.iter().copied(), bits::ACCESSIBILITY);
        if self.free_access {
            all |= bits::FREE_ACCESS;
        }
        if self.open_at.is_some() {
            all |= bits::HAS_HOURS;
        }
        // A reported state may have expired into UNKNOWN since: asking for UNKNOWN rules out
        // no subtree. Asking for a speed rules out sites that never reported.
        let all_states = group(STATES, STATES.iter().copied(), bits::STATE);
        let mut states = if self.connectivity_states.contains(&State::Unknown) {
            all_states
        } else {
            group(STATES, self.connectivity_states.iter().copied(), bits::STATE)
        };
        if self.min_download_mbps.is_some() {
            let reported = group(STATES, [State::Online, State::Degraded, State::Offline], bits::STATE);
            states = if states == 0 { reported } else { states & reported };
            if states == 0 {
                // Only UNKNOWN was asked and a speed: no site can have both.
                states = 1 << (bits::STATE + 7);
            }
        }
        Compiled {
            any: [
                group(Kind::ALL, self.kinds.iter().copied(), bits::KIND),
                group(SiteStatus::ALL, statuses, bits::STATUS),
                self.languages.iter().map(|l| language_bit(l)).fold(0, |a, b| a | b),
                states,
            ],
            all,
            languages: &self.languages,
            open_at: self.open_at,
            states: &self.connectivity_states,
            min_download_mbps: self.min_download_mbps,
            as_of: self.as_of.unwrap_or_else(Utc::now),
        }
    }
}

/// What a filter checks per site beyond its mask: the exact languages and the opening hours.
#[derive(Debug)]
struct Traits {
    mask: u64,
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
        let languages: Vec<String> = site.languages.iter().map(|l| l.primary()).collect();
        let hours = site.opening_hours.as_ref().and_then(|h| hours.get(h.as_str()));
        let mut mask = group(Kind::ALL, [site.kind], bits::KIND)
            | group(SiteStatus::ALL, [site.status], bits::STATUS)
            | group(ServiceType::ALL, site.services.iter().copied(), bits::SERVICE)
            | group(Accessibility::ALL, site.accessibility.iter().copied(), bits::ACCESSIBILITY)
            | languages.iter().map(|l| language_bit(l)).fold(0, |a, b| a | b);
        if site.free_access {
            mask |= bits::FREE_ACCESS;
        }
        if hours.is_some() {
            mask |= bits::HAS_HOURS;
        }
        Traits {
            mask,
            languages,
            hours,
            // Validated on the way in: a stored zone always parses.
            time_zone: Tz::from_str(site.time_zone.as_str()).unwrap_or(Tz::UTC),
        }
    }

    /// The checks the mask cannot make exactly.
    fn matches_exactly(&self, status: Option<&StatusSummary>, f: &Compiled<'_>) -> bool {
        (f.languages.is_empty() || self.languages.iter().any(|l| f.languages.contains(l)))
            && f.open_at.is_none_or(|at| self.is_open(at))
            && connectivity_matches(status, f)
    }

    fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.hours.as_ref().is_some_and(|hours| hours.is_open(at.with_timezone(&self.time_zone).naive_local()))
    }
}

/// The state a status reads at `f.as_of` (UNKNOWN once expired, or without one) is asked
/// for, and so is its speed.
fn connectivity_matches(status: Option<&StatusSummary>, f: &Compiled<'_>) -> bool {
    let fresh = status.filter(|s| f.as_of <= s.expires_at);
    let state = fresh.map_or(State::Unknown, |s| s.state);
    (f.states.is_empty() || f.states.contains(&state))
        && f.min_download_mbps.is_none_or(|min| fresh.and_then(|s| s.download_mbps).is_some_and(|d| d >= min))
}

/// A filter ready to check sites one by one, for callers that read sites from the store
/// rather than the index (text search, cell listings): the same rules as
/// [`SiteIndex::nearest`], compiled once, with parsed opening hours kept across sites.
#[derive(Debug)]
pub struct Matcher<'f> {
    compiled: Compiled<'f>,
    hours: HoursCache,
}

impl Matcher<'_> {
    /// Whether one site, with its latest connectivity status if any, matches.
    pub fn matches(&mut self, site: &Site, status: Option<&StatusSummary>) -> bool {
        let traits = Traits::of(site, &mut self.hours);
        self.compiled.admits(traits.mask | state_bit(status)) && traits.matches_exactly(status, &self.compiled)
    }
}

impl Filter {
    pub fn matcher(&self) -> Matcher<'_> {
        Matcher { compiled: self.compile(), hours: HoursCache::default() }
    }

    /// The site statuses the filter accepts: those asked for, or OPEN.
    pub fn statuses_or_open(&self) -> Vec<SiteStatus> {
        if self.statuses.is_empty() { vec![SiteStatus::Open] } else { self.statuses.clone() }
    }
}

/// What the index keeps per site: its tree entry, its traits, its latest connectivity
/// status, the record it returns.
#[derive(Debug)]
struct Slot {
    entry: Entry,
    traits: Traits,
    status: Option<StatusSummary>,
    record: Arc<SiteRecord>,
}

impl Slot {
    fn new(record: SiteRecord, id: u32, status: Option<StatusSummary>, hours: &mut HoursCache) -> Slot {
        let site = &record.site;
        let traits = Traits::of(site, hours);
        let point = unit_vector(site.location.latitude(), site.location.longitude());
        let mask = traits.mask | state_bit(status.as_ref());
        Slot { entry: Entry { point, id, mask }, traits, status, record: Arc::new(record) }
    }
}

/// A tree node or entry waiting in the best-first queue, by its least possible chord².
struct Pending<'t> {
    distance_2: f64,
    node: &'t RTreeNode<Entry>,
}

impl PartialEq for Pending<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.distance_2.total_cmp(&other.distance_2).is_eq()
    }
}
impl Eq for Pending<'_> {}
impl PartialOrd for Pending<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending<'_> {
    /// Reversed: `BinaryHeap` pops the nearest first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.distance_2.total_cmp(&self.distance_2)
    }
}

/// A site near the query point.
#[derive(Debug, Clone)]
pub struct Nearby {
    pub record: Arc<SiteRecord>,
    pub distance_meters: f64,
    /// The site's latest connectivity status, fresh or not.
    pub status: Option<StatusSummary>,
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
        for record in records {
            let name = record.site.name.clone();
            if let Some(old) = index.by_name.get(&name).copied() {
                index.slots[old as usize] = None;
                index.free.push(old);
            }
            let id = index.slots.len() as u32;
            index.slots.push(Some(Slot::new(record, id, None, &mut index.hours)));
            index.by_name.insert(name, id);
        }
        index.tree = RTree::bulk_load(index.slots.iter().flatten().map(|slot| slot.entry).collect());
        index
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Adds a site or replaces its previous version (keeping its connectivity status).
    pub fn upsert(&mut self, record: SiteRecord) {
        let name = record.site.name.clone();
        let status = self.by_name.get(&name).and_then(|id| self.slots[*id as usize].as_ref()?.status);
        self.remove(&name);
        let id = self.free.pop().unwrap_or(self.slots.len() as u32);
        let slot = Slot::new(record, id, status, &mut self.hours);
        self.tree.insert(slot.entry);
        if id as usize == self.slots.len() {
            self.slots.push(Some(slot));
        } else {
            self.slots[id as usize] = Some(slot);
        }
        self.by_name.insert(name, id);
    }

    /// Sets a site's latest connectivity status: its tree entry moves to the new state's
    /// mask, nothing is rebuilt. Unknown sites are ignored.
    pub fn set_status(&mut self, name: &SiteName, status: StatusSummary) {
        let Some(id) = self.by_name.get(name).copied() else { return };
        let Some(slot) = self.slots[id as usize].as_mut() else { return };
        self.tree.remove(&slot.entry);
        slot.status = Some(status);
        slot.entry.mask = slot.traits.mask | state_bit(Some(&status));
        self.tree.insert(slot.entry);
    }

    /// Removes a site; absent sites are ignored.
    pub fn remove(&mut self, name: &SiteName) {
        if let Some(id) = self.by_name.remove(name) {
            if let Some(slot) = self.slots[id as usize].take() {
                self.tree.remove(&slot.entry);
            }
            self.free.push(id);
        }
    }

    /// The `k` sites nearest to (latitude, longitude) that match `filter`, within
    /// `max_distance_m` if given, nearest first, by great-circle distance.
    pub fn nearest<'s>(
        &'s self,
        latitude: f64,
        longitude: f64,
        k: usize,
        max_distance_m: Option<f64>,
        filter: &Filter,
    ) -> Vec<Nearby> {
        let query = unit_vector(latitude, longitude);
        let compiled = filter.compile();
        // The chord that spans the distance limit; beyond it no candidate can qualify.
        let max_chord_2 = max_distance_m.map_or(f64::INFINITY, |d| {
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
        // Best-first: nodes and entries by their least possible chord², nearest first. An
        // entry popped is nearer than anything still queued, so results come out in order.
        let mut queue = BinaryHeap::with_capacity(64);
        let enqueue = |queue: &mut BinaryHeap<Pending<'s>>, node: &'s RTreeNode<Entry>| {
            let (mask, distance_2) = match node {
                RTreeNode::Leaf(entry) => (entry.mask, entry.point.distance_2(&query)),
                RTreeNode::Parent(parent) => {
                    let envelope = parent.envelope();
                    (envelope.mask, envelope.distance_2(&query))
                }
            };
            if distance_2 <= max_chord_2 && compiled.admits(mask) {
                queue.push(Pending { distance_2, node });
            }
        };
        for child in self.tree.root().children() {
            enqueue(&mut queue, child);
        }
        while let Some(Pending { node, .. }) = queue.pop() {
            match node {
                RTreeNode::Parent(parent) => {
                    for child in parent.children() {
                        enqueue(&mut queue, child);
                    }
                }
                RTreeNode::Leaf(entry) => {
                    let Some(slot) = &self.slots[entry.id as usize] else { continue };
                    if !slot.traits.matches_exactly(slot.status.as_ref(), &compiled) {
                        continue;
                    }
                    let distance_meters = great_circle_m(query, entry.point);
                    if max_distance_m.is_some_and(|d| distance_meters > d) {
                        continue;
                    }
                    out.push(Nearby { record: slot.record.clone(), distance_meters, status: slot.status });
                    if out.len() == k {
                        break;
                    }
                }
            }
        }
        out
    }
}
