//! The flow store, free of any database: key layouts, filters and query planning, and
//! the store's logic over a minimal [`KvEngine`] trait. RocksDB implements the trait in
//! `flowmesh-actors`; [`MemEngine`] implements it here for tests.
//!
//! Layout (see [`keys`]): flow records in [`Family::Flows`] under their [`FlowId`]
//! (first-seen time, then a write-time sequence number); one index family per searchable
//! field with keys `[value][time][seq]`; per-minute fingerprint counters in
//! [`Family::Counts`]; the next sequence number in [`Family::Meta`].

pub mod engine;
pub mod filter;
pub mod keys;
mod open;
mod query;
pub mod retention;
pub mod store;
#[cfg(test)]
mod tests;

pub use engine::{EngineBatch, EngineError, Family, FamilySize, KvEngine, MemEngine};
pub use filter::{parse_cidr, FilterError, FlowFilter, Plan};
pub use keys::{FlowId, FlowIdError, TopField};
pub use retention::RetentionReport;
pub use store::{Page, Store, StoreError, StoreStats, Written, DEFAULT_SCAN_BUDGET};
