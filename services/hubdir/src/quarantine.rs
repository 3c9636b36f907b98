//! `hubdir quarantine`: the connectivity measurements a node refused, newest first, with why;
//! or (`--federation`) the peers' events it could not apply.

#[derive(Debug, clap::Args)]
pub struct QuarantineArgs {
    #[command(flatten)]
    node: hubdir_node::NodeArgs,
    /// Only measurements of this site (`sites/{origin}/{site_id}`). Refusals of a sender who
    /// may not report for the site it named are not filed under that site: see `--principal`.
    #[arg(long, conflicts_with = "federation")]
    site: Option<String>,
    /// Only measurements sent by this token subject.
    #[arg(long, conflicts_with = "federation")]
    principal: Option<String>,
    /// List the peers' events this node verified but could not apply instead.
    #[arg(long)]
    federation: bool,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: u64,
}

/// Prints one tab-separated line per refused measurement: received, site, idempotency key,
/// reason, and the measurement as sent (JSON). Returns how many it printed.
pub async fn run(args: &QuarantineArgs, out: &mut impl std::io::Write) -> anyhow::Result<usize> {
    let store = args.node.open_store().await?;
    if args.federation {
        let kept = store.list_federation_quarantine(args.limit).await?;
        writeln!(out, "received\tpeer\torigin\tseq\tsite\treason")?;
        for q in &kept {
            let received = chrono::DateTime::from_timestamp_micros(q.received_at_us).unwrap_or_default();
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}",
                received.to_rfc3339(),
                q.peer,
                q.origin,
                q.seq,
                q.site_name,
                q.reason
            )?;
        }
        return Ok(kept.len());
    }
    let kept = store.list_quarantine(args.site.as_deref(), args.principal.as_deref(), args.limit).await?;
    writeln!(out, "received\tprincipal\tsite\tidempotency_key\treason\tmeasurement")?;
    for q in &kept {
        let received = q.received_at.to_rfc3339();
        writeln!(out, "{received}\t{}\t{}\t{}\t{}\t{}", q.principal, q.site, q.idempotency_key, q.reason, q.body)?;
    }
    Ok(kept.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubdir_store::{Quarantined, Store};

    #[tokio::test]
    async fn lists_what_was_refused_for_one_site() {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("q.db").display());
        let store = Store::connect(&db).await.unwrap();
        let kept = |site: &str, key: &str| Quarantined {
            principal: "agent-1".into(),
            site: site.into(),
            idempotency_key: key.into(),
            reason: "FROM_THE_FUTURE: observed more than 300 s in the future".into(),
            body: format!("{{\"idempotency_key\":\"{key}\"}}"),
            received_at: chrono::Utc::now(),
        };
        store.quarantine(vec![kept("sites/zw/1", "a"), kept("sites/zw/2", "b")]).await.unwrap();
        let mut out = Vec::new();
        let args = QuarantineArgs {
            node: hubdir_node::NodeArgs { db: Some(db), ..Default::default() },
            site: Some("sites/zw/2".into()),
            principal: None,
            federation: false,
            limit: 10,
        };
        assert_eq!(run(&args, &mut out).await.unwrap(), 1);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].contains("agent-1\tsites/zw/2\tb\tFROM_THE_FUTURE"), "{text}");
    }
}

#[cfg(test)]
mod federation_tests {
    use super::*;
    use hubdir_store::{ChangeOp, Delivery, RemoteChange, RemoteEvent, SignedBytes, Store};

    #[tokio::test]
    async fn lists_the_peers_events_that_could_not_be_applied() {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("q.db").display());
        let store = Store::connect(&db).await.unwrap();
        let event = RemoteEvent {
            origin: "fr".parse().unwrap(),
            seq: 1,
            epoch: "1".into(),
            site_name: "sites/fr/x".into(),
            change: RemoteChange::Unappliable { op: ChangeOp::Upsert, reason: "display_name: a NUL".into() },
            time: chrono::Utc::now(),
            signed: SignedBytes { bytes: vec![1], key_id: "fr-0".into(), signature: vec![0; 64] },
        };
        store.apply_remote("relay", vec![(event, Delivery::Stream)]).await.unwrap();
        let mut out = Vec::new();
        let args = QuarantineArgs {
            node: hubdir_node::NodeArgs { db: Some(db), ..Default::default() },
            site: None,
            principal: None,
            federation: true,
            limit: 10,
        };
        assert_eq!(run(&args, &mut out).await.unwrap(), 1);
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().nth(1).unwrap().ends_with("\trelay\tfr\t1\tsites/fr/x\tdisplay_name: a NUL"), "{text}");
    }
}
