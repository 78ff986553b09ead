//! CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns()`, and its conversion to wall-clock
//! [`Timestamp`]s.
//!
//! The conversion uses the current offset between CLOCK_REALTIME and CLOCK_MONOTONIC, so
//! a step of the wall clock (settimeofday, a large NTP correction) moves converted past
//! times with it; for the seconds-old `last_seen` of a bypassed flow that is what a reader
//! of flow records expects.

use flowmesh_schemas::Timestamp;

/// Reads `clock` in nanoseconds.
fn now_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live timespec; the clocks used here always exist on Linux, so the
    // call cannot fail.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    // Both fields are non-negative for these clocks.
    let d = std::time::Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    );
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// CLOCK_MONOTONIC now, in nanoseconds (what `bpf_ktime_get_ns()` returns).
pub fn mono_now_ns() -> u64 {
    u64::try_from(now_ns(libc::CLOCK_MONOTONIC)).unwrap_or(0)
}

/// The wall-clock time of the CLOCK_MONOTONIC instant `mono_ns`.
pub fn mono_to_timestamp(mono_ns: u64) -> Timestamp {
    // Read the wall clock between two monotonic reads and take their midpoint, so the
    // offset is not skewed by a preemption between the reads.
    let m1 = now_ns(libc::CLOCK_MONOTONIC);
    let real = now_ns(libc::CLOCK_REALTIME);
    let m2 = now_ns(libc::CLOCK_MONOTONIC);
    let mono_now = m1 + (m2 - m1) / 2;
    let mono = i64::try_from(mono_ns).unwrap_or(i64::MAX);
    Timestamp(real.saturating_sub(mono_now.saturating_sub(mono)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_converts_to_about_now() {
        let wall = now_ns(libc::CLOCK_REALTIME);
        let ts = mono_to_timestamp(mono_now_ns());
        assert!(
            (ts.as_nanos() - wall).abs() < 50_000_000,
            "{ts:?} vs {wall}"
        );
    }

    #[test]
    fn one_second_earlier_is_one_second_earlier() {
        let mono = mono_now_ns();
        let a = mono_to_timestamp(mono);
        let b = mono_to_timestamp(mono - 1_000_000_000);
        let d = a.as_nanos() - b.as_nanos();
        assert!((d - 1_000_000_000).abs() < 1_000_000, "{d}");
    }
}
