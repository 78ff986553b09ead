//! The priority inbox: two bounded FIFO queues, high and low, served high first with a
//! per-turn budget so low always progresses.
//!
//! Owns: the queued items of one stage and their counters (enqueued, served, dropped by
//! reason). A pure data structure: no actix, no tokio, no clock.
//!
//! Invariants:
//! - A queue never holds more than its capacity; [`PriorityInbox::try_push`] never blocks and
//!   hands the item back in [`Full`] instead.
//! - Each queue is FIFO.
//! - [`PriorityInbox::pop`] serves high first, except that after `high_budget` consecutive
//!   high items it serves one low item if there is one. Hence among any `high_budget + 1`
//!   consecutive pops made while both queues are non-empty, at least one is low.
//! - Per queue, until [`PriorityInbox::clear`] is called: `enqueued == served + depth`.

use std::collections::VecDeque;

use thiserror::Error;

use super::counters::{DropCounts, QueueCounters};

/// Which queue of an inbox an item goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// Control, shutdown, config reload, raft messages, fingerprint results, alerts.
    High,
    /// Bulk data (packet batches, flow records).
    Low,
}

/// The queue was full; the rejected item is handed back so the caller can count a drop or wait.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{priority:?} queue full")]
pub struct Full<T> {
    /// The queue that was full.
    pub priority: Priority,
    /// The item that was not enqueued.
    pub item: T,
}

/// Invalid inbox sizes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InboxConfigError {
    /// A queue capacity of zero could never accept an item.
    #[error("{0:?} queue capacity must be at least 1")]
    ZeroCapacity(Priority),
    /// A high budget of zero would serve low before high.
    #[error("high budget must be at least 1")]
    ZeroHighBudget,
}

/// One bounded FIFO and its counters.
#[derive(Debug)]
struct Queue<T> {
    items: VecDeque<T>,
    capacity: usize,
    enqueued: u64,
    served: u64,
    dropped: DropCounts,
}

impl<T> Queue<T> {
    fn new(capacity: usize) -> Self {
        Self {
            // Bounded by `capacity`, but do not reserve a large capacity that is rarely used.
            items: VecDeque::with_capacity(capacity.min(64)),
            capacity,
            enqueued: 0,
            served: 0,
            dropped: DropCounts::default(),
        }
    }

    fn pop(&mut self) -> Option<T> {
        let item = self.items.pop_front()?;
        self.served += 1;
        Some(item)
    }

    fn counters(&self) -> QueueCounters {
        QueueCounters {
            capacity: self.capacity,
            depth: self.items.len(),
            enqueued: self.enqueued,
            served: self.served,
            dropped: self.dropped.clone(),
        }
    }
}

/// Two bounded queues served high first, with a budget of consecutive high items after which
/// one low item is served.
#[derive(Debug)]
pub struct PriorityInbox<T> {
    high: Queue<T>,
    low: Queue<T>,
    high_budget: usize,
    /// High items served since the last low item.
    high_streak: usize,
}

impl<T> PriorityInbox<T> {
    /// An empty inbox. `high_budget` is the number of consecutive high items served before one
    /// low item gets a turn.
    pub fn new(
        high_capacity: usize,
        low_capacity: usize,
        high_budget: usize,
    ) -> Result<Self, InboxConfigError> {
        if high_capacity == 0 {
            return Err(InboxConfigError::ZeroCapacity(Priority::High));
        }
        if low_capacity == 0 {
            return Err(InboxConfigError::ZeroCapacity(Priority::Low));
        }
        if high_budget == 0 {
            return Err(InboxConfigError::ZeroHighBudget);
        }
        Ok(Self {
            high: Queue::new(high_capacity),
            low: Queue::new(low_capacity),
            high_budget,
            high_streak: 0,
        })
    }

    fn queue(&self, priority: Priority) -> &Queue<T> {
        match priority {
            Priority::High => &self.high,
            Priority::Low => &self.low,
        }
    }

    fn queue_mut(&mut self, priority: Priority) -> &mut Queue<T> {
        match priority {
            Priority::High => &mut self.high,
            Priority::Low => &mut self.low,
        }
    }

    /// Enqueues `item` on `priority`'s queue, or hands it back if that queue is full. Never
    /// blocks and does not count a drop: the caller decides whether this is a drop.
    pub fn try_push(&mut self, priority: Priority, item: T) -> Result<(), Full<T>> {
        let q = self.queue_mut(priority);
        if q.items.len() >= q.capacity {
            return Err(Full { priority, item });
        }
        q.items.push_back(item);
        q.enqueued += 1;
        Ok(())
    }

    /// Takes the next item to serve: high first, but one low item after `high_budget`
    /// consecutive high items when low is non-empty.
    pub fn pop(&mut self) -> Option<(Priority, T)> {
        let low_due = self.high_streak >= self.high_budget && !self.low.items.is_empty();
        if !low_due {
            if let Some(item) = self.high.pop() {
                self.high_streak += 1;
                return Some((Priority::High, item));
            }
        }
        let item = self.low.pop()?;
        self.high_streak = 0;
        Some((Priority::Low, item))
    }

    /// Counts a drop of an item meant for `priority`'s queue (refused, or lost in service).
    pub fn record_drop(&mut self, priority: Priority, reason: &'static str) {
        self.queue_mut(priority).dropped.add(reason, 1);
    }

    /// Discards every queued item unserved, counting each as dropped with `reason`; returns how
    /// many were discarded.
    pub fn clear(&mut self, reason: &'static str) -> usize {
        let mut n = 0;
        for q in [&mut self.high, &mut self.low] {
            let len = q.items.len();
            q.items.clear();
            if len > 0 {
                q.dropped.add(reason, len as u64);
            }
            n += len;
        }
        n
    }

    /// Items waiting in `priority`'s queue.
    pub fn depth(&self, priority: Priority) -> usize {
        self.queue(priority).items.len()
    }

    /// Capacity of `priority`'s queue.
    pub fn capacity(&self, priority: Priority) -> usize {
        self.queue(priority).capacity
    }

    /// True when both queues are empty.
    pub fn is_empty(&self) -> bool {
        self.high.items.is_empty() && self.low.items.is_empty()
    }

    /// A snapshot of `priority`'s queue counters.
    pub fn counters(&self, priority: Priority) -> QueueCounters {
        self.queue(priority).counters()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::counters::reason;
    use proptest::prelude::*;

    fn inbox(high: usize, low: usize, budget: usize) -> PriorityInbox<u32> {
        PriorityInbox::new(high, low, budget).expect("valid sizes")
    }

    #[test]
    fn rejects_zero_sizes() {
        assert_eq!(
            PriorityInbox::<u8>::new(0, 1, 1).err(),
            Some(InboxConfigError::ZeroCapacity(Priority::High))
        );
        assert_eq!(
            PriorityInbox::<u8>::new(1, 0, 1).err(),
            Some(InboxConfigError::ZeroCapacity(Priority::Low))
        );
        assert_eq!(
            PriorityInbox::<u8>::new(1, 1, 0).err(),
            Some(InboxConfigError::ZeroHighBudget)
        );
    }

    #[test]
    fn high_behind_ten_thousand_low_is_served_next() {
        let mut ib = inbox(4, 10_000, 8);
        for i in 0..10_000 {
            ib.try_push(Priority::Low, i).expect("room");
        }
        // Serve a few low ones first so the inbox is mid-stream, not fresh.
        assert_eq!(ib.pop(), Some((Priority::Low, 0)));
        assert_eq!(ib.pop(), Some((Priority::Low, 1)));
        ib.try_push(Priority::High, 99_999).expect("room");
        assert_eq!(ib.pop(), Some((Priority::High, 99_999)));
        assert_eq!(ib.pop(), Some((Priority::Low, 2)));
    }

    #[test]
    fn full_queue_hands_the_item_back_and_the_other_queue_still_accepts() {
        let mut ib = inbox(1, 2, 1);
        ib.try_push(Priority::Low, 1).expect("room");
        ib.try_push(Priority::Low, 2).expect("room");
        assert_eq!(
            ib.try_push(Priority::Low, 3),
            Err(Full {
                priority: Priority::Low,
                item: 3
            })
        );
        ib.try_push(Priority::High, 4)
            .expect("high has its own capacity");
        assert_eq!(ib.try_push(Priority::High, 5).map_err(|f| f.item), Err(5));
        assert_eq!(ib.depth(Priority::Low), 2);
        assert_eq!(ib.depth(Priority::High), 1);
        // try_push does not count drops; the caller does.
        assert_eq!(ib.counters(Priority::Low).dropped.total(), 0);
        ib.record_drop(Priority::Low, reason::QUEUE_FULL);
        assert_eq!(
            ib.counters(Priority::Low).dropped.get(reason::QUEUE_FULL),
            1
        );
    }

    #[test]
    fn budget_serves_one_low_after_b_high_and_resets() {
        let mut ib = inbox(100, 100, 3);
        for i in 0..10 {
            ib.try_push(Priority::High, i).expect("room");
        }
        for i in 100..103 {
            ib.try_push(Priority::Low, i).expect("room");
        }
        let order: Vec<_> = std::iter::from_fn(|| ib.pop()).collect();
        use Priority::{High as H, Low as L};
        assert_eq!(
            order,
            vec![
                (H, 0),
                (H, 1),
                (H, 2),
                (L, 100),
                (H, 3),
                (H, 4),
                (H, 5),
                (L, 101),
                (H, 6),
                (H, 7),
                (H, 8),
                (L, 102),
                (H, 9),
            ]
        );
    }

    #[test]
    fn clear_counts_discarded_items() {
        let mut ib = inbox(4, 4, 2);
        ib.try_push(Priority::High, 1).expect("room");
        ib.try_push(Priority::Low, 2).expect("room");
        ib.try_push(Priority::Low, 3).expect("room");
        assert_eq!(ib.clear(reason::STAGE_FAILED), 3);
        assert!(ib.is_empty());
        assert_eq!(ib.pop(), None);
        assert_eq!(
            ib.counters(Priority::High)
                .dropped
                .get(reason::STAGE_FAILED),
            1
        );
        assert_eq!(
            ib.counters(Priority::Low).dropped.get(reason::STAGE_FAILED),
            2
        );
        assert_eq!(ib.counters(Priority::Low).served, 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(Priority),
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => Just(Op::Push(Priority::High)),
            2 => Just(Op::Push(Priority::Low)),
            3 => Just(Op::Pop),
        ]
    }

    proptest! {
        /// Random pushes and pops against a model: capacities never exceeded, FIFO per queue,
        /// counters consistent, and the budget rule holds on every pop.
        #[test]
        fn matches_model(
            high_cap in 1usize..8,
            low_cap in 1usize..8,
            budget in 1usize..5,
            ops in proptest::collection::vec(op(), 0..400),
        ) {
            let mut ib = inbox(high_cap, low_cap, budget);
            let mut model_high = VecDeque::new();
            let mut model_low = VecDeque::new();
            let mut next = 0u32;
            // Pops in a row served while both queues were non-empty, and how many were high.
            let mut contended_high_run = 0usize;
            for op in ops {
                match op {
                    Op::Push(p) => {
                        let (model, cap) = match p {
                            Priority::High => (&mut model_high, high_cap),
                            Priority::Low => (&mut model_low, low_cap),
                        };
                        let res = ib.try_push(p, next);
                        if model.len() < cap {
                            prop_assert!(res.is_ok());
                            model.push_back(next);
                        } else {
                            prop_assert_eq!(res, Err(Full { priority: p, item: next }));
                        }
                        next += 1;
                    }
                    Op::Pop => {
                        let both = !model_high.is_empty() && !model_low.is_empty();
                        let got = ib.pop();
                        match got {
                            None => prop_assert!(model_high.is_empty() && model_low.is_empty()),
                            Some((Priority::High, v)) => {
                                prop_assert_eq!(model_high.pop_front(), Some(v));
                                if both {
                                    contended_high_run += 1;
                                    prop_assert!(contended_high_run <= budget,
                                        "{} high pops in a row with low waiting, budget {}",
                                        contended_high_run, budget);
                                }
                            }
                            Some((Priority::Low, v)) => {
                                prop_assert_eq!(model_low.pop_front(), Some(v));
                                contended_high_run = 0;
                            }
                        }
                        if model_low.is_empty() {
                            contended_high_run = 0;
                        }
                    }
                }
                prop_assert!(ib.depth(Priority::High) <= high_cap);
                prop_assert!(ib.depth(Priority::Low) <= low_cap);
                prop_assert_eq!(ib.depth(Priority::High), model_high.len());
                prop_assert_eq!(ib.depth(Priority::Low), model_low.len());
                for p in [Priority::High, Priority::Low] {
                    let c = ib.counters(p);
                    prop_assert_eq!(c.enqueued, c.served + c.depth as u64);
                }
            }
        }

        /// With both queues kept non-empty, any window of `budget + 1` consecutive pops
        /// contains a low item, and a high item is never delayed by more than one low item.
        #[test]
        fn low_progresses_and_high_waits_at_most_one(
            budget in 1usize..6,
            pops in 1usize..200,
        ) {
            let mut ib = inbox(4, 4, budget);
            let mut served = Vec::new();
            let mut next = 0u32;
            for _ in 0..pops {
                while ib.try_push(Priority::High, next).is_ok() { next += 1; }
                while ib.try_push(Priority::Low, next).is_ok() { next += 1; }
                let (p, _) = ib.pop().expect("non-empty");
                served.push(p);
            }
            for w in served.windows(budget + 1) {
                prop_assert!(w.contains(&Priority::Low), "window {:?}", w);
            }
            for w in served.windows(2) {
                prop_assert!(w != [Priority::Low, Priority::Low]);
            }
        }
    }
}
