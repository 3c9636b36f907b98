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

use anyhow::Context;
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey;
use hubdir_federation_core::{Rejection, TrustedKey, key_id, to_remote, verify};
use hubdir_node::config::{FederationConfig, PeerConfig};
use hubdir_proto::v1::federation_service_client::FederationServiceClient;
use hubdir_proto::v1::subscribe_response::Message;
use hubdir_proto::v1::{Cursor, SignedEvent, SubscribeRequest, SubscribeResponse};
use hubdir_store::{Delivery, RemoteApplied, RemoteEvent, SignedBytes, Store};

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
    fn count(&self, what: &str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(what.to_owned()).or_default() += 1;
    }

    /// How many events ended as `what`.
    pub fn get(&self, what: &str) -> u64 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(what).copied().unwrap_or(0)
    }
}

fn read_key(origin: &str, path: &std::path::Path, valid_until: Option<&str>) -> anyhow::Result<(String, TrustedKey)> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key of origin {origin} at {}", path.display()))?;
    let key = VerifyingKey::from_public_key_pem(&pem)
        .map_err(|_| anyhow::anyhow!("{} is not an Ed25519 public key PEM (origin {origin})", path.display()))?;
    let valid_until = valid_until
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text).map(|t| t.to_utc()).map_err(|e| {
                anyhow::anyhow!("federation.origin_keys.valid_until {text:?} of origin {origin} is not RFC 3339: {e}")
            })
        })
        .transpose()?;
    let valid_from = chrono::DateTime::<chrono::Utc>::MIN_UTC;
    let trusted = TrustedKey { origin: origin.to_owned(), key, valid_from, valid_until };
    Ok((key_id(origin, &key), trusted))
}

/// Every pinned key: each peer's own, and the `origin_keys` of relayed origins and rotations.
pub fn trusted_keys(config: &FederationConfig) -> anyhow::Result<HashMap<String, TrustedKey>> {
    let peers = config.peers.iter().map(|p| read_key(&p.node_id, &p.public_key_file, None));
    let others = config.origin_keys.iter().map(|k| read_key(&k.origin, &k.public_key_file, k.valid_until.as_deref()));
    peers.chain(others).collect()
}

/// The origins `peer` may supply.
fn allowed_origins(peer: &PeerConfig) -> Vec<String> {
    if peer.origins.is_empty() { vec![peer.node_id.clone()] } else { peer.origins.clone() }
}

/// Follows `peer` forever.
pub async fn follow(store: Arc<Store>, peer: PeerConfig, keys: Arc<HashMap<String, TrustedKey>>, stats: FollowerStats) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match once(&store, &peer, &keys, &stats).await {
            Ok(()) => backoff = MIN_BACKOFF,
            Err(err) => tracing::warn!(peer = %peer.node_id, error = %format!("{err:#}"), "following the peer failed"),
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
    keys: &HashMap<String, TrustedKey>,
    stats: &FollowerStats,
) -> anyhow::Result<()> {
    let token = std::fs::read_to_string(&peer.token_file)
        .with_context(|| format!("cannot read the token for peer {}", peer.node_id))?;
    let mut client = FederationServiceClient::connect(peer.endpoint.clone()).await?;
    let origins = allowed_origins(peer);
    let cursors = store
        .peer_cursors(&peer.node_id)
        .await?
        .into_iter()
        .map(|(origin, seq, epoch)| Cursor { origin, seq, epoch })
        .collect();
    let mut request = tonic::Request::new(SubscribeRequest { cursors, origins: origins.clone() });
    request.metadata_mut().insert("authorization", format!("Bearer {}", token.trim()).parse()?);
    let mut stream = client.subscribe(request).await?.into_inner();
    let mut follower = Follower { peer, origins, keys, stats, snapshots: HashSet::new() };
    loop {
        let first = tokio::time::timeout(SILENCE, stream.message()).await.context("the peer fell silent")?;
        let Some(first) = first? else { return Ok(()) };
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
        let batch = follower.read(received);
        let gaps = follower.apply(store, batch).await?;
        if let Some(ended) = ended {
            return Ok(ended?);
        }
        if gaps > 0 {
            anyhow::bail!("{gaps} events did not follow the held log; resubscribing from the stored cursors");
        }
    }
}

/// One stream's state: which origins are in a snapshot, and what to check events against.
struct Follower<'a> {
    peer: &'a PeerConfig,
    origins: Vec<String>,
    keys: &'a HashMap<String, TrustedKey>,
    stats: &'a FollowerStats,
    snapshots: HashSet<String>,
}

impl Follower<'_> {
    /// The verified events among `received`, each with how it was delivered.
    fn read(&mut self, received: Vec<SubscribeResponse>) -> Vec<(RemoteEvent, Delivery)> {
        let mut events = Vec::new();
        for message in received.into_iter().filter_map(|r| r.message) {
            match message {
                Message::Event(event) => match self.check(event) {
                    Ok(remote) => {
                        let snapshot = self.snapshots.contains(remote.origin.as_str());
                        events.push((remote, if snapshot { Delivery::Snapshot } else { Delivery::Stream }));
                    }
                    Err(rejection) => {
                        tracing::warn!(peer = %self.peer.node_id, reason = rejection.code(), %rejection, "event rejected");
                        self.stats.count(rejection.code());
                    }
                },
                Message::SnapshotStart(start) => {
                    tracing::info!(peer = %self.peer.node_id, origin = %start.origin, seq = start.seq, "snapshot starts");
                    self.snapshots.insert(start.origin);
                }
                Message::SnapshotEnd(end) => {
                    tracing::info!(peer = %self.peer.node_id, origin = %end.origin, seq = end.seq, "snapshot complete");
                    self.snapshots.remove(&end.origin);
                }
                Message::CaughtUp(_) => tracing::info!(peer = %self.peer.node_id, "caught up"),
                Message::Heartbeat(_) => {}
            }
        }
        events
    }

    /// Verifies one event: signed by a pinned key of its origin, an origin this peer may
    /// supply, a valid site change.
    fn check(&self, event: SignedEvent) -> Result<RemoteEvent, Rejection> {
        let signed = SignedBytes { bytes: event.event, key_id: event.key_id, signature: event.signature };
        let decoded = verify(&signed.bytes, &signed.key_id, &signed.signature, self.keys)?;
        if !self.origins.contains(&decoded.origin) {
            return Err(Rejection::UntrustedOrigin { peer: self.peer.node_id.clone(), origin: decoded.origin });
        }
        to_remote(decoded, signed)
    }

    /// Applies the events in one transaction and counts the outcomes; returns how many were
    /// gaps.
    async fn apply(&self, store: &Store, events: Vec<(RemoteEvent, Delivery)>) -> anyhow::Result<usize> {
        let mut gaps = 0;
        for outcome in store.apply_remote(&self.peer.node_id, events).await? {
            match outcome {
                RemoteApplied::Applied => self.stats.count("applied"),
                RemoteApplied::Duplicate => self.stats.count("duplicate"),
                RemoteApplied::StaleEpoch => {
                    tracing::warn!(peer = %self.peer.node_id, "event of an older epoch of its origin's log ignored");
                    self.stats.count("STALE_EPOCH");
                }
                RemoteApplied::Gap { held } => {
                    tracing::warn!(peer = %self.peer.node_id, held, "event skips a seq; not applied");
                    self.stats.count("gap");
                    gaps += 1;
                }
            }
        }
        Ok(gaps)
    }
}
