//! Supervision: starting stages under actix's `Supervisor`, the restart budget, and the
//! escalation when a stage fails too often.
//!
//! Owns: [`RestartPolicy`] / the budget bookkeeping, the [`StageFailed`] escalation, and
//! [`start_stage`] / [`start_stage_in_arbiter`], which build a stage's mailbox and actor.
//!
//! Invariants:
//! - A stage whose handler panics or returns an error stops itself; actix's `Supervisor`
//!   restarts the same actor and [`Supervised::restarting`](actix::Supervised::restarting)
//!   replaces the stage with a fresh one from its factory. The mailbox (queued items) and the
//!   counters survive a restart; the stage's own state does not.
//! - At most `max_restarts` restarts happen in any sliding `window`. The failure after that
//!   does not restart: the stage is marked failed, its mailbox is closed (queued items are
//!   dropped and counted, senders see `Closed`) and [`StageFailed`] is sent once to the
//!   daemon's recipient, which shuts the system down. The failed actor stays alive but inert:
//!   actix restarts a stopped supervised actor for as long as an address to it exists, so
//!   stopping again would only loop.
//! - Only the failing stage restarts; other stages are separate actors and keep running.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ArbiterHandle, Context, Handler, Message, Recipient, Supervisor};
use thiserror::Error;
use tokio::sync::mpsc;

use super::stage::{Stage, StageActor, StageConfig, StageConfigError, StageHandle};

/// How many restarts a stage may use within a sliding time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed within `window`; the failure after them escalates. 0 escalates at once.
    pub max_restarts: u32,
    /// The sliding window over which restarts are counted.
    pub window: Duration,
}

impl Default for RestartPolicy {
    /// Five restarts in ten seconds: a stage that keeps failing faster than that is broken,
    /// not unlucky.
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window: Duration::from_secs(10),
        }
    }
}

/// Restart times inside the current window.
#[derive(Debug, Clone)]
pub(crate) struct RestartBudget {
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
}

impl RestartBudget {
    pub(crate) fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            recent: VecDeque::new(),
        }
    }

    pub(crate) fn policy(&self) -> RestartPolicy {
        self.policy
    }

    /// Records a failure at `now`: true (and counts a restart) if the budget allows one more
    /// restart in the window ending at `now`, false if the stage must escalate.
    pub(crate) fn try_restart(&mut self, now: Instant) -> bool {
        while let Some(&t) = self.recent.front() {
            if now.saturating_duration_since(t) >= self.policy.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() < self.policy.max_restarts as usize {
            self.recent.push_back(now);
            true
        } else {
            false
        }
    }

    /// Restarts counted in the current window.
    pub(crate) fn in_window(&self) -> u32 {
        u32::try_from(self.recent.len()).unwrap_or(u32::MAX)
    }
}

/// Control message, must-deliver: a stage exhausted its restart budget. Sent once, with
/// `Recipient::do_send` (control only, so it cannot be refused for a full mailbox), to the
/// recipient the daemon gave [`start_stage`]; the daemon shuts down cleanly with this error.
#[derive(Debug, Clone, PartialEq, Eq, Error, Message)]
#[rtype(result = "()")]
#[error(
    "stage {stage} failed again after {restarts} restarts within {window:?}, its restart \
     budget; last failure: {cause}"
)]
pub struct StageFailed {
    /// The stage's configured name.
    pub stage: &'static str,
    /// Restarts used within the window (equals the policy's `max_restarts`).
    pub restarts: u32,
    /// The policy's window.
    pub window: Duration,
    /// The failure that exceeded the budget (panic message or error text).
    pub cause: String,
}

/// Forwards every [`StageFailed`] it receives into a channel.
struct FailureForwarder(mpsc::UnboundedSender<StageFailed>);

impl Actor for FailureForwarder {
    type Context = Context<Self>;
}

impl Handler<StageFailed> for FailureForwarder {
    type Result = ();

    fn handle(&mut self, msg: StageFailed, _: &mut Context<Self>) {
        let _ = self.0.send(msg);
    }
}

/// A recipient to give stages as `on_failure`, started on the current arbiter, and the
/// channel where the [`StageFailed`]s it receives arrive (the daemon's or a test's end).
pub fn failure_channel() -> (Recipient<StageFailed>, mpsc::UnboundedReceiver<StageFailed>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (FailureForwarder(tx).start().recipient(), rx)
}

/// Starts a stage on the current arbiter under an actix `Supervisor`. `factory` builds the
/// stage's state, at start and at every restart; `on_failure` receives [`StageFailed`].
pub fn start_stage<S, F>(
    config: StageConfig,
    factory: F,
    on_failure: Recipient<StageFailed>,
) -> Result<StageHandle<S>, StageConfigError>
where
    S: Stage,
    F: Fn() -> S + Send + 'static,
{
    let mailbox = Arc::new(config.mailbox()?);
    let mb = Arc::clone(&mailbox);
    let name = config.name;
    let addr =
        Supervisor::start(move |_| StageActor::new(config, Box::new(factory), mb, on_failure));
    Ok(StageHandle::new(name, addr, mailbox))
}

/// Like [`start_stage`], but the stage runs on `arbiter` (its own thread), so its handlers
/// never share a thread with the stages that feed it.
pub fn start_stage_in_arbiter<S, F>(
    arbiter: &ArbiterHandle,
    config: StageConfig,
    factory: F,
    on_failure: Recipient<StageFailed>,
) -> Result<StageHandle<S>, StageConfigError>
where
    S: Stage,
    S::Item: Send,
    F: Fn() -> S + Send + 'static,
{
    let mailbox = Arc::new(config.mailbox()?);
    let mb = Arc::clone(&mailbox);
    let name = config.name;
    let addr = Supervisor::start_in_arbiter(arbiter, move |_| {
        StageActor::new(config, Box::new(factory), mb, on_failure)
    });
    Ok(StageHandle::new(name, addr, mailbox))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max: u32, secs: u64) -> RestartBudget {
        RestartBudget::new(RestartPolicy {
            max_restarts: max,
            window: Duration::from_secs(secs),
        })
    }

    #[test]
    fn allows_max_restarts_in_window_then_escalates() {
        let t0 = Instant::now();
        let mut b = budget(2, 10);
        assert!(b.try_restart(t0));
        assert!(b.try_restart(t0 + Duration::from_secs(1)));
        assert!(!b.try_restart(t0 + Duration::from_secs(2)));
        assert_eq!(b.in_window(), 2);
    }

    #[test]
    fn old_restarts_leave_the_window() {
        let t0 = Instant::now();
        let mut b = budget(2, 10);
        assert!(b.try_restart(t0));
        assert!(b.try_restart(t0 + Duration::from_secs(5)));
        // The first restart is exactly one window old: it no longer counts.
        assert!(b.try_restart(t0 + Duration::from_secs(10)));
        assert!(!b.try_restart(t0 + Duration::from_secs(11)));
        assert!(b.try_restart(t0 + Duration::from_secs(15)));
    }

    #[test]
    fn zero_budget_escalates_at_first_failure() {
        let mut b = budget(0, 10);
        assert!(!b.try_restart(Instant::now()));
        assert_eq!(b.in_window(), 0);
    }

    #[test]
    fn stage_failed_message_names_stage_and_budget() {
        let e = StageFailed {
            stage: "shard-3",
            restarts: 2,
            window: Duration::from_secs(10),
            cause: "boom".into(),
        };
        let text = e.to_string();
        assert!(text.contains("shard-3"), "{text}");
        assert!(text.contains("2 restarts within 10s"), "{text}");
        assert!(text.contains("boom"), "{text}");
    }
}
