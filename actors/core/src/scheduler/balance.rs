//! Least-expected-wait choice among equivalent targets (workers or sinks).
//!
//! Owns, per target, a time-decayed [`Ewma`] of service time per item, the queue depth
//! last reported for it, and whether it is excluded (failed or restarting).
//!
//! [`Balancer::pick`] returns the included target with the lowest expected wait for one
//! more item, `cost = (depth + 1) × service_ns`: the item waits for the `depth` items
//! queued ahead of it, then for its own service. This is the "least expected work" cost
//! of Finagle's and Linkerd's peak-EWMA balancers (latency EWMA × (outstanding + 1)).
//! They evaluate it for two random hosts (power of two choices) because their hosts are
//! many and their load figures stale; our targets are a handful of local workers with
//! exact depths, so we scan them all: O(n), no allocation, no randomness.
//!
//! Rules, and why:
//! - A target with no estimate yet is costed at the mean estimate of the included
//!   targets that have one (1 ns if none has), so a new or restarted target gets work
//!   and thereby an estimate, without being assumed infinitely fast or slow.
//! - Estimates are floored at 1 ns (the timer's resolution): a target reporting zero
//!   service time would otherwise cost 0 at any depth and take every item.
//! - Ties go round robin: the scan starts just after the previous pick and keeps the
//!   first strictly lowest cost, so equal targets share load evenly.
//! - The depth is whatever the caller last reported with [`Balancer::set_depth`];
//!   `pick` does not guess it. Callers report after every enqueue and drain, otherwise
//!   a burst of picks sees stale depths and lands on one target.
//!
//! Invariant: `pick` never returns an excluded target and returns `None` only when
//! every target is excluded (or there are none).

use super::{Ewma, SchedulerError};

/// Estimates below this (ns per item) are raised to it when costing.
const MIN_SERVICE_NS: f64 = 1.0;

#[derive(Debug, Clone)]
struct Target {
    service_ns: Ewma,
    depth: usize,
    excluded: bool,
}

/// Chooses among `n` equivalent targets by least expected wait; see the module docs.
#[derive(Debug, Clone)]
pub struct Balancer {
    targets: Vec<Target>,
    /// Where the next scan starts: one past the previous pick.
    cursor: usize,
}

impl Balancer {
    /// `n` included targets with empty queues and no estimates; service-time estimates
    /// forget with the given half-life.
    pub fn new(n: usize, half_life_ns: u64) -> Result<Self, SchedulerError> {
        let target = Target {
            service_ns: Ewma::new(half_life_ns)?,
            depth: 0,
            excluded: false,
        };
        Ok(Balancer {
            targets: vec![target; n],
            cursor: 0,
        })
    }

    /// Number of targets, included or not.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// True when there are no targets at all.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Records that `target` served `items` items in `elapsed_ns`, finishing at `now_ns`.
    /// The batch is one observation of `elapsed_ns / items`; an empty batch says
    /// nothing about speed and is ignored.
    pub fn record_service(
        &mut self,
        target: usize,
        now_ns: u64,
        items: u64,
        elapsed_ns: u64,
    ) -> Result<(), SchedulerError> {
        let t = self.target_mut(target)?;
        if items > 0 {
            t.service_ns
                .observe(now_ns, elapsed_ns as f64 / items as f64);
        }
        Ok(())
    }

    /// Reports the number of items now queued at `target`.
    pub fn set_depth(&mut self, target: usize, depth: usize) -> Result<(), SchedulerError> {
        self.target_mut(target)?.depth = depth;
        Ok(())
    }

    /// Stops picking `target` (failed or restarting); its estimate and depth are kept.
    pub fn exclude(&mut self, target: usize) -> Result<(), SchedulerError> {
        self.target_mut(target)?.excluded = true;
        Ok(())
    }

    /// Makes `target` eligible again. The old estimate is kept: a restarted worker
    /// usually runs on the same hardware, and the EWMA adapts if it does not.
    pub fn include(&mut self, target: usize) -> Result<(), SchedulerError> {
        self.target_mut(target)?.excluded = false;
        Ok(())
    }

    /// The service-time estimate of `target` in ns per item, if it has one.
    pub fn service_ns(&self, target: usize) -> Option<f64> {
        self.targets.get(target)?.service_ns.value()
    }

    /// The included target with the least expected wait, or `None` if all are excluded.
    /// Takes `&mut self` only to advance the round-robin cursor that breaks ties.
    pub fn pick(&mut self) -> Option<usize> {
        let n = self.targets.len();
        let fallback = self.fallback_service_ns();
        let mut best: Option<(usize, f64)> = None;
        for (i, t) in self
            .targets
            .iter()
            .enumerate()
            .cycle()
            .skip(self.cursor)
            .take(n)
        {
            if t.excluded {
                continue;
            }
            let service = t.service_ns.value().unwrap_or(fallback).max(MIN_SERVICE_NS);
            let cost = (t.depth as f64 + 1.0) * service;
            if best.is_none_or(|(_, c)| cost < c) {
                best = Some((i, cost));
            }
        }
        let (chosen, _) = best?;
        self.cursor = (chosen + 1) % n;
        Some(chosen)
    }

    /// Mean estimate over included targets that have one; `MIN_SERVICE_NS` if none do.
    fn fallback_service_ns(&self) -> f64 {
        let (sum, count) = self
            .targets
            .iter()
            .filter(|t| !t.excluded)
            .filter_map(|t| t.service_ns.value())
            .fold((0.0, 0u32), |(s, c), v| (s + v, c + 1));
        if count == 0 {
            MIN_SERVICE_NS
        } else {
            sum / f64::from(count)
        }
    }

    fn target_mut(&mut self, target: usize) -> Result<&mut Target, SchedulerError> {
        let len = self.targets.len();
        self.targets
            .get_mut(target)
            .ok_or(SchedulerError::NoSuchTarget { target, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK_NS: u64 = 1_000;

    /// Deterministic run: targets with fixed per-item service times. Each tick,
    /// `arrivals[tick % len]` items are picked and enqueued one at a time (depth
    /// reported after each), then every target serves what fits in the tick and
    /// reports the batch and its new depth. Returns picks per target and the deepest
    /// queue seen.
    fn simulate(
        service_ns: &[u64],
        arrivals: &[usize],
        ticks: usize,
    ) -> Result<(Vec<u64>, usize), SchedulerError> {
        let n = service_ns.len();
        let mut b = Balancer::new(n, 20 * TICK_NS)?;
        let mut depth = vec![0usize; n];
        let mut picks = vec![0u64; n];
        let mut deepest = 0;
        for tick in 0..ticks {
            for _ in 0..arrivals[tick % arrivals.len()] {
                let t = b.pick().expect("a target is included");
                picks[t] += 1;
                depth[t] += 1;
                deepest = deepest.max(depth[t]);
                b.set_depth(t, depth[t])?;
            }
            let end = (tick as u64 + 1) * TICK_NS;
            for (t, &s) in service_ns.iter().enumerate() {
                let served = depth[t].min((TICK_NS / s) as usize);
                if served > 0 {
                    let items = served as u64;
                    b.record_service(t, end, items, items * s)?;
                }
                depth[t] -= served;
                b.set_depth(t, depth[t])?;
            }
        }
        Ok((picks, deepest))
    }

    #[test]
    fn slow_target_gets_fewer_picks() -> Result<(), SchedulerError> {
        // Fast serves 4 items per tick, slow (4× slower) 1; bursty arrivals average 4.
        let (picks, deepest) = simulate(&[250, 1_000], &[2, 6, 3, 5, 4, 8, 0, 4], 2_000)?;
        assert_eq!(picks.iter().sum::<u64>(), 8_000);
        assert!(picks[0] >= 2 * picks[1], "{picks:?}");
        assert!(
            picks[1] > 0,
            "bursts should spill onto the slow target: {picks:?}"
        );
        assert!(
            deepest <= 8,
            "queues should stay bounded, deepest {deepest}"
        );
        Ok(())
    }

    #[test]
    fn equal_targets_share_evenly() -> Result<(), SchedulerError> {
        let (picks, _) = simulate(&[500, 500, 500], &[3, 6, 2, 5, 4, 1], 1_000)?;
        let (lo, hi) = (picks.iter().min(), picks.iter().max());
        assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "{picks:?}");
        // With nothing recorded and equal depths, pure round robin.
        let mut b = Balancer::new(4, 1_000)?;
        let order: Vec<_> = (0..8)
            .map(|_| b.pick().expect("a target is included"))
            .collect();
        assert_eq!(order, [0, 1, 2, 3, 0, 1, 2, 3]);
        Ok(())
    }

    #[test]
    fn cost_is_depth_plus_one_times_service() -> Result<(), SchedulerError> {
        let mut b = Balancer::new(3, 1_000_000)?;
        b.record_service(0, 10, 4, 400)?; // 100 ns per item
        b.record_service(1, 10, 1, 300)?; // 300 ns per item
        assert_eq!(b.service_ns(0), Some(100.0));
        // Target 2 is unknown and costed at the mean, 200: costs 100, 300, 200.
        assert_eq!(b.pick(), Some(0));
        // Depth 2 makes target 0 cost 300, and the unknown target wins at 200.
        b.set_depth(0, 2)?;
        assert_eq!(b.pick(), Some(2));
        b.set_depth(2, 1)?; // 400
        b.set_depth(0, 1)?; // 200
        assert_eq!(b.pick(), Some(0));
        Ok(())
    }

    #[test]
    fn zero_service_time_does_not_take_everything() -> Result<(), SchedulerError> {
        let mut b = Balancer::new(2, 1_000)?;
        b.record_service(0, 0, 1, 0)?;
        b.record_service(1, 0, 1, 2)?;
        b.set_depth(0, 5)?; // 6 × 1 ns (floored) against 1 × 2 ns
        assert_eq!(b.pick(), Some(1));
        b.record_service(1, 1, 0, 99)?; // an empty batch is ignored
        assert_eq!(b.service_ns(1), Some(2.0));
        Ok(())
    }

    #[test]
    fn excluded_targets_are_never_picked() -> Result<(), SchedulerError> {
        let mut b = Balancer::new(3, 1_000)?;
        b.exclude(1)?;
        assert!((0..100).all(|_| b.pick() != Some(1)));
        b.exclude(0)?;
        b.exclude(2)?;
        assert_eq!(b.pick(), None);
        b.include(1)?;
        assert_eq!(b.pick(), Some(1));
        Ok(())
    }

    #[test]
    fn single_target_is_always_picked() -> Result<(), SchedulerError> {
        let mut b = Balancer::new(1, 1_000)?;
        b.record_service(0, 0, 1, 1_000_000)?;
        b.set_depth(0, 10_000)?;
        assert!((0..10).all(|_| b.pick() == Some(0)));
        Ok(())
    }

    #[test]
    fn bad_arguments_are_typed_errors() -> Result<(), SchedulerError> {
        assert_eq!(
            Balancer::new(2, 0).err(),
            Some(SchedulerError::ZeroHalfLife)
        );
        let mut empty = Balancer::new(0, 1)?;
        assert!(empty.is_empty());
        assert_eq!(empty.pick(), None);
        let mut b = Balancer::new(2, 1)?;
        let err = SchedulerError::NoSuchTarget { target: 2, len: 2 };
        assert_eq!(b.set_depth(2, 1), Err(err));
        assert_eq!(b.record_service(2, 0, 1, 1), Err(err));
        assert_eq!(b.exclude(2), Err(err));
        assert_eq!(b.include(2), Err(err));
        assert_eq!(b.service_ns(2), None);
        Ok(())
    }
}
