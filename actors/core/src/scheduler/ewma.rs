//! A time-decayed exponentially weighted moving average with a warm-up.
//!
//! Owns one running estimate of a noisy quantity sampled at irregular times (for the
//! balancer, a target's per-item service time). The rules, and why:
//! - **Decay by time, not by sample count.** A new sample `x` arriving `dt` after the
//!   previous one updates the estimate `e` to `w·e + (1 − w)·x` with `w = 2^(−dt/half_life)`,
//!   so old information loses half its weight per half-life of *time* however irregular
//!   the sampling: a burst of samples does not flush history faster than time passes,
//!   and a sample after a long silence replaces a stale estimate almost entirely.
//! - **Same instant = one batch.** Samples with `dt = 0`, or stamped earlier than the
//!   latest sample (a clock that went backwards is treated as `dt = 0`), are averaged
//!   into the batch at the latest instant, and the batch as a whole carries the weight
//!   `1 − w` of the gap before it. The bare formula would give them weight 0 and drop them.
//! - **Warm-up.** Until [`WARMUP_SAMPLES`] samples have been accepted or one half-life has
//!   passed since the first, the estimate is the plain mean of the samples so far: there
//!   is no initial value for the first samples to be biased toward (such as 0), and one
//!   early outlier weighs `1/n` instead of dominating. Warm-up ends without a jump: the
//!   mean becomes the value the first decayed update starts from.
//! - **Non-finite samples** (NaN, ±inf) are ignored and counted in [`Ewma::rejected`]:
//!   one would poison the estimate for good.
//!
//! Invariant: the estimate is a convex combination of the accepted samples, so it always
//! lies within their `[min, max]` (enforced against rounding by clamping every mix).

use std::f64::consts::LN_2;

use super::SchedulerError;

/// Samples after which warm-up ends even if less than a half-life has passed.
pub const WARMUP_SAMPLES: u64 = 8;

/// A time-decayed EWMA; see the module documentation for the update rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Ewma {
    half_life_ns: u64,
    accepted: u64,
    rejected: u64,
    first_ns: u64,
    /// Latest sample time seen; never moves backwards.
    last_ns: u64,
    /// The estimate just before the batch at `last_ns`.
    base: f64,
    /// Weight of that batch against `base`: `1 − 2^(−dt/half_life)`, or 1 in warm-up.
    alpha: f64,
    /// Plain mean of the samples in the current batch (all samples during warm-up).
    batch_mean: f64,
    batch_len: u64,
}

impl Ewma {
    /// An empty average whose old information halves in weight every `half_life_ns`.
    pub fn new(half_life_ns: u64) -> Result<Self, SchedulerError> {
        if half_life_ns == 0 {
            return Err(SchedulerError::ZeroHalfLife);
        }
        Ok(Ewma {
            half_life_ns,
            accepted: 0,
            rejected: 0,
            first_ns: 0,
            last_ns: 0,
            base: 0.0,
            alpha: 1.0,
            batch_mean: 0.0,
            batch_len: 0,
        })
    }

    /// Adds a sample taken at `now_ns`; a non-finite `value` is counted and ignored.
    pub fn observe(&mut self, now_ns: u64, value: f64) {
        if !value.is_finite() {
            self.rejected += 1;
            return;
        }
        if self.accepted == 0 {
            self.first_ns = now_ns;
            self.last_ns = now_ns;
        }
        let warming = self.accepted < WARMUP_SAMPLES
            && now_ns.saturating_sub(self.first_ns) < self.half_life_ns;
        if !warming && now_ns > self.last_ns {
            // A new instant: everything so far becomes the base the new batch is weighed
            // against. `-expm1` keeps `alpha` accurate when dt is tiny next to the
            // half-life, where `1 − 2^(−dt/h)` would cancel to a few digits.
            let dt = (now_ns - self.last_ns) as f64;
            self.base = self.estimate();
            self.alpha = -(-dt / self.half_life_ns as f64 * LN_2).exp_m1();
            self.batch_mean = value;
            self.batch_len = 1;
        } else {
            self.batch_len += 1;
            self.batch_mean = mix(self.batch_mean, value, 1.0 / self.batch_len as f64);
        }
        self.last_ns = self.last_ns.max(now_ns);
        self.accepted += 1;
    }

    /// The current estimate, or `None` before the first accepted sample.
    pub fn value(&self) -> Option<f64> {
        (self.accepted > 0).then(|| self.estimate())
    }

    /// Samples accepted so far.
    pub fn samples(&self) -> u64 {
        self.accepted
    }

    /// Non-finite samples ignored so far.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// The half-life this average was built with, in nanoseconds.
    pub fn half_life_ns(&self) -> u64 {
        self.half_life_ns
    }

    fn estimate(&self) -> f64 {
        mix(self.base, self.batch_mean, self.alpha)
    }
}

/// `(1 − w)·a + w·b` for `w` in `[0, 1]`, clamped to `[min(a, b), max(a, b)]` so rounding
/// can never carry the estimate outside the samples' range. This form (rather than
/// `a + w·(b − a)`) cannot overflow for finite inputs.
fn mix(a: f64, b: f64, w: f64) -> f64 {
    (a * (1.0 - w) + b * w).max(a.min(b)).min(a.max(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs().max(1.0))
    }

    #[test]
    fn zero_half_life_is_rejected() {
        assert_eq!(Ewma::new(0), Err(SchedulerError::ZeroHalfLife));
    }

    #[test]
    fn hand_computed_warm_up_then_decay() {
        let mut e = Ewma::new(100).expect("nonzero half-life");
        assert_eq!(e.value(), None);
        e.observe(0, 10.0);
        // The first sample itself, not 10·(1 − w) dragged toward an initial 0.
        assert_eq!(e.value(), Some(10.0));
        e.observe(0, 20.0);
        e.observe(50, 30.0);
        assert!(close(e.value(), 20.0)); // warm-up: plain mean of 10, 20, 30
                                         // 150 ns after the first sample: warm-up is over. dt = 100 = one half-life, so
                                         // w = 1/2: 0.5·20 + 0.5·40.
        e.observe(150, 40.0);
        assert!(close(e.value(), 30.0));
        // Same instant: the batch at 150 is now mean(40, 60) = 50 with the same weight.
        e.observe(150, 60.0);
        assert!(close(e.value(), 35.0));
        // Earlier than the latest sample: treated as dt = 0, joins that batch.
        e.observe(120, 10.0);
        assert!(close(e.value(), 0.5 * 20.0 + 0.5 * (110.0 / 3.0)));
        // dt = 200 = two half-lives: w = 1/4.
        let before = e.value().expect("sampled");
        e.observe(350, 100.0);
        assert!(close(e.value(), 0.25 * before + 0.75 * 100.0));
        assert_eq!(e.samples(), 7);
        assert_eq!(e.rejected(), 0);
    }

    #[test]
    fn early_outlier_is_diluted_by_warm_up() {
        let mut e = Ewma::new(1_000_000_000).expect("nonzero half-life");
        e.observe(0, 1000.0);
        for t in 1..WARMUP_SAMPLES {
            e.observe(t, 10.0);
        }
        // Plain mean of the eight: (1000 + 7·10) / 8. A bare EWMA started at the first
        // sample would still read ≈1000 here, since 7 ns is nothing next to 1 s.
        assert!(close(e.value(), 133.75));
        // Past warm-up, a sample 1 ns later barely moves it.
        e.observe(WARMUP_SAMPLES, 10.0);
        let v = e.value().expect("sampled");
        assert!(v < 133.75 && v > 133.74, "{v}");
    }

    #[test]
    fn non_finite_samples_are_counted_and_ignored() {
        let mut e = Ewma::new(10).expect("nonzero half-life");
        e.observe(0, f64::NAN);
        assert_eq!(e.value(), None);
        e.observe(1, 5.0);
        e.observe(2, f64::INFINITY);
        e.observe(3, f64::NEG_INFINITY);
        assert_eq!(e.value(), Some(5.0));
        assert_eq!((e.samples(), e.rejected()), (1, 3));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let mut e = Ewma::new(10).expect("nonzero half-life");
        e.observe(0, f64::MAX);
        e.observe(0, -f64::MAX);
        e.observe(100, f64::MAX);
        assert!(e.value().is_some_and(f64::is_finite));
    }

    /// Sample times from (step, value) pairs: a negative step moves the clock backwards.
    fn run(e: &mut Ewma, start: u64, steps: &[(i64, f64)]) -> u64 {
        let mut now = start;
        for &(dt, v) in steps {
            now = now.saturating_add_signed(dt);
            e.observe(now, v);
        }
        now
    }

    proptest! {
        #[test]
        fn stays_within_sample_range(
            half_life in 1u64..10_000,
            steps in prop::collection::vec((-50i64..20_000, -1e9f64..1e9), 1..200),
        ) {
            let mut e = Ewma::new(half_life).expect("nonzero half-life");
            let mut now = 1_000_000u64;
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for &(dt, v) in &steps {
                now = now.saturating_add_signed(dt);
                e.observe(now, v);
                lo = lo.min(v);
                hi = hi.max(v);
                let x = e.value().expect("sampled");
                prop_assert!(lo <= x && x <= hi, "{x} outside [{lo}, {hi}]");
            }
        }

        #[test]
        fn converges_to_a_constant(
            half_life in 1u64..1_000_000,
            history in prop::collection::vec((0i64..2_000_000, -1e6f64..1e6), 0..50),
            gaps in prop::collection::vec(0.01f64..0.5, 1..40),
            level in -1e6f64..1e6,
        ) {
            let mut e = Ewma::new(half_life).expect("nonzero half-life");
            let mut now = run(&mut e, 0, &history);
            // At least 40 half-lives of the constant: old samples keep < 2^-40 ≈ 1e-12 of
            // their weight, so the error is < 2e6 · 1e-12.
            let end = now + 40 * half_life;
            for gap in gaps.iter().cycle() {
                now += ((gap * half_life as f64) as u64).max(1);
                e.observe(now, level);
                if now >= end {
                    break;
                }
            }
            let x = e.value().expect("sampled");
            prop_assert!((x - level).abs() <= 1e-5, "{x} vs {level}");
        }

        #[test]
        fn a_step_is_half_absorbed_after_one_half_life(
            half_life in 1_000u64..1_000_000_000,
            old in -1e6f64..1e6,
            new in -1e6f64..1e6,
            warm_gaps in prop::collection::vec(0.01f64..0.3, 1..20),
            points in prop::collection::vec(0.0f64..1.0, 0..30),
        ) {
            let mut e = Ewma::new(half_life).expect("nonzero half-life");
            let mut now = 0u64;
            for gap in warm_gaps.iter().cycle() {
                now += ((gap * half_life as f64) as u64).max(1);
                e.observe(now, old);
                if now >= 20 * half_life {
                    break;
                }
            }
            prop_assert_eq!(e.value(), Some(old));
            // The new level, sampled at arbitrary instants (repeats allowed: dt = 0)
            // strictly after the step and ending exactly one half-life after it.
            let t0 = now;
            let mut at: Vec<u64> = points
                .iter()
                .map(|p| t0 + 1 + (p * (half_life - 1) as f64) as u64)
                .collect();
            at.push(t0 + half_life);
            at.sort_unstable();
            for t in at {
                e.observe(t, new);
            }
            let x = e.value().expect("sampled");
            let want = (old + new) / 2.0;
            prop_assert!((x - want).abs() <= 1e-6 * (new - old).abs() + 1e-9, "{x} vs {want}");
        }
    }
}
