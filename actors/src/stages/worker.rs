//! The handshake worker stage: parses and fingerprints the handshakes shards hand over,
//! answers the shards, sends handshake events at once and completed records on.
//!
//! Owns one [`HandshakeWorker`]. Knows how many shards feed it, so it can tell when all of
//! them have reached end of input.

use std::sync::{Arc, OnceLock};

use flowmesh_core::handshake::{HandshakeWorker, InspectionUpdate, WorkerConfig, WorkerOutput};
use thiserror::Error;

use super::scheduler::SchedulerItem;
use super::shard::{ShardItem, RECORD_BATCH};
use crate::runtime::{Edge, Outbox, Stage};
use crate::stats::StatsBoard;

/// What a worker's queue carries (see the table in [`crate::stages`]).
#[derive(Debug)]
pub enum WorkerItem {
    /// Handshake work from one shard.
    Work(flowmesh_core::handshake::HandshakeBatch),
    /// A shard's expiry tick: send the records gathered so far.
    Tick,
    /// One shard has reached end of input.
    EndOfInput,
}

/// A worker stage failure (none yet).
#[derive(Debug, Error)]
#[error("handshake worker failed")]
pub struct WorkerError;

/// The edges a worker sends on; the shards' are set once they are started (they and the
/// workers point at each other).
#[derive(Debug, Clone)]
pub struct WorkerEdges {
    /// Each shard's high queue, droppable (updates are hints), indexed by shard.
    pub shards: Arc<OnceLock<Vec<Edge<ShardItem>>>>,
    /// The scheduler's high queue (events).
    pub events: Edge<SchedulerItem>,
    /// The scheduler's low queue (records, end of input).
    pub records: Edge<SchedulerItem>,
}

/// The worker stage. See the module docs.
pub struct WorkerStage {
    index: usize,
    worker: HandshakeWorker,
    out: WorkerOutput,
    edges: WorkerEdges,
    shards: usize,
    ended: usize,
    board: StatsBoard,
    /// Updates grouped per shard, reused.
    per_shard: Vec<Vec<InspectionUpdate>>,
}

impl std::fmt::Debug for WorkerStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerStage")
            .field("index", &self.index)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl WorkerStage {
    /// Worker `index` of a pipeline with `shards` shards.
    pub fn new(
        index: usize,
        cfg: WorkerConfig,
        shards: usize,
        edges: WorkerEdges,
        board: StatsBoard,
    ) -> Self {
        WorkerStage {
            index,
            worker: HandshakeWorker::new(cfg),
            out: WorkerOutput::default(),
            edges,
            shards,
            ended: 0,
            board,
            per_shard: vec![Vec::new(); shards],
        }
    }

    /// Sends updates and events at once, records in batches of [`RECORD_BATCH`] (or all of
    /// them with `all`).
    fn flush(&mut self, out: &mut Outbox, all: bool) {
        if !self.out.updates.is_empty() {
            for u in self.out.updates.drain(..) {
                if let Some(v) = self.per_shard.get_mut(usize::from(u.session.shard)) {
                    v.push(u);
                }
            }
            if let Some(shards) = self.edges.shards.get() {
                for (updates, edge) in self.per_shard.iter_mut().zip(shards) {
                    if !updates.is_empty() {
                        out.send(edge, ShardItem::Updates(std::mem::take(updates)));
                    }
                }
            }
            self.per_shard.iter_mut().for_each(Vec::clear);
        }
        if !self.out.events.is_empty() {
            let events = std::mem::take(&mut self.out.events);
            out.send(&self.edges.events, SchedulerItem::Events(events));
        }
        let records_due = self.out.records.len() >= RECORD_BATCH || all;
        if records_due && !self.out.records.is_empty() {
            let records = std::mem::take(&mut self.out.records);
            out.send(&self.edges.records, SchedulerItem::Records(records));
        }
    }
}

impl Stage for WorkerStage {
    type Item = WorkerItem;
    type Error = WorkerError;

    fn handle(&mut self, item: WorkerItem, out: &mut Outbox) -> Result<(), WorkerError> {
        match item {
            WorkerItem::Work(batch) => {
                self.worker.handle(batch, &mut self.out);
                self.flush(out, false);
            }
            WorkerItem::Tick => self.flush(out, true),
            WorkerItem::EndOfInput => {
                self.ended += 1;
                if self.ended == self.shards {
                    self.worker.finish();
                    self.flush(out, true);
                    self.board
                        .publish_worker(self.index, self.worker.stats().clone());
                    out.send(&self.edges.records, SchedulerItem::EndOfInput);
                }
            }
        }
        Ok(())
    }
}
