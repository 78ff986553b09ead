//! Token-bucket pacing, pure logic: the caller passes the monotonic time in, so every
//! decision is reproducible in tests.
//!
//! Tokens are counted in frame·ns/s: one nanosecond adds `rate` and one frame costs 10⁹,
//! so any integer rate is exact and the long-run rate does not drift. The bucket holds at
//! most [`MAX_BURST`] frames. When it is empty the pacer asks the caller to wait until
//! about 200 µs of traffic (at least one frame, at most a burst) has accrued, so a sender
//! wakes a few thousand times a second at most and can sleep instead of spinning.

use std::num::NonZeroU64;
use std::time::Duration;

/// Most frames one grant releases.
pub const MAX_BURST: u32 = 32;
/// Token cost of one frame (and tokens one nanosecond adds per frame/s of rate).
const UNIT: u128 = 1_000_000_000;
/// Traffic to let accrue before waking again, when the bucket is empty.
const WAKE_NS: u128 = 200_000;

/// What the sender may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Send this many frames (at least one) now.
    Go(u32),
    /// Nothing may go for this long.
    Wait(Duration),
}

/// A token bucket for a rate in frames per second.
#[derive(Debug, Clone)]
pub struct Pacer {
    rate: u128,
    tokens: u128,
    /// Tokens to wait for when the bucket runs dry.
    wake: u128,
    last_ns: u64,
}

impl Pacer {
    /// A pacer for `rate` frames per second starting at `now_ns`, with one frame of credit
    /// (a full bucket would start with a burst that a low rate takes seconds to earn).
    pub fn new(rate: NonZeroU64, now_ns: u64) -> Self {
        let rate = u128::from(rate.get());
        let wake_frames = (rate * WAKE_NS)
            .div_ceil(UNIT)
            .clamp(1, u128::from(MAX_BURST));
        Self {
            rate,
            tokens: UNIT,
            wake: wake_frames * UNIT,
            last_ns: now_ns,
        }
    }

    /// Grants up to `want` frames (at least one) at `now_ns` (monotonic, same origin as
    /// `new`) and takes their tokens; or says how long to wait.
    pub fn grant(&mut self, now_ns: u64, want: u32) -> Pace {
        let elapsed = now_ns.saturating_sub(self.last_ns);
        self.last_ns = self.last_ns.max(now_ns);
        let cap = u128::from(MAX_BURST) * UNIT;
        self.tokens = (self.tokens + u128::from(elapsed) * self.rate).min(cap);
        let have = (self.tokens / UNIT) as u32;
        let n = have.min(want.max(1));
        if n > 0 {
            self.tokens -= u128::from(n) * UNIT;
            return Pace::Go(n);
        }
        let ns = (self.wake - self.tokens).div_ceil(self.rate);
        Pace::Wait(Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer(rate: u64) -> Pacer {
        Pacer::new(NonZeroU64::new(rate).expect("non-zero rate"), 0)
    }

    /// Runs a greedy sender for `secs` simulated seconds, sleeping as told plus
    /// `oversleep_ns`; returns (frames, largest grant, wake-ups).
    fn simulate(rate: u64, secs: u64, oversleep_ns: u64) -> (u64, u32, u64) {
        let mut p = pacer(rate);
        let (mut now, mut frames, mut largest, mut wakeups) = (0u64, 0u64, 0u32, 0u64);
        let end = secs * 1_000_000_000;
        loop {
            match p.grant(now, u32::MAX) {
                Pace::Go(n) => {
                    frames += u64::from(n);
                    largest = largest.max(n);
                }
                Pace::Wait(_) if now == end => break,
                Pace::Wait(d) => {
                    assert!(d > Duration::ZERO);
                    // the last wake-up happens at `end`: count what was earned by then
                    now = (now + d.as_nanos() as u64 + oversleep_ns).min(end);
                    wakeups += 1;
                }
            }
        }
        (frames, largest, wakeups)
    }

    #[test]
    fn starts_with_one_frame_then_waits() {
        let mut p = pacer(1000);
        assert_eq!(p.grant(0, 32), Pace::Go(1));
        // 1000 pps: less than a frame accrues in 200 µs, so wait for one
        assert_eq!(p.grant(0, 32), Pace::Wait(Duration::from_millis(1)));
        assert_eq!(p.grant(400_000, 32), Pace::Wait(Duration::from_micros(600)));
        assert_eq!(p.grant(1_000_000, 32), Pace::Go(1));
    }

    #[test]
    fn long_run_rate_is_exact() {
        for (rate, secs) in [(3, 20), (1000, 10), (100_000, 2), (2_500_000, 1)] {
            let (frames, largest, _) = simulate(rate, secs, 0);
            let want = rate * secs;
            assert!(frames.abs_diff(want) <= 1, "{rate} pps: {frames} of {want}");
            assert!(largest <= MAX_BURST, "{rate} pps: burst of {largest}");
        }
    }

    #[test]
    fn oversleeping_costs_no_frames() {
        // a sleep that always ends 80 µs late still yields the rate: the bucket catches up
        let (frames, largest, _) = simulate(50_000, 2, 80_000);
        assert!(frames.abs_diff(100_000) <= MAX_BURST as u64, "{frames}");
        assert!(largest <= MAX_BURST);
    }

    #[test]
    fn waits_are_long_enough_to_sleep() {
        // at 10,000 pps the sender wakes every 200 µs for 2 frames, not every 100 µs for 1
        let (frames, _, wakeups) = simulate(10_000, 1, 0);
        assert!(frames.abs_diff(10_000) <= 1);
        assert!(wakeups <= 5_001, "{wakeups} wake-ups");
        let mut p = pacer(10_000);
        assert_eq!(p.grant(0, 32), Pace::Go(1));
        assert_eq!(p.grant(0, 32), Pace::Wait(Duration::from_micros(200)));
    }

    #[test]
    fn idle_time_earns_one_burst_at_most() {
        let mut p = pacer(1_000_000);
        assert_eq!(p.grant(0, 100), Pace::Go(1));
        assert_eq!(p.grant(5_000_000_000, 100), Pace::Go(MAX_BURST));
        assert!(matches!(p.grant(5_000_000_000, 100), Pace::Wait(_)));
    }

    #[test]
    fn grants_no_more_than_wanted() {
        let mut p = pacer(1_000_000);
        assert_eq!(p.grant(1_000_000, 5), Pace::Go(5));
        assert_eq!(p.grant(1_000_000, 5), Pace::Go(5));
        assert_eq!(p.grant(1_000_000, 100), Pace::Go(MAX_BURST - 10));
    }

    #[test]
    fn time_going_backwards_is_ignored() {
        let mut p = pacer(1000);
        assert_eq!(p.grant(10_000_000, 32), Pace::Go(11));
        assert!(matches!(p.grant(5_000_000, 32), Pace::Wait(_)));
        assert_eq!(p.grant(11_000_000, 32), Pace::Go(1));
    }
}
