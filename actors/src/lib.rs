//! flowmesh-actors: thin actix actors around the pure stages of flowmesh-core, the runtime
//! they share, and the wiring of a replay.
//!
//! - [`runtime`]: priority inboxes, bounded edges with explicit backpressure, the outbox,
//!   supervision with a restart budget, per-stage counters;
//! - [`stages`]: shard, handshake worker, scheduler, encoder and writer stages;
//! - [`capture`]: capture files and live sources (AF_PACKET, AF_XDP with our XDP program
//!   and its in-kernel bypass), capture filters; [`batch`]: packet batches;
//! - [`pipeline`]: starts and connects the stages and runs a replay to the end;
//! - [`stats`]: where stages publish their counters;
//! - [`storage`]: the flow store on RocksDB.

pub mod batch;
pub mod capture;
pub mod pipeline;
pub mod runtime;
pub mod stages;
pub mod stats;
pub mod storage;
