//! `hubdir quarantine`: the connectivity measurements a node refused, newest first, with why.

use hubdir_store::Store;

#[derive(Debug, clap::Args)]
pub struct QuarantineArgs {
    /// The node's database URL.
    #[arg(long, default_value = "sqlite://hubdir.db")]
    db: String,
    /// Only measurements of this site (`sites/{origin}/{site_id}`).
    #[arg(long)]
    site: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: u64,
}

/// Prints one tab-separated line per refused measurement: received, site, idempotency key,
/// reason, and the measurement as sent (JSON). Returns how many it printed.
pub async fn run(args: &QuarantineArgs, out: &mut impl std::io::Write) -> anyhow::Result<usize> {
    let store = Store::connect(&args.db).await?;
    let kept = store.list_quarantine(args.site.as_deref(), args.limit).await?;
    writeln!(out, "received\tsite\tidempotency_key\treason\tmeasurement")?;
    for q in &kept {
        writeln!(out, "{}\t{}\t{}\t{}\t{}", q.received_at.to_rfc3339(), q.site, q.idempotency_key, q.reason, q.body)?;
    }
    Ok(kept.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubdir_store::Quarantined;

    #[tokio::test]
    async fn lists_what_was_refused_for_one_site() {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("q.db").display());
        let store = Store::connect(&db).await.unwrap();
        let kept = |site: &str, key: &str| Quarantined {
            site: site.into(),
            idempotency_key: key.into(),
            reason: "FROM_THE_FUTURE: observed more than 300 s in the future".into(),
            body: format!("{{\"idempotency_key\":\"{key}\"}}"),
            received_at: chrono::Utc::now(),
        };
        store.quarantine(vec![kept("sites/zw/1", "a"), kept("sites/zw/2", "b")]).await.unwrap();
        let mut out = Vec::new();
        let args = QuarantineArgs { db, site: Some("sites/zw/2".into()), limit: 10 };
        assert_eq!(run(&args, &mut out).await.unwrap(), 1);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].contains("sites/zw/2\tb\tFROM_THE_FUTURE"), "{text}");
    }
}
