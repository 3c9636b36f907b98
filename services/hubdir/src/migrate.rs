//! `hubdir migrate`: brings a node's database schema up to this binary's version. A
//! deployment runs it once per upgrade (the Helm chart's pre-install/pre-upgrade Job), and
//! its services, with `store.auto_migrate = false`, refuse any other schema.

use std::io::Write;
use std::process::ExitCode;

use hubdir_node::NodeArgs;
use hubdir_store::Schema;

/// Exit code of `--check` when migrations are pending.
pub const PENDING: u8 = 3;

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Change nothing: list the migrations the database lacks, and exit 3 if there are any.
    #[arg(long)]
    pub check: bool,
}

/// Applies (or with `--check` lists) the pending migrations, one line each, then a summary.
pub async fn run(args: &MigrateArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let config = args.node.load_config()?;
    let store = hubdir_node::cli::open_store(&config.store, Schema::AsIs).await?;
    if args.check {
        let pending = store.pending_migrations().await?;
        for name in &pending {
            writeln!(out, "pending\t{name}")?;
        }
        writeln!(out, "{} migrations pending", pending.len())?;
        return Ok(if pending.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(PENDING) });
    }
    let applied = store.migrate().await?;
    for name in &applied {
        writeln!(out, "applied\t{name}")?;
    }
    writeln!(out, "{} migrations applied; the schema is up to date", applied.len())?;
    Ok(ExitCode::SUCCESS)
}
