//! The follower side: one task per configured peer subscribes from this node's cursors,
//! verifies every event against the pinned keys and the origins the peer may supply, and
//! applies what it received in one transaction with the peer's cursor (`Store::apply_remote`).
//! Events between a `SnapshotStart` and its `SnapshotEnd` are applied as a snapshot (holes
//! between seqs are expected). A rejected event is counted by reason and skipped; the stream
//! goes on. A broken stream, a gap, or a peer silent for three heartbeats is reconnected with
//! jittered exponential backoff, from the cursors stored with the last applied events.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::instruments;
use anyhow::Context;
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey;
use hubdir_federation_core::{Rejection, TrustedKey, key_id, to_remote, verify};
use hubdir_node::client::{ClientTls, Outgoing};
use hubdir_node::config::{FederationConfig, PeerConfig};
use hubdir_proto::v1::federation_service_client::FederationServiceClient;
use hubdir_proto::v1::subscribe_response::Message;
use hubdir_proto::v1::{Cursor, SignedEvent, SubscribeRequest, SubscribeResponse};
use hubdir_store::{Delivery, RemoteApplied, RemoteEvent, SignedBytes, Store};
use opentelemetry::KeyValue;
use tracing::Instrument;

/// A peer silent this long (three heartbeats) is presumed gone.
const SILENCE: Duration = Duration::from_secs(15);
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Messages already received are applied together, up to this many, in one transaction.
const BATCH: usize = 1000;

/// What a follower has done, by outcome: `applied`, `duplicate`, `gap`, and each rejection's
/// code (`STALE_EPOCH` for an event of an older incarnation of its origin's log).
#[derive(Debug, Default, Clone)]
pub struct FollowerStats(Arc<Mutex<HashMap<String, u64>>>);

impl FollowerStats {
    fn count(&self, peer: &str, what: &str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(what.to_owned()).or_default() += 1;
        let labels = [KeyValue::new("peer", peer.to_owned()), KeyValue::new("outcome", what.to_owned())];
        instruments::get().events.add(1, &labels);
    }

    /// How many events ended as `what`.
    pub fn get(&self, what: &str) -> u64 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(what).copied().unwrap_or(0)
    }
}

fn read_key(
    origin: &str,
    path: &std::path::Path,
    valid_until: Option<chrono::DateTime<chrono::Utc>>,
) -> anyhow::Result<(String, TrustedKey)> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key of origin {origin} at {}", path.display()))?;
    let key = VerifyingKey::from_public_key_pem(&pem)
        .map_err(|_| anyhow::anyhow!("{} is not an Ed25519 public key PEM (origin {origin})", path.display()))?;
    let valid_from = chrono::DateTime::<chrono::Utc>::MIN_UTC;
    let trusted = TrustedKey { origin: origin.to_owned(), key, valid_from, valid_until };
    Ok((key_id(origin, &key), trusted))
}

/// Every pinned key: each peer's own, and the `origin_keys` of relayed origins and rotations.
pub fn trusted_keys(config: &FederationConfig) -> anyhow::Result<HashMap<String, TrustedKey>> {
    let peers = config.peers.iter().map(|p| read_key(&p.node_id, &p.public_key_file, None));
    let others = config.origin_keys.iter().map(|k| read_key(&k.origin, &k.public_key_file, k.valid_until));
    peers.chain(others).collect()
}

/// The origins `peer` may supply.
fn allowed_origins(peer: &PeerConfig) -> Vec<String> {
    if peer.origins.is_empty() { vec![peer.node_id.clone()] } else { peer.origins.clone() }
}

/// Follows `peer` forever.
pub async fn follow(
    store: Arc<Store>,
    peer: PeerConfig,
    tls: ClientTls,
    keys: Arc<HashMap<String, TrustedKey>>,
    stats: FollowerStats,
) {
    let checker = Arc::new(Checker { peer: peer.node_id.clone(), origins: allowed_origins(&peer), keys });
    let peer_label = [KeyValue::new("peer", peer.node_id.clone())];
    let mut backoff = MIN_BACKOFF;
    let mut first = true;
    loop {
        if !std::mem::take(&mut first) {
            instruments::get().reconnects.add(1, &peer_label);
        }
        // A stream that delivered anything worked: whatever ends it later starts the backoff
        // over, so one failure after hours of health is not paid for with the longest wait.
        let mut delivered = false;
        // One span per subscription, the client side of the peer's Subscribe: its trace
        // continues on the peer.
        let span = hubdir_node::client::call_span("hubdir.v1.FederationService", "Subscribe");
        let followed = once(&store, &peer, &tls, &checker, &stats, &mut delivered).instrument(span).await;
        instruments::get().connected.record(0, &peer_label);
        if let Err(err) = followed {
            tracing::warn!(peer = %peer.node_id, error = %format!("{err:#}"), "following the peer failed");
        }
        if delivered {
            backoff = MIN_BACKOFF;
        }
        // Jitter from the clock's nanoseconds: followers of one leader do not reconnect in step.
        let jitter = 0.5 + f64::from(chrono::Utc::now().timestamp_subsec_nanos() % 1000) / 1000.0;
        tokio::time::sleep(backoff.mul_f64(jitter)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One subscription, until the stream ends or fails.
async fn once(
    store: &Store,
    peer: &PeerConfig,
    tls: &ClientTls,
    checker: &Arc<Checker>,
    stats: &FollowerStats,
    delivered: &mut bool,
) -> anyhow::Result<()> {
    let token = std::fs::read_to_string(&peer.token_file)
        .with_context(|| format!("cannot read the token for peer {}", peer.node_id))?;
    let channel = hubdir_node::client::connect(&peer.endpoint, tls).await?;
    let mut client = FederationServiceClient::with_interceptor(channel, Outgoing::bearer(&token)?);
    let cursors = store
        .peer_cursors(&peer.node_id)
        .await?
        .into_iter()
        .map(|(origin, seq, epoch)| Cursor { origin, seq, epoch })
        .collect();
    let request = tonic::Request::new(SubscribeRequest { cursors, origins: checker.origins.clone() });
    let subscribed = tokio::time::timeout(SILENCE, client.subscribe(request)).await;
    let mut stream = subscribed.context("the peer did not answer Subscribe")??.into_inner();
    let peer_label = [KeyValue::new("peer", peer.node_id.clone())];
    instruments::get().connected.record(1, &peer_label);
    let mut snapshots = Arc::new(HashSet::new());
    loop {
        let first = tokio::time::timeout(SILENCE, stream.message()).await.context("the peer fell silent")?;
        let Some(first) = first? else { return Ok(()) };
        *delivered = true;
        // Whatever else has arrived already goes into the same transaction.
        let mut received = vec![first];
        let mut ended = None;
        while ended.is_none() && received.len() < BATCH {
            match tokio::time::timeout(Duration::ZERO, stream.message()).await {
                Ok(Ok(Some(message))) => received.push(message),
                Ok(Ok(None)) => ended = Some(Ok(())),
                Ok(Err(status)) => ended = Some(Err(status)),
                Err(_) => break,
            }
        }
        let (events, caught_up) = read(&peer.node_id, received, &mut snapshots);
        let span = tracing::debug_span!("federation.apply", peer = %peer.node_id, events = events.len());
        let gaps = check_and_apply(store, &peer.node_id, checker, stats, events).instrument(span).await?;
        if caught_up {
            for origin in &checker.origins {
                let labels = [KeyValue::new("peer", peer.node_id.clone()), KeyValue::new("origin", origin.clone())];
                instruments::get().lag.record(0.0, &labels);
            }
        }
        if let Some(ended) = ended {
            return Ok(ended?);
        }
        if gaps > 0 {
            anyhow::bail!("{gaps} events did not follow the held log; resubscribing from the stored cursors");
        }
    }
}

/// A received event, with the origins that were in a snapshot when it came.
type Received = (SignedEvent, Arc<HashSet<String>>);

/// Verifies a batch of received events and applies the good ones; returns how many were gaps.
async fn check_and_apply(
    store: &Store,
    peer: &str,
    checker: &Arc<Checker>,
    stats: &FollowerStats,
    events: Vec<Received>,
) -> anyhow::Result<usize> {
    let mut batch = Vec::with_capacity(events.len());
    for (checked, delivery) in checker.clone().check_all(events).await? {
        match checked {
            Ok(remote) => batch.push((remote, delivery)),
            Err(rejection) => {
                tracing::warn!(%peer, reason = rejection.code(), %rejection, "event rejected");
                stats.count(peer, rejection.code());
            }
        }
    }
    apply(store, peer, stats, batch).await
}

/// The events among `received`, each with the origins that were in a snapshot when it came,
/// and whether the peer said this node is caught up (or, idle, sent a heartbeat).
fn read(peer: &str, received: Vec<SubscribeResponse>, snapshots: &mut Arc<HashSet<String>>) -> (Vec<Received>, bool) {
    let mut events = Vec::with_capacity(received.len());
    let mut caught_up = false;
    for message in received.into_iter().filter_map(|r| r.message) {
        match message {
            Message::Event(event) => events.push((event, snapshots.clone())),
            Message::SnapshotStart(start) => {
                tracing::info!(%peer, origin = %start.origin, seq = start.seq, "snapshot starts");
                Arc::make_mut(snapshots).insert(start.origin);
            }
            Message::SnapshotEnd(end) => {
                tracing::info!(%peer, origin = %end.origin, seq = end.seq, "snapshot complete");
                Arc::make_mut(snapshots).remove(&end.origin);
            }
            Message::CaughtUp(_) => {
                tracing::info!(%peer, "caught up");
                caught_up = true;
            }
            Message::Heartbeat(_) => caught_up = true,
        }
    }
    (events, caught_up)
}

/// What a peer's events are checked against.
struct Checker {
    peer: String,
    origins: Vec<String>,
    keys: Arc<HashMap<String, TrustedKey>>,
}

/// Below this many events a batch is checked on the current task.
const PARALLEL_FROM: usize = 64;

impl Checker {
    /// Verifies one event: signed by a pinned key of its origin, an origin this peer may
    /// supply, a valid site change.
    fn check(&self, event: SignedEvent) -> Result<RemoteEvent, Rejection> {
        let signed = SignedBytes { bytes: event.event, key_id: event.key_id, signature: event.signature };
        let decoded = verify(&signed.bytes, &signed.key_id, &signed.signature, &self.keys)?;
        if !self.origins.contains(&decoded.origin) {
            return Err(Rejection::UntrustedOrigin { peer: self.peer.clone(), origin: decoded.origin });
        }
        to_remote(decoded, signed)
    }

    fn check_part(&self, events: Vec<(SignedEvent, Arc<HashSet<String>>)>) -> Vec<Checked> {
        events
            .into_iter()
            .map(|(event, snapshots)| {
                let checked = self.check(event);
                let in_snapshot = checked.as_ref().is_ok_and(|r| snapshots.contains(r.origin.as_str()));
                (checked, if in_snapshot { Delivery::Snapshot } else { Delivery::Stream })
            })
            .collect()
    }

    /// Checks every event, in order, spread over the cores (signature checks dominate a
    /// snapshot's cost).
    async fn check_all(
        self: Arc<Self>,
        events: Vec<(SignedEvent, Arc<HashSet<String>>)>,
    ) -> anyhow::Result<Vec<Checked>> {
        if events.len() < PARALLEL_FROM {
            return Ok(self.check_part(events));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_part = events.len().div_ceil(cores);
        let mut events = events.into_iter();
        let mut parts = Vec::new();
        loop {
            let part: Vec<_> = events.by_ref().take(per_part).collect();
            if part.is_empty() {
                break;
            }
            let checker = self.clone();
            parts.push(tokio::task::spawn_blocking(move || checker.check_part(part)));
        }
        let mut checked = Vec::new();
        for part in parts {
            checked.extend(part.await.context("checking signatures")?);
        }
        Ok(checked)
    }
}

/// An event as checked, and how it was delivered.
type Checked = (Result<RemoteEvent, Rejection>, Delivery);

/// Applies the events in one transaction and counts the outcomes; returns how many were gaps.
async fn apply(
    store: &Store,
    peer: &str,
    stats: &FollowerStats,
    events: Vec<(RemoteEvent, Delivery)>,
) -> anyhow::Result<usize> {
    let mut gaps = 0;
    // The newest write of each origin in the batch, for the lag once applied.
    let mut newest: HashMap<String, chrono::DateTime<chrono::Utc>> = HashMap::new();
    for (event, _) in &events {
        let time = newest.entry(event.origin.to_string()).or_insert(event.time);
        *time = (*time).max(event.time);
    }
    for outcome in store.apply_remote(peer, events).await? {
        match outcome {
            RemoteApplied::Applied => stats.count(peer, "applied"),
            RemoteApplied::Duplicate => stats.count(peer, "duplicate"),
            RemoteApplied::StaleEpoch => {
                tracing::warn!(%peer, "event of an older epoch of its origin's log ignored");
                stats.count(peer, "STALE_EPOCH");
            }
            RemoteApplied::Quarantined => stats.count(peer, "UNAPPLIABLE"),
            RemoteApplied::OwnOrigin => {
                // Expected when a peer relays this node's own origin back; anything else means
                // the origin was written here (say by `hubdir import --db`) and is not the peer's.
                tracing::debug!(%peer, "event of an origin written here ignored");
                stats.count(peer, "OWN_ORIGIN");
            }
            RemoteApplied::Gap { held } => {
                tracing::warn!(%peer, held, "event skips a seq; not applied");
                stats.count(peer, "gap");
                gaps += 1;
            }
        }
    }
    let now = chrono::Utc::now();
    for (origin, time) in newest {
        let lag = (now - time).num_milliseconds().max(0) as f64 / 1000.0;
        instruments::get().lag.record(lag, &[KeyValue::new("peer", peer.to_owned()), KeyValue::new("origin", origin)]);
    }
    Ok(gaps)
}
