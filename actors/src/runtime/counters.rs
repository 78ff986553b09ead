//! Per-stage counters: what a stage's queues accepted, served and dropped, and how often the
//! stage restarted.
//!
//! Owns: the plain-integer counter types and the snapshot a stage returns for
//! [`GetCounters`](crate::runtime::GetCounters), plus the fixed drop reasons.
//!
//! Invariants:
//! - Counters are plain integers updated by their single owner (the inbox under its lock, or
//!   the stage actor), except the edge's refusals ([`reason::QUEUE_FULL`], [`reason::CLOSED`]):
//!   those are atomics in the stage's mailbox, so a producer that is dropping never takes the
//!   inbox lock, and are folded into the snapshot. Nothing is updated per packet: a queue
//!   item is a batch.
//! - Per queue, with no [`reason::STAGE_FAILED`] clear: `enqueued == served + depth`.
//!   Drops with [`reason::QUEUE_FULL`] or [`reason::CLOSED`] were refused at the edge and were
//!   never enqueued; [`reason::HANDLER_PANIC`] and [`reason::HANDLER_ERROR`] drops were served
//!   first; [`reason::STAGE_FAILED`] drops were enqueued but never served.
//! - Drop reasons are `&'static str` so counting a drop never allocates.

/// Why an item was dropped. Each constant says whether the item had been enqueued.
pub mod reason {
    /// Refused by a droppable edge because the target queue was full (never enqueued).
    pub const QUEUE_FULL: &str = "queue_full";
    /// Refused by a droppable edge because the target stage had failed for good (never enqueued).
    pub const CLOSED: &str = "closed";
    /// Served, but the stage's handler panicked on it; the stage restarts.
    pub const HANDLER_PANIC: &str = "handler_panic";
    /// Served, but the stage's handler returned an error; the stage restarts.
    pub const HANDLER_ERROR: &str = "handler_error";
    /// Enqueued, then discarded unserved because the stage exhausted its restart budget.
    pub const STAGE_FAILED: &str = "stage_failed";
}

/// Drop counts keyed by reason; a handful of reasons, so a small vector beats a map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounts {
    by_reason: Vec<(&'static str, u64)>,
}

impl DropCounts {
    /// Adds `n` drops for `reason`.
    pub fn add(&mut self, reason: &'static str, n: u64) {
        match self.by_reason.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, count)) => *count += n,
            None => self.by_reason.push((reason, n)),
        }
    }

    /// Drops counted for `reason` (0 when none).
    pub fn get(&self, reason: &str) -> u64 {
        self.by_reason
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// Drops over all reasons.
    pub fn total(&self) -> u64 {
        self.by_reason.iter().map(|(_, n)| n).sum()
    }

    /// `(reason, count)` pairs in the order the reasons were first seen.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.by_reason.iter().copied()
    }
}

/// Counters of one queue (high or low) of a stage's inbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Maximum number of items the queue holds.
    pub capacity: usize,
    /// Items in the queue when the snapshot was taken.
    pub depth: usize,
    /// Items accepted into the queue.
    pub enqueued: u64,
    /// Items taken out of the queue and handed to the stage.
    pub served: u64,
    /// Items dropped, by reason (see [`reason`]).
    pub dropped: DropCounts,
}

/// A snapshot of one stage's counters, returned by [`GetCounters`](crate::runtime::GetCounters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageCounters {
    /// The stage's name from its [`StageConfig`](crate::runtime::StageConfig).
    pub stage: &'static str,
    /// The high-priority queue (control, results, alerts).
    pub high: QueueCounters,
    /// The low-priority queue (bulk data).
    pub low: QueueCounters,
    /// Times the supervisor restarted the stage with fresh state.
    pub restarts: u64,
    /// Handler panics caught at the actor boundary.
    pub panics: u64,
    /// Handler errors (the stage returned `Err`).
    pub errors: u64,
    /// The stage exhausted its restart budget and no longer serves items.
    pub failed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_counts_accumulate_per_reason() {
        let mut d = DropCounts::default();
        assert_eq!(d.get(reason::QUEUE_FULL), 0);
        d.add(reason::QUEUE_FULL, 2);
        d.add(reason::HANDLER_PANIC, 1);
        d.add(reason::QUEUE_FULL, 3);
        assert_eq!(d.get(reason::QUEUE_FULL), 5);
        assert_eq!(d.get(reason::HANDLER_PANIC), 1);
        assert_eq!(d.total(), 6);
        assert_eq!(
            d.iter().collect::<Vec<_>>(),
            vec![(reason::QUEUE_FULL, 5), (reason::HANDLER_PANIC, 1)]
        );
    }
}
