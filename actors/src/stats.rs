//! The stats board: where stages publish their core counters for the summary and the
//! progress line.
//!
//! Owns: the latest counters each stage published, and what earlier lives of restarted
//! stages counted.
//!
//! Invariant: a stage publishes its cumulative counters (per turn or at end of input); a
//! restarted stage starts from zero, so its factory first retires the previous life's
//! counters, which the totals keep.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use flowmesh_core::decode::DecodeStats;

use crate::capture::KernelCounters;
use flowmesh_core::handshake::WorkerStats;
use flowmesh_core::shard::ShardStats;

/// Counters of one stage instance across its lives.
#[derive(Debug, Clone, Default)]
pub struct Lives<T> {
    retired: T,
    current: T,
}

/// Counter types that add up.
pub trait Merge: Clone + Default {
    /// Adds `other` into `self`.
    fn merge_from(&mut self, other: &Self);
}

impl Merge for ShardStats {
    fn merge_from(&mut self, other: &Self) {
        self.merge(other);
    }
}

impl Merge for WorkerStats {
    fn merge_from(&mut self, other: &Self) {
        self.merge(other);
    }
}

impl<T: Merge> Lives<T> {
    /// The instance's total over all lives.
    pub fn total(&self) -> T {
        let mut t = self.retired.clone();
        t.merge_from(&self.current);
        t
    }
}

/// Counters of the capture stage.
#[derive(Debug, Clone, Default)]
pub struct CaptureStats {
    /// Bytes of input read.
    pub bytes_read: u64,
    /// Input bytes in total.
    pub bytes_total: u64,
    /// Frames routed to shards.
    pub frames_sent: u64,
    /// Frames of batches a droppable edge dropped.
    pub frames_dropped: u64,
    /// The router's decoding counters (frames, drops by reason, defragmentation).
    pub decode: DecodeStats,
    /// Files that ended early (cut short), with the reason.
    pub warnings: Vec<String>,
    /// Reading stopped early because the pipeline was told to stop.
    pub stopped: bool,
    /// Live capture: frames a user-space capture filter rejected.
    pub frames_filtered: u64,
    /// Live capture: frames dropped because a shard's queue was full.
    pub dropped_queue_full: u64,
    /// Live capture: frames dropped because their shard had failed for good.
    pub dropped_shard_unavailable: u64,
    /// Live capture: the kernel's counters over every source.
    pub kernel: KernelCounters,
    /// Live capture: each reader's counters (the fields above are their sums).
    pub readers: Vec<ReaderStats>,
}

impl CaptureStats {
    /// Sets the capture-wide counters to the sums of the readers' counters.
    pub fn sum_readers(&mut self) {
        let mut decode = DecodeStats::default();
        let (mut sent, mut filtered, mut full, mut gone) = (0, 0, 0, 0);
        let mut kernel = KernelCounters::default();
        for r in &self.readers {
            decode.merge(&r.decode);
            sent += r.frames_sent;
            filtered += r.filtered;
            full += r.dropped_queue_full;
            gone += r.dropped_shard_unavailable;
            kernel.received += r.kernel.received;
            kernel.dropped += r.kernel.dropped;
        }
        self.decode = decode;
        self.frames_sent = sent;
        self.frames_filtered = filtered;
        self.dropped_queue_full = full;
        self.dropped_shard_unavailable = gone;
        self.frames_dropped = full + gone;
        self.kernel = kernel;
    }

    /// Live capture: these counters added to `earlier`, the totals of the capture's
    /// earlier lives (before it was reopened), reader by reader.
    pub fn after(&self, earlier: &CaptureStats) -> CaptureStats {
        let mut t = self.clone();
        for (i, r) in earlier.readers.iter().enumerate() {
            match t.readers.get_mut(i) {
                Some(mine) => mine.merge(r),
                None => t.readers.push(r.clone()),
            }
        }
        t.sum_readers();
        t.warnings = earlier
            .warnings
            .iter()
            .chain(&self.warnings)
            .cloned()
            .collect();
        t
    }
}

/// Counters of one live capture reader (cumulative).
#[derive(Debug, Clone, Default)]
pub struct ReaderStats {
    /// Frames taken from the kernel.
    pub frames: u64,
    /// Frames rejected by a user-space capture filter.
    pub filtered: u64,
    /// Frames sent to shards.
    pub frames_sent: u64,
    /// Frames dropped: shard queue full.
    pub dropped_queue_full: u64,
    /// Frames dropped: shard failed for good.
    pub dropped_shard_unavailable: u64,
    /// The reader's router counters.
    pub decode: DecodeStats,
    /// The kernel's counters for the reader's source.
    pub kernel: KernelCounters,
}

impl ReaderStats {
    /// Adds `o`'s counts (the same reader in an earlier life of the capture).
    pub fn merge(&mut self, o: &ReaderStats) {
        self.frames += o.frames;
        self.filtered += o.filtered;
        self.frames_sent += o.frames_sent;
        self.dropped_queue_full += o.dropped_queue_full;
        self.dropped_shard_unavailable += o.dropped_shard_unavailable;
        self.decode.merge(&o.decode);
        self.kernel.received += o.kernel.received;
        self.kernel.dropped += o.kernel.dropped;
    }
}

/// Everything the pipeline's stages published.
#[derive(Debug, Default)]
pub struct Board {
    /// Capture.
    pub capture: CaptureStats,
    /// Per shard index.
    pub shards: Vec<Lives<ShardStats>>,
    /// Per worker index.
    pub workers: Vec<Lives<WorkerStats>>,
    /// Handshake events the scheduler received.
    pub events: u64,
    /// Final records written by the sink.
    pub records_written: u64,
    /// Interim records (flows still open, end reason `open`) written by the sink.
    pub interim_written: u64,
}

impl Board {
    /// All shards' counters added up.
    pub fn shards_total(&self) -> ShardStats {
        total(&self.shards)
    }

    /// All workers' counters added up.
    pub fn workers_total(&self) -> WorkerStats {
        total(&self.workers)
    }
}

fn total<T: Merge>(lives: &[Lives<T>]) -> T {
    let mut t = T::default();
    for l in lives {
        t.merge_from(&l.total());
    }
    t
}

/// A shared [`Board`].
#[derive(Debug, Clone, Default)]
pub struct StatsBoard(Arc<Mutex<Board>>);

impl StatsBoard {
    /// Locks the board. Publishing cannot leave it inconsistent, so a poisoned lock (a panic
    /// elsewhere while holding it) is still usable.
    pub fn lock(&self) -> MutexGuard<'_, Board> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes shard `i`'s cumulative counters.
    pub fn publish_shard(&self, i: usize, stats: ShardStats) {
        slot(&mut self.lock().shards, i).current = stats;
    }

    /// A new life of shard `i` starts: keep what the previous one counted.
    pub fn retire_shard(&self, i: usize) {
        retire(slot(&mut self.lock().shards, i));
    }

    /// Publishes worker `i`'s cumulative counters.
    pub fn publish_worker(&self, i: usize, stats: WorkerStats) {
        slot(&mut self.lock().workers, i).current = stats;
    }

    /// A new life of worker `i` starts: keep what the previous one counted.
    pub fn retire_worker(&self, i: usize) {
        retire(slot(&mut self.lock().workers, i));
    }
}

fn slot<T: Default + Clone>(v: &mut Vec<Lives<T>>, i: usize) -> &mut Lives<T> {
    if v.len() <= i {
        v.resize(i + 1, Lives::default());
    }
    &mut v[i]
}

fn retire<T: Merge>(l: &mut Lives<T>) {
    let current = std::mem::take(&mut l.current);
    l.retired.merge_from(&current);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(frames: u64, queue_full: u64, kernel_dropped: u64) -> ReaderStats {
        ReaderStats {
            frames,
            frames_sent: frames - queue_full,
            dropped_queue_full: queue_full,
            kernel: KernelCounters {
                received: frames + kernel_dropped,
                dropped: kernel_dropped,
            },
            ..ReaderStats::default()
        }
    }

    fn capture(readers: Vec<ReaderStats>, warnings: &[&str]) -> CaptureStats {
        let mut c = CaptureStats {
            readers,
            warnings: warnings.iter().map(|w| w.to_string()).collect(),
            ..CaptureStats::default()
        };
        c.sum_readers();
        c
    }

    #[test]
    fn a_reopened_capture_adds_to_its_earlier_lives_reader_by_reader() {
        let earlier = capture(
            vec![reader(100, 5, 1), reader(50, 0, 0)],
            &["reader 1 failed"],
        );
        let now = capture(vec![reader(10, 1, 2)], &[]);
        let total = now.after(&earlier);
        assert_eq!(total.readers.len(), 2);
        assert_eq!(total.readers[0].frames, 110);
        assert_eq!(total.readers[0].dropped_queue_full, 6);
        assert_eq!(total.readers[1].frames, 50);
        assert_eq!(total.frames_sent, 95 + 50 + 9);
        assert_eq!(total.dropped_queue_full, 6);
        assert_eq!(total.frames_dropped, 6);
        assert_eq!(total.kernel.dropped, 3);
        assert_eq!(total.kernel.received, 101 + 50 + 12);
        assert_eq!(total.warnings, ["reader 1 failed"]);
        // Nothing earlier: the counters as they are.
        let alone = now.after(&CaptureStats::default());
        assert_eq!(alone.frames_sent, now.frames_sent);
        assert_eq!(alone.readers.len(), 1);
    }
}
