//! `hubdir`: the command line and the all-in-one node.

mod agent;
mod demo;
mod export;
mod federation;
mod import;
mod quarantine;
mod rng;
mod token;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hubdir_node::ServeArgs;
use hubdir_node::server::Mount;

/// Bulk writes allocate heavily (multi-row statements): glibc malloc dominated their profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every service of the node, as `hubdir serve` mounts them.
const ALL_SERVICES: [Mount; 4] =
    [hubdir_registry::MOUNT, hubdir_discovery::MOUNT, hubdir_connectivity::MOUNT, hubdir_federation::MOUNT];

/// hubdir: a federated directory of places where people can get online and get help.
#[derive(Debug, Parser)]
#[command(name = "hubdir", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: every service in one process, on SQLite unless told otherwise.
    Serve {
        #[command(flatten)]
        serve: ServeArgs,
        /// Load the deterministic demo data set before serving (a no-op if already loaded).
        #[arg(long)]
        demo: bool,
        /// How many demo sites to load.
        #[arg(long, default_value_t = demo::DEFAULT_SITES, requires = "demo")]
        demo_sites: usize,
    },
    /// Import a publisher's file (CSV or GeoJSON, through a mapping) into a node's database.
    Import(import::ImportArgs),
    /// Export every site of a node's database as HSDS 3.0, GeoJSON or CSV.
    Export(export::ExportArgs),
    /// Report a site's connectivity to a node: given values, or a probe of an http:// URL.
    Agent(agent::AgentArgs),
    /// The node's key for peers to pin, and how far this node is behind each peer.
    #[command(subcommand)]
    Federation(federation::FederationCommand),
    /// Connectivity measurements this node refused, newest first, with the reason.
    Quarantine(quarantine::QuarantineArgs),
    /// Development keys and tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
}

/// Exit codes: 0 done, 1 failed (the error is printed), 2 a command-line mistake; `import`
/// adds 3 and 4 (see `import::Verdict`).
#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Import(args) => import(args).await,
        Command::Serve { serve, demo, demo_sites } => serve_node(serve, demo, demo_sites).await.map(done),
        Command::Token(command) => token::run(command).map(done),
        Command::Federation(command) => federation::run(command, &mut std::io::stdout().lock()).await.map(done),
        Command::Agent(args) => {
            let line = agent::run(&args).await?;
            writeln!(std::io::stdout(), "{line}")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Quarantine(args) => {
            let count = quarantine::run(&args, &mut std::io::stdout().lock()).await?;
            writeln!(std::io::stderr(), "{count} refused measurements")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(args) => {
            let count = export::run(&args).await?;
            writeln!(std::io::stderr(), "exported {count} sites")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn done(_: ()) -> ExitCode {
    ExitCode::SUCCESS
}

async fn serve_node(serve: ServeArgs, demo: bool, demo_sites: usize) -> anyhow::Result<()> {
    let Some(prepared) = hubdir_node::cli::prepare(&serve).await? else {
        return Ok(());
    };
    if demo {
        let origin = prepared.ctx.config.node.id.clone();
        let summary = demo::load(&prepared.ctx.store, origin.as_str(), demo_sites).await?;
        tracing::info!(
            created = summary.created,
            updated = summary.updated,
            unchanged = summary.unchanged,
            "demo data loaded"
        );
    }
    hubdir_node::cli::run(prepared, &ALL_SERVICES).await
}

async fn import(args: import::ImportArgs) -> anyhow::Result<ExitCode> {
    let mut errors = Vec::new();
    let result = import::run(&args, &mut errors).await;
    // The report is written whatever happened: rows refused before a failure count.
    let report = import::write_report(&args.errors, &errors)?;
    // Named only when there is something in it (a file that cannot be read has no rows).
    let summary = match result {
        Err(e) if !errors.is_empty() => Err(e.context(format!("the rejected rows so far are in {report}"))),
        other => other,
    }?;
    writeln!(std::io::stdout(), "{}\nerror report: {report}", summary.render())?;
    let verdict = import::Verdict::of(&summary, args.max_rejected);
    if let Some(why) = verdict.explain(&summary, args.max_rejected) {
        writeln!(std::io::stderr(), "error: {why}")?;
    }
    Ok(ExitCode::from(verdict as u8))
}
