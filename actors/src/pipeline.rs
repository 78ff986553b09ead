//! Wiring: starts the stages of a replay on their threads, connects them, runs the input
//! through, and waits until every stage has drained or one has failed for good.
//!
//! Threads: one arbiter per shard, and more up to the number of cores when there are fewer
//! shards than cores. Shard `i` runs on arbiter `i`; worker `j` and encoder `k` start on
//! the arbiter after the shards' (`(shards + j) % arbiters`), so with one shard on two
//! cores the handshake work runs beside the shard instead of on its thread (measured:
//! 100,000 handshakes 1.54-1.96 s against 2.46-3.36 s), and with as many shards as cores
//! they share the shard arbiters without more threads than cores. The writer and the
//! capture source have a thread each (they block on I/O); the scheduler runs on the
//! system arbiter.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix::{Arbiter, ArbiterHandle, System};
use flowmesh_core::decode::DecodeConfig;
use flowmesh_core::handshake::WorkerConfig;
use flowmesh_core::shard::ShardConfig;
use thiserror::Error;
use tokio::sync::oneshot;

use crate::batch::MappedInput;
use crate::capture::{capture_live, replay_files, LiveInput};
use crate::runtime::{
    failure_channel, start_stage, start_stage_in_arbiter, Delivery, Priority, RestartPolicy,
    StageConfig, StageConfigError, StageCounters, StageFailed,
};
use crate::stages::shard::ShardSelfEdges;
use crate::stages::worker::WorkerEdges;
use crate::stages::writer::{Output, WriterShared};
use crate::stages::{EncoderStage, Fault, SchedulerStage, ShardStage, WorkerStage, WriterStage};
use crate::stats::{Board, StatsBoard};

/// How to run a replay.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// Reassembly shards (at least 1).
    pub shards: usize,
    /// Handshake workers (at least 1).
    pub workers: usize,
    /// JSON encoders (at least 1; a record sink gets one).
    pub encoders: usize,
    /// Frame decoding (the router's and the shards').
    pub decode: DecodeConfig,
    /// Per-shard settings (index, epoch and counts are set per shard).
    pub shard: ShardConfig,
    /// Per-worker settings.
    pub worker: WorkerConfig,
    /// Restart budget of every stage.
    pub restart: RestartPolicy,
    /// Capacity of a shard's packet queue, in batches.
    pub shard_queue: usize,
    /// Test-only: make a shard panic.
    pub fault: Option<Arc<Fault>>,
    /// When set, the capture stops reading at the next check (every few thousand frames);
    /// the pipeline then ends every flow with `end_of_input` and drains as usual.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            shards: 1,
            workers: 1,
            encoders: 1,
            decode: DecodeConfig::default(),
            shard: ShardConfig::default(),
            worker: WorkerConfig::default(),
            restart: RestartPolicy::default(),
            shard_queue: 32,
            fault: None,
            stop: None,
        }
    }
}

/// Why a replay did not complete.
#[derive(Debug, Error)]
pub enum ReplayError {
    /// A stage failed more often than its restart budget allows.
    #[error(transparent)]
    StageFailed(#[from] StageFailed),
    /// A stage could not be configured.
    #[error(transparent)]
    Config(#[from] StageConfigError),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// The pipeline stopped without finishing (a bug).
    #[error("the pipeline stopped before the end of input")]
    Stopped,
}

/// What a finished replay counted.
#[derive(Debug)]
pub struct ReplayReport {
    /// The stages' published counters.
    pub board: Board,
    /// Every stage's queue and supervision counters.
    pub stages: Vec<StageCounters>,
    /// Wall time.
    pub elapsed: Duration,
}

/// A progress callback, called about every `interval` with the board and every stage's
/// queue and supervision counters.
pub type ProgressFn = Box<dyn FnMut(&Board, &[StageCounters]) + Send>;

/// What the pipeline reads.
#[derive(Debug)]
pub enum Input {
    /// Capture files, read to the end, losslessly (capture waits for full shards).
    Files(Vec<MappedInput>),
    /// Live sources, read until the config's stop flag turns true; a full shard drops
    /// batches (counted), the rings are never blocked.
    Live(LiveInput),
}

/// Replays `inputs` through the pipeline into `output`.
pub fn replay(
    cfg: ReplayConfig,
    inputs: Vec<MappedInput>,
    output: Output,
    progress: Option<(Duration, ProgressFn)>,
) -> Result<ReplayReport, ReplayError> {
    run_pipeline(cfg, Input::Files(inputs), output, progress)
}

/// Runs `input` through the pipeline into `output` until it ends (files) or the stop flag
/// of `cfg` turns true (live), and every stage has drained.
pub fn run_pipeline(
    cfg: ReplayConfig,
    input: Input,
    output: Output,
    progress: Option<(Duration, ProgressFn)>,
) -> Result<ReplayReport, ReplayError> {
    let started = Instant::now();
    let board = StatsBoard::default();
    let system = System::new();
    let result = system.block_on(run(cfg, input, output, board.clone(), progress));
    let stages = result?;
    let board = std::mem::take(&mut *board.lock());
    Ok(ReplayReport {
        board,
        stages,
        elapsed: started.elapsed(),
    })
}

/// A `'static` stage name (names are few and live as long as the process's counters).
fn name(kind: &str, i: usize) -> &'static str {
    Box::leak(format!("{kind}-{i}").into_boxed_str())
}

async fn run(
    cfg: ReplayConfig,
    input: Input,
    output: Output,
    board: StatsBoard,
    mut progress: Option<(Duration, ProgressFn)>,
) -> Result<Vec<StageCounters>, ReplayError> {
    let n = cfg.shards.max(1);
    let m = cfg.workers.max(1);
    // Records for a sink pass through the encoders untouched: one is enough, and it keeps
    // each flow's records (an interim one, then the final one) in the order made.
    let k = if output.wants_json() {
        cfg.encoders.max(1)
    } else {
        1
    };
    let (on_failure, mut fail_rx) = failure_channel();
    let (done_tx, done_rx) = oneshot::channel();
    let stage = |name: &'static str| StageConfig {
        restart: cfg.restart,
        ..StageConfig::new(name)
    };

    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let arbiters: Vec<Arbiter> = (0..n.max(cores)).map(|_| Arbiter::new()).collect();
    let on = |i: usize| -> ArbiterHandle { arbiters[i % n].handle() };
    let beside = |j: usize| -> ArbiterHandle { arbiters[(n + j) % arbiters.len()].handle() };
    let writer_arbiter = Arbiter::new();

    let json = output.wants_json();
    let shared = WriterShared::new(output, done_tx);
    let writer = {
        let board = board.clone();
        start_stage_in_arbiter(
            &writer_arbiter.handle(),
            stage("writer"),
            move || WriterStage::new(Arc::clone(&shared), k, board.clone()),
            on_failure.clone(),
        )?
    };

    let scheduler_board = board.clone();
    let encoders_edges: Arc<OnceLock<_>> = Arc::new(OnceLock::new());
    let scheduler = {
        let edges = Arc::clone(&encoders_edges);
        let producers = n + m;
        start_stage(
            stage("scheduler"),
            move || SchedulerStage::new(Arc::clone(&edges), k, producers, scheduler_board.clone()),
            on_failure.clone(),
        )?
    };

    let mut encoders = Vec::with_capacity(k);
    for i in 0..k {
        let to_writer = writer.edge(Priority::Low, Delivery::Lossless);
        let reports = scheduler.edge(Priority::High, Delivery::Droppable);
        encoders.push(start_stage_in_arbiter(
            &beside(i),
            stage(name("encoder", i)),
            move || EncoderStage::new(i, json, to_writer.clone(), reports.clone()),
            on_failure.clone(),
        )?);
    }
    let _ = encoders_edges.set(
        encoders
            .iter()
            .map(|e| e.edge(Priority::Low, Delivery::Lossless))
            .collect::<Vec<_>>(),
    );

    let shard_edges = Arc::new(OnceLock::new());
    let mut workers = Vec::with_capacity(m);
    for j in 0..m {
        let edges = WorkerEdges {
            shards: Arc::clone(&shard_edges),
            events: scheduler.edge(Priority::High, Delivery::Lossless),
            records: scheduler.edge(Priority::Low, Delivery::Lossless),
        };
        let (wcfg, board) = (cfg.worker, board.clone());
        workers.push(start_stage_in_arbiter(
            &beside(j),
            stage(name("worker", j)),
            move || {
                board.retire_worker(j);
                WorkerStage::new(j, wcfg, n, edges.clone(), board.clone())
            },
            on_failure.clone(),
        )?);
    }

    let bypass = match &input {
        Input::Live(live) => live.bypass.clone(),
        Input::Files(_) => None,
    };
    let self_edges: ShardSelfEdges = Arc::new(OnceLock::new());
    let mut shards = Vec::with_capacity(n);
    for i in 0..n {
        let to_workers: Vec<_> = workers
            .iter()
            .map(|w| w.edge(Priority::Low, Delivery::Lossless))
            .collect();
        let to_scheduler = scheduler.edge(Priority::Low, Delivery::Lossless);
        let (board, fault, me) = (board.clone(), cfg.fault.clone(), Arc::clone(&self_edges));
        let bypass = bypass.clone();
        let base = ShardConfig {
            index: u16::try_from(i).unwrap_or(u16::MAX),
            workers: u16::try_from(m).unwrap_or(u16::MAX),
            shards: u16::try_from(n).unwrap_or(u16::MAX),
            decode: cfg.decode,
            ..cfg.shard.clone()
        };
        let epoch = std::sync::atomic::AtomicU32::new(0);
        shards.push(start_stage_in_arbiter(
            &on(i),
            StageConfig {
                low_capacity: cfg.shard_queue.max(1),
                // Updates from every worker arrive here, one message per worker turn;
                // room for many keeps early discard working while the shard is busy.
                high_capacity: 1024,
                ..stage(name("shard", i))
            },
            move || {
                board.retire_shard(i);
                let shard_cfg = ShardConfig {
                    epoch: epoch.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    ..base.clone()
                };
                ShardStage::new(
                    shard_cfg,
                    to_workers.clone(),
                    to_scheduler.clone(),
                    board.clone(),
                    fault.clone(),
                    Arc::clone(&me),
                )
                .with_bypass(bypass.as_ref().map(|make| make()))
            },
            on_failure.clone(),
        )?);
    }
    let _ = shard_edges.set(
        shards
            .iter()
            .map(|s| s.edge(Priority::High, Delivery::Droppable))
            .collect::<Vec<_>>(),
    );
    let _ = self_edges.set(
        shards
            .iter()
            .map(|s| s.edge(Priority::Low, Delivery::Lossless))
            .collect::<Vec<_>>(),
    );

    let capture_arbiter = Arbiter::new();
    let delivery = match input {
        Input::Files(_) => Delivery::Lossless,
        Input::Live(_) => Delivery::Droppable,
    };
    let to_shards: Vec<_> = shards
        .iter()
        .map(|s| s.edge(Priority::Low, delivery))
        .collect();
    match input {
        Input::Files(inputs) => {
            capture_arbiter.spawn(replay_files(
                inputs.into_iter().map(Arc::new).collect(),
                to_shards,
                cfg.decode,
                cfg.shard.expire_interval_ns,
                cfg.stop.clone(),
                board.clone(),
            ));
        }
        Input::Live(live) => {
            capture_arbiter.spawn(capture_live(
                live,
                to_shards,
                cfg.decode,
                cfg.shard.expire_interval_ns,
                cfg.stop.clone().unwrap_or_default(),
                board.clone(),
            ));
        }
    }

    // Every stage's counters, in pipeline order (stages that stopped answering are left out).
    let snapshot = || async {
        let mut counters = Vec::new();
        for s in &shards {
            counters.extend(s.counters().await.ok());
        }
        for w in &workers {
            counters.extend(w.counters().await.ok());
        }
        counters.extend(scheduler.counters().await.ok());
        for e in &encoders {
            counters.extend(e.counters().await.ok());
        }
        counters.extend(writer.counters().await.ok());
        counters
    };

    let mut done_rx = done_rx;
    let mut ticker = progress
        .as_ref()
        .map(|(every, _)| tokio::time::interval(*every));
    let outcome = loop {
        tokio::select! {
            done = &mut done_rx => break match done {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(ReplayError::Output(e)),
                Err(_) => Err(ReplayError::Stopped),
            },
            failed = fail_rx.recv() => break match failed {
                Some(f) => Err(ReplayError::StageFailed(f)),
                None => Err(ReplayError::Stopped),
            },
            _ = async { match ticker.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending::<()>().await } } => {
                let counters = snapshot().await;
                if let Some((_, f)) = progress.as_mut() {
                    f(&board.lock(), &counters);
                }
            }
        }
    };

    let counters = if outcome.is_ok() {
        snapshot().await
    } else {
        Vec::new()
    };
    for a in arbiters.iter().chain([&writer_arbiter, &capture_arbiter]) {
        a.stop();
    }
    System::current().stop();
    outcome.map(|()| counters)
}
