//! The follower side: one task per configured peer subscribes from this node's cursors,
//! verifies every event against the peer's pinned key and the origins the peer may supply,
//! and applies it with the cursor in one transaction (`Store::apply_remote`). A rejected event
//! is counted by reason and skipped; the stream goes on. A broken stream, or a peer silent for
//! three heartbeats, is reconnected with jittered exponential backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey;
use hubdir_federation_core::{Rejection, TrustedKey, key_id, to_remote, verify};
use hubdir_node::config::PeerConfig;
use hubdir_proto::v1::federation_service_client::FederationServiceClient;
use hubdir_proto::v1::subscribe_response::Message;
use hubdir_proto::v1::{Cursor, SubscribeRequest};
use hubdir_store::{RemoteApplied, SignedBytes, Store};

/// A peer silent this long (three heartbeats) is presumed gone.
const SILENCE: Duration = Duration::from_secs(15);
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a follower has done, by outcome: `applied`, `duplicate`, and each rejection's code.
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

/// The pinned key of a peer, as a trusted key for its own origin.
pub fn trusted_keys(peer: &PeerConfig) -> anyhow::Result<HashMap<String, TrustedKey>> {
    let pem = std::fs::read_to_string(&peer.public_key_file)
        .with_context(|| format!("cannot read peer {}'s key {}", peer.node_id, peer.public_key_file.display()))?;
    let key = VerifyingKey::from_public_key_pem(&pem)
        .map_err(|_| anyhow::anyhow!("peer {}'s key is not an Ed25519 public key PEM", peer.node_id))?;
    let trusted = TrustedKey {
        origin: peer.node_id.clone(),
        key,
        valid_from: chrono::DateTime::<chrono::Utc>::MIN_UTC,
        valid_until: None,
    };
    Ok([(key_id(&peer.node_id, &key), trusted)].into_iter().collect())
}

/// Follows `peer` forever.
pub async fn follow(store: Arc<Store>, peer: PeerConfig, stats: FollowerStats) {
    let keys = match trusted_keys(&peer) {
        Ok(keys) => keys,
        Err(err) => {
            tracing::error!(peer = %peer.node_id, error = %format!("{err:#}"), "peer not followed");
            return;
        }
    };
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
    let origins = if peer.origins.is_empty() { vec![peer.node_id.clone()] } else { peer.origins.clone() };
    let cursors = store
        .peer_cursors(&peer.node_id)
        .await?
        .into_iter()
        .map(|(origin, seq, epoch)| Cursor { origin, seq, epoch })
        .collect();
    let mut request = tonic::Request::new(SubscribeRequest { cursors, origins: origins.clone() });
    request.metadata_mut().insert("authorization", format!("Bearer {}", token.trim()).parse()?);
    let mut stream = client.subscribe(request).await?.into_inner();
    loop {
        let next = tokio::time::timeout(SILENCE, stream.message()).await.context("the peer fell silent")??;
        let Some(response) = next else { return Ok(()) };
        match response.message {
            Some(Message::Event(event)) => {
                let signed = SignedBytes { bytes: event.event, key_id: event.key_id, signature: event.signature };
                let checked = verify(&signed.bytes, &signed.key_id, &signed.signature, keys).and_then(|decoded| {
                    if !origins.contains(&decoded.origin) {
                        return Err(Rejection::UntrustedOrigin { peer: peer.node_id.clone(), origin: decoded.origin });
                    }
                    to_remote(decoded, signed)
                });
                match checked {
                    Ok(remote) => match store.apply_remote(&peer.node_id, remote).await? {
                        RemoteApplied::Applied => stats.count("applied"),
                        RemoteApplied::Duplicate => stats.count("duplicate"),
                    },
                    Err(rejection) => {
                        tracing::warn!(peer = %peer.node_id, reason = rejection.code(), %rejection, "event rejected");
                        stats.count(rejection.code());
                    }
                }
            }
            Some(Message::CaughtUp(_)) => tracing::info!(peer = %peer.node_id, "caught up"),
            Some(_) | None => {}
        }
    }
}
