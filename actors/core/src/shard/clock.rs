//! When flows are checked for idleness: every interval of packet time, on the capture's
//! clock (the latest timestamp seen over all packets).
//!
//! The capture, which sees every packet, owns the clock and tells every shard when to
//! expire (a tick in each shard's stream). So every shard expires at the same points of the
//! packet stream whatever the number of shards, and a flow's end reason does not depend on
//! which other flows share its shard.

use flowmesh_schemas::Timestamp;

/// The expiry clock. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryClock {
    interval_ns: i64,
    now: Option<Timestamp>,
    next: Option<Timestamp>,
}

impl ExpiryClock {
    /// A clock that ticks every `interval_ns` of packet time.
    pub fn new(interval_ns: i64) -> Self {
        ExpiryClock {
            interval_ns: interval_ns.max(1),
            now: None,
            next: None,
        }
    }

    /// Observes a packet's timestamp; returns the time to expire at if a tick is due. Time
    /// never runs backwards: an older timestamp (a file from earlier) does not move it.
    pub fn observe(&mut self, ts: Timestamp) -> Option<Timestamp> {
        let now = self.now.map_or(ts, |n| n.max(ts));
        self.now = Some(now);
        let next = *self.next.get_or_insert(now.add_nanos(self.interval_ns));
        if now < next {
            return None;
        }
        self.next = Some(now.add_nanos(self.interval_ns));
        Some(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_once_per_interval_on_the_latest_time() {
        let mut c = ExpiryClock::new(10);
        let t = |n| Timestamp(n);
        assert_eq!(c.observe(t(100)), None);
        assert_eq!(c.observe(t(105)), None);
        // Older packets do not move the clock.
        assert_eq!(c.observe(t(50)), None);
        assert_eq!(c.observe(t(110)), Some(t(110)));
        assert_eq!(c.observe(t(119)), None);
        assert_eq!(c.observe(t(50)), None);
        assert_eq!(c.observe(t(500)), Some(t(500)));
        assert_eq!(c.observe(t(505)), None);
    }
}
