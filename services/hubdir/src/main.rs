//! `hubdir`: the command line and the all-in-one node.

mod agent;
mod coverage;
mod demo;
mod export;
mod federation;
mod import;
mod migrate;
mod population;
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
const ALL_SERVICES: [Mount; 5] = [
    hubdir_registry::MOUNT,
    hubdir_discovery::MOUNT,
    hubdir_coverage::MOUNT,
    hubdir_connectivity::MOUNT,
    hubdir_federation::MOUNT,
];

/// hubdir: a federated directory of places where people can get online and get help.
#[derive(Debug, Parser)]
#[command(name = "hubdir", version = hubdir_node::VERSION)]
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
    /// Bring the database schema up to this version (exit 3 with --check: migrations pending).
    Migrate(migrate::MigrateArgs),
    /// Import a publisher's file (CSV or GeoJSON, through a mapping) into a node's database.
    Import(import::ImportArgs),
    /// Export every site of a node's database as HSDS 3.0, GeoJSON or CSV.
    Export(export::ExportArgs),
    /// Population layers (where people live), for coverage.
    #[command(subcommand)]
    Population(population::PopulationCommand),
    /// Who is far from help: people within each distance of a help point, as a table, a map
    /// (SVG) and GeoJSON cells.
    Coverage(coverage::CoverageArgs),
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
/// adds 3 and 4 (see `import::Verdict`), `migrate --check` 3 (migrations pending),
/// `population import` 3 (more rows rejected than allowed: nothing written).
#[tokio::main]
async fn main() -> ExitCode {
    hubdir_node::cli::finish(command(Cli::parse().command).await)
}

async fn command(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Import(args) => traced(import(args)).await,
        Command::Serve { serve, demo, demo_sites } => serve_node(serve, demo, demo_sites).await.map(done),
        Command::Migrate(args) => migrate::run(&args, &mut std::io::stdout().lock()).await,
        Command::Token(command) => token::run(command).map(done),
        Command::Federation(command) => federation::run(command, &mut std::io::stdout().lock()).await.map(done),
        Command::Agent(args) => {
            let line = traced(agent::run(&args)).await?;
            writeln!(std::io::stdout(), "{line}")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Quarantine(args) => {
            let count = quarantine::run(&args, &mut std::io::stdout().lock()).await?;
            writeln!(std::io::stderr(), "{count} refused measurements")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Population(command) => population::run(command, &mut std::io::stdout().lock()).await,
        Command::Coverage(args) => coverage::run(&args, &mut std::io::stdout().lock()).await.map(done),
        Command::Export(args) => {
            let count = export::run(&args).await?;
            writeln!(std::io::stderr(), "exported {count} sites")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs a command that calls a node with its spans exported when `OTEL_EXPORTER_OTLP_*` says
/// where, and flushed before it returns.
async fn traced<T>(command: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let process = hubdir_telemetry::ProcessInfo { service_name: "hubdir".into(), node_id: String::new() };
    let telemetry = hubdir_telemetry::init_client(&process)?;
    let result = command.await;
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    result
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
        Err(e) if e.downcast_ref::<import::Unauthorised>().is_some() => {
            writeln!(std::io::stderr(), "{}", hubdir_node::cli::report(&e))?;
            return Ok(ExitCode::from(import::Verdict::Unauthorised as u8));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn subcommand<'a>(cli: &'a clap::Command, path: &[&str]) -> &'a clap::Command {
        path.iter().fold(cli, |command, name| command.find_subcommand(name).expect(name))
    }

    /// One meaning per flag: every command that reads a node's database takes the same
    /// `--config`/`--db`/`--node-id` with the same default, only serving commands take the
    /// server's flags, and every flag says what it is.
    #[test]
    fn commands_share_node_flags_and_only_serve_takes_server_flags() {
        Cli::command().debug_assert();
        let mut cli = Cli::command();
        cli.build();
        let help = |command: &clap::Command, id: &str| {
            command.get_arguments().find(|a| a.get_id() == id).and_then(|a| a.get_help()).map(|h| h.to_string())
        };
        let serve = subcommand(&cli, &["serve"]);
        for path in [
            &["export"][..],
            &["quarantine"],
            &["federation", "key"],
            &["federation", "status"],
            &["federation", "compact"],
        ] {
            let command = subcommand(&cli, path);
            for id in ["config", "db", "node_id"] {
                assert_eq!(help(command, id), help(serve, id), "{path:?} --{id}");
            }
            for id in ["listen", "log_format", "dump_config"] {
                assert!(help(command, id).is_none(), "{path:?} takes the server-only --{id}");
            }
        }
        let mut undescribed = Vec::new();
        let mut stack = vec![cli.clone()];
        while let Some(command) = stack.pop() {
            for arg in command.get_arguments().filter(|a| !["help", "version"].contains(&a.get_id().as_str())) {
                if arg.get_help().is_none() {
                    undescribed.push(format!("{} {}", command.get_name(), arg.get_id()));
                }
            }
            stack.extend(command.get_subcommands().cloned());
        }
        assert!(undescribed.is_empty(), "flags without a description: {undescribed:?}");
    }
}
