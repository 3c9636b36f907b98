//! What every hubdir process shares: layered configuration, the store, and the gRPC server
//! with health, reflection, explicit limits and graceful shutdown.

pub mod background;
pub mod calls;
pub mod cli;
pub mod client;
pub mod config;
pub mod connections;
pub mod grpc_web;
pub mod health;
pub mod http;
pub mod index_snapshot;
pub mod page_token;
pub mod prometheus;
pub mod server;
pub mod singleton;
pub mod site_index;
pub mod status;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod tls;

/// The version every binary reports (`--version`) and a node publishes
/// (`GetNodeInfo.version`): the crate version and the commit it was built from, `-dirty` when
/// the tree differed from it (`build.rs`), e.g. `0.1.0 (1a2b3c4d5e6f)`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("HUBDIR_BUILD_COMMIT"), ")");

pub use cli::{NodeArgs, ServeArgs};
pub use config::Config;
pub use server::{Mount, NodeContext, Routing};
