//! `hubdir federation`: the node's public key for peers to pin, compaction of the change log,
//! and where this node stands with each peer it follows.

use std::io::Write;

use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use hubdir_federation_core::NodeIdentity;
use hubdir_node::NodeArgs;

#[derive(Debug, clap::Subcommand)]
pub enum FederationCommand {
    /// Print this node's id, key id and public key (PEM) for peers to pin; creates the key
    /// if the node has none yet.
    Key {
        #[command(flatten)]
        args: NodeArgs,
    },
    /// Remove the events of every origin's log that later events of the same site supersede.
    /// Peers behind the compacted part then get a snapshot instead of the events.
    Compact {
        #[command(flatten)]
        args: NodeArgs,
    },
    /// For each configured peer and origin: the cursor, the peer's max seq, the lag, and
    /// whether the digests match.
    Status {
        #[command(flatten)]
        args: NodeArgs,
    },
}

pub async fn run(command: FederationCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match command {
        FederationCommand::Key { args } => {
            let config = args.load_config()?;
            let identity = NodeIdentity::load_or_create(config.node.id.as_str(), &config.federation.key_file)?;
            let pem = identity.public_key().to_public_key_pem(LineEnding::LF).map_err(|e| anyhow::anyhow!("{e}"))?;
            writeln!(out, "# node {} key {}", identity.node_id(), identity.key_id())?;
            write!(out, "{pem}")?;
        }
        FederationCommand::Compact { args } => {
            let store = args.open_store().await?;
            writeln!(out, "origin\tlast_seq\tremoved")?;
            for log in store.origin_logs().await? {
                let removed = store.compact(&log.origin).await?;
                writeln!(out, "{}\t{}\t{removed}", log.origin, log.last_seq)?;
            }
        }
        FederationCommand::Status { args } => {
            let config = args.load_config()?;
            let store = args.open_store().await?;
            writeln!(out, "peer\torigin\tcursor\tpeer_max_seq\tlag\tdigests")?;
            for peer in &config.federation.peers {
                match hubdir_federation::peer_status::peer_status(&store, peer).await {
                    Ok(origins) => {
                        for o in origins {
                            let digests = if o.digests_match { "match" } else { "differ" };
                            writeln!(
                                out,
                                "{}\t{}\t{}\t{}\t{}\t{digests}",
                                peer.node_id,
                                o.origin,
                                o.cursor,
                                o.peer_max_seq,
                                o.lag()
                            )?;
                        }
                    }
                    Err(err) => writeln!(out, "{}\t-\t-\t-\t-\tunreachable: {err:#}", peer.node_id)?,
                }
            }
        }
    }
    Ok(())
}
