//! What every hubdir process shares: layered configuration, the store, and the gRPC server
//! with health, reflection, explicit limits and graceful shutdown.

pub mod background;
pub mod calls;
pub mod cli;
pub mod client;
pub mod config;
pub mod connections;
pub mod health;
pub mod page_token;
pub mod prometheus;
pub mod server;
pub mod singleton;
pub mod status;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod tls;

pub use cli::{NodeArgs, ServeArgs};
pub use config::Config;
pub use server::{Mount, NodeContext};
