//! The reassembly shard stage: packet batches in, handshake work and flow records out.
//!
//! Owns one [`Shard`] (flow table, reassembly) and the edges to the workers and the
//! scheduler. Publishes its counters to the [`StatsBoard`] every few batches and at end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use flowmesh_core::handshake::{HandshakeBatch, InspectionUpdate};
use flowmesh_core::shard::{KernelBypass, Shard, ShardConfig, ShardOutput};
use thiserror::Error;

use super::scheduler::SchedulerItem;
use super::worker::WorkerItem;
use crate::batch::{BatchEntry, PacketBatch};
use crate::runtime::{Edge, Outbox, Stage};
use crate::stats::StatsBoard;

/// What a shard's queues carry (see the table in [`crate::stages`]).
#[derive(Debug)]
pub enum ShardItem {
    /// Frames of this shard's flows.
    Packets(PacketBatch),
    /// Workers' answers about this shard's flows.
    Updates(Vec<InspectionUpdate>),
    /// The source has sent its last batch.
    EndOfInput,
    /// Sent by the shard to itself while it ends its flows after `EndOfInput`, a chunk at a
    /// time: each chunk's records are on their way before the next is made.
    FinishMore,
}

/// A test-only fault hook: shard `shard` panics on its batch number `at` (counted across
/// restarts) and on the following ones, `times` times in all.
#[derive(Debug)]
pub struct Fault {
    /// Shard index to fail.
    pub shard: usize,
    /// Batch number (0-based, over the shard's lives) of the first panic.
    pub at: u64,
    /// Panics left.
    pub times: AtomicU64,
    /// Batches the shard has received.
    pub seen: AtomicU64,
}

impl Fault {
    /// Panics `times` times from batch `at` of shard `shard`.
    pub fn new(shard: usize, at: u64, times: u64) -> Self {
        Fault {
            shard,
            at,
            times: AtomicU64::new(times),
            seen: AtomicU64::new(0),
        }
    }

    fn fire(&self) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        n >= self.at
            && self
                .times
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| t.checked_sub(1))
                .is_ok()
    }
}

/// A shard stage failure (none yet: expected packet conditions are counted, not errors).
#[derive(Debug, Error)]
#[error("shard failed")]
pub struct ShardError;

/// Batches between two publications of the shard's counters (at the latest: they are also
/// published on each expiry tick).
const PUBLISH_EVERY: u64 = 64;

/// Records gathered before they are sent on: one scheduler hop per many flows. An expiry
/// tick (every second of packet time) and end of input send what is gathered, so a record
/// waits at most a tick.
pub const RECORD_BATCH: usize = 256;

/// Flows ended per turn at end of input: bounds the records in flight when a large table
/// is flushed (a million flows would otherwise all become records at once).
const FINISH_CHUNK: usize = 4 * RECORD_BATCH;

/// Every shard's own low queue (lossless), indexed by shard, for [`ShardItem::FinishMore`].
pub type ShardSelfEdges = Arc<OnceLock<Vec<Edge<ShardItem>>>>;

/// The shard stage. See the module docs.
pub struct ShardStage {
    index: usize,
    shard: Shard,
    out: ShardOutput,
    workers: Vec<Edge<WorkerItem>>,
    scheduler: Edge<SchedulerItem>,
    board: StatsBoard,
    fault: Option<Arc<Fault>>,
    batches: u64,
    me: ShardSelfEdges,
}

impl std::fmt::Debug for ShardStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardStage")
            .field("index", &self.index)
            .field("batches", &self.batches)
            .finish_non_exhaustive()
    }
}

impl ShardStage {
    /// Hands this shard's flows to an in-kernel bypass once their inspection is over.
    pub fn with_bypass(mut self, bypass: Option<Box<dyn KernelBypass>>) -> Self {
        if let Some(b) = bypass {
            self.shard.set_bypass(b);
        }
        self
    }

    /// A shard with `cfg` (its index and epoch set), sending handshake work to `workers`
    /// (indexed by worker) and records to `scheduler`.
    pub fn new(
        cfg: ShardConfig,
        workers: Vec<Edge<WorkerItem>>,
        scheduler: Edge<SchedulerItem>,
        board: StatsBoard,
        fault: Option<Arc<Fault>>,
        me: ShardSelfEdges,
    ) -> Self {
        ShardStage {
            index: usize::from(cfg.index),
            out: ShardOutput::new(&cfg),
            shard: Shard::new(cfg),
            workers,
            scheduler,
            board,
            fault,
            batches: 0,
            me,
        }
    }

    /// Sends what the shard produced: work to each worker, and records to the scheduler
    /// once there are [`RECORD_BATCH`] of them or `all` is set.
    fn flush(&mut self, out: &mut Outbox, all: bool) {
        let records_due = self.out.records.len() >= RECORD_BATCH || all;
        if records_due && !self.out.records.is_empty() {
            let records = std::mem::take(&mut self.out.records);
            out.send(&self.scheduler, SchedulerItem::Records(records));
        }
        for (batch, edge) in self.out.work.iter_mut().zip(&self.workers) {
            if !batch.is_empty() {
                let fresh = HandshakeBatch::new(batch.shard, batch.epoch);
                out.send(edge, WorkerItem::Work(std::mem::replace(batch, fresh)));
            }
        }
    }

    fn publish(&self) {
        self.board.publish_shard(self.index, self.shard.stats());
    }
}

impl Stage for ShardStage {
    type Item = ShardItem;
    type Error = ShardError;

    fn handle(&mut self, item: ShardItem, out: &mut Outbox) -> Result<(), ShardError> {
        match item {
            ShardItem::Packets(batch) => {
                let mut ticked = false;
                if let Some(f) = self.fault.as_deref().filter(|f| f.shard == self.index) {
                    if f.fire() {
                        panic!("injected fault in shard {}", self.index);
                    }
                }
                for entry in batch.entries() {
                    match entry {
                        BatchEntry::Frame(frame) => self.shard.process_frame(&frame, &mut self.out),
                        BatchEntry::Tick(now) => {
                            self.shard.expire(now, &mut self.out);
                            ticked = true;
                        }
                    }
                }
                self.batches += 1;
                // Also on each expiry tick (a second of packet time), so the counters of a
                // quiet live link do not wait for 64 batches.
                if ticked || self.batches.is_multiple_of(PUBLISH_EVERY) {
                    self.publish();
                }
                self.flush(out, ticked);
                if ticked {
                    for edge in &self.workers {
                        out.send(edge, WorkerItem::Tick);
                    }
                }
            }
            ShardItem::Updates(updates) => {
                for u in &updates {
                    self.shard.apply_update(u, &mut self.out);
                }
                self.flush(out, false);
            }
            ShardItem::EndOfInput | ShardItem::FinishMore => {
                let done = self.shard.finish_some(FINISH_CHUNK, &mut self.out);
                self.flush(out, true);
                let me = self.me.get().and_then(|edges| edges.get(self.index));
                match me {
                    Some(me) if !done => {
                        out.send(me, ShardItem::FinishMore);
                    }
                    _ => {
                        if !done {
                            // No edge to itself (not wired): end the rest at once.
                            self.shard.finish(&mut self.out);
                            self.flush(out, true);
                        }
                        self.publish();
                        for edge in &self.workers {
                            out.send(edge, WorkerItem::EndOfInput);
                        }
                        out.send(&self.scheduler, SchedulerItem::EndOfInput);
                    }
                }
            }
        }
        Ok(())
    }
}
