//! The stage actor: a thin actix shell that drains a [`PriorityInbox`](super::inbox::PriorityInbox) into a pure [`Stage`].
//!
//! Owns: the [`Stage`] trait, [`StageConfig`], the generic [`StageActor`] with its drain
//! step, panic catching and local counters, and the [`StageHandle`] the daemon wires with.
//!
//! Invariants:
//! - Data reaches a stage only through its mailbox ([`StageSender`] / [`Edge`]); the actix
//!   messages a stage handles are control or queries: [`Drain`] (wake-up) and [`GetCounters`].
//! - A drain turn serves at most `turn` items, then re-schedules itself with `ctx.notify` if
//!   items remain, so queries and other actors on the arbiter get a turn in between.
//! - A handler panic is caught at the actor boundary (`catch_unwind`): counted, its item
//!   counted as dropped ([`reason::HANDLER_PANIC`]), and the actor stops so its supervisor
//!   restarts it with fresh state. A handler error does the same with
//!   [`reason::HANDLER_ERROR`]. This needs `panic = "unwind"` (the default) in every profile.
//! - Counters are plain integers owned by the actor (restarts, panics, errors) or by the
//!   inbox under its lock (per queue); [`GetCounters`] returns one consistent snapshot.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, MailboxError,
    Message, MessageResult, Recipient, Supervised, WrapFuture,
};
use thiserror::Error;

use super::counters::{reason, StageCounters};
use super::edge::{Delivery, Drain, Edge, Mailbox, StageSender};
use super::inbox::{InboxConfigError, Priority};
use super::outbox::Outbox;
use super::supervisor::{RestartBudget, RestartPolicy, StageFailed};

/// A pure stage: state plus a synchronous handler, run inside a [`StageActor`].
///
/// The handler gets one queue item (a batch, a control command, a result) at a time and sends
/// onward through the [`Outbox`]. Returning `Err` or panicking makes the supervisor restart
/// the stage with fresh state from its factory.
pub trait Stage: Unpin + 'static {
    /// What the stage's queues carry (both high and low; typically an enum).
    type Item: Send + 'static;
    /// A failure that needs fresh state (expected packet conditions are outcomes, not errors).
    type Error: std::error::Error + 'static;

    /// Handles one item; onward sends go through `out`.
    fn handle(&mut self, item: Self::Item, out: &mut Outbox) -> Result<(), Self::Error>;
}

/// Sizes and limits of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageConfig {
    /// Name in counters, logs and [`StageFailed`] (e.g. `"shard-0"`).
    pub name: &'static str,
    /// Capacity of the high queue.
    pub high_capacity: usize,
    /// Capacity of the low queue.
    pub low_capacity: usize,
    /// Consecutive high items served before one low item gets a turn.
    pub high_budget: usize,
    /// Items served per drain turn before yielding to other messages and actors.
    pub turn: usize,
    /// Restart budget.
    pub restart: RestartPolicy,
}

impl StageConfig {
    /// A config with default sizes: 64 high, 256 low, high budget 8, turn 32, and the
    /// default [`RestartPolicy`].
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            high_capacity: 64,
            low_capacity: 256,
            high_budget: 8,
            turn: 32,
            restart: RestartPolicy::default(),
        }
    }

    /// Builds the mailbox these sizes describe.
    pub(crate) fn mailbox<T>(&self) -> Result<Mailbox<T>, StageConfigError> {
        if self.turn == 0 {
            return Err(StageConfigError::ZeroTurn(self.name));
        }
        Mailbox::new(self.high_capacity, self.low_capacity, self.high_budget).map_err(|source| {
            StageConfigError::Inbox {
                stage: self.name,
                source,
            }
        })
    }
}

/// A [`StageConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StageConfigError {
    /// Invalid queue sizes.
    #[error("stage {stage}: {source}")]
    Inbox {
        /// The stage's name.
        stage: &'static str,
        /// What is wrong with the sizes.
        source: InboxConfigError,
    },
    /// A drain turn of zero items would never serve anything.
    #[error("stage {0}: turn must be at least 1")]
    ZeroTurn(&'static str),
}

/// Query message (must-deliver, answered from the actor): a snapshot of the stage's counters.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "StageCounters")]
pub struct GetCounters;

/// The actix actor around a [`Stage`]: drains its mailbox in bounded turns, catches panics,
/// keeps counters, and is restarted with fresh state by its supervisor.
pub struct StageActor<S: Stage> {
    name: &'static str,
    stage: S,
    factory: Box<dyn Fn() -> S + Send>,
    mailbox: Arc<Mailbox<S::Item>>,
    turn: usize,
    budget: RestartBudget,
    on_failure: Recipient<StageFailed>,
    /// Why the stage last stopped; consumed by the restart.
    last_failure: Option<String>,
    restarts: u64,
    panics: u64,
    errors: u64,
    failed: bool,
    outbox: Outbox,
}

impl<S: Stage> fmt::Debug for StageActor<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageActor")
            .field("name", &self.name)
            .field("turn", &self.turn)
            .field("restarts", &self.restarts)
            .field("panics", &self.panics)
            .field("errors", &self.errors)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<S: Stage> StageActor<S> {
    pub(crate) fn new(
        config: StageConfig,
        factory: Box<dyn Fn() -> S + Send>,
        mailbox: Arc<Mailbox<S::Item>>,
        on_failure: Recipient<StageFailed>,
    ) -> Self {
        Self {
            name: config.name,
            stage: factory(),
            factory,
            mailbox,
            turn: config.turn,
            budget: RestartBudget::new(config.restart),
            on_failure,
            last_failure: None,
            restarts: 0,
            panics: 0,
            errors: 0,
            failed: false,
            outbox: Outbox::default(),
        }
    }

    /// Stops the actor after a handler failure; the supervisor decides what happens next.
    fn fail(&mut self, ctx: &mut Context<Self>, cause: String) {
        tracing::warn!(stage = self.name, %cause, "stage failed; stopping for restart");
        self.last_failure = Some(cause);
        ctx.stop();
    }

    fn schedule_drain(&self, ctx: &mut Context<Self>) {
        if self.mailbox.claim_drain() {
            // Control only: at most one Drain is outstanding (see `edge` module doc).
            ctx.notify(Drain);
        }
    }
}

/// Text of a panic payload (`&str` or `String`, as `panic!` produces).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        "panic with a non-string payload".to_owned()
    }
}

impl<S: Stage> Actor for StageActor<S> {
    type Context = Context<Self>;

    /// Runs at first start and after every restart: resume draining what is queued. A
    /// restart clears the context's pending `notify`s, so set the flag and wake
    /// unconditionally; a duplicate `Drain` only costs an empty turn.
    fn started(&mut self, ctx: &mut Context<Self>) {
        if !self.failed && !self.mailbox.is_empty() {
            self.mailbox.claim_drain();
            ctx.notify(Drain);
        }
    }
}

impl<S: Stage> Supervised for StageActor<S> {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        let cause = self
            .last_failure
            .take()
            .unwrap_or_else(|| "stopped".to_owned());
        if self.failed {
            return;
        }
        if self.budget.try_restart(Instant::now()) {
            self.stage = (self.factory)();
            self.restarts += 1;
            tracing::info!(
                stage = self.name,
                restarts = self.restarts,
                "stage restarted with fresh state"
            );
            return;
        }
        self.failed = true;
        self.mailbox.close();
        let policy = self.budget.policy();
        let failed = StageFailed {
            stage: self.name,
            restarts: self.budget.in_window(),
            window: policy.window,
            cause,
        };
        tracing::error!(stage = self.name, error = %failed, "restart budget exhausted");
        // Control, must-deliver and sent once: do_send cannot be refused for a full mailbox.
        self.on_failure.do_send(failed);
    }
}

impl<S: Stage> Handler<Drain> for StageActor<S> {
    type Result = ();

    /// One drain turn: serve up to `turn` items, high first within the inbox's budget.
    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
        if self.failed {
            return;
        }
        self.mailbox.start_drain();
        for _ in 0..self.turn {
            let Some((priority, item)) = self.mailbox.pop() else {
                return;
            };
            let (stage, outbox) = (&mut self.stage, &mut self.outbox);
            // AssertUnwindSafe: after a panic the stage's state is thrown away (restart with
            // fresh state), so a broken invariant inside it is never observed.
            match catch_unwind(AssertUnwindSafe(|| stage.handle(item, outbox))) {
                Ok(Ok(())) => {
                    if let Some(sends) = self.outbox.take_parked() {
                        // A target is full: serve nothing more until these sends complete.
                        ctx.wait(sends.into_actor(self).map(|(), act, ctx| {
                            act.schedule_drain(ctx);
                        }));
                        return;
                    }
                }
                Ok(Err(e)) => {
                    self.errors += 1;
                    self.mailbox.record_drop(priority, reason::HANDLER_ERROR);
                    self.fail(ctx, e.to_string());
                    return;
                }
                Err(payload) => {
                    self.panics += 1;
                    self.mailbox.record_drop(priority, reason::HANDLER_PANIC);
                    self.fail(ctx, panic_message(payload.as_ref()));
                    return;
                }
            }
        }
        if !self.mailbox.is_empty() {
            self.schedule_drain(ctx);
        }
    }
}

impl<S: Stage> Handler<GetCounters> for StageActor<S> {
    type Result = MessageResult<GetCounters>;

    fn handle(&mut self, _: GetCounters, _: &mut Context<Self>) -> Self::Result {
        let (high, low) = self.mailbox.counters();
        MessageResult(StageCounters {
            stage: self.name,
            high,
            low,
            restarts: self.restarts,
            panics: self.panics,
            errors: self.errors,
            failed: self.failed,
        })
    }
}

/// The daemon's handle on a started stage: makes senders and edges into it and queries it.
pub struct StageHandle<S: Stage> {
    name: &'static str,
    addr: Addr<StageActor<S>>,
    mailbox: Arc<Mailbox<S::Item>>,
}

impl<S: Stage> fmt::Debug for StageHandle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageHandle")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<S: Stage> Clone for StageHandle<S> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            addr: self.addr.clone(),
            mailbox: Arc::clone(&self.mailbox),
        }
    }
}

impl<S: Stage> StageHandle<S> {
    pub(crate) fn new(
        name: &'static str,
        addr: Addr<StageActor<S>>,
        mailbox: Arc<Mailbox<S::Item>>,
    ) -> Self {
        Self {
            name,
            addr,
            mailbox,
        }
    }

    /// The stage's configured name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The stage actor's address (for control and query messages).
    pub fn addr(&self) -> &Addr<StageActor<S>> {
        &self.addr
    }

    /// A sender into the stage's `priority` queue.
    pub fn sender(&self, priority: Priority) -> StageSender<S::Item> {
        StageSender::new(
            Arc::clone(&self.mailbox),
            self.addr.clone().recipient(),
            priority,
        )
    }

    /// An edge into the stage's `priority` queue with the given delivery.
    pub fn edge(&self, priority: Priority, delivery: Delivery) -> Edge<S::Item> {
        Edge::new(self.sender(priority), delivery)
    }

    /// Asks the stage for a snapshot of its counters.
    pub async fn counters(&self) -> Result<StageCounters, MailboxError> {
        self.addr.send(GetCounters).await
    }
}
