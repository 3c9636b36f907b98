//! Compiles `proto/hubdir/v1/*.proto` with protox (pure Rust, no system `protoc`) and writes
//! the encoded file descriptor set to `OUT_DIR` for gRPC reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let dir = root.join("hubdir/v1");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir)?.map(|entry| entry.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "proto"));
    files.sort();

    // protox does not make Cargo rerun this script when a .proto changes: say so ourselves,
    // with paths relative to this package so a build cache shared between checkouts never
    // watches another checkout's files.
    println!("cargo:rerun-if-changed=../../proto/hubdir/v1");
    for file in &files {
        if let Some(name) = file.file_name() {
            println!("cargo:rerun-if-changed=../../proto/hubdir/v1/{}", name.to_string_lossy());
        }
    }

    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("hubdir_descriptor.bin"), fds.encode_to_vec())?;
    // Messages and clients, then the servers in a second pass: a server answers FindNearest
    // with `crate::answer::FindNearestAnswer`, wire-identical to `FindNearestResponse` but made
    // of site encodings prepared once (`convert::EncodedSite`), while clients keep decoding the
    // generated `FindNearestResponse`.
    tonic_prost_build::configure().build_server(false).compile_fds(fds.clone())?;
    let servers = out.join("servers");
    std::fs::create_dir_all(&servers)?;
    tonic_prost_build::configure()
        .build_client(false)
        .out_dir(&servers)
        .extern_path(".hubdir.v1.FindNearestResponse", "crate::answer::FindNearestAnswer")
        .extern_path(".hubdir.v1", "crate::v1")
        .compile_fds(fds)?;
    Ok(())
}
