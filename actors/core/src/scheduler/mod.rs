//! Scheduler arithmetic: which of several equivalent targets (workers, sinks) gets the
//! next item.
//!
//! Owns the time-decayed service-time estimate ([`ewma`]) and the least-expected-wait
//! choice built on it ([`balance`]). Pure like the rest of the crate: times are
//! caller-supplied nanoseconds on any monotonic clock, and nothing here reads a clock,
//! allocates per pick, or draws random numbers, so a schedule is reproducible from its
//! inputs.

pub mod balance;
pub mod ewma;

pub use balance::Balancer;
pub use ewma::Ewma;

/// Errors from building or addressing scheduler state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// A zero half-life would make every estimate forget everything at once.
    #[error("EWMA half-life must be at least 1 ns")]
    ZeroHalfLife,
    /// A target index at or beyond the number of targets.
    #[error("no target {target}: the balancer has {len}")]
    NoSuchTarget {
        /// The index asked for.
        target: usize,
        /// Number of targets.
        len: usize,
    },
}
