//! Live capture in the daemon: one pipeline reading an interface (`afpacket` or `afxdp`)
//! into the flow store, from start to shutdown.
//!
//! The sources are opened before the daemon becomes ready, so a missing interface, a
//! missing privilege or a bad filter stops the start with a message. The pipeline runs on
//! its own thread; shutdown sets its stop flag, the readers stop, every flow ends with
//! `end_of_input` and is stored before the store is closed.
//!
//! Supervised: a capture that ends on its own (a reader failed, e.g. the interface went
//! away) has its flows stored like at shutdown, is logged as an error, counted
//! (`flowmesh_capture_restarts_total`) and reopened after a pause that doubles from
//! [`RESTART_PAUSE_MIN`] to [`RESTART_PAUSE_MAX`] while reopening fails or the capture
//! keeps failing quickly. Meanwhile `/readyz` answers 503 and `/api/v1/stats` says why.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use flowmesh_actors::capture::afpacket::{interface_mtu, AfPacketConfig, AfPacketRing};
use flowmesh_actors::capture::afxdp;
use flowmesh_actors::capture::filter::CaptureFilter;
use flowmesh_actors::capture::xdp::{BypassAction, XdpCapture, XdpConfig, XdpCounters, XdpMode};
use flowmesh_actors::capture::{FrameSource, LiveInput};
use flowmesh_actors::pipeline::{run_pipeline, Input, ReplayConfig};
use flowmesh_actors::runtime::StageCounters;
use flowmesh_actors::stages::Output;
use flowmesh_actors::stats::{Board, CaptureStats};
use flowmesh_actors::storage::FlowStore;

use super::background::sleep_unless;
use super::ingest::StoreSink;
use super::telemetry::JobMetrics;
use crate::config::{BypassActionSetting, CaptureConfig, Config, Source, XdpModeSetting};

/// Batches a shard's queue holds in live capture: the slack that absorbs a shard's
/// pauses (a batch holds up to a millisecond of one reader's frames) before frames drop.
const SHARD_QUEUE: usize = 512;

/// First pause before a failed live capture is reopened.
const RESTART_PAUSE_MIN: Duration = Duration::from_secs(1);

/// Longest pause between two attempts to reopen a failed live capture.
const RESTART_PAUSE_MAX: Duration = Duration::from_secs(30);

/// A capture that ran this long before failing starts its pauses from the minimum again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// What the live pipeline has done so far, for `/api/v1/stats` and `/api/v1/actors`.
#[derive(Debug, Clone, Default)]
pub struct LiveStatus {
    /// `afpacket` or `afxdp`.
    pub source: &'static str,
    /// The interface.
    pub interface: String,
    /// The capture filter, if any.
    pub filter: Option<String>,
    /// Capture counters (frames, drops by reason, the kernel's counters).
    pub capture: CaptureStats,
    /// Final flow records stored.
    pub records: u64,
    /// Interim records stored (flows still open; replaced by their final records).
    pub interim_records: u64,
    /// Handshakes stored (each once, whether first in an interim or a final record).
    pub handshakes: u64,
    /// The pipeline's stages.
    pub stages: Vec<StageCounters>,
    /// The XDP program's counters (`afxdp`).
    pub xdp: Option<XdpCounters>,
    /// Why the capture last failed, if it did (it is reopened: see `restarts`).
    pub error: Option<String>,
    /// The capture is reading its interface (false while it is being reopened).
    pub running: bool,
    /// Times the capture ended on its own and was reopened (the counters above add up
    /// over every life of the capture).
    pub restarts: u64,
    /// What the capture's earlier lives counted.
    earlier: Earlier,
}

/// The counts of a live capture's earlier lives, before it was reopened.
#[derive(Debug, Clone, Default)]
struct Earlier {
    capture: CaptureStats,
    records: u64,
    interim_records: u64,
    handshakes: u64,
    xdp: Option<XdpCounters>,
}

impl LiveStatus {
    /// Sets the counters to the earlier lives' plus what the running one counted: the
    /// pipeline's `board`, the handshakes its sink stored and the XDP program's counters.
    fn set_counts(&mut self, board: &Board, handshakes: u64, xdp: Option<XdpCounters>) {
        self.capture = board.capture.after(&self.earlier.capture);
        self.records = self.earlier.records + board.records_written;
        self.interim_records = self.earlier.interim_records + board.interim_written;
        self.handshakes = self.earlier.handshakes + handshakes;
        if let Some(x) = xdp {
            let mut total = self.earlier.xdp.unwrap_or_default();
            total.merge(&x);
            self.xdp = Some(total);
        }
    }

    /// The running life ended: what it counted becomes the earlier lives' counts.
    fn retire(&mut self) {
        self.earlier = Earlier {
            capture: self.capture.clone(),
            records: self.records,
            interim_records: self.interim_records,
            handshakes: self.handshakes,
            xdp: self.xdp,
        };
    }
}

/// The running live pipeline.
#[derive(Debug)]
pub struct LiveCapture {
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    status: Arc<Mutex<LiveStatus>>,
}

/// Opens the sources `capture` describes; for `afxdp`, also the attached program, which
/// must outlive the readers.
fn open(capture: &CaptureConfig) -> Result<(LiveInput, Option<XdpCapture>)> {
    let filter = if capture.filter.is_empty() {
        None
    } else {
        Some(CaptureFilter::compile(&capture.filter)?)
    };
    match capture.source {
        Source::Afpacket => {
            let readers = usize::from(capture.readers.max(1));
            let cfg = AfPacketConfig {
                interface: capture.interface.clone(),
                blocks: capture.ring_mb.max(1),
                block_timeout: Duration::from_millis(u64::from(capture.block_timeout_ms)),
                // One group per daemon process: two daemons on one interface each get every
                // frame, as two tcpdumps would.
                fanout_group: (readers > 1).then_some((std::process::id() & 0xffff) as u16),
                ..AfPacketConfig::default()
            };
            let mut sources: Vec<Box<dyn FrameSource>> = Vec::with_capacity(readers);
            for _ in 0..readers {
                sources.push(Box::new(AfPacketRing::open(&cfg, filter.as_ref())?));
            }
            let input = LiveInput {
                sources,
                filter: None,
                bypass: None,
            };
            Ok((input, None))
        }
        Source::Afxdp => {
            let mtu = interface_mtu(&capture.interface)
                .with_context(|| format!("cannot read the MTU of {:?}", capture.interface))?;
            let cfg = XdpConfig {
                frame_size: afxdp::frame_size_for_mtu(mtu).map_err(anyhow::Error::msg)?,
                mode: match capture.xdp_mode {
                    XdpModeSetting::Auto => XdpMode::Auto,
                    XdpModeSetting::Native => XdpMode::Native,
                    XdpModeSetting::Generic => XdpMode::Generic,
                },
                frames_per_queue: capture.xdp_frames,
                busy_poll: capture.busy_poll,
                bypass_capacity: capture.bypass_capacity,
                bypass_action: match capture.bypass_action {
                    BypassActionSetting::Pass => BypassAction::Pass,
                    BypassActionSetting::Drop => BypassAction::Drop,
                },
                ..XdpConfig::new(capture.interface.clone())
            };
            let (xdp, input) = afxdp::open(&cfg, filter, capture.bypass)?;
            tracing::info!(mode = ?xdp.attached_mode(), queues = input.sources.len(), "XDP program attached");
            Ok((input, Some(xdp)))
        }
        Source::Spool | Source::Pcap => anyhow::bail!("not a live source"),
    }
}

impl LiveCapture {
    /// Opens the configured live source and starts its pipeline into `store`.
    pub fn start(config: &Config, store: Arc<FlowStore>) -> Result<Self> {
        let capture = &config.capture;
        store.set_open_limit(config.pipeline.max_flows);
        let (input, xdp) = open(capture).with_context(|| {
            format!(
                "cannot capture on {:?} (capture.interface)",
                capture.interface
            )
        })?;
        let fingerprints = config
            .pipeline
            .fingerprint_set()
            .map_err(anyhow::Error::msg)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut pipeline = ReplayConfig {
            stop: Some(Arc::clone(&stop)),
            shard_queue: SHARD_QUEUE,
            ..config.pipeline.replay_config(fingerprints)
        };
        pipeline.shard.interim_records = capture.interim_records;
        let status = Arc::new(Mutex::new(LiveStatus {
            source: capture.source.as_str(),
            interface: capture.interface.clone(),
            filter: (!capture.filter.is_empty()).then(|| capture.filter.clone()),
            running: true,
            ..LiveStatus::default()
        }));
        let thread = {
            let status = Arc::clone(&status);
            let (capture, stop) = (capture.clone(), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("live".into())
                .spawn(move || {
                    supervise(&capture, &pipeline, (input, xdp), &store, &status, &stop)
                })?
        };
        tracing::info!(
            source = capture.source.as_str(),
            interface = %capture.interface,
            filter = %capture.filter,
            "live capture started"
        );
        Ok(LiveCapture {
            stop,
            thread: Mutex::new(Some(thread)),
            status,
        })
    }

    /// A copy of the status.
    pub fn status(&self) -> LiveStatus {
        lock(&self.status).clone()
    }

    /// Stops reading, lets the pipeline drain into the store and waits for it.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
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

fn lock(s: &Mutex<LiveStatus>) -> std::sync::MutexGuard<'_, LiveStatus> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the capture until `stop`, reopening it whenever it ends on its own (see the
/// module docs).
fn supervise(
    capture: &CaptureConfig,
    pipeline: &ReplayConfig,
    first: (LiveInput, Option<XdpCapture>),
    store: &Arc<FlowStore>,
    status: &Arc<Mutex<LiveStatus>>,
    stop: &AtomicBool,
) {
    let mut opened = Some(first);
    let mut pause = RESTART_PAUSE_MIN;
    loop {
        match opened.take().map_or_else(|| open(capture), Ok) {
            Ok((input, xdp)) => {
                let started = Instant::now();
                lock(status).running = true;
                run(pipeline.clone(), input, xdp, Arc::clone(store), status);
                lock(status).running = false;
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if started.elapsed() >= HEALTHY_RUN {
                    pause = RESTART_PAUSE_MIN;
                }
                metrics::counter!("flowmesh_capture_restarts_total").increment(1);
                lock(status).restarts += 1;
                tracing::error!(retry_in = ?pause, "live capture ended on its own; reopening it");
            }
            Err(e) => {
                let why = format!(
                    "cannot reopen the capture on {:?}: {e:#}",
                    capture.interface
                );
                tracing::error!(retry_in = ?pause, "{why}");
                lock(status).error = Some(why);
            }
        }
        if sleep_unless(stop, pause) {
            return;
        }
        pause = (pause * 2).min(RESTART_PAUSE_MAX);
    }
}

fn run(
    pipeline: ReplayConfig,
    input: LiveInput,
    xdp: Option<XdpCapture>,
    store: Arc<FlowStore>,
    status: &Arc<Mutex<LiveStatus>>,
) {
    let metrics = Arc::new(Mutex::new(JobMetrics::default()));
    // Read by the progress callback; dropped (the program detached) after the pipeline.
    let xdp = xdp.map(|x| Arc::new(Mutex::new(x)));
    let handshakes = Arc::new(AtomicU64::new(0));
    let progress = {
        let (metrics, status, handshakes) = (
            Arc::clone(&metrics),
            Arc::clone(status),
            Arc::clone(&handshakes),
        );
        let xdp = xdp.clone();
        Box::new(move |board: &Board, stages: &[StageCounters]| {
            let xdp_counters = xdp.as_ref().and_then(|x| {
                x.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .counters()
                    .ok()
            });
            {
                let mut m = metrics.lock().unwrap_or_else(PoisonError::into_inner);
                m.publish(board, stages);
                if let Some(c) = &xdp_counters {
                    m.publish_xdp(c);
                }
            }
            let mut s = lock(&status);
            s.set_counts(board, handshakes.load(Ordering::Relaxed), xdp_counters);
            s.stages = stages.to_vec();
        })
    };
    let output = Output::Records(Box::new(StoreSink::live(store, Arc::clone(&handshakes))));
    let result = run_pipeline(
        pipeline,
        Input::Live(input),
        output,
        Some((Duration::from_millis(500), progress)),
    );
    let final_xdp = xdp.as_ref().and_then(|x| {
        x.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .counters()
            .ok()
    });
    drop(xdp);
    let mut s = lock(status);
    match result {
        Ok(report) => {
            let mut m = metrics.lock().unwrap_or_else(PoisonError::into_inner);
            m.publish(&report.board, &report.stages);
            m.finish(&report.stages);
            let capture = &report.board.capture;
            s.set_counts(&report.board, handshakes.load(Ordering::Relaxed), final_xdp);
            s.stages = report.stages;
            // A reader that failed ended the capture early: say so loudly, in the log and
            // in /api/v1/stats.
            for warning in &capture.warnings {
                tracing::error!(%warning, "live capture reader failed");
            }
            if !capture.warnings.is_empty() {
                s.error = Some(capture.warnings.join("; "));
            }
            tracing::info!(
                records = s.records,
                frames = s.capture.decode.frames,
                kernel_dropped = s.capture.kernel.dropped,
                "live capture stopped"
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "live capture failed");
            s.error = Some(e.to_string());
        }
    }
    s.retire();
}
