//! `hubdir import`: a publisher's file, through a mapping, straight into a node's database.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use hubdir_core::Site;
use hubdir_import::{Mapping, RowError, Summary};
use hubdir_store::{Applied, Change, Precondition, Store, Write};

/// Rows per transaction when importing row by row.
const CHUNK: usize = 1000;

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The file to import (CSV or GeoJSON, as the mapping says).
    file: PathBuf,
    /// The mapping file: how the file's columns become site fields (see examples/mappings/).
    #[arg(long)]
    mapping: PathBuf,
    /// The node's database URL (`sqlite://hubdir.db` or `postgres://...`).
    #[arg(long, default_value = "sqlite://hubdir.db")]
    db: String,
    /// Write nothing unless every row is valid (one transaction for the whole file).
    #[arg(long)]
    atomic: bool,
    /// Where to write the rejected rows (CSV: row, line, site_id, field, reason, message).
    #[arg(long, default_value = "import-errors.csv")]
    pub errors: PathBuf,
}

struct Progress {
    on_terminal: bool,
}

impl Progress {
    fn show(&self, summary: &Summary) {
        if self.on_terminal {
            eprint!(
                "\rread {:>9}  imported {:>9}  unchanged {:>9}  rejected {:>9}",
                summary.read,
                summary.created + summary.updated,
                summary.unchanged,
                summary.rejected_total()
            );
        }
    }

    fn done(&self) {
        if self.on_terminal {
            eprintln!();
        }
    }
}

async fn flush(store: &Store, pending: &mut Vec<Site>, summary: &mut Summary) -> anyhow::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let writes = pending
        .drain(..)
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
    Ok(())
}

/// Imports the file; returns the summary and every row error.
pub async fn run(args: &ImportArgs) -> anyhow::Result<(Summary, Vec<RowError>)> {
    let mapping = Mapping::load(&args.mapping)?;
    let records = hubdir_import::records(&args.file, &mapping)?;
    let store = Store::connect(&args.db)
        .await
        .with_context(|| format!("cannot open the store at {}", hubdir_node::cli::redact_url(&args.db)))?;
    let progress = Progress { on_terminal: std::io::stderr().is_terminal() };
    let mut summary = Summary::default();
    let mut errors = Vec::new();
    let mut pending = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for record in records {
        summary.read += 1;
        let site = record.map_err(|e| vec![e]).and_then(|record| {
            let site = mapping.site(&record)?;
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
            Ok(site)
        });
        match site {
            Ok(site) => pending.push(site),
            Err(row_errors) => {
                summary.reject(&row_errors);
                errors.extend(row_errors);
            }
        }
        if !args.atomic && pending.len() >= CHUNK {
            flush(&store, &mut pending, &mut summary).await?;
        }
        if summary.read % 1000 == 0 {
            progress.show(&summary);
        }
    }
    if args.atomic && summary.rejected_total() > 0 {
        progress.done();
        anyhow::bail!(
            "--atomic: {} of {} rows were rejected, so nothing was written; see {}",
            summary.rejected_total(),
            summary.read,
            write_report(&args.errors, &errors)?
        );
    }
    flush(&store, &mut pending, &mut summary).await?;
    progress.show(&summary);
    progress.done();
    Ok((summary, errors))
}

/// Writes the error report and returns its path for messages.
pub fn write_report(path: &std::path::Path, errors: &[RowError]) -> anyhow::Result<String> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    hubdir_import::write_errors(std::io::BufWriter::new(file), errors)?;
    Ok(path.display().to_string())
}
