//! The index as bytes, and back without the records it was built from: what lets a node with
//! a million sites serve seconds after it starts instead of reading and validating every row
//! again (`hubdir_node::index_snapshot` keeps the file and decides when it is current).
//!
//! Two sections:
//! - `sites`: a table of the strings many sites share (opening hours, time zones, languages),
//!   then per site its name, position, facts, trait mask, languages, hours, time zone, latest
//!   connectivity status (exactly: its speed's bits, its instants to the nanosecond) and the
//!   length of its payload;
//! - `payloads`: every site's payload, back to back. Read back, the payloads share this one
//!   buffer (a FindNearest answer's bytes are a slice of it) and the rest is dropped.
//!
//! Sites are written in name order and the table in first use, so two indexes that hold the
//! same sites write the same bytes, whatever order they were built in: that is how a snapshot
//! brought up to date is checked against a rebuild. The format is this build's own, with no
//! version inside: whoever keeps the file checks that this build wrote it.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use hubdir_core::connectivity::{Class, State, StatusSummary};
use hubdir_core::{CountryCode, Kind, LatLng, SiteName, SiteStatus};
use rstar::RTree;

use crate::filter::{Hours, Traits, state_bit};
use crate::index::{Facts, Payload, SiteIndex, Slot};
use crate::masked::Entry;
use crate::sphere::unit_vector;

/// An index written out: see the module's documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub sites: Vec<u8>,
    pub payloads: Vec<u8>,
}

/// A snapshot that does not read back: the site (by its place in the file) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("index snapshot: {0}")]
pub struct SnapshotError(String);

/// The strings of the table, each written once.
#[derive(Default)]
struct Table<'s> {
    bytes: Vec<u8>,
    count: u32,
    index: HashMap<&'s str, u32>,
}

impl<'s> Table<'s> {
    fn id(&mut self, text: &'s str) -> u32 {
        *self.index.entry(text).or_insert_with(|| {
            put_str(&mut self.bytes, text);
            self.count += 1;
            self.count - 1
        })
    }
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

impl<P: Payload> SiteIndex<P> {
    /// Every site of the index, in name order.
    pub fn snapshot(&self) -> Snapshot {
        let mut slots: Vec<&Slot<P>> = self.slots.iter().flatten().collect();
        slots.sort_unstable_by(|a, b| a.facts.name.cmp(&b.facts.name));
        let mut table = Table::default();
        let mut sites = Vec::with_capacity(slots.len() * 96);
        let mut payloads = Vec::new();
        for slot in slots {
            let (facts, traits) = (&*slot.facts, &slot.traits);
            put_str(&mut sites, &facts.name.to_string());
            sites.extend_from_slice(&facts.location.latitude().to_le_bytes());
            sites.extend_from_slice(&facts.location.longitude().to_le_bytes());
            put_str(&mut sites, facts.country.as_str());
            sites.push(position(Kind::ALL, &facts.kind));
            sites.push(position(SiteStatus::ALL, &facts.status));
            sites.extend_from_slice(&facts.services.to_le_bytes());
            sites.extend_from_slice(&traits.mask.to_le_bytes());
            sites.extend_from_slice(&(traits.languages.len() as u32).to_le_bytes());
            for language in &traits.languages {
                sites.extend_from_slice(&table.id(language).to_le_bytes());
            }
            let hours = traits.hours.as_ref().map_or(0, |hours| table.id(&hours.text) + 1);
            sites.extend_from_slice(&hours.to_le_bytes());
            sites.extend_from_slice(&table.id(traits.time_zone.name()).to_le_bytes());
            match &slot.status {
                None => sites.push(0),
                Some(status) => {
                    sites.push(1);
                    put_status(&mut sites, status);
                }
            }
            let before = payloads.len();
            slot.payload.write_snapshot(&mut payloads);
            sites.extend_from_slice(&((payloads.len() - before) as u32).to_le_bytes());
        }
        let mut out = Vec::with_capacity(16 + table.bytes.len() + sites.len());
        out.extend_from_slice(&(self.len() as u64).to_le_bytes());
        out.extend_from_slice(&table.count.to_le_bytes());
        out.extend_from_slice(&table.bytes);
        out.extend_from_slice(&sites);
        Snapshot { sites: out, payloads }
    }

    /// The index a [`snapshot`](SiteIndex::snapshot) was taken of: the same sites, facts,
    /// traits, statuses and payloads (its tree is bulk-loaded afresh). Fails naming the site
    /// (by its place in the file) and what does not read.
    pub fn from_snapshot(sites: &[u8], payloads: Bytes) -> Result<SiteIndex<P>, SnapshotError> {
        let mut r = Reader { bytes: sites, site: None };
        let count = usize::try_from(r.u64()?).map_err(|_| r.error("the site count"))?;
        let table: Vec<&str> = (0..r.u32()?).map(|_| r.str()).collect::<Result<_, _>>()?;
        let mut zones: Vec<Option<Tz>> = vec![None; table.len()];
        let mut index = SiteIndex::<P>::default();
        let mut hours_by_id: Vec<Option<Option<Arc<Hours>>>> = vec![None; table.len()];
        let mut entries = Vec::with_capacity(count.min(sites.len() / 40));
        index.slots.reserve(entries.capacity());
        index.by_name.reserve(entries.capacity());
        let mut offset = 0usize;
        for i in 0..count {
            r.site = Some(i);
            let name = SiteName::from_str(r.str()?).map_err(|_| r.error("the name"))?;
            let (latitude, longitude) = (r.f64()?, r.f64()?);
            let location = LatLng::new(latitude, longitude).ok_or_else(|| r.error("the position"))?;
            let country = CountryCode::parse(r.str()?).ok_or_else(|| r.error("the country"))?;
            let kind = *Kind::ALL.get(usize::from(r.u8()?)).ok_or_else(|| r.error("the kind"))?;
            let status = *SiteStatus::ALL.get(usize::from(r.u8()?)).ok_or_else(|| r.error("the status"))?;
            let services = r.u16()?;
            let mask = r.u64()?;
            let languages =
                (0..r.u32()?).map(|_| r.table_str(&table).map(str::to_owned)).collect::<Result<Vec<_>, _>>()?;
            let hours = match r.u32()? {
                0 => None,
                id => {
                    let id = (id - 1) as usize;
                    let text = *table.get(id).ok_or_else(|| r.error("the opening hours"))?;
                    let cached = &mut hours_by_id[id];
                    cached.get_or_insert_with(|| index.hours.get(text)).clone()
                }
            };
            let zone_id = r.u32()? as usize;
            let time_zone = match zones.get(zone_id) {
                Some(Some(zone)) => *zone,
                Some(None) => {
                    let zone = Tz::from_str(table[zone_id]).map_err(|_| r.error("the time zone"))?;
                    zones[zone_id] = Some(zone);
                    zone
                }
                None => return Err(r.error("the time zone")),
            };
            let connectivity = match r.u8()? {
                0 => None,
                _ => Some(r.status()?),
            };
            let length = r.u32()? as usize;
            let end = offset.checked_add(length).filter(|end| *end <= payloads.len());
            let end = end.ok_or_else(|| r.error("the payload's length"))?;
            let facts = Facts { name: name.clone(), location, country, kind, status, services };
            let payload =
                P::read_snapshot(payloads.slice(offset..end), &facts).ok_or_else(|| r.error("the payload"))?;
            offset = end;
            let id = u32::try_from(i).map_err(|_| r.error("the site count"))?;
            let entry =
                Entry { point: unit_vector(latitude, longitude), id, mask: mask | state_bit(connectivity.as_ref()) };
            entries.push(entry);
            let traits = Traits { mask, languages, hours, time_zone };
            index.slots.push(Some(Slot { entry, traits, status: connectivity, facts: Arc::new(facts), payload }));
            if index.by_name.insert(name, id).is_some() {
                return Err(r.error("the name, twice"));
            }
        }
        r.site = None;
        if !r.bytes.is_empty() || offset != payloads.len() {
            return Err(r.error("bytes after the last site"));
        }
        index.tree = RTree::bulk_load(entries);
        Ok(index)
    }
}

const STATES: [State; 4] = [State::Online, State::Degraded, State::Offline, State::Unknown];
const CLASSES: [Class; 4] = [Class::Good, Class::Moderate, Class::Poor, Class::Unknown];

/// A status exactly: its speed's bits and its instants to the nanosecond.
fn put_status(out: &mut Vec<u8>, status: &StatusSummary) {
    out.push(position(&STATES, &status.state));
    out.push(position(&CLASSES, &status.class));
    match status.download_mbps {
        None => out.push(0),
        Some(mbps) => {
            out.push(1);
            out.extend_from_slice(&mbps.to_bits().to_le_bytes());
        }
    }
    for instant in [status.observed_at, status.expires_at] {
        out.extend_from_slice(&instant.timestamp().to_le_bytes());
        out.extend_from_slice(&instant.timestamp_subsec_nanos().to_le_bytes());
    }
}

fn position<T: PartialEq>(all: &[T], value: &T) -> u8 {
    all.iter().position(|v| v == value).unwrap_or(0) as u8
}

/// Reads the sites section front to back; every read fails cleanly at its end.
struct Reader<'b> {
    bytes: &'b [u8],
    site: Option<usize>,
}

impl<'b> Reader<'b> {
    fn error(&self, what: &str) -> SnapshotError {
        SnapshotError(match self.site {
            Some(i) => format!("site {i}: {what} does not read"),
            None => format!("{what} does not read"),
        })
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let (head, rest) = self.bytes.split_first_chunk::<N>().ok_or_else(|| self.error("a field past the end"))?;
        self.bytes = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, SnapshotError> {
        Ok(u16::from_le_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    fn f64(&mut self) -> Result<f64, SnapshotError> {
        Ok(f64::from_le_bytes(self.take()?))
    }

    fn str(&mut self) -> Result<&'b str, SnapshotError> {
        let length = self.u32()? as usize;
        if self.bytes.len() < length {
            return Err(self.error("a text past the end"));
        }
        let (text, rest) = self.bytes.split_at(length);
        self.bytes = rest;
        std::str::from_utf8(text).map_err(|_| self.error("a text"))
    }

    fn status(&mut self) -> Result<StatusSummary, SnapshotError> {
        let state = *STATES.get(usize::from(self.u8()?)).ok_or_else(|| self.error("the connectivity state"))?;
        let class = *CLASSES.get(usize::from(self.u8()?)).ok_or_else(|| self.error("the connectivity class"))?;
        let download_mbps = match self.u8()? {
            0 => None,
            _ => Some(self.f64()?),
        };
        let observed_at = self.instant()?;
        let expires_at = self.instant()?;
        Ok(StatusSummary { state, class, download_mbps, observed_at, expires_at })
    }

    fn instant(&mut self) -> Result<DateTime<Utc>, SnapshotError> {
        let (seconds, nanos) = (self.u64()? as i64, self.u32()?);
        DateTime::from_timestamp(seconds, nanos).ok_or_else(|| self.error("a connectivity instant"))
    }

    fn table_str<'t>(&mut self, table: &[&'t str]) -> Result<&'t str, SnapshotError> {
        let id = self.u32()? as usize;
        table.get(id).copied().ok_or_else(|| self.error("a string of the table"))
    }
}
