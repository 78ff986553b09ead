//! A shard and a handshake worker run as plain calls on one thread: the whole packet path
//! without actors. Used by tests, benchmarks, fuzzing, and as the baseline the actor
//! pipeline is measured against.
//!
//! Invariant: after each frame, the worker has handled everything the shard emitted and
//! the shard has applied every update, so a flow stops being inspected at the same packet
//! as it would with a worker that answers instantly.

use super::{ExpiryClock, Shard, ShardConfig, ShardOutput, ShardStats};
use crate::capture::Frame;
use crate::handshake::{
    HandshakeBatch, HandshakeEvent, HandshakeWorker, WorkerConfig, WorkerOutput, WorkerStats,
};
use flowmesh_schemas::FlowRecord;

/// One shard plus one worker, driven frame by frame. See the module docs.
#[derive(Debug)]
pub struct Inline {
    clock: ExpiryClock,
    shard: Shard,
    worker: HandshakeWorker,
    shard_out: ShardOutput,
    worker_out: WorkerOutput,
    /// Keep handshake events (tests); otherwise they are counted and dropped.
    keep_events: bool,
    events: Vec<HandshakeEvent>,
}

impl Inline {
    /// A single shard (index 0, one worker) with `shard` settings and a worker with `worker`
    /// settings.
    pub fn new(shard: ShardConfig, worker: WorkerConfig) -> Self {
        let shard = ShardConfig {
            index: 0,
            epoch: 0,
            workers: 1,
            shards: 1,
            ..shard
        };
        Inline {
            clock: ExpiryClock::new(shard.expire_interval_ns),
            shard_out: ShardOutput::new(&shard),
            shard: Shard::new(shard),
            worker: HandshakeWorker::new(worker),
            worker_out: WorkerOutput::default(),
            keep_events: false,
            events: Vec::new(),
        }
    }

    /// Hands flows whose inspection is over to `bypass` (see [`Shard::set_bypass`]).
    pub fn with_bypass(mut self, bypass: Box<dyn super::KernelBypass>) -> Self {
        self.shard.set_bypass(bypass);
        self
    }

    /// Keeps handshake events for [`Inline::take_events`].
    pub fn keep_events(mut self) -> Self {
        self.keep_events = true;
        self
    }

    /// Processes one frame; records of flows that ended are appended to `records`.
    pub fn process_frame(&mut self, frame: &Frame<'_>, records: &mut Vec<FlowRecord>) {
        if let Some(now) = self.clock.observe(frame.ts) {
            self.shard.expire(now, &mut self.shard_out);
        }
        self.shard.process_frame(frame, &mut self.shard_out);
        self.settle(records);
    }

    /// Ends every flow; their records are appended to `records`.
    pub fn finish(&mut self, records: &mut Vec<FlowRecord>) {
        self.shard.finish(&mut self.shard_out);
        self.settle(records);
        self.worker.finish();
    }

    /// Hands the shard's work to the worker and the worker's updates back, until both are
    /// quiet.
    fn settle(&mut self, records: &mut Vec<FlowRecord>) {
        loop {
            records.append(&mut self.shard_out.records);
            let mut any = false;
            for batch in &mut self.shard_out.work {
                if batch.is_empty() {
                    continue;
                }
                any = true;
                let full = std::mem::replace(batch, HandshakeBatch::new(batch.shard, batch.epoch));
                self.worker.handle(full, &mut self.worker_out);
            }
            if !any && self.worker_out.is_empty() {
                return;
            }
            for u in &self.worker_out.updates {
                self.shard.apply_update(u, &mut self.shard_out);
            }
            records.append(&mut self.worker_out.records);
            if self.keep_events {
                self.events.append(&mut self.worker_out.events);
            }
            self.worker_out.clear();
        }
    }

    /// Handshake events kept so far (see [`Inline::keep_events`]).
    pub fn take_events(&mut self) -> Vec<HandshakeEvent> {
        std::mem::take(&mut self.events)
    }

    /// The shard's counters.
    pub fn shard_stats(&self) -> ShardStats {
        self.shard.stats()
    }

    /// The worker's counters.
    pub fn worker_stats(&self) -> &WorkerStats {
        self.worker.stats()
    }

    /// Live flows.
    pub fn flow_count(&self) -> usize {
        self.shard.flow_count()
    }

    /// Reassembly bytes in use.
    pub fn reassembly_bytes(&self) -> usize {
        self.shard.reassembly_bytes()
    }
}
