//! FederationService: signed change feeds between national nodes.
//!
//! `GetNodeInfo` publishes the node's id, its public keys (recorded in the store the first
//! time the node runs with each) and the origins it serves. `Subscribe` streams the signed
//! change log after a follower's cursors, then live (`feed`). `GetDigest` gives each origin's
//! max seq, live site count and the contract's hash over (name, seq).

mod feed;
pub mod follower;
mod instruments;
pub mod peer_status;

use std::pin::Pin;
use std::sync::Arc;

use hubdir_auth::{Scope, principal};
use hubdir_federation_core::{NodeIdentity, sites_hash};
use hubdir_node::{Mount, NodeContext, Routing, singleton, status};
use hubdir_proto::convert;
use hubdir_proto::v1::federation_service_server::{FederationService, FederationServiceServer, SERVICE_NAME};
use hubdir_proto::v1::{
    GetDigestRequest, GetDigestResponse, GetNodeInfoRequest, NodeInfo, NodeKey, OriginDigest, SubscribeRequest,
    SubscribeResponse,
};
use hubdir_store::{Store, StoreError};
use tokio_stream::Stream;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

/// How `hubdir serve` and `hubdir-federation` mount this service.
pub const MOUNT: Mount = Mount { service_name: SERVICE_NAME, add };

fn add(ctx: &NodeContext, routing: &mut Routing) {
    if let Some(identity) = ctx.identity.clone() {
        // Recorded at start, so a key's validity begins when the node first ran with it.
        let store = ctx.store.clone();
        ctx.background.spawn("node key publication", async move {
            if let Err(err) = publish(&store, &identity).await {
                tracing::warn!(error = %err, "recording the node key failed; GetNodeInfo retries");
            }
        });
    }
    if !ctx.config.federation.peers.is_empty() {
        match follower::trusted_keys(&ctx.config.federation) {
            Ok(keys) => {
                let keys = Arc::new(keys);
                // One follower per peer in the whole node: the replica holding its lease.
                for peer in &ctx.config.federation.peers {
                    let (store, peer, tls, keys) =
                        (ctx.store.clone(), peer.clone(), ctx.config.tls.client(), keys.clone());
                    let lease = format!("federation.follow.{}", peer.node_id);
                    let follow = move || {
                        let stats = follower::FollowerStats::default();
                        follower::follow(store.clone(), peer.clone(), tls.clone(), keys.clone(), stats)
                    };
                    singleton::spawn(ctx, "federation follower", lease, follow);
                }
            }
            Err(err) => tracing::error!(error = %format!("{err:#}"), "no peer followed: a pinned key is unusable"),
        }
    }
    let federation = Federation {
        identity: ctx.identity.clone(),
        store: ctx.store.clone(),
        relayed: relayed_origins(ctx),
        background: ctx.background.clone(),
    };
    let server = hubdir_node::grpc_server!(FederationServiceServer::new(federation), ctx);
    routing.grpc.add_service(InterceptedService::new(server, ctx.authenticator.clone()));
}

/// The origins this node receives from peers, and so forwards: every peer's allowed origins
/// but its own.
fn relayed_origins(ctx: &NodeContext) -> Vec<String> {
    let own = ctx.config.node.id.as_str();
    let mut origins: Vec<String> = ctx
        .config
        .federation
        .peers
        .iter()
        .flat_map(|p| if p.origins.is_empty() { vec![p.node_id.clone()] } else { p.origins.clone() })
        .filter(|o| o != own)
        .collect();
    origins.sort();
    origins.dedup();
    origins
}

/// Every federation RPC is for peer nodes holding a `federation.sync` token.
fn peer_only<T>(request: &Request<T>) -> Result<(), Status> {
    principal(request).require_any(&[Scope::FederationSync]).map_err(status::from_denied)
}

/// The FederationService implementation.
#[derive(Debug, Clone)]
pub struct Federation {
    identity: Option<Arc<NodeIdentity>>,
    store: Arc<Store>,
    relayed: Vec<String>,
    /// Each follower's feed runs here, so that shutdown ends it.
    background: hubdir_node::background::Background,
}

async fn publish(store: &Store, identity: &NodeIdentity) -> Result<(), StoreError> {
    store.publish_key(identity.key_id(), identity.public_key().as_bytes(), chrono::Utc::now()).await
}

#[tonic::async_trait]
impl FederationService for Federation {
    type SubscribeStream = Pin<Box<dyn Stream<Item = Result<SubscribeResponse, Status>> + Send>>;

    async fn get_node_info(&self, request: Request<GetNodeInfoRequest>) -> Result<Response<NodeInfo>, Status> {
        peer_only(&request)?;
        let Some(identity) = &self.identity else {
            return Err(status::with_reason(
                status::Reason::NoNodeKey,
                "this process runs without a node key",
                Default::default(),
            ));
        };
        publish(&self.store, identity).await.map_err(status::from_store)?;
        let keys = self.store.published_keys().await.map_err(status::from_store)?;
        Ok(Response::new(NodeInfo {
            node_id: identity.node_id().to_owned(),
            keys: keys
                .into_iter()
                .map(|k| NodeKey {
                    key_id: k.key_id,
                    public_key: k.public_key,
                    valid_from: Some(convert::timestamp(k.valid_from)),
                    valid_until: k.valid_until.map(convert::timestamp),
                })
                .collect(),
            origins_served: vec![identity.node_id().to_owned()],
            origins_relayed: self.relayed.clone(),
            version: hubdir_node::VERSION.to_owned(),
        }))
    }

    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        peer_only(&request)?;
        let (tx, rx) = tokio::sync::mpsc::channel(feed::STREAM_BUFFER);
        self.background.spawn("federation feed", feed::run(self.store.clone(), request.into_inner(), tx));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn get_digest(&self, request: Request<GetDigestRequest>) -> Result<Response<GetDigestResponse>, Status> {
        peer_only(&request)?;
        let wanted = request.into_inner().origins;
        let held = self.store.origin_seqs().await.map_err(status::from_store)?;
        let mut digests = Vec::new();
        for (origin, max_seq) in held {
            if !wanted.is_empty() && !wanted.iter().any(|w| w == origin.as_str()) {
                continue;
            }
            let versions = self.store.site_versions(origin.as_str()).await.map_err(status::from_store)?;
            digests.push(OriginDigest {
                origin: origin.to_string(),
                max_seq,
                live_site_count: versions.len() as i64,
                hash: sites_hash(&versions),
            });
        }
        Ok(Response::new(GetDigestResponse { digests }))
    }
}
