//! Where this node stands with each peer it follows: per origin, its cursor, the peer's max
//! seq, the lag, and whether the two digests agree (`hubdir federation status`).

use anyhow::Context;
use hubdir_federation_core::sites_hash;
use hubdir_node::config::PeerConfig;
use hubdir_proto::v1::GetDigestRequest;
use hubdir_proto::v1::federation_service_client::FederationServiceClient;
use hubdir_store::Store;

/// One origin as seen from here and from the peer.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginStatus {
    pub origin: String,
    /// This node's cursor for the peer (the last seq applied from it).
    pub cursor: u64,
    /// The peer's last seq of the origin.
    pub peer_max_seq: u64,
    /// Whether both hold the same live sites at the same versions.
    pub digests_match: bool,
}

impl OriginStatus {
    pub fn lag(&self) -> u64 {
        self.peer_max_seq.saturating_sub(self.cursor)
    }
}

/// Asks `peer` for its digests of the origins it supplies and compares them with ours.
pub async fn peer_status(store: &Store, peer: &PeerConfig) -> anyhow::Result<Vec<OriginStatus>> {
    let token = std::fs::read_to_string(&peer.token_file)
        .with_context(|| format!("cannot read the token for peer {}", peer.node_id))?;
    let mut client = FederationServiceClient::connect(peer.endpoint.clone())
        .await
        .with_context(|| format!("cannot reach peer {} at {}", peer.node_id, peer.endpoint))?;
    let origins = if peer.origins.is_empty() { vec![peer.node_id.clone()] } else { peer.origins.clone() };
    let mut request = tonic::Request::new(GetDigestRequest { origins });
    request.metadata_mut().insert("authorization", format!("Bearer {}", token.trim()).parse()?);
    let theirs = client.get_digest(request).await.context("GetDigest")?.into_inner().digests;
    let cursors = store.peer_cursors(&peer.node_id).await?;
    let mut out = Vec::new();
    for digest in theirs {
        let cursor = cursors.iter().find(|(o, ..)| *o == digest.origin).map_or(0, |(_, seq, _)| *seq);
        let ours = store.site_versions(&digest.origin).await?;
        let digests_match = ours.len() as i64 == digest.live_site_count && sites_hash(&ours) == digest.hash;
        out.push(OriginStatus { origin: digest.origin, cursor, peer_max_seq: digest.max_seq, digests_match });
    }
    Ok(out)
}
