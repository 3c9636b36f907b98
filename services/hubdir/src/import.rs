//! `hubdir import`: a publisher's file, through a mapping, into a node: straight into its
//! database (`--db`) or over gRPC (`--node`, `BatchUpsertSites`, where the node checks the
//! token and may refuse rows too).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use hubdir_core::Site;
use hubdir_import::{Mapping, RowError, Summary};
use hubdir_node::client::Outgoing;
use hubdir_proto::convert;
use hubdir_proto::v1::registry_service_client::RegistryServiceClient;
use hubdir_proto::v1::{BatchUpsertSitesRequest, RowOutcome};
use hubdir_store::{Applied, Change, Precondition, Store, Write};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tracing::Instrument;

/// Rows per transaction (or per stream to a node) when importing row by row.
const CHUNK: usize = 1000;
/// The most rows one BatchUpsertSites stream takes.
const MAX_ATOMIC_STREAM_ROWS: usize = hubdir_registry::MAX_BATCH_ROWS;

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("target").args(["db", "node"]).required(true))]
pub struct ImportArgs {
    /// The file to import: CSV, GeoJSON or JSON as the mapping says; without a mapping,
    /// hubdir's own CSV format (what `hubdir export --format csv` writes).
    file: PathBuf,
    /// The mapping file: how the file's columns become site fields (see examples/mappings/).
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Write straight into this database (`sqlite://hubdir.db` or `postgres://...`).
    #[arg(long, value_name = "URL", conflicts_with = "node")]
    db: Option<String>,
    /// With --db: the node's key file (`federation.key_file`), so the events written are signed
    /// and reach the node's peers; without it they stay unsigned and are never sent to peers.
    #[arg(long, requires = "node_id", requires = "db")]
    node_key: Option<PathBuf>,
    /// With --node-key: the node's id (`node.id`), the origin the key signs for.
    #[arg(long, requires = "node_key")]
    node_id: Option<String>,
    /// Or stream to a running node's RegistryService.BatchUpsertSites (`http://host:50051`).
    #[arg(long, value_name = "URL", requires = "token")]
    node: Option<String>,
    /// A bearer token with sites.write for the mapping's origin and the rows' operator.
    #[arg(long, env = "HUBDIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(flatten)]
    tls: hubdir_node::client::ClientTlsArgs,
    /// Write nothing unless every row is valid (one transaction for the whole file).
    #[arg(long)]
    atomic: bool,
    /// Where to write the rejected rows (CSV: row, line, site_id, field, reason, message).
    #[arg(long, default_value = "import-errors.csv")]
    pub errors: PathBuf,
    /// How many rows may be rejected for their data (a count, or a share of the rows read
    /// such as `2%`) before the import exits 3. The valid rows are written either way.
    #[arg(long, default_value = "0", value_parser = parse_threshold)]
    pub max_rejected: Threshold,
}

/// `--max-rejected`: a count of rows or a percentage of the rows read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Rows(u64),
    Percent(f64),
}

fn parse_threshold(text: &str) -> Result<Threshold, String> {
    let bad = || format!("{text:?} is neither a count of rows (10) nor a percentage (2.5%)");
    match text.strip_suffix('%') {
        Some(percent) => match percent.trim().parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Ok(Threshold::Percent(p)),
            _ => Err(bad()),
        },
        None => text.trim().parse().map(Threshold::Rows).map_err(|_| bad()),
    }
}

/// How `hubdir import` ends, for a scheduler to act on (docs/IMPORT.md lists them). A failure
/// before or during the writes (a file that cannot be read, a bad mapping, an unreachable
/// store or node) exits 1, and a command-line mistake 2, as for every hubdir command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every row was written or unchanged, or the rows rejected for their data are within
    /// `--max-rejected`.
    Done = 0,
    /// More rows were rejected for their data than `--max-rejected` allows.
    TooManyRejected = 3,
    /// The node refused rows, or the whole call, for authorisation (the token is bad or may
    /// not write their origin or operator): never a success, whatever `--max-rejected` says.
    Unauthorised = 4,
}

/// The node refused a whole call for who sent it: the token is missing, bad, expired, or
/// lacks `sites.write`. The import exits 4, as when it refuses rows for authorisation.
#[derive(Debug, thiserror::Error)]
#[error("the node refused the batch: {code:?} {message}")]
pub struct Unauthorised {
    code: tonic::Code,
    message: String,
}

/// Reasons a row is refused for who sent it rather than for what it holds.
const AUTHORISATION_REASONS: [&str; 2] = ["PERMISSION_DENIED", "ORIGIN_NOT_OWNED"];

impl Verdict {
    pub fn of(summary: &Summary, threshold: Threshold) -> Verdict {
        let unauthorised: u64 = AUTHORISATION_REASONS.iter().filter_map(|reason| summary.rejected.get(*reason)).sum();
        if unauthorised > 0 {
            return Verdict::Unauthorised;
        }
        let rejected = summary.rejected_total();
        let within = match threshold {
            Threshold::Rows(max) => rejected <= max,
            Threshold::Percent(max) => rejected as f64 <= summary.read as f64 * max / 100.0,
        };
        if within { Verdict::Done } else { Verdict::TooManyRejected }
    }

    /// What to tell the person (or the log) when the verdict is not `Done`.
    pub fn explain(self, summary: &Summary, threshold: Threshold) -> Option<String> {
        let allowed = match threshold {
            Threshold::Rows(n) => format!("{n} rows"),
            Threshold::Percent(p) => format!("{p}% of the rows read"),
        };
        match self {
            Verdict::Done => None,
            Verdict::TooManyRejected => Some(format!(
                "{} of {} rows were rejected, more than --max-rejected allows ({allowed}); exit 3",
                summary.rejected_total(),
                summary.read
            )),
            Verdict::Unauthorised => Some(
                "the node refused rows for authorisation (PERMISSION_DENIED or ORIGIN_NOT_OWNED): check the \
                 token's origin and operator; exit 4"
                    .to_owned(),
            ),
        }
    }
}

/// Progress of a long import, on standard error: a live line on a terminal; a plain line
/// every [`PLAIN_EVERY`] otherwise (a log file or a cron mail gets no control codes).
#[derive(Debug)]
enum Progress {
    Terminal(indicatif::ProgressBar),
    Plain { started: std::time::Instant, last: std::time::Instant },
}

/// How often a plain progress line is written.
const PLAIN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl Progress {
    fn new() -> Progress {
        let now = std::time::Instant::now();
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            Progress::Terminal(bar)
        } else {
            Progress::Plain { started: now, last: now }
        }
    }

    fn line(summary: &Summary, elapsed: std::time::Duration) -> String {
        let rate = summary.read as f64 / elapsed.as_secs_f64().max(0.001);
        format!(
            "read {}, imported {}, unchanged {}, rejected {} ({rate:.0} rows/s)",
            summary.read,
            summary.created + summary.updated,
            summary.unchanged,
            summary.rejected_total()
        )
    }

    fn show(&mut self, summary: &Summary) {
        match self {
            Progress::Terminal(bar) => bar.set_message(Self::line(summary, bar.elapsed())),
            Progress::Plain { started, last } => {
                if last.elapsed() >= PLAIN_EVERY {
                    *last = std::time::Instant::now();
                    eprintln!("import: {}", Self::line(summary, started.elapsed()));
                }
            }
        }
    }
}

/// The live line goes when the import ends, also early on an error, before any message.
impl Drop for Progress {
    fn drop(&mut self) {
        if let Progress::Terminal(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Where valid sites go.
enum Sink {
    Store(Store),
    Node { client: RegistryServiceClient<InterceptedService<Channel, Outgoing>> },
}

impl Sink {
    async fn open(args: &ImportArgs) -> anyhow::Result<Sink> {
        match (&args.db, &args.node, &args.token) {
            (Some(db), _, _) => {
                let store = Store::connect(db)
                    .await
                    .with_context(|| format!("cannot open the store at {}", hubdir_node::cli::redact_url(db)))?;
                match (&args.node_key, &args.node_id) {
                    (Some(key), Some(id)) => {
                        let identity = hubdir_federation_core::NodeIdentity::load_or_create(id, key)?;
                        let signer = hubdir_federation_core::OriginSigner::new(std::sync::Arc::new(identity));
                        let own: hubdir_core::Origin =
                            id.parse().map_err(|e| anyhow::anyhow!("--node-id {id:?}: {e}"))?;
                        Ok(Sink::Store(store.with_signer(std::sync::Arc::new(signer)).owning([own])))
                    }
                    _ => {
                        eprintln!(
                            "warning: no --node-key: the events are written unsigned and will not be sent to peers"
                        );
                        Ok(Sink::Store(store))
                    }
                }
            }
            (None, Some(node), Some(token)) => {
                let channel = hubdir_node::client::connect(node, &args.tls.tls_for(node)?).await?;
                let client = RegistryServiceClient::with_interceptor(channel, Outgoing::bearer(token)?)
                    .max_encoding_message_size(64 * 1024 * 1024)
                    .max_decoding_message_size(64 * 1024 * 1024);
                Ok(Sink::Node { client })
            }
            _ => anyhow::bail!("give --db URL, or --node URL with --token"),
        }
    }

    /// Writes the pending sites; rows the node refuses come back as row errors.
    async fn flush(
        &mut self,
        pending: &mut Vec<(RowRef, Site)>,
        summary: &mut Summary,
        errors: &mut Vec<RowError>,
        atomic: bool,
    ) -> anyhow::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let (rows, sites): (Vec<RowRef>, Vec<Site>) = pending.drain(..).unzip();
        match self {
            Sink::Store(store) => {
                let writes = sites
                    .into_iter()
                    .map(|site| Write { change: Change::Upsert(Box::new(site)), precondition: Precondition::None })
                    .collect();
                for applied in store.write(writes).await.context("writing to the store")? {
                    match applied {
                        Applied::Created(_) => summary.created += 1,
                        Applied::Updated(_) => summary.updated += 1,
                        Applied::Unchanged(_) => summary.unchanged += 1,
                        Applied::Deleted { .. } | Applied::AlreadyAbsent(_) => {}
                    }
                }
            }
            Sink::Node { client } => {
                let messages: Vec<BatchUpsertSitesRequest> = sites
                    .chunks(500)
                    .enumerate()
                    .map(|(i, chunk)| BatchUpsertSitesRequest {
                        sites: chunk.iter().cloned().map(convert::site_to_proto).collect(),
                        atomic: atomic && i == 0,
                    })
                    .collect();
                let request = tonic::Request::new(tokio_stream::iter(messages));
                let span = hubdir_node::client::call_span("hubdir.v1.RegistryService", "BatchUpsertSites");
                let response = client.batch_upsert_sites(request).instrument(span).await;
                let response = response.map_err(|status| match status.code() {
                    tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                        anyhow::Error::new(Unauthorised { code: status.code(), message: status.message().to_owned() })
                    }
                    code => anyhow::anyhow!("the node refused the batch: {code:?} {}", status.message()),
                })?;
                let response = response.into_inner();
                summary.created += response.created_count as u64;
                summary.updated += response.updated_count as u64;
                summary.unchanged += response.unchanged_count as u64;
                for result in response.results.into_iter().filter(|r| r.outcome == i32::from(RowOutcome::Rejected)) {
                    let row = rows.get(result.row as usize).copied().unwrap_or_default();
                    let row_errors: Vec<RowError> = result
                        .errors
                        .into_iter()
                        .map(|e| RowError {
                            row: row.row,
                            line: row.line,
                            site_id: result.name.rsplit('/').next().unwrap_or_default().to_owned(),
                            field: e.field,
                            reason: e.reason,
                            message: e.description,
                        })
                        .collect();
                    summary.reject(&row_errors);
                    errors.extend(row_errors);
                }
            }
        }
        Ok(())
    }
}

/// Where a pending site came from, to report the node's refusals against the file's rows.
#[derive(Debug, Clone, Copy, Default)]
struct RowRef {
    row: u64,
    line: u64,
}

/// Imports the file and returns the summary; every row error goes into `errors`, also when
/// the import stops early, so the caller can always write the report.
pub async fn run(args: &ImportArgs, errors: &mut Vec<RowError>) -> anyhow::Result<Summary> {
    let mapping = args.mapping.as_deref().map(Mapping::load).transpose()?;
    let records = match &mapping {
        Some(mapping) => hubdir_import::records(&args.file, mapping)?,
        None => hubdir_import::hubdir_csv_records(&args.file)?,
    };
    let mut sink = Sink::open(args).await?;
    let mut progress = Progress::new();
    let mut summary = Summary::default();
    let mut pending = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for record in records {
        summary.read += 1;
        let site = record.map_err(|e| vec![e]).and_then(|record| {
            let at = RowRef { row: record.row, line: record.line };
            let (site, dropped) = match &mapping {
                Some(mapping) => mapping.site(&record)?,
                None => (hubdir_import::hubdir_csv::site(&record)?, Vec::new()),
            };
            // Two rows with one id would silently overwrite each other: refuse the second.
            if !seen.insert(site.name.clone()) {
                return Err(vec![RowError {
                    row: record.row,
                    line: record.line,
                    site_id: site.name.site_id().to_string(),
                    field: "id".into(),
                    reason: "DUPLICATE_ID".into(),
                    message: format!("{} is already used by an earlier row", site.name),
                }]);
            }
            Ok((at, site, dropped))
        });
        match site {
            Ok((at, site, dropped)) => {
                // Kept without a refused optional field: noted in the report, not rejected.
                if !dropped.is_empty() {
                    summary.kept_without_fields += 1;
                    errors.extend(dropped);
                }
                pending.push((at, site));
            }
            Err(row_errors) => {
                summary.reject(&row_errors);
                errors.extend(row_errors);
            }
        }
        if !args.atomic && pending.len() >= CHUNK {
            sink.flush(&mut pending, &mut summary, errors, false).await?;
        }
        if summary.read % 1000 == 0 {
            progress.show(&summary);
        }
    }
    if args.atomic && summary.rejected_total() > 0 {
        anyhow::bail!(
            "--atomic: {} of {} rows were rejected, so nothing was written",
            summary.rejected_total(),
            summary.read
        );
    }
    if args.atomic && matches!(sink, Sink::Node { .. }) && pending.len() > MAX_ATOMIC_STREAM_ROWS {
        anyhow::bail!(
            "--atomic over gRPC takes at most {MAX_ATOMIC_STREAM_ROWS} rows (one stream); import into --db instead"
        );
    }
    sink.flush(&mut pending, &mut summary, errors, args.atomic).await?;
    progress.show(&summary);
    Ok(summary)
}

/// Writes the error report and returns its path for messages.
pub fn write_report(path: &std::path::Path, errors: &[RowError]) -> anyhow::Result<String> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    hubdir_import::write_errors(std::io::BufWriter::new(file), errors)?;
    Ok(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(read: u64, rejected: &[(&str, u64)]) -> Summary {
        Summary { read, rejected: rejected.iter().map(|(r, n)| (r.to_string(), *n)).collect(), ..Summary::default() }
    }

    #[test]
    fn thresholds_parse_as_counts_or_percentages() {
        assert_eq!(parse_threshold("10"), Ok(Threshold::Rows(10)));
        assert_eq!(parse_threshold("2.5%"), Ok(Threshold::Percent(2.5)));
        for bad in ["-1", "ten", "101%", "%"] {
            assert!(parse_threshold(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn data_errors_fail_past_the_threshold_and_authorisation_always() {
        let some = summary(100, &[("PLACEHOLDER", 3)]);
        assert_eq!(Verdict::of(&some, Threshold::Rows(0)), Verdict::TooManyRejected);
        assert_eq!(Verdict::of(&some, Threshold::Rows(3)), Verdict::Done);
        assert_eq!(Verdict::of(&some, Threshold::Percent(3.0)), Verdict::Done);
        assert_eq!(Verdict::of(&some, Threshold::Percent(2.9)), Verdict::TooManyRejected);
        assert_eq!(Verdict::of(&summary(5, &[]), Threshold::Rows(0)), Verdict::Done);
        let refused = summary(100, &[("PERMISSION_DENIED", 1)]);
        assert_eq!(Verdict::of(&refused, Threshold::Percent(100.0)), Verdict::Unauthorised);
    }
}
