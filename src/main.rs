//! flowmesh: network-traffic analysis daemon and the `replay` tool over the same pipeline.

mod cli;
mod replay;
mod summary;

use clap::Parser;
use std::process::ExitCode;

/// Packet batches, handshake work and records are allocated on one thread and freed on
/// another; mimalloc handles that without the arena contention and heap trimming of the
/// system allocator (measured: see README, Benchmarks).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLOWMESH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Replay(args) => replay::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowmesh: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
