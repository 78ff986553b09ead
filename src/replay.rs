//! `flowmesh replay`: capture files through the actor pipeline, flow records out as JSON
//! lines.

use crate::cli::ReplayArgs;
use crate::summary::{Progress, Summary};
use anyhow::{Context, Result};
use flowmesh_actors::batch::MappedInput;
use flowmesh_actors::pipeline::{replay, ReplayConfig};
use flowmesh_core::flow::FlowTableConfig;
use flowmesh_core::handshake::WorkerConfig;
use flowmesh_core::reassembly::ReassemblyConfig;
use flowmesh_core::shard::ShardConfig;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The pipeline settings the arguments ask for. Table and memory caps are totals, split
/// evenly over the shards.
fn replay_config(args: &ReplayArgs) -> ReplayConfig {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let shards = args.shards.map_or(cores, usize::from).max(1);
    let workers = args.workers.map_or(shards, usize::from).max(1);
    let per_shard = |total: usize| total.div_ceil(shards).max(1);
    ReplayConfig {
        shards,
        workers,
        encoders: shards,
        shard: ShardConfig {
            flows: FlowTableConfig {
                capacity: per_shard(args.max_flows),
                ..FlowTableConfig::default()
            },
            reassembly: ReassemblyConfig {
                depth: args.depth,
                ..ReassemblyConfig::default()
            },
            reassembly_memcap: per_shard(args.reassembly_memcap_mb.saturating_mul(1 << 20)),
            ..ShardConfig::default()
        },
        worker: WorkerConfig {
            fingerprints: args.fingerprints,
            ..WorkerConfig::default()
        },
        ..ReplayConfig::default()
    }
}

/// Runs `flowmesh replay`.
pub fn run(args: &ReplayArgs) -> Result<()> {
    // Open every file before any output, so a bad argument fails fast.
    let inputs = args
        .files
        .iter()
        .map(|p| MappedInput::open(p))
        .collect::<Result<Vec<_>, _>>()?;
    let output: Box<dyn Write + Send> = if args.output == "-" {
        Box::new(BufWriter::with_capacity(1 << 16, io::stdout()))
    } else {
        let f =
            File::create(&args.output).with_context(|| format!("cannot create {}", args.output))?;
        Box::new(BufWriter::with_capacity(1 << 16, f))
    };
    let total_bytes: u64 = inputs.iter().map(|i| i.bytes().len() as u64).sum();
    let files = inputs.len();
    let cfg = replay_config(args);
    let progress = Arc::new(Mutex::new(Progress::new(!args.quiet, total_bytes)));
    let ticker = {
        let progress = Arc::clone(&progress);
        Box::new(move |board: &flowmesh_actors::stats::Board| {
            if let Ok(mut p) = progress.lock() {
                p.tick(board);
            }
        })
    };
    let report = replay(
        cfg,
        inputs,
        output,
        Some((Duration::from_millis(500), ticker)),
    )?;
    if let Ok(mut p) = progress.lock() {
        p.clear();
    }
    for w in &report.board.capture.warnings {
        eprintln!("flowmesh: warning: {w}");
    }
    if !args.quiet {
        eprint!(
            "{}",
            Summary {
                files,
                report: &report,
            }
        );
    }
    Ok(())
}
