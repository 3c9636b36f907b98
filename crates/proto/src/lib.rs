//! Generated gRPC code for `hubdir.v1`, and the conversions between it and the domain.
//!
//! Generated types stay at the edge: services convert to `hubdir_core` types on the way in
//! and back on the way out, through the functions in [`convert`].

pub mod answer;
pub mod convert;

/// The generated `hubdir.v1` messages, clients and servers.
#[allow(missing_debug_implementations, unused_qualifications, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("hubdir.v1");
    // The servers, generated apart: see `build.rs` and `crate::answer`.
    include!(concat!(env!("OUT_DIR"), "/servers/hubdir.v1.rs"));
}

/// The encoded file descriptor set of every `hubdir.v1` file, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("hubdir_descriptor");
