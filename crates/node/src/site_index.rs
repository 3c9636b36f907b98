//! The nearest-neighbour index of every site, kept live: loaded at start, then following
//! every origin's change log. One per process, shared by the services that read it
//! (DiscoveryService, CoverageService) through `NodeContext::site_index_for`.
//!
//! At start the index is read from its snapshot file (`index_snapshot`) when that is current,
//! and the events after it are replayed; otherwise it is built from every site in the store.
//! A new snapshot is written after every build from the store, and then as the log moves on
//! (`SAVE_AFTER_EVENTS`, `SAVE_AT_LEAST_EVERY`). The follower pauses while the index is read
//! for it (queries go on), so the snapshot holds exactly what its cursors say; the file is
//! written in the background.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hubdir_core::SiteRecord;
use hubdir_geo::{Facts, Payload, SiteIndex};
use hubdir_proto::convert::EncodedSite;
use hubdir_store::{ChangeBody, ChangeEvent, OriginLog, SiteQuery, Store, StoreError};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Gauge;
use tonic::Status;

use crate::index_snapshot::{self, Cursor};

/// How often the change log is polled for writes of other processes (several processes on
/// one PostgreSQL): such a write is visible within this (plus the time to apply it), well
/// under the one-second promise. This process's own commits wake the index at once.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
const EVENTS_PER_READ: u64 = 5000;

/// The index of this process: each site with its answer encoded once, as it enters.
pub type Index = SiteIndex<Prepared>;

/// What the index prepares from each site for FindNearest's answer: its `hubdir.v1.Site`
/// encoding.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub site: EncodedSite,
}

impl Payload for Prepared {
    fn of(record: &SiteRecord) -> Self {
        Prepared { site: EncodedSite::of(record) }
    }

    fn write_snapshot(&self, out: &mut Vec<u8>) {
        self.site.write_snapshot(out);
    }

    fn read_snapshot(bytes: Bytes, _: &Facts) -> Option<Self> {
        Some(Prepared { site: EncodedSite::read_snapshot(bytes)? })
    }
}

/// The index, and whether its first load finished (queries wait for it).
#[derive(Debug, Clone)]
pub struct LiveIndex {
    index: Arc<RwLock<Index>>,
    ready: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for LiveIndex {
    fn default() -> Self {
        LiveIndex { index: Arc::default(), ready: Arc::new(tokio::sync::watch::Sender::new(false)) }
    }
}

impl LiveIndex {
    /// The index as it is now. Hold the guard briefly: the follower waits for it to write.
    pub fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for the first load, up to `within`; then UNAVAILABLE with `INDEX_LOADING`.
    pub async fn loaded(&self, within: Duration) -> Result<(), Status> {
        let mut ready = self.ready.subscribe();
        if tokio::time::timeout(within, ready.wait_for(|loaded| *loaded)).await.map_or(true, |r| r.is_err()) {
            return Err(crate::status::with_reason(
                crate::status::Reason::IndexLoading,
                "the discovery index is still loading; retry shortly",
                Default::default(),
            ));
        }
        Ok(())
    }

    /// The index loaded once from `store`, not followed: for a command that computes over
    /// the sites as they are (`hubdir coverage`).
    pub async fn load_once(store: &Store) -> Result<LiveIndex, StoreError> {
        let index = LiveIndex::default();
        load(store, &index).await?;
        index.ready.send_replace(true);
        Ok(index)
    }

    /// Resolves once the first load has finished.
    pub async fn when_loaded(&self) {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|loaded| *loaded).await;
    }
}

struct Instruments {
    /// `hubdir.index.sites`: sites in the index.
    sites: Gauge<u64>,
    /// `hubdir.index.applied_seq{origin}`: the last change-log seq the index has applied.
    applied_seq: Gauge<u64>,
    /// `hubdir.index.load.duration`: how long the last full load took, in seconds.
    load_duration: Gauge<f64>,
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter(hubdir_telemetry::SCOPE);
        Instruments {
            sites: meter.u64_gauge("hubdir.index.sites").with_description("Sites in the discovery index").build(),
            applied_seq: meter
                .u64_gauge("hubdir.index.applied_seq")
                .with_description("The last change-log seq the discovery index has applied, by origin")
                .build(),
            load_duration: meter
                .f64_gauge("hubdir.index.load.duration")
                .with_unit("s")
                .with_description("How long the discovery index's last full load took")
                .build(),
        }
    })
}

/// Where the index is in each origin's log, by origin.
type Cursors = HashMap<String, Cursor>;

/// A new snapshot is written once the index has applied this many events since the last one
/// (and `SAVE_AT_MOST_EVERY` has passed): a restart then replays at most about this many.
pub const SAVE_AFTER_EVENTS: u64 = 10_000;
/// Snapshots are written at most this often under a steady stream of writes.
pub const SAVE_AT_MOST_EVERY: Duration = Duration::from_secs(60);
/// And at least this often while anything at all was applied.
pub const SAVE_AT_LEAST_EVERY: Duration = Duration::from_secs(600);

/// Loads the index (from the snapshot at `snapshot_file` if it is current), marks it ready,
/// then follows the change log forever, writing snapshots there as it goes.
pub async fn run(store: Arc<Store>, shared: LiveIndex, snapshot_file: Option<PathBuf>) {
    let mut changes = store.watch_changes();
    let mut saver = Saver::new(snapshot_file);
    let mut cursors = match saver.resume(&store, &shared).await {
        Some(cursors) => cursors,
        None => {
            let cursors = loop {
                match load(&store, &shared).await {
                    Ok(cursors) => break cursors,
                    Err(err) => {
                        tracing::warn!(error = %err, "loading the discovery index failed; retrying");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            };
            shared.ready.send_replace(true);
            let _ = saver.save(&shared, &cursors).await;
            cursors
        }
    };
    shared.ready.send_replace(true);
    loop {
        match catch_up(&store, &shared, &mut cursors).await {
            Ok(Followed::InStep) => saver.save_if_due(&shared, &cursors).await,
            Ok(Followed::Reload) => match load(&store, &shared).await {
                Ok(reloaded) => {
                    cursors = reloaded;
                    let _ = saver.save(&shared, &cursors).await;
                }
                Err(err) => tracing::warn!(error = %err, "reloading the discovery index failed; retrying"),
            },
            Err(err) => tracing::warn!(error = %err, "following the change log failed; retrying"),
        }
        let _ = tokio::time::timeout(POLL_INTERVAL, changes.changed()).await;
    }
}

/// Reads and writes the index's snapshot file, if it has one.
struct Saver {
    file: Option<PathBuf>,
    saved_at: Instant,
    /// The sum of the cursors' seqs at the last save: how far the log has moved since.
    saved_position: u64,
    /// A save is being written: the next waits for it to finish.
    busy: Arc<AtomicBool>,
}

fn position(cursors: &Cursors) -> u64 {
    cursors.values().map(|cursor| cursor.seq).sum()
}

impl Saver {
    /// A saver for `snapshot_file`. The build's identity (the hash of this executable) is
    /// read only where a snapshot is read or written, off the runtime's threads: a start with
    /// no snapshot does not wait for it.
    fn new(snapshot_file: Option<PathBuf>) -> Saver {
        Saver { file: snapshot_file, saved_at: Instant::now(), saved_position: 0, busy: Arc::default() }
    }

    /// The index from the snapshot file, brought up to the log's head; `None` if there is no
    /// current snapshot (the reason is logged), and then the index must be built from the
    /// store.
    async fn resume(&mut self, store: &Store, shared: &LiveIndex) -> Option<Cursors> {
        let path = self.file.clone()?;
        let started = Instant::now();
        let read = move || match path.exists().then(index_snapshot::build_id).flatten() {
            Some(build) => index_snapshot::read(&path, &build),
            None => Ok(None),
        };
        let stored = match tokio::task::spawn_blocking(read).await {
            Ok(Ok(Some(stored))) => stored,
            Ok(Ok(None)) => {
                tracing::info!("no index snapshot yet: building the index from the store");
                return None;
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "the index snapshot is not used: building the index from the store");
                return None;
            }
            Err(_) => return None,
        };
        let logs = match store.origin_logs().await {
            Ok(logs) => logs,
            Err(err) => {
                tracing::warn!(error = %err, "the index snapshot could not be checked against the store");
                return None;
            }
        };
        if let Some(reason) = stale(&stored.cursors, &logs) {
            tracing::info!(reason, "the index snapshot is stale: building the index from the store");
            return None;
        }
        let index_snapshot::Stored { mut cursors, sites, payloads } = stored;
        let index = match tokio::task::spawn_blocking(move || Index::from_snapshot(&sites, payloads)).await {
            Ok(Ok(index)) => index,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "the index snapshot does not read: building the index from the store");
                return None;
            }
            Err(_) => return None,
        };
        let (read, before) = (started.elapsed(), position(&cursors));
        *shared.index.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = index;
        match catch_up(store, shared, &mut cursors).await {
            Ok(Followed::InStep) => {}
            Ok(Followed::Reload) => return None,
            Err(err) => {
                tracing::warn!(error = %err, "replaying the log after the index snapshot failed");
                return None;
            }
        }
        let took = started.elapsed();
        let sites = shared.read().len();
        tracing::info!(
            sites,
            seconds = took.as_secs_f64(),
            read_seconds = read.as_secs_f64(),
            replayed_events = position(&cursors) - before,
            from = "snapshot",
            "discovery index loaded"
        );
        let instruments = instruments();
        instruments.sites.record(sites as u64, &[]);
        instruments.load_duration.record(took.as_secs_f64(), &[]);
        for (origin, cursor) in &cursors {
            instruments.applied_seq.record(cursor.seq, &[KeyValue::new("origin", origin.clone())]);
        }
        (self.saved_at, self.saved_position) = (Instant::now(), before);
        Some(cursors)
    }

    /// Takes a snapshot of the index as it is now, and writes it in the background, unless
    /// one is being written; the handle resolves once it is written. The follower (the
    /// caller) waits while the index is read: a follower waiting to write would hold up the
    /// queries behind it, since readers queue behind a waiting writer.
    async fn save(&mut self, shared: &LiveIndex, cursors: &Cursors) -> Option<tokio::task::JoinHandle<()>> {
        let path = self.file.clone()?;
        if self.busy.swap(true, Ordering::AcqRel) {
            return None;
        }
        (self.saved_at, self.saved_position) = (Instant::now(), position(cursors));
        let (index, cursors, busy) = (shared.index.clone(), cursors.clone(), Busy(self.busy.clone()));
        let started = Instant::now();
        let taken = tokio::task::spawn_blocking(move || {
            index.read().unwrap_or_else(|poisoned| poisoned.into_inner()).snapshot()
        });
        let snapshot = taken.await.ok()?;
        let taking = started.elapsed();
        Some(tokio::task::spawn_blocking(move || {
            let _busy = busy;
            let bytes = snapshot.sites.len() + snapshot.payloads.len();
            let Some(build) = index_snapshot::build_id() else { return };
            match index_snapshot::write(&path, &build, &cursors, &snapshot) {
                Ok(()) => tracing::info!(
                    bytes,
                    seconds = started.elapsed().as_secs_f64(),
                    index_read_seconds = taking.as_secs_f64(),
                    "index snapshot written"
                ),
                Err(err) => tracing::warn!(error = %err, "the index snapshot could not be written"),
            }
        }))
    }

    async fn save_if_due(&mut self, shared: &LiveIndex, cursors: &Cursors) {
        let moved = position(cursors).saturating_sub(self.saved_position);
        let since = self.saved_at.elapsed();
        if (moved >= SAVE_AFTER_EVENTS && since >= SAVE_AT_MOST_EVERY) || (moved > 0 && since >= SAVE_AT_LEAST_EVERY) {
            let _ = self.save(shared, cursors).await;
        }
    }
}

/// Marks the saver free again when dropped, however the save ended.
struct Busy(Arc<AtomicBool>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Why a snapshot taken at `cursors` cannot be brought up to date from these logs by
/// replaying them, if it cannot: an origin's log went away, was replaced or is behind the
/// snapshot, or was compacted past it (compaction leaves holes a replay cannot see through).
fn stale(cursors: &Cursors, logs: &[OriginLog]) -> Option<String> {
    for (origin, cursor) in cursors {
        let Some(log) = logs.iter().find(|log| log.origin.as_str() == origin) else {
            return Some(format!("origin {origin} is no longer in the store"));
        };
        if log.epoch != cursor.epoch {
            return Some(format!("origin {origin}'s log was replaced"));
        }
        if log.last_seq < cursor.seq {
            return Some(format!("origin {origin}'s log ends before the snapshot"));
        }
    }
    logs.iter()
        .find(|log| log.compacted_through > cursors.get(log.origin.as_str()).map_or(0, |cursor| cursor.seq))
        .map(|log| format!("origin {}'s log was compacted past the snapshot", log.origin))
}

/// Reads the cursors first, then every site: events after the cursors are replayed on top,
/// and replaying a change already loaded is harmless.
#[tracing::instrument(level = "debug", name = "index.load", skip_all)]
async fn load(store: &Store, shared: &LiveIndex) -> Result<Cursors, StoreError> {
    let started = Instant::now();
    let cursors: HashMap<String, Cursor> = store
        .origin_logs()
        .await?
        .into_iter()
        .map(|log| (log.origin.to_string(), Cursor { seq: log.last_seq, epoch: log.epoch }))
        .collect();
    let mut records = Vec::new();
    let mut query = SiteQuery { limit: 5000, ..SiteQuery::default() };
    loop {
        let page = store.list_sites(&query).await?;
        let Some(last) = page.last() else { break };
        query.after_name = Some(last.site.name.to_string());
        records.extend(page);
    }
    // An origin that began while the sites were read has some of them here and no cursor:
    // it is followed from its first event.
    let mut cursors = cursors;
    for log in store.origin_logs().await? {
        cursors.entry(log.origin.to_string()).or_insert(Cursor { seq: 0, epoch: log.epoch });
    }
    let mut index = Index::from_records(records);
    for (name, status) in store.logged_summaries().await? {
        if let Ok(name) = name.parse() {
            index.set_status(&name, status);
        }
    }
    let took = started.elapsed();
    tracing::info!(sites = index.len(), seconds = took.as_secs_f64(), from = "store", "discovery index loaded");
    let instruments = instruments();
    instruments.sites.record(index.len() as u64, &[]);
    instruments.load_duration.record(took.as_secs_f64(), &[]);
    for (origin, cursor) in &cursors {
        instruments.applied_seq.record(cursor.seq, &[KeyValue::new("origin", origin.clone())]);
    }
    *shared.index.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = index;
    Ok(cursors)
}

/// Whether the index could follow the log, or must be loaded afresh.
enum Followed {
    InStep,
    /// An origin's log was replaced (a peer's recreated database, resynced): its old sites
    /// must go, so the index is rebuilt. (A log compacted past the cursor is followed as it
    /// is: a peer's snapshot delivery compacts through every seq it brings, and rebuilding at
    /// each would rebuild all the time. At a start, `stale` refuses such a snapshot.)
    Reload,
}

async fn catch_up(store: &Store, shared: &LiveIndex, cursors: &mut Cursors) -> Result<Followed, StoreError> {
    for log in store.origin_logs().await? {
        let cursor =
            cursors.entry(log.origin.to_string()).or_insert_with(|| Cursor { seq: 0, epoch: log.epoch.clone() });
        if cursor.epoch != log.epoch || cursor.seq > log.last_seq {
            return Ok(Followed::Reload);
        }
        if cursor.seq == log.last_seq {
            continue;
        }
        while cursor.seq < log.last_seq {
            let events = store.changes_after(&log.origin, cursor.seq, EVENTS_PER_READ).await?;
            let Some(end) = events.last().map(|e| e.seq) else { break };
            let _span = tracing::debug_span!("index.apply", events = events.len()).entered();
            let mut index = shared.index.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            for event in events {
                apply(&mut index, event);
            }
            instruments().sites.record(index.len() as u64, &[]);
            cursor.seq = end;
        }
        instruments().applied_seq.record(cursor.seq, &[KeyValue::new("origin", log.origin.to_string())]);
    }
    Ok(Followed::InStep)
}

fn apply(index: &mut Index, event: ChangeEvent) {
    match event.body() {
        Ok(ChangeBody::Upsert(record)) => index.upsert(*record),
        Ok(ChangeBody::Delete(name)) => index.remove(&name),
        Ok(ChangeBody::Status(name, status)) => index.set_status(&name, status),
        Ok(ChangeBody::Withheld) => {}
        Err(err) => tracing::warn!(error = %err, "unreadable change-log event; skipped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubdir_core::connectivity::{Benchmark, Measurement, Source, Technology};
    use hubdir_core::{Kind, ServiceType, Site, SiteInput};
    use hubdir_store::testing::{Backend, TestDb};
    use hubdir_store::{Change, Precondition, Write};

    fn site(i: usize, latitude: f64) -> Site {
        SiteInput {
            name: format!("sites/zw/s{i}"),
            display_name: format!("Help point {i}"),
            kind: Some(if i.is_multiple_of(3) { Kind::PublicLibrary } else { Kind::PostOffice }),
            operator: "ZimPost".into(),
            country_code: "ZW".into(),
            location: Some((latitude, 31.0 + i as f64 * 0.01)),
            services: if i.is_multiple_of(2) {
                vec![ServiceType::FreeWifi]
            } else {
                vec![ServiceType::EGovernmentHelp]
            },
            languages: vec![if i.is_multiple_of(4) { "sn".into() } else { "en".into() }],
            opening_hours: if i.is_multiple_of(5) { String::new() } else { "Mo-Fr 08:00-17:00".into() },
            time_zone: "Africa/Harare".into(),
            ..SiteInput::default()
        }
        .validate()
        .unwrap()
    }

    async fn write(store: &Store, changes: Vec<Change>) {
        let writes = changes.into_iter().map(|change| Write { change, precondition: Precondition::None }).collect();
        store.write(writes).await.unwrap();
    }

    async fn measure(store: &Store, sites: &[usize], download: f64) {
        let items = sites
            .iter()
            .map(|i| {
                let m = Measurement {
                    site: format!("sites/zw/s{i}").parse().unwrap(),
                    observed_at: chrono::Utc::now(),
                    online: true,
                    download_mbps: Some(download),
                    upload_mbps: None,
                    latency_ms: None,
                    jitter_ms: None,
                    packet_loss_ratio: None,
                    technology: Technology::Dsl,
                    public_wifi_access_points: Some(1),
                    public_computers: None,
                    power_backup: None,
                    source: Source::Agent,
                    idempotency_key: format!("{i}-{download}"),
                };
                let summary =
                    hubdir_core::connectivity::StatusSummary::of(&m, &Benchmark::default(), chrono::Duration::hours(1));
                (m, summary)
            })
            .collect();
        store.record_measurements(items, chrono::Duration::hours(1)).await.unwrap();
    }

    /// A snapshot taken at start, brought up to date by replaying the log after it (updates,
    /// moves, deletions, new sites, statuses), is the index a rebuild from the store gives:
    /// the same cursors, and the same snapshot bytes (every site's facts, traits, status and
    /// prepared answer).
    async fn a_snapshot_brought_up_to_date_equals_a_rebuild(backend: Backend) {
        let Some(db) = TestDb::new(backend).await else { return };
        let store = db.store().await;
        write(&store, (0..40).map(|i| Change::Upsert(Box::new(site(i, -17.8)))).collect()).await;
        measure(&store, &[1, 2, 3], 50.0).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hubdir.db.index");

        let first = LiveIndex::default();
        let mut saver = Saver::new(Some(file.clone()));
        assert!(saver.resume(&store, &first).await.is_none(), "there is no snapshot yet");
        let cursors = load(&store, &first).await.unwrap();
        saver.save(&first, &cursors).await.expect("a snapshot is written").await.unwrap();
        assert!(file.exists());

        let mut later: Vec<Change> = (0..10).map(|i| Change::Upsert(Box::new(site(i, -18.5)))).collect();
        later.extend((10..15).map(|i| Change::Delete(format!("sites/zw/s{i}").parse().unwrap())));
        later.extend((40..50).map(|i| Change::Upsert(Box::new(site(i, -19.0)))));
        write(&store, later).await;
        measure(&store, &[2, 20, 45], 0.5).await;
        // Same state and class: the latest status, not announced in the log.
        measure(&store, &[2], 0.7).await;
        write(&store, vec![Change::Upsert(Box::new(site(20, -20.0)))]).await;

        let resumed = LiveIndex::default();
        let resumed_cursors =
            Saver::new(Some(file.clone())).resume(&store, &resumed).await.expect("the snapshot is current");
        let rebuilt = LiveIndex::default();
        let rebuilt_cursors = load(&store, &rebuilt).await.unwrap();
        assert_eq!(resumed_cursors, rebuilt_cursors);
        assert_eq!(resumed.read().len(), 45);
        assert!(resumed.read().snapshot() == rebuilt.read().snapshot(), "the resumed index differs from a rebuild");
        assert!(resumed.read().snapshot() != first.read().snapshot(), "the later writes changed the index");

        // Another store (a new log, another epoch) does not take this snapshot.
        let Some(other_db) = TestDb::new(backend).await else { return };
        let other = other_db.store().await;
        write(&other, vec![Change::Upsert(Box::new(site(1, -17.8)))]).await;
        assert!(Saver::new(Some(file)).resume(&other, &LiveIndex::default()).await.is_none());
    }

    hubdir_store::on_both_backends!(a_snapshot_brought_up_to_date_equals_a_rebuild);

    fn log(origin: &str, epoch: &str, last_seq: u64, compacted_through: u64) -> OriginLog {
        OriginLog { origin: origin.parse().unwrap(), last_seq, epoch: epoch.into(), compacted_through }
    }

    #[test]
    fn a_snapshot_is_stale_when_a_replay_cannot_bring_it_up_to_date() {
        let cursors = Cursors::from([("zw".to_owned(), Cursor { seq: 10, epoch: "a".into() })]);
        assert_eq!(stale(&cursors, &[log("zw", "a", 10, 0)]), None);
        assert_eq!(stale(&cursors, &[log("zw", "a", 25, 10), log("fr", "b", 3, 0)]), None, "events to replay");
        assert!(stale(&cursors, &[]).unwrap().contains("no longer"));
        assert!(stale(&cursors, &[log("zw", "b", 10, 0)]).unwrap().contains("replaced"));
        assert!(stale(&cursors, &[log("zw", "a", 9, 0)]).unwrap().contains("ends before"));
        assert!(stale(&cursors, &[log("zw", "a", 30, 11)]).unwrap().contains("compacted"));
        assert!(stale(&cursors, &[log("zw", "a", 10, 0), log("fr", "b", 3, 1)]).unwrap().contains("fr"));
    }
}
