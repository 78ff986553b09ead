//! flowmesh: network-traffic analysis daemon and the `replay` tool over the same pipeline.

mod api;
mod cli;
mod config;
mod daemon;
mod query;
mod replay;
mod summary;

use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Changes the log filter while running (`[log] level`, SIGHUP). The FLOWMESH_LOG
/// environment variable, when set, wins and is never replaced.
#[derive(Debug)]
pub struct LogReload {
    handle: reload::Handle<EnvFilter, Registry>,
    from_env: bool,
}

impl LogReload {
    /// Installs the global subscriber, logging to standard error.
    fn install() -> Self {
        let env = EnvFilter::try_from_env("FLOWMESH_LOG").ok();
        let from_env = env.is_some();
        let (filter, handle) = reload::Layer::new(env.unwrap_or_else(|| EnvFilter::new("warn")));
        tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .init();
        LogReload { handle, from_env }
    }

    /// Uses `directives` unless FLOWMESH_LOG is set; a bad filter is logged and ignored.
    pub fn set(&self, directives: &str) {
        if self.from_env {
            return;
        }
        match EnvFilter::try_new(directives) {
            Ok(f) => {
                let _ = self.handle.reload(f);
            }
            Err(e) => {
                tracing::error!(error = %e, "log.level {directives:?} is not a filter; kept the previous one")
            }
        }
    }
}

/// Packet batches, handshake work and records are allocated on one thread and freed on
/// another; mimalloc handles that without the arena contention and heap trimming of the
/// system allocator (measured: see README, Benchmarks).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let log = LogReload::install();
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Replay(args) => replay::run(&args),
        cli::Command::Run(args) => daemon::run(&args, &log),
        cli::Command::Query(args) => query::run(&args),
        cli::Command::CheckConfig(args) => config::Config::load(&args.file)
            .map(|c| println!("{}: ok ({c})", args.file.display()))
            .map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowmesh: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
