//! `hubdir-connectivity`: ConnectivityService alone, for deployments that scale services apart.

use clap::Parser;

/// Serves hubdir's ConnectivityService (with health and reflection).
#[derive(Debug, Parser)]
#[command(name = "hubdir-connectivity", version = hubdir_node::VERSION)]
struct Cli {
    #[command(flatten)]
    serve: hubdir_node::ServeArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let served = hubdir_node::cli::standalone_main(Cli::parse().serve, &[hubdir_connectivity::MOUNT]).await;
    hubdir_node::cli::finish(served.map(|()| std::process::ExitCode::SUCCESS))
}
