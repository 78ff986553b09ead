//! Ingest: capture files (from the spool or uploaded through the API) run one at a time
//! through the actor pipeline into the flow store.
//!
//! Each file gets a pipeline of its own (the same one `replay` runs), so its flows end with
//! `end_of_input` when the file ends and a caller learns exactly how many records of *its*
//! file were stored. The pipeline's writer stage commits each batch to RocksDB on the
//! writer's own thread; a job is answered only after its last batch is committed, so an
//! acknowledged file is in the write-ahead log.
//!
//! Owns the job queue (bounded), the ingest thread and the stop flag. Shutdown: `stop`
//! makes the capture stop reading (the pipeline drains and stores what it read) and fails
//! jobs still queued.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flowmesh_actors::batch::MappedInput;
use flowmesh_actors::pipeline::{replay, ReplayError};
use flowmesh_actors::runtime::StageCounters;
use flowmesh_actors::stages::{Output, RecordSink};
use flowmesh_actors::storage::FlowStore;
use flowmesh_schemas::{FlowRecord, Handshake, Timestamp};
use metrics::{counter, histogram};
use serde::Serialize;
use thiserror::Error;
use tokio::sync::oneshot;

use super::telemetry::JobMetrics;
use crate::config::Config;

/// Jobs waiting behind the running one.
const QUEUE: usize = 16;

/// Where a capture file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Dropped into the spool directory.
    Spool,
    /// Uploaded with `POST /api/v1/ingest/pcap`.
    Upload,
    /// `capture.file` of `source = "pcap"`.
    Config,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Spool => "spool",
            Origin::Upload => "upload",
            Origin::Config => "config",
        }
    }
}

/// What ingesting one file stored.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Ingested {
    /// Flow records stored.
    pub flows: u64,
    /// Handshakes (ClientHellos) in the stored records, malformed ones included.
    pub handshakes: u64,
    /// Frames read.
    pub packets: u64,
    /// The daemon was stopping: only the start of the file was read.
    pub interrupted: bool,
    /// Problems with the file that did not stop it (e.g. cut short).
    pub warnings: Vec<String>,
}

/// Why a file was not ingested.
#[derive(Debug, Error)]
pub enum IngestError {
    /// Not a capture flowmesh reads (the message says why).
    #[error("{0}")]
    Input(String),
    /// The pipeline or the store failed.
    #[error("{0}")]
    Pipeline(#[from] ReplayError),
    /// Too many files are waiting.
    #[error("{QUEUE} capture files are already waiting to be ingested; retry later")]
    Busy,
    /// The daemon is shutting down.
    #[error("flowmesh is shutting down")]
    ShuttingDown,
}

/// One file to ingest and where its answer goes.
#[derive(Debug)]
pub struct Job {
    /// The capture file.
    pub path: PathBuf,
    /// Where it came from.
    pub origin: Origin,
    /// The answer.
    pub reply: oneshot::Sender<Result<Ingested, IngestError>>,
}

/// What the ingest thread is doing, for `/api/v1/actors` and `/api/v1/stats`.
#[derive(Debug, Clone, Default)]
pub struct IngestStatus {
    /// The file being ingested.
    pub current: Option<(PathBuf, Origin)>,
    /// The stages of the running pipeline, or of the last one.
    pub stages: Vec<StageCounters>,
    /// Files ingested since start.
    pub files: u64,
    /// Files that failed.
    pub failed: u64,
    /// Totals of the files ingested since start.
    pub totals: Ingested,
}

/// The ingest thread and its queue.
#[derive(Debug)]
pub struct Ingestor {
    queue: Mutex<Option<SyncSender<Job>>>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    status: Arc<Mutex<IngestStatus>>,
}

/// Commits every batch of records to the store, counting the handshakes it stored.
pub(crate) struct StoreSink {
    store: Arc<FlowStore>,
    handshakes: Arc<AtomicU64>,
    /// Packet timestamps are the wall clock (live capture): observe how long each
    /// handshake took to reach the store.
    wall_clock: bool,
}

impl StoreSink {
    /// A sink of capture files' records into `store`, adding the handshakes of stored
    /// records to `handshakes`.
    pub(crate) fn new(store: Arc<FlowStore>, handshakes: Arc<AtomicU64>) -> Self {
        StoreSink {
            store,
            handshakes,
            wall_clock: false,
        }
    }

    /// A sink of live capture's records, which also observes
    /// `flowmesh_handshake_record_latency_seconds`.
    pub(crate) fn live(store: Arc<FlowStore>, handshakes: Arc<AtomicU64>) -> Self {
        StoreSink {
            wall_clock: true,
            ..StoreSink::new(store, handshakes)
        }
    }
}

impl RecordSink for StoreSink {
    fn write(&mut self, records: &[FlowRecord]) -> std::io::Result<()> {
        let started = Instant::now();
        let written = self
            .store
            .write_records(records)
            .map_err(std::io::Error::other)?;
        histogram!("flowmesh_storage_write_seconds").record(started.elapsed().as_secs_f64());
        counter!("flowmesh_storage_records_total").increment(records.len() as u64);
        let interim = records.iter().filter(|r| r.is_interim()).count();
        if interim > 0 {
            counter!("flowmesh_storage_interim_records_total").increment(interim as u64);
        }
        let new = || new_handshakes(records, &written.stored_before);
        self.handshakes
            .fetch_add(new().count() as u64, Ordering::Relaxed);
        if self.wall_clock {
            observe_record_latency(new());
        }
        Ok(())
    }
}

/// The handshakes of `records` that an interim record of their flow had not stored yet.
fn new_handshakes<'a>(
    records: &'a [FlowRecord],
    stored_before: &'a [usize],
) -> impl Iterator<Item = &'a Handshake> + 'a {
    records
        .iter()
        .zip(stored_before)
        .flat_map(|(r, &before)| r.handshakes.iter().skip(before))
}

/// Observes, for each handshake just stored, the time from the packet that completed its
/// ClientHello to now.
fn observe_record_latency<'a>(handshakes: impl Iterator<Item = &'a Handshake>) {
    let now = Timestamp::now();
    let latency = histogram!("flowmesh_handshake_record_latency_seconds");
    for ts in handshakes.filter_map(|h| h.ts) {
        latency.record(now.nanos_since(ts) as f64 / 1e9);
    }
}

impl Ingestor {
    /// Starts the ingest thread, reading pipeline settings from `config` at each job.
    pub fn start(config: Arc<RwLock<Config>>, store: Arc<FlowStore>) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Mutex::new(IngestStatus::default()));
        let thread = {
            let (stop, status) = (Arc::clone(&stop), Arc::clone(&status));
            std::thread::Builder::new()
                .name("ingest".into())
                .spawn(move || serve(rx, config, store, stop, status))?
        };
        Ok(Ingestor {
            queue: Mutex::new(Some(tx)),
            stop,
            thread: Mutex::new(Some(thread)),
            status,
        })
    }

    /// Queues `job`: waiting for room when `wait`, else answering a full queue with
    /// [`IngestError::Busy`]. A stopping daemon answers [`IngestError::ShuttingDown`].
    pub fn submit(&self, job: Job, wait: bool) {
        let tx = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(tx) = tx else {
            let _ = job.reply.send(Err(IngestError::ShuttingDown));
            return;
        };
        let refused = if wait {
            tx.send(job).err().map(|e| (e.0, IngestError::ShuttingDown))
        } else {
            match tx.try_send(job) {
                Ok(()) => None,
                Err(TrySendError::Full(job)) => Some((job, IngestError::Busy)),
                Err(TrySendError::Disconnected(job)) => Some((job, IngestError::ShuttingDown)),
            }
        };
        if let Some((job, why)) = refused {
            let _ = job.reply.send(Err(why));
        }
    }

    /// A copy of the status.
    pub fn status(&self) -> IngestStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops reading, lets the running pipeline drain into the store, fails queued jobs and
    /// waits for the thread.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

fn lock(s: &Mutex<IngestStatus>) -> std::sync::MutexGuard<'_, IngestStatus> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

fn serve(
    rx: Receiver<Job>,
    config: Arc<RwLock<Config>>,
    store: Arc<FlowStore>,
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<IngestStatus>>,
) {
    while let Ok(job) = rx.recv() {
        if stop.load(Ordering::Relaxed) {
            let _ = job.reply.send(Err(IngestError::ShuttingDown));
            continue;
        }
        lock(&status).current = Some((job.path.clone(), job.origin));
        let cfg = config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let started = Instant::now();
        let result = ingest_file(&job.path, &cfg, &store, &stop, &status);
        let outcome = match &result {
            Ok(i) if i.interrupted => "interrupted",
            Ok(_) => "ok",
            Err(_) => "failed",
        };
        counter!("flowmesh_ingest_files_total", "origin" => job.origin.as_str(), "result" => outcome)
            .increment(1);
        {
            let mut s = lock(&status);
            s.current = None;
            match &result {
                Ok(i) => {
                    s.files += 1;
                    s.totals.flows += i.flows;
                    s.totals.handshakes += i.handshakes;
                    s.totals.packets += i.packets;
                }
                Err(_) => s.failed += 1,
            }
        }
        match &result {
            Ok(i) => tracing::info!(
                file = %job.path.display(),
                origin = job.origin.as_str(),
                flows = i.flows,
                handshakes = i.handshakes,
                packets = i.packets,
                interrupted = i.interrupted,
                seconds = started.elapsed().as_secs_f64(),
                "ingested"
            ),
            Err(e) => tracing::warn!(file = %job.path.display(), error = %e, "ingest failed"),
        }
        let _ = job.reply.send(result);
    }
}

fn ingest_file(
    path: &std::path::Path,
    cfg: &Config,
    store: &Arc<FlowStore>,
    stop: &Arc<AtomicBool>,
    status: &Arc<Mutex<IngestStatus>>,
) -> Result<Ingested, IngestError> {
    let input = MappedInput::open(path).map_err(|e| IngestError::Input(e.to_string()))?;
    let fingerprints = cfg.pipeline.fingerprint_set().map_err(IngestError::Input)?;
    let mut pipeline = cfg.pipeline.replay_config(fingerprints);
    pipeline.stop = Some(Arc::clone(stop));
    let metrics = Arc::new(Mutex::new(JobMetrics::default()));
    let progress = {
        let (metrics, status) = (Arc::clone(&metrics), Arc::clone(status));
        Box::new(
            move |board: &flowmesh_actors::stats::Board, stages: &[StageCounters]| {
                metrics
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .publish(board, stages);
                lock(&status).stages = stages.to_vec();
            },
        )
    };
    let handshakes = Arc::new(AtomicU64::new(0));
    let output = Output::Records(Box::new(StoreSink::new(
        Arc::clone(store),
        Arc::clone(&handshakes),
    )));
    let report = replay(
        pipeline,
        vec![input],
        output,
        Some((Duration::from_millis(500), progress)),
    )?;
    {
        let mut m = metrics.lock().unwrap_or_else(PoisonError::into_inner);
        m.publish(&report.board, &report.stages);
        m.finish(&report.stages);
    }
    lock(status).stages = report.stages.clone();
    Ok(Ingested {
        flows: report.board.records_written,
        handshakes: handshakes.load(Ordering::Relaxed),
        packets: report.board.capture.decode.frames,
        interrupted: report.board.capture.stopped,
        warnings: report.board.capture.warnings.clone(),
    })
}
