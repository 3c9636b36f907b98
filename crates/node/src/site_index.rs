//! The nearest-neighbour index of every site, kept live: loaded from the store at start, then
//! following every origin's change log. One per process, shared by the services that read it
//! (DiscoveryService, CoverageService) through `NodeContext::site_index_for`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard};
use std::time::Duration;

use hubdir_core::SiteRecord;
use hubdir_geo::{Payload, SiteIndex};
use hubdir_proto::convert::EncodedSite;
use hubdir_store::{ChangeBody, ChangeEvent, SiteQuery, Store, StoreError};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Gauge;
use tonic::Status;

/// How often the change log is polled for writes of other processes (several processes on
/// one PostgreSQL): such a write is visible within this (plus the time to apply it), well
/// under the one-second promise. This process's own commits wake the index at once.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
const EVENTS_PER_READ: u64 = 5000;

/// The index of this process: each site with its answer encoded once, as it enters.
pub type Index = SiteIndex<Prepared>;

/// What the index prepares from each site for FindNearest's answer: its `hubdir.v1.Site`
/// encoding and the name of its connectivity status.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub site: EncodedSite,
    /// `sites/{origin}/{id}/connectivity`.
    pub connectivity_name: Arc<str>,
}

impl Payload for Prepared {
    fn of(record: &SiteRecord) -> Self {
        let connectivity_name = format!("{}/connectivity", record.site.name).into();
        Prepared { site: EncodedSite::of(record), connectivity_name }
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

/// Where the index is in one origin's log.
#[derive(Debug)]
struct Cursor {
    seq: u64,
    epoch: String,
}

/// Loads the index, marks it ready, then follows the change log forever.
pub async fn run(store: Arc<Store>, shared: LiveIndex) {
    let mut changes = store.watch_changes();
    let mut cursors = loop {
        match load(&store, &shared).await {
            Ok(cursors) => break cursors,
            Err(err) => {
                tracing::warn!(error = %err, "loading the discovery index failed; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    shared.ready.send_replace(true);
    loop {
        match catch_up(&store, &shared, &mut cursors).await {
            Ok(Followed::InStep) => {}
            Ok(Followed::Reload) => match load(&store, &shared).await {
                Ok(reloaded) => cursors = reloaded,
                Err(err) => tracing::warn!(error = %err, "reloading the discovery index failed; retrying"),
            },
            Err(err) => tracing::warn!(error = %err, "following the change log failed; retrying"),
        }
        let _ = tokio::time::timeout(POLL_INTERVAL, changes.changed()).await;
    }
}

/// Reads the cursors first, then every site: events after the cursors are replayed on top,
/// and replaying a change already loaded is harmless.
#[tracing::instrument(level = "debug", name = "index.load", skip_all)]
async fn load(store: &Store, shared: &LiveIndex) -> Result<HashMap<String, Cursor>, StoreError> {
    let started = std::time::Instant::now();
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
    let mut index = Index::from_records(records);
    for (name, status) in store.latest_summaries().await? {
        if let Ok(name) = name.parse() {
            index.set_status(&name, status);
        }
    }
    let took = started.elapsed();
    tracing::info!(sites = index.len(), seconds = took.as_secs_f64(), "discovery index loaded");
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
    /// must go, so the index is rebuilt.
    Reload,
}

async fn catch_up(
    store: &Store,
    shared: &LiveIndex,
    cursors: &mut HashMap<String, Cursor>,
) -> Result<Followed, StoreError> {
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
