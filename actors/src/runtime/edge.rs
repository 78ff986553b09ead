//! Edges into a stage: the bounded, awaitable send that gives producers backpressure.
//!
//! Owns: the inbox a stage shares with its producers (`Mailbox`), the per-queue semaphores
//! that bound it, the per-queue counts of items refused at the edge, and the producer handles
//! [`StageSender`] and [`Edge`].
//!
//! Why data does not travel as actix messages: actix keeps one FIFO per actor, `do_send` and
//! `ctx.notify` ignore its capacity, and an awaited `send` waits for the handler's reply. Data
//! would sit in two queues and a producer could not wait for room in just one of them. So a
//! producer pushes straight into the target's [`PriorityInbox`] and only wakes the actor with
//! a [`Drain`] control message; the actor's drain step serves the queues in bounded turns.
//!
//! Invariants:
//! - Each queue has a semaphore with as many permits as the queue has capacity. A producer
//!   takes a permit before pushing and the drain step gives it back when it serves the item,
//!   so a push holding a permit never finds its queue full, and a lossless send waits (in FIFO
//!   order, the semaphore is fair) exactly while the queue is full.
//! - At most one wake-up is outstanding per stage: `drain_scheduled` is set by whoever sends a
//!   [`Drain`] and cleared by the actor when its turn starts, so no wake-up is lost and the
//!   actix mailbox never fills with them.
//! - After `Mailbox::close` (the stage failed for good) the semaphores are closed: waiting and
//!   future lossless sends fail with [`SendError`], droppable sends are dropped and counted as
//!   [`reason::CLOSED`].
//! - A refused droppable send ([`reason::QUEUE_FULL`], [`reason::CLOSED`]) never takes the
//!   inbox lock: it is counted in an atomic that [`GetCounters`](super::GetCounters) folds
//!   into the queue's drops, so a producer that is dropping (the overload droppable edges
//!   exist for) does not contend with the consumer for the lock.
//!
//! `benches/edge.rs` measures the cost of one edge.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix::{Message, Recipient};
use thiserror::Error;
use tokio::sync::{Semaphore, TryAcquireError};

use super::counters::{reason, QueueCounters};
use super::inbox::{InboxConfigError, Priority, PriorityInbox};

/// Control message, must-deliver (a lost wake-up would stall the stage; it carries no data):
/// wakes a stage so it runs a drain turn.
///
/// Sent with `Recipient::do_send` by a producer whose push found no drain scheduled, and with
/// `ctx.notify` by the stage itself to continue after a bounded turn. Both ignore mailbox
/// capacity, which is what a must-deliver wake-up needs and is safe because at most one
/// `Drain` is outstanding per stage.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Drain;

/// The lossless send failed: the target stage has failed for good. The item is handed back.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("target stage closed")]
pub struct SendError<T>(pub T);

/// Why a droppable send did not enqueue its item; either way the drop has been counted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TrySendError<T> {
    /// The target queue was full; counted as [`reason::QUEUE_FULL`].
    #[error("target queue full")]
    Full(T),
    /// The target stage has failed for good; counted as [`reason::CLOSED`].
    #[error("target stage closed")]
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The item that was not enqueued.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(t) | Self::Closed(t) => t,
        }
    }
}

/// Why the edge refused an item; each is a drop reason of its own.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// [`reason::QUEUE_FULL`].
    QueueFull,
    /// [`reason::CLOSED`].
    Closed,
}

/// Items refused at the edge into one queue, by reason; counted without the inbox lock.
#[derive(Debug, Default)]
struct Refused {
    queue_full: AtomicU64,
    closed: AtomicU64,
}

impl Refused {
    fn add(&self, refusal: Refusal) {
        let counter = match refusal {
            Refusal::QueueFull => &self.queue_full,
            Refusal::Closed => &self.closed,
        };
        // Relaxed: a count read in a snapshot, not used to order anything.
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds the refusals to a queue snapshot taken under the inbox lock.
    fn fold_into(&self, counters: &mut QueueCounters) {
        for (reason, counter) in [
            (reason::QUEUE_FULL, &self.queue_full),
            (reason::CLOSED, &self.closed),
        ] {
            let n = counter.load(Ordering::Relaxed);
            if n > 0 {
                counters.dropped.add(reason, n);
            }
        }
    }
}

/// The inbox of one stage, shared by the stage actor and its producers.
#[derive(Debug)]
pub(crate) struct Mailbox<T> {
    inbox: Mutex<PriorityInbox<T>>,
    high_room: Semaphore,
    low_room: Semaphore,
    high_refused: Refused,
    low_refused: Refused,
    drain_scheduled: AtomicBool,
}

impl<T> Mailbox<T> {
    /// A mailbox with the given queue capacities and high budget (see [`PriorityInbox::new`]).
    pub(crate) fn new(
        high_capacity: usize,
        low_capacity: usize,
        high_budget: usize,
    ) -> Result<Self, InboxConfigError> {
        Ok(Self {
            inbox: Mutex::new(PriorityInbox::new(
                high_capacity,
                low_capacity,
                high_budget,
            )?),
            high_room: Semaphore::new(high_capacity),
            low_room: Semaphore::new(low_capacity),
            high_refused: Refused::default(),
            low_refused: Refused::default(),
            drain_scheduled: AtomicBool::new(false),
        })
    }

    /// Locks the inbox. No user code runs under this lock, so poisoning can only come from a
    /// panic inside the inbox itself; the data is still consistent then, so we carry on.
    fn lock(&self) -> MutexGuard<'_, PriorityInbox<T>> {
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn room(&self, priority: Priority) -> &Semaphore {
        match priority {
            Priority::High => &self.high_room,
            Priority::Low => &self.low_room,
        }
    }

    /// Pushes an item whose permit the caller holds (and gives up).
    fn push_with_permit(&self, priority: Priority, item: T) {
        let pushed = self.lock().try_push(priority, item);
        if let Err(full) = pushed {
            // Unreachable while permits == capacity; count it rather than lose it silently.
            debug_assert!(false, "{full}: push with a permit found the queue full");
            self.lock().record_drop(priority, reason::QUEUE_FULL);
            self.room(priority).add_permits(1);
        }
    }

    /// Takes the next item to serve and gives its queue's permit back to the producers.
    pub(crate) fn pop(&self) -> Option<(Priority, T)> {
        let popped = self.lock().pop();
        if let Some((priority, _)) = &popped {
            self.room(*priority).add_permits(1);
        }
        popped
    }

    /// Counts an item refused at the edge into `priority`'s queue, without the inbox lock.
    fn refuse(&self, priority: Priority, refusal: Refusal) {
        match priority {
            Priority::High => self.high_refused.add(refusal),
            Priority::Low => self.low_refused.add(refusal),
        }
    }

    /// Counts a drop on `priority`'s queue.
    pub(crate) fn record_drop(&self, priority: Priority, reason: &'static str) {
        self.lock().record_drop(priority, reason);
    }

    /// True when both queues are empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Counter snapshots of the high and low queues, taken under one lock, with the edge
    /// refusals added (read after the lock, so possibly a little newer than the rest).
    pub(crate) fn counters(&self) -> (QueueCounters, QueueCounters) {
        let (mut high, mut low) = {
            let inbox = self.lock();
            (
                inbox.counters(Priority::High),
                inbox.counters(Priority::Low),
            )
        };
        self.high_refused.fold_into(&mut high);
        self.low_refused.fold_into(&mut low);
        (high, low)
    }

    /// Marks a drain as scheduled; true if the caller must send the [`Drain`] itself.
    pub(crate) fn claim_drain(&self) -> bool {
        !self.drain_scheduled.swap(true, Ordering::AcqRel)
    }

    /// Called by the stage at the start of a drain turn: later pushes must wake it again.
    pub(crate) fn start_drain(&self) {
        self.drain_scheduled.store(false, Ordering::Release);
    }

    /// Refuses all further sends and discards what is queued, counting it as
    /// [`reason::STAGE_FAILED`].
    pub(crate) fn close(&self) {
        self.high_room.close();
        self.low_room.close();
        self.lock().clear(reason::STAGE_FAILED);
    }
}

/// A producer's handle on one queue of a stage's mailbox.
///
/// [`send`](Self::send) is the lossless path (waits for room) and
/// [`try_send`](Self::try_send) the droppable one (never waits; drops and counts).
#[derive(Debug)]
pub struct StageSender<T: Send + 'static> {
    mailbox: Arc<Mailbox<T>>,
    wake: Recipient<Drain>,
    priority: Priority,
}

impl<T: Send + 'static> Clone for StageSender<T> {
    fn clone(&self) -> Self {
        Self {
            mailbox: Arc::clone(&self.mailbox),
            wake: self.wake.clone(),
            priority: self.priority,
        }
    }
}

impl<T: Send + 'static> StageSender<T> {
    /// A sender into `priority`'s queue of `mailbox`, waking the stage through `wake`.
    pub(crate) fn new(
        mailbox: Arc<Mailbox<T>>,
        wake: Recipient<Drain>,
        priority: Priority,
    ) -> Self {
        Self {
            mailbox,
            wake,
            priority,
        }
    }

    /// The queue this sender feeds.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    fn push_and_wake(&self, item: T) {
        self.mailbox.push_with_permit(self.priority, item);
        if self.mailbox.claim_drain() {
            // Control only: at most one Drain is outstanding per stage (see module doc).
            self.wake.do_send(Drain);
        }
    }

    /// Lossless send: waits until the queue has room, then enqueues. Fails only when the
    /// stage has failed for good, handing the item back. Waiters get room in FIFO order.
    /// Dropping the future before it completes enqueues nothing and takes no capacity.
    pub async fn send(&self, item: T) -> Result<(), SendError<T>> {
        let room = self.mailbox.room(self.priority);
        // Fast path without building an `Acquire` future: the same outcome, since `acquire`
        // too takes free permits at once and returned permits go to queued waiters first.
        // Spend the coop budget as `acquire` would, so a producer that never has to wait
        // still yields to the other tasks on its thread.
        let permit = match room.try_acquire() {
            Ok(permit) => {
                // Dropped here (the future cancelled), the permit goes back.
                tokio::task::coop::consume_budget().await;
                Ok(permit)
            }
            Err(_) => room.acquire().await,
        };
        match permit {
            Ok(permit) => {
                permit.forget();
                self.push_and_wake(item);
                Ok(())
            }
            Err(_closed) => Err(SendError(item)),
        }
    }

    /// Enqueues if the queue has room now, else hands the item back without counting a drop
    /// (the caller waits or counts). Never waits.
    pub fn try_push(&self, item: T) -> Result<(), TrySendError<T>> {
        match self.mailbox.room(self.priority).try_acquire() {
            Ok(permit) => {
                permit.forget();
                self.push_and_wake(item);
                Ok(())
            }
            Err(TryAcquireError::NoPermits) => Err(TrySendError::Full(item)),
            Err(TryAcquireError::Closed) => Err(TrySendError::Closed(item)),
        }
    }

    /// Counts a drop of an item meant for this queue.
    pub fn record_drop(&self, reason: &'static str) {
        self.mailbox.record_drop(self.priority, reason);
    }

    /// Droppable send: enqueues if the queue has room now; otherwise drops the item, counts
    /// the drop by reason on the target's queue, and hands the item back. Never waits.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let refused = self.try_push(item);
        match &refused {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.mailbox.refuse(self.priority, Refusal::QueueFull),
            Err(TrySendError::Closed(_)) => self.mailbox.refuse(self.priority, Refusal::Closed),
        }
        refused
    }
}

/// How an edge behaves when its target queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Must-deliver: the producer waits for room (file replay, control).
    Lossless,
    /// Droppable: the item is dropped and counted, the producer never waits (live capture).
    Droppable,
}

/// What happened to an item sent over an [`Edge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// The item is in the target's queue.
    Enqueued,
    /// A droppable edge dropped the item; the drop was counted with this reason.
    Dropped(&'static str),
}

/// A wired edge between two stages: a sender plus the edge's declared [`Delivery`], so the
/// producer's code is the same for file replay (lossless) and live capture (droppable).
#[derive(Debug)]
pub struct Edge<T: Send + 'static> {
    sender: StageSender<T>,
    delivery: Delivery,
}

impl<T: Send + 'static> Clone for Edge<T> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
            delivery: self.delivery,
        }
    }
}

impl<T: Send + 'static> Edge<T> {
    /// An edge over `sender` with the given delivery.
    pub fn new(sender: StageSender<T>, delivery: Delivery) -> Self {
        Self { sender, delivery }
    }

    /// The edge's declared delivery.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// The sender underneath.
    pub fn sender(&self) -> &StageSender<T> {
        &self.sender
    }

    /// Sends `item` according to the edge's delivery: a lossless edge waits for room, a
    /// droppable one never waits. Fails only when a lossless edge's target has failed.
    pub async fn deliver(&self, item: T) -> Result<Delivered, SendError<T>> {
        match self.delivery {
            Delivery::Lossless => self.sender.send(item).await.map(|()| Delivered::Enqueued),
            Delivery::Droppable => Ok(match self.sender.try_send(item) {
                Ok(()) => Delivered::Enqueued,
                Err(TrySendError::Full(_)) => Delivered::Dropped(reason::QUEUE_FULL),
                Err(TrySendError::Closed(_)) => Delivered::Dropped(reason::CLOSED),
            }),
        }
    }
}
