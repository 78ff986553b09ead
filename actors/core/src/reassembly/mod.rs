//! TCP stream reassembly of the first bytes of each direction.
//!
//! flowmesh reassembles only what handshake parsers need: the first `depth` bytes of each
//! direction of a flow that is still being inspected. Past the depth, or once the parser
//! has what it wants, a flow costs only counters. Memory is bounded per direction (the
//! depth) and per shard ([`ReassemblyBudget`]).

pub mod seq;
mod stream;

pub use stream::{InsertOutcome, ReassemblyConfig, ReassemblyStats, StreamReassembler};

/// Bytes of reassembly buffer in use across one shard, against a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyBudget {
    /// Bytes currently reserved by stream buffers.
    pub used: usize,
    /// Upper bound on `used`.
    pub cap: usize,
}

impl ReassemblyBudget {
    /// A budget of `cap` bytes, none used.
    pub fn new(cap: usize) -> Self {
        ReassemblyBudget { used: 0, cap }
    }

    /// Reserves `n` bytes; false (and nothing reserved) when that would exceed the cap.
    pub fn try_reserve(&mut self, n: usize) -> bool {
        match self.used.checked_add(n) {
            Some(total) if total <= self.cap => {
                self.used = total;
                true
            }
            _ => false,
        }
    }

    /// Returns `n` bytes to the budget.
    pub fn release(&mut self, n: usize) {
        self.used = self.used.saturating_sub(n);
    }
}
