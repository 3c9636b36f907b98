//! A model check of federation apply: seeded random runs drive `Store::apply_remote` with
//! what a network and hostile or broken peers can deliver — duplicates, reordered and missing
//! events, copies relayed by a second peer, snapshots (whole or cut short), replays of an
//! older epoch, a leader whose database is recreated (a new epoch), compaction of the
//! follower's log, and crashes between any two steps (the store is closed and reopened) — and
//! compare every outcome and every state with a reference model written here.
//!
//! Invariants, checked after every step: each event's outcome is the model's (nothing
//! applied twice, no gap applied, no stale epoch applied); the follower's sites are exactly
//! the model's, so a deletion is never undone; its change log holds only the leader's events
//! of the held epoch, each once, gapless unless a snapshot or compaction made holes; and once
//! everything is delivered in order, the follower equals the leader.
//!
//! `HUBDIR_MODEL_SEEDS` (default 500) runs are made; a failure prints its seed, and
//! `HUBDIR_MODEL_SEED=N` replays that one run.

use std::collections::BTreeMap;
use std::sync::Arc;

use hubdir_core::{Kind, SiteInput};
use hubdir_store::{Delivery, RemoteApplied, RemoteChange, RemoteEvent, SignedBytes, Store};

const SITES: [&str; 5] = ["a", "b", "c", "d", "e"];
const ORIGIN: &str = "fr";

/// splitmix64: small, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// One event of the leader's log: an upsert of a site (its version is its seq) or a delete.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Event {
    epoch: u64,
    seq: u64,
    site: usize,
    delete: bool,
}

/// One incarnation of the leader's log.
#[derive(Debug, Clone)]
struct Log {
    epoch: u64,
    events: Vec<Event>,
}

impl Log {
    fn new(epoch: u64) -> Log {
        Log { epoch, events: Vec::new() }
    }

    fn append(&mut self, rng: &mut Rng) {
        let seq = self.events.len() as u64 + 1;
        self.events.push(Event { epoch: self.epoch, seq, site: rng.below(SITES.len()), delete: rng.chance(25) });
    }

    /// The state after the events up to `through`: site -> seq of its last upsert.
    fn state(&self, through: u64) -> BTreeMap<usize, u64> {
        let mut state = BTreeMap::new();
        for e in self.events.iter().take_while(|e| e.seq <= through) {
            if e.delete {
                state.remove(&e.site);
            } else {
                state.insert(e.site, e.seq);
            }
        }
        state
    }

    /// The snapshot after `after`: the last event of each site among (after, head], in seq
    /// order (what `Store::snapshot_after` serves).
    fn snapshot(&self, after: u64) -> Vec<Event> {
        let mut last: BTreeMap<usize, Event> = BTreeMap::new();
        for e in self.events.iter().filter(|e| e.seq > after) {
            last.insert(e.site, *e);
        }
        let mut events: Vec<Event> = last.into_values().collect();
        events.sort_by_key(|e| e.seq);
        events
    }
}

/// The reference follower: what the store must hold.
#[derive(Debug, Clone, Default)]
struct Model {
    epoch: u64,
    last: u64,
    /// Whether a snapshot or compaction has left holes in this epoch's log here.
    holes: bool,
    state: BTreeMap<usize, u64>,
    /// The seqs of this epoch held in the change log.
    logged: Vec<u64>,
}

impl Model {
    fn apply(&mut self, e: &Event, delivery: Delivery) -> RemoteApplied {
        if e.epoch < self.epoch {
            return RemoteApplied::StaleEpoch;
        }
        if e.epoch > self.epoch {
            *self = Model { epoch: e.epoch, ..Model::default() };
        }
        if e.seq <= self.last {
            return RemoteApplied::Duplicate;
        }
        if delivery == Delivery::Stream && e.seq != self.last + 1 {
            return RemoteApplied::Gap { held: self.last };
        }
        if delivery == Delivery::Snapshot {
            self.holes = true;
        }
        self.last = e.seq;
        self.logged.push(e.seq);
        if e.delete {
            self.state.remove(&e.site);
        } else {
            self.state.insert(e.site, e.seq);
        }
        RemoteApplied::Applied
    }
}

fn epoch_name(epoch: u64) -> String {
    // Epochs are hex microsecond times: later incarnations sort later.
    format!("{:x}", 0x1_0000_0000u64 * epoch)
}

fn remote(e: &Event) -> RemoteEvent {
    let name = format!("sites/{ORIGIN}/{}", SITES[e.site]);
    let change = if e.delete {
        RemoteChange::Delete
    } else {
        let site = SiteInput {
            name: name.clone(),
            display_name: format!("Version {}", e.seq),
            kind: Some(Kind::PostOffice),
            country_code: "FR".into(),
            location: Some((45.0 + e.site as f64, 2.0)),
            time_zone: "Europe/Paris".into(),
            ..SiteInput::default()
        }
        .validate()
        .expect("a valid site");
        RemoteChange::Upsert(Box::new(site))
    };
    RemoteEvent {
        origin: ORIGIN.parse().expect("origin"),
        seq: e.seq,
        epoch: epoch_name(e.epoch),
        site_name: name,
        change,
        time: chrono::Utc::now(),
        signed: SignedBytes {
            bytes: format!("{}:{}", e.epoch, e.seq).into_bytes(),
            key_id: "fr-0".into(),
            signature: vec![0; 64],
        },
    }
}

struct Run {
    rng: Rng,
    seed: u64,
    url: String,
    store: Arc<Store>,
    /// Every incarnation of the leader's log, the current one last.
    logs: Vec<Log>,
    model: Model,
    trace: Vec<String>,
}

impl Run {
    fn fail(&self, what: String) -> String {
        let recent = self.trace.iter().rev().take(8).rev().cloned().collect::<Vec<_>>().join("\n  ");
        format!("seed {}: {what}\n  last steps:\n  {recent}", self.seed)
    }

    fn leader(&self) -> &Log {
        self.logs.last().expect("a log")
    }

    async fn deliver(&mut self, peer: &str, batch: Vec<(Event, Delivery)>) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        self.trace.push(format!(
            "{peer}: {:?}",
            batch.iter().map(|(e, d)| (e.epoch, e.seq, *d == Delivery::Snapshot)).collect::<Vec<_>>()
        ));
        let expected: Vec<RemoteApplied> = batch.iter().map(|(e, d)| self.model.apply(e, *d)).collect();
        let events = batch.iter().map(|(e, d)| (remote(e), *d)).collect();
        let got = self.store.apply_remote(peer, events).await.map_err(|e| self.fail(format!("apply failed: {e}")))?;
        if got != expected {
            return Err(self.fail(format!("outcomes {got:?}, the model says {expected:?}")));
        }
        Ok(())
    }

    /// Compares the store with the model.
    async fn check(&self) -> Result<(), String> {
        let held = self.store.site_versions(ORIGIN).await.map_err(|e| e.to_string())?;
        let want: Vec<(String, u64)> =
            self.model.state.iter().map(|(site, seq)| (format!("sites/{ORIGIN}/{}", SITES[*site]), *seq)).collect();
        if held != want {
            return Err(self.fail(format!("sites {held:?}, the model holds {want:?}")));
        }
        let logs = self.store.origin_logs().await.map_err(|e| e.to_string())?;
        let log = logs.iter().find(|l| l.origin.as_str() == ORIGIN);
        let (last, epoch) = log.map_or((0, String::new()), |l| (l.last_seq, l.epoch.clone()));
        if self.model.last > 0 && (last, epoch.as_str()) != (self.model.last, epoch_name(self.model.epoch).as_str()) {
            return Err(self.fail(format!("position {last} of epoch {epoch}, the model is at {}", self.model.last)));
        }
        let events =
            self.store.changes_after(&ORIGIN.parse().expect("origin"), 0, 10_000).await.map_err(|e| e.to_string())?;
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        for e in &events {
            let bytes = &e.signed.as_ref().expect("signed").bytes;
            if *bytes != format!("{}:{}", self.model.epoch, e.seq).into_bytes() {
                return Err(self.fail(format!(
                    "seq {} holds {:?}, not the leader's event",
                    e.seq,
                    String::from_utf8_lossy(bytes)
                )));
            }
        }
        let mut logged = self.model.logged.clone();
        logged.sort_unstable();
        // Compaction may drop superseded events; nothing else may be missing or extra.
        if !seqs.iter().all(|s| logged.binary_search(s).is_ok()) || seqs.windows(2).any(|w| w[0] >= w[1]) {
            return Err(self.fail(format!("log {seqs:?} is not a subset of {logged:?} in order")));
        }
        if !self.model.holes && seqs != (1..=self.model.last).collect::<Vec<_>>() {
            return Err(self.fail(format!("log {seqs:?} has a gap, and no snapshot or compaction made one")));
        }
        Ok(())
    }

    async fn step(&mut self) -> Result<(), String> {
        let head = self.leader().events.len() as u64;
        let from = if self.model.epoch == self.leader().epoch { self.model.last } else { 0 };
        let current = self.leader().clone();
        match self.rng.below(100) {
            // The leader writes.
            0..=19 => {
                let n = 1 + self.rng.below(4);
                let epoch = current.epoch;
                let log = self.logs.last_mut().expect("a log");
                for _ in 0..n {
                    log.append(&mut self.rng);
                }
                self.trace.push(format!("leader epoch {epoch} writes up to {}", log.events.len()));
            }
            // A stream from the held position, perturbed: duplicates, swaps, drops.
            20..=54 => {
                let peer = if self.rng.chance(30) { "relay" } else { "leader" };
                // Sometimes from a little before the held position: replays.
                let after = from.saturating_sub(self.rng.below(3) as u64);
                let take = 1 + self.rng.below(6);
                let mut batch: Vec<(Event, Delivery)> = current
                    .events
                    .iter()
                    .filter(|e| e.seq > after)
                    .take(take)
                    .map(|e| (*e, Delivery::Stream))
                    .collect();
                if batch.len() > 1 && self.rng.chance(25) {
                    let i = self.rng.below(batch.len() - 1);
                    batch.swap(i, i + 1);
                }
                if batch.len() > 1 && self.rng.chance(15) {
                    batch.remove(self.rng.below(batch.len()));
                }
                if !batch.is_empty() && self.rng.chance(20) {
                    let copy = batch[self.rng.below(batch.len())];
                    batch.push(copy);
                }
                self.deliver(peer, batch).await?;
            }
            // A snapshot after the held position (of this epoch, or from nothing), maybe cut short.
            55..=66 => {
                let mut batch: Vec<(Event, Delivery)> =
                    current.snapshot(from).into_iter().map(|e| (e, Delivery::Snapshot)).collect();
                if self.rng.chance(30) {
                    batch.truncate(self.rng.below(batch.len() + 1));
                }
                self.deliver("leader", batch).await?;
            }
            // A replay of an older incarnation of the log.
            67..=72 => {
                if let Some(old) = self.logs.iter().rev().nth(1).cloned() {
                    let batch = old.events.iter().take(1 + self.rng.below(4)).map(|e| (*e, Delivery::Stream)).collect();
                    self.deliver("leader", batch).await?;
                }
            }
            // The leader's database is recreated: a new epoch, written from seq 1.
            73..=76 => {
                if self.logs.len() < 3 && head > 0 {
                    let mut log = Log::new(current.epoch + 1);
                    log.append(&mut self.rng);
                    self.trace.push(format!("leader recreated as epoch {}", log.epoch));
                    self.logs.push(log);
                }
            }
            // The follower compacts its copy of the log.
            77..=82 => {
                self.store.compact(&ORIGIN.parse().expect("origin")).await.map_err(|e| e.to_string())?;
                self.model.holes = true;
                self.trace.push("follower compacts".into());
            }
            // A crash between two steps: the process goes, the database stays.
            _ => {
                self.trace.push("crash and restart".into());
                self.store = Arc::new(Store::connect(&self.url).await.map_err(|e| e.to_string())?);
            }
        }
        self.check().await
    }

    /// Delivers what the real protocol would from the held position: the rest of the
    /// current log, or a whole snapshot first when the follower is on another epoch.
    async fn converge(&mut self) -> Result<(), String> {
        let current = self.leader().clone();
        if self.model.epoch != current.epoch {
            let batch = current.snapshot(0).into_iter().map(|e| (e, Delivery::Snapshot)).collect();
            self.deliver("leader", batch).await?;
        } else {
            let last = self.model.last;
            let rest = current.events.iter().filter(|e| e.seq > last).map(|e| (*e, Delivery::Stream)).collect();
            self.deliver("leader", rest).await?;
        }
        self.check().await?;
        let head = current.events.len() as u64;
        let want = current.state(head);
        if self.model.state != want || self.model.last != head {
            return Err(
                self.fail(format!("after delivering everything: {:?}, the leader holds {want:?}", self.model.state))
            );
        }
        Ok(())
    }
}

async fn run(seed: u64) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}", dir.path().join("follower.db").display());
    let store = Arc::new(Store::connect(&url).await.map_err(|e| e.to_string())?);
    let mut rng = Rng(seed);
    let mut first = Log::new(1);
    first.append(&mut rng);
    let mut run = Run { rng, seed, url, store, logs: vec![first], model: Model::default(), trace: Vec::new() };
    for _ in 0..40 {
        run.step().await?;
    }
    run.converge().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_apply_matches_the_reference_model() {
    let seeds: Vec<u64> = match std::env::var("HUBDIR_MODEL_SEED") {
        Ok(one) => vec![one.parse().expect("HUBDIR_MODEL_SEED is a number")],
        Err(_) => {
            let count = std::env::var("HUBDIR_MODEL_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(500);
            (1..=count).collect()
        }
    };
    let mut failures = Vec::new();
    for seed in &seeds {
        if let Err(why) = run(*seed).await {
            failures.push(why);
            if failures.len() >= 3 {
                break;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed (replay one with HUBDIR_MODEL_SEED=N):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    println!("federation model: {} seeds, 40 steps each, all invariants held", seeds.len());
}
