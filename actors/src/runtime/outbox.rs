//! The outbox: how a synchronous stage handler sends onward without blocking its thread
//! and without losing order.
//!
//! Owns: the sends a handler could not complete at once (parked, in order).
//!
//! Invariants:
//! - A lossless send that finds its target full is parked; once anything is parked, every
//!   later send of the same turn is parked behind it, so order per edge is kept.
//! - The stage actor serves no further items until every parked send has completed
//!   (`ctx.wait`): a full downstream stalls this stage, whose own queue then fills and
//!   stalls its producers. That is backpressure, edge by edge.
//! - A droppable send never parks: it enqueues or is dropped and counted on its target.

use std::future::Future;
use std::pin::Pin;

use super::counters::reason;
use super::edge::{Delivered, Delivery, Edge, TrySendError};

type Parked = Pin<Box<dyn Future<Output = ()>>>;

/// Sends a stage handler makes; see the module docs.
#[derive(Default)]
pub struct Outbox {
    parked: Vec<Parked>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("parked", &self.parked.len())
            .finish()
    }
}

impl Outbox {
    /// Sends `item` over `edge` as its delivery says: a lossless edge enqueues now or parks
    /// the send until the target has room; a droppable edge enqueues or drops and counts.
    pub fn send<T: Send + 'static>(&mut self, edge: &Edge<T>, item: T) -> Delivered {
        match edge.delivery() {
            Delivery::Droppable => match edge.sender().try_send(item) {
                Ok(()) => Delivered::Enqueued,
                Err(TrySendError::Full(_)) => Delivered::Dropped(reason::QUEUE_FULL),
                Err(TrySendError::Closed(_)) => Delivered::Dropped(reason::CLOSED),
            },
            Delivery::Lossless => {
                let item = if self.parked.is_empty() {
                    match edge.sender().try_push(item) {
                        Ok(()) => return Delivered::Enqueued,
                        Err(TrySendError::Closed(_)) => {
                            edge.sender().record_drop(reason::CLOSED);
                            return Delivered::Dropped(reason::CLOSED);
                        }
                        Err(TrySendError::Full(item)) => item,
                    }
                } else {
                    item
                };
                let sender = edge.sender().clone();
                self.parked.push(Box::pin(async move {
                    if sender.send(item).await.is_err() {
                        sender.record_drop(reason::CLOSED);
                    }
                }));
                Delivered::Enqueued
            }
        }
    }

    /// Some send is waiting for room.
    pub fn is_blocked(&self) -> bool {
        !self.parked.is_empty()
    }

    /// The parked sends as one future that completes them in order.
    pub(crate) fn take_parked(&mut self) -> Option<impl Future<Output = ()> + 'static> {
        if self.parked.is_empty() {
            return None;
        }
        let parked = std::mem::take(&mut self.parked);
        Some(async move {
            for send in parked {
                send.await;
            }
        })
    }
}
