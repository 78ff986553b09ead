//! Live capture: reader threads that take frames from kernel rings (AF_PACKET, AF_XDP),
//! route each to the shard owning its flow and send the shards batches — never blocking
//! the ring. A full shard queue drops the batch and counts its frames by reason.
//!
//! Owns: one thread per [`FrameSource`], each with its own router (defragmentation),
//! expiry clock and open batch per shard.
//!
//! Invariants:
//! - Every frame a reader took from its ring is accounted for: sent, filtered, held or
//!   dropped by the router (its counters), or dropped with its batch (`shard_queue_full`,
//!   `shard_unavailable`).
//! - A batch is sent when full, or at the first poll after its oldest frame has waited
//!   [`BATCH_LINGER`] (a poll waits at most the ring's block timeout or [`POLL_TIMEOUT`]),
//!   so a quiet link still delivers promptly.
//! - Idle flows still expire on a quiet link: without frames the expiry clock follows the
//!   wall clock.
//! - Each shard's `EndOfInput` follows every reader's last batch.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowmesh_core::capture::Frame;
use flowmesh_core::decode::DecodeConfig;
use flowmesh_core::shard::{ExpiryClock, KernelBypass, Route, Router};
use flowmesh_schemas::Timestamp;
use tokio::sync::oneshot;

use super::filter::CaptureFilter;
use crate::batch::{PacketBatch, BATCH_FRAMES};
use crate::runtime::{Edge, TrySendError};
use crate::stages::ShardItem;
use crate::stats::{ReaderStats, StatsBoard};

/// How long a reader waits in the kernel for frames before it looks at its stop flag,
/// its batches and the wall clock.
pub const POLL_TIMEOUT: Duration = Duration::from_millis(50);

/// How often a reader publishes its counters.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// Bytes reserved per batch for frame copies (it grows beyond when frames are larger).
const BATCH_BYTES: usize = 64 << 10;

/// The longest a frame waits in a reader's batch before the batch is sent: long enough
/// to gather many frames at a moderate rate (a shard's queue holds batches, not frames),
/// short enough not to matter for latency.
const BATCH_LINGER: Duration = Duration::from_millis(1);

/// Counters the kernel keeps for one live source, since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelCounters {
    /// Frames the kernel accepted for the source (after its filter), dropped ones included.
    pub received: u64,
    /// Frames the kernel dropped because the ring was full.
    pub dropped: u64,
}

/// A kernel ring or socket that hands out frames in place.
pub trait FrameSource: Send {
    /// Waits up to `timeout` for frames, then hands `f` the frames available now (a
    /// bounded amount per call). Returns how many it handed over.
    fn poll(&mut self, timeout: Duration, f: &mut dyn FnMut(Frame<'_>)) -> io::Result<usize>;

    /// The kernel's counters for this source.
    fn kernel_counters(&mut self) -> KernelCounters;
}

/// Makes a shard's handle on the in-kernel bypass (one per shard life).
pub type BypassFactory = Arc<dyn Fn() -> Box<dyn KernelBypass> + Send + Sync>;

/// Opened live sources, ready to read.
pub struct LiveInput {
    /// One reader thread per source.
    pub sources: Vec<Box<dyn FrameSource>>,
    /// A filter to run in user space (when the kernel side cannot run it).
    pub filter: Option<Arc<CaptureFilter>>,
    /// The kernel's bypass of inspected flows, when the source has one (AF_XDP).
    pub bypass: Option<BypassFactory>,
}

impl std::fmt::Debug for LiveInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveInput")
            .field("sources", &self.sources.len())
            .field("filter", &self.filter.as_ref().map(|f| f.expr().to_owned()))
            .field("bypass", &self.bypass.is_some())
            .finish_non_exhaustive()
    }
}

/// Reads `input` into `shards` until `stop` turns true, then sends every shard its
/// `EndOfInput`. Readers run on their own threads; this task only waits for them.
pub async fn capture_live(
    input: LiveInput,
    shards: Vec<Edge<ShardItem>>,
    decode: DecodeConfig,
    expire_interval_ns: i64,
    stop: Arc<AtomicBool>,
    board: StatsBoard,
) {
    let LiveInput {
        sources,
        filter,
        bypass: _,
    } = input;
    board.lock().capture.readers = vec![ReaderStats::default(); sources.len()];
    let mut finished = Vec::with_capacity(sources.len());
    for (index, source) in sources.into_iter().enumerate() {
        let (done_tx, done_rx) = oneshot::channel();
        let reader = Reader {
            index,
            router: Router::new(decode),
            clock: ExpiryClock::new(expire_interval_ns),
            batches: (0..shards.len()).map(|_| new_batch()).collect(),
            shards: shards.clone(),
            filter: filter.clone(),
            stats: ReaderStats::default(),
            board: board.clone(),
            pending_since: None,
        };
        let stop = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name(format!("capture-{index}"))
            .spawn(move || {
                let outcome = reader.run(source, &stop);
                let _ = done_tx.send(outcome);
            });
        match spawned {
            Ok(_) => finished.push(done_rx),
            Err(e) => board
                .lock()
                .capture
                .warnings
                .push(format!("capture reader {index} did not start: {e}")),
        }
    }
    for done in finished {
        if let Ok(Err(e)) = done.await {
            board.lock().capture.warnings.push(e);
        }
    }
    board.lock().capture.stopped = true;
    for edge in &shards {
        // Control: waits for room even on a droppable edge.
        let _ = edge.sender().send(ShardItem::EndOfInput).await;
    }
}

fn new_batch() -> PacketBatch {
    PacketBatch::with_capacity_bytes(BATCH_FRAMES, BATCH_BYTES)
}

struct Reader {
    index: usize,
    router: Router,
    clock: ExpiryClock,
    batches: Vec<PacketBatch>,
    shards: Vec<Edge<ShardItem>>,
    filter: Option<Arc<CaptureFilter>>,
    stats: ReaderStats,
    board: StatsBoard,
    /// When the oldest frame now in a batch arrived.
    pending_since: Option<Instant>,
}

impl Reader {
    /// Reads until `stop`; an error of the source ends this reader with a message.
    fn run(mut self, mut source: Box<dyn FrameSource>, stop: &AtomicBool) -> Result<(), String> {
        let mut published = Instant::now();
        let mut outcome = Ok(());
        while !stop.load(Ordering::Relaxed) {
            let polled = source.poll(POLL_TIMEOUT, &mut |frame| self.take(&frame));
            match polled {
                Ok(0) => {
                    // A quiet link: time still passes for idle flows.
                    if let Some(now) = self.clock.observe(Timestamp::now()) {
                        for b in &mut self.batches {
                            b.push_tick(now);
                        }
                        self.pending_since.get_or_insert_with(Instant::now);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    outcome = Err(format!("capture reader {} stopped: {e}", self.index));
                    break;
                }
            }
            if self
                .pending_since
                .is_some_and(|t| t.elapsed() >= BATCH_LINGER)
            {
                self.flush();
            }
            if published.elapsed() >= PUBLISH_INTERVAL {
                self.stats.kernel = source.kernel_counters();
                self.publish();
                published = Instant::now();
            }
        }
        self.flush();
        self.stats.kernel = source.kernel_counters();
        self.publish();
        outcome
    }

    /// Routes one frame into its shard's batch.
    fn take(&mut self, frame: &Frame<'_>) {
        self.stats.frames += 1;
        if let Some(f) = &self.filter {
            if !f.matches(frame.data, frame.orig_len) {
                self.stats.filtered += 1;
                return;
            }
        }
        if let Some(now) = self.clock.observe(frame.ts) {
            for b in &mut self.batches {
                b.push_tick(now);
            }
        }
        let n = self.shards.len().max(1) as u64;
        let target = match self.router.route(frame) {
            Route::Whole { hash } => {
                let i = (hash % n) as usize;
                self.batches[i].push_owned(frame.ts, frame.link, frame.data, frame.orig_len);
                i
            }
            Route::Reassembled { hash, frame: whole } => {
                let i = (hash % n) as usize;
                self.batches[i].push_owned(whole.ts, whole.link, whole.data, whole.orig_len);
                i
            }
            Route::Held | Route::Dropped(_) => return,
        };
        self.pending_since.get_or_insert_with(Instant::now);
        if self.batches[target].len() >= BATCH_FRAMES {
            self.send(target);
        }
    }

    /// Sends every batch holding entries.
    fn flush(&mut self) {
        for i in 0..self.batches.len() {
            if !self.batches[i].is_empty() {
                self.send(i);
            }
        }
        self.pending_since = None;
    }

    /// Sends batch `i` without waiting; a full or failed shard drops it (counted) and its
    /// buffers are reused.
    fn send(&mut self, i: usize) {
        let batch = std::mem::take(&mut self.batches[i]);
        let frames = batch.frames() as u64;
        match self.shards[i].sender().try_send(ShardItem::Packets(batch)) {
            Ok(()) => {
                self.stats.frames_sent += frames;
                self.batches[i] = new_batch();
            }
            Err(refused) => {
                match &refused {
                    TrySendError::Full(_) => self.stats.dropped_queue_full += frames,
                    TrySendError::Closed(_) => self.stats.dropped_shard_unavailable += frames,
                }
                if let ShardItem::Packets(mut batch) = refused.into_inner() {
                    batch.clear();
                    self.batches[i] = batch;
                } else {
                    self.batches[i] = new_batch();
                }
            }
        }
    }

    fn publish(&mut self) {
        self.stats.decode = self.router.stats().clone();
        let mut board = self.board.lock();
        let c = &mut board.capture;
        if let Some(slot) = c.readers.get_mut(self.index) {
            *slot = self.stats.clone();
        }
        c.sum_readers();
    }
}
