//! `flowmesh replay`: capture files through the actor pipeline, flow records out as JSON
//! lines.

use crate::cli::ReplayArgs;
use crate::config::{FlowTimeouts, PipelineConfig};
use crate::summary::{Progress, Summary};
use anyhow::{Context, Result};
use flowmesh_actors::batch::MappedInput;
use flowmesh_actors::pipeline::{replay, ReplayConfig};
use flowmesh_actors::stages::Output;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The pipeline settings the arguments ask for.
fn replay_config(args: &ReplayArgs) -> ReplayConfig {
    PipelineConfig {
        shards: args.shards.unwrap_or(0),
        workers: args.workers.unwrap_or(0),
        max_flows: args.max_flows,
        reassembly_memcap_mb: args.reassembly_memcap_mb,
        depth: args.depth,
        fingerprints: Vec::new(),
        timeouts: FlowTimeouts::default(),
    }
    .replay_config(args.fingerprints)
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
        Box::new(move |board: &flowmesh_actors::stats::Board, _: &[_]| {
            if let Ok(mut p) = progress.lock() {
                p.tick(board);
            }
        })
    };
    let report = replay(
        cfg,
        inputs,
        Output::JsonLines(output),
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
