//! The scheduler stage: routes flow records to the sinks, counts handshake events, and
//! weighs equivalent sinks by an EWMA of their service time and their backlog.
//!
//! Owns a [`Balancer`] over the encoders and the end-of-input bookkeeping: once every
//! producer (shards and workers) has sent its `EndOfInput`, it tells every encoder.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use flowmesh_core::handshake::HandshakeEvent;
use flowmesh_core::scheduler::Balancer;
use flowmesh_schemas::FlowRecord;
use thiserror::Error;

use super::encoder::EncoderItem;
use crate::runtime::{Edge, Outbox, Stage};
use crate::stats::StatsBoard;

/// What the scheduler's queues carry (see the table in [`crate::stages`]).
#[derive(Debug)]
pub enum SchedulerItem {
    /// Flow records, from shards and workers.
    Records(Vec<FlowRecord>),
    /// Handshake events, from workers.
    Events(Vec<HandshakeEvent>),
    /// An encoder's service report.
    Service {
        /// Encoder index.
        encoder: usize,
        /// Batches it has served in all.
        served: u64,
        /// Records in the batch just served.
        items: u64,
        /// Time it took, in nanoseconds.
        elapsed_ns: u64,
    },
    /// One producer has reached end of input.
    EndOfInput,
}

/// A scheduler failure (none yet).
#[derive(Debug, Error)]
#[error("scheduler failed")]
pub struct SchedulerError;

/// Half-life of the service-time estimate: long enough to smooth one slow batch, short
/// enough to follow a sink that slows down for good.
const HALF_LIFE_NS: u64 = 200_000_000;

/// The scheduler stage. See the module docs.
pub struct SchedulerStage {
    /// Set once the encoders are started (they and the scheduler point at each other).
    encoders: Arc<OnceLock<Vec<Edge<EncoderItem>>>>,
    balancer: Balancer,
    /// Batches sent to each encoder.
    sent: Vec<u64>,
    producers: usize,
    ended: usize,
    events: u64,
    epoch: Instant,
    board: StatsBoard,
}

impl std::fmt::Debug for SchedulerStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerStage")
            .field("sent", &self.sent)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl SchedulerStage {
    /// A scheduler over `n` encoders (their edges in `encoders` once started) that waits
    /// for `producers` ends of input.
    pub fn new(
        encoders: Arc<OnceLock<Vec<Edge<EncoderItem>>>>,
        n: usize,
        producers: usize,
        board: StatsBoard,
    ) -> Self {
        let n = n.max(1);
        SchedulerStage {
            balancer: Balancer::new(n, HALF_LIFE_NS).unwrap_or_else(|_| {
                // n >= 1 and a non-zero half-life are always valid.
                unreachable!("valid balancer parameters")
            }),
            sent: vec![0; n],
            encoders,
            producers,
            ended: 0,
            events: 0,
            epoch: Instant::now(),
            board,
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Stage for SchedulerStage {
    type Item = SchedulerItem;
    type Error = SchedulerError;

    fn handle(&mut self, item: SchedulerItem, out: &mut Outbox) -> Result<(), SchedulerError> {
        match item {
            SchedulerItem::Records(records) => {
                let i = self.balancer.pick().unwrap_or(0);
                if let Some(edge) = self.encoders.get().and_then(|e| e.get(i)) {
                    self.sent[i] += 1;
                    let _ = self.balancer.set_depth(i, depth(self.sent[i], None));
                    out.send(edge, EncoderItem::Records(records));
                }
            }
            SchedulerItem::Events(events) => {
                self.events += events.len() as u64;
            }
            SchedulerItem::Service {
                encoder,
                served,
                items,
                elapsed_ns,
            } => {
                let now = self.now_ns();
                let _ = self
                    .balancer
                    .record_service(encoder, now, items, elapsed_ns);
                if let Some(&sent) = self.sent.get(encoder) {
                    let _ = self.balancer.set_depth(encoder, depth(sent, Some(served)));
                }
            }
            SchedulerItem::EndOfInput => {
                self.ended += 1;
                if self.ended == self.producers {
                    self.board.lock().events = self.events;
                    for edge in self.encoders.get().into_iter().flatten() {
                        out.send(edge, EncoderItem::EndOfInput);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Batches sent but not yet reported served.
fn depth(sent: u64, served: Option<u64>) -> usize {
    usize::try_from(sent.saturating_sub(served.unwrap_or(0))).unwrap_or(usize::MAX)
}
