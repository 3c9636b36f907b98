//! The in-memory nearest-neighbour index: every site as a point on the unit sphere in 3D, in
//! an R*-tree. Straight-line (chord) distance in 3D grows with great-circle distance, so the
//! tree's Euclidean nearest neighbours are exactly the nearest sites on the sphere, with no
//! seam at the antimeridian and no singularity at the poles. The search is best-first over the
//! tree's nodes, nearest first, and skips every subtree whose trait mask (`masked`) rules the
//! filter out; a filtered query stops at the k-th match.

use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use hubdir_core::connectivity::StatusSummary;
use hubdir_core::{CountryCode, Filter, Kind, LatLng, ServiceType, SiteName, SiteRecord, SiteStatus};
use rstar::{Envelope, PointDistance, RTree, RTreeNode};

use crate::filter::{Compiled, HoursCache, Traits, state_bit};
use crate::masked::Entry;
use crate::sphere::{EARTH_RADIUS_M, great_circle_m, unit_vector};

/// What the index keeps per site: its tree entry, its traits, its latest connectivity
/// status, the few facts callers read back, and what its owner prepared from the record to
/// answer with. The record itself is not kept: a caller that needs all of it reads it from
/// the store by name.
#[derive(Debug)]
pub(crate) struct Slot<P> {
    pub(crate) entry: Entry,
    pub(crate) traits: Traits,
    pub(crate) status: Option<StatusSummary>,
    pub(crate) facts: Arc<Facts>,
    pub(crate) payload: P,
}

/// The facts of a site the index hands back besides its payload: enough for coverage's
/// tallies and maps, and the name to read the whole record by.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub name: SiteName,
    pub location: LatLng,
    pub country: CountryCode,
    pub kind: Kind,
    pub status: SiteStatus,
    /// `ServiceType::ALL`'s bits.
    pub(crate) services: u16,
}

/// `Facts::services` has a bit per service.
const _: () = assert!(ServiceType::ALL.len() <= 16);

impl Facts {
    fn of(record: &SiteRecord) -> Facts {
        let site = &record.site;
        let services = ServiceType::ALL
            .iter()
            .enumerate()
            .filter(|(_, service)| site.services.contains(service))
            .fold(0, |bits, (i, _)| bits | 1 << i);
        Facts {
            name: site.name.clone(),
            location: site.location,
            country: site.country.clone(),
            kind: site.kind,
            status: site.status,
            services,
        }
    }

    /// Whether the site offers `service`.
    pub fn offers(&self, service: ServiceType) -> bool {
        ServiceType::ALL.iter().position(|s| *s == service).is_some_and(|i| self.services & 1 << i != 0)
    }
}

/// What the owner of an index prepares from each site once, when the site enters the index,
/// and every query hands back with it: the site's answer already encoded, for a server
/// (`hubdir_proto::convert::EncodedSite`); nothing, `()`, for a computation over positions.
pub trait Payload: Clone + std::fmt::Debug + Send + Sync + 'static {
    fn of(record: &SiteRecord) -> Self;

    /// Appends what a [`Snapshot`](crate::Snapshot) keeps of it.
    fn write_snapshot(&self, out: &mut Vec<u8>);

    /// Reads back what [`write_snapshot`](Payload::write_snapshot) wrote, for the site
    /// `facts`: `bytes` is a slice of the one buffer every payload of the snapshot shares.
    /// `None` if they do not read.
    fn read_snapshot(bytes: Bytes, facts: &Facts) -> Option<Self>;
}

impl Payload for () {
    fn of(_: &SiteRecord) {}

    fn write_snapshot(&self, _: &mut Vec<u8>) {}

    fn read_snapshot(bytes: Bytes, _: &Facts) -> Option<()> {
        bytes.is_empty().then_some(())
    }
}

impl<P: Payload> Slot<P> {
    fn new(record: SiteRecord, id: u32, status: Option<StatusSummary>, hours: &mut HoursCache) -> Slot<P> {
        let site = &record.site;
        let traits = Traits::of(site, hours);
        let point = unit_vector(site.location.latitude(), site.location.longitude());
        let mask = traits.mask | state_bit(status.as_ref());
        let payload = P::of(&record);
        Slot { entry: Entry { point, id, mask }, traits, status, facts: Arc::new(Facts::of(&record)), payload }
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
pub struct Nearby<P = ()> {
    pub facts: Arc<Facts>,
    /// What the index's owner prepared from the record.
    pub payload: P,
    pub distance_meters: f64,
    /// The site's latest connectivity status, fresh or not.
    pub status: Option<StatusSummary>,
    /// Whether it is open at the filter's `as_of` (now, without one); `None`: no opening hours.
    pub open_now: Option<bool>,
}

/// Every site, by position and by name, each with a payload `P` prepared from it.
#[derive(Debug)]
pub struct SiteIndex<P = ()> {
    pub(crate) tree: RTree<Entry>,
    pub(crate) slots: Vec<Option<Slot<P>>>,
    free: Vec<u32>,
    pub(crate) by_name: HashMap<SiteName, u32>,
    pub(crate) hours: HoursCache,
}

impl<P> Default for SiteIndex<P> {
    fn default() -> Self {
        SiteIndex {
            tree: RTree::default(),
            slots: Vec::new(),
            free: Vec::new(),
            by_name: HashMap::new(),
            hours: HoursCache::default(),
        }
    }
}

impl<P: Payload> SiteIndex<P> {
    /// Builds the index in one bulk load.
    pub fn from_records(records: impl IntoIterator<Item = SiteRecord>) -> SiteIndex<P> {
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

    /// Every site with its latest connectivity status (fresh or not), in no order.
    pub fn sites(&self) -> impl Iterator<Item = (&Facts, Option<&StatusSummary>)> {
        self.slots.iter().flatten().map(|slot| (&*slot.facts, slot.status.as_ref()))
    }

    /// The sites matching `filter`, as [`nearest`](SiteIndex::nearest) would match them, in
    /// no order.
    pub fn matching<'s>(&'s self, filter: &'s Filter) -> impl Iterator<Item = (&'s Facts, Option<&'s StatusSummary>)> {
        let compiled = Compiled::of(filter);
        self.slots.iter().flatten().filter_map(move |slot| {
            let admitted =
                compiled.admits(slot.entry.mask) && slot.traits.matches_exactly(slot.status.as_ref(), &compiled);
            admitted.then_some((&*slot.facts, slot.status.as_ref()))
        })
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
    ) -> Vec<Nearby<P>> {
        let query = unit_vector(latitude, longitude);
        let compiled = Compiled::of(filter);
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
                    out.push(Nearby {
                        facts: slot.facts.clone(),
                        payload: slot.payload.clone(),
                        distance_meters,
                        status: slot.status,
                        open_now: slot.traits.open_at(compiled.as_of),
                    });
                    if out.len() == k {
                        break;
                    }
                }
            }
        }
        out
    }
}
