//! flowmesh-actors: thin actix actors around the pure stages of flowmesh-core, the runtime
//! they share, and the wiring of a replay.
//!
//! - [`runtime`]: priority inboxes, bounded edges with explicit backpressure, the outbox,
//!   supervision with a restart budget, per-stage counters;
//! - [`stages`]: shard, handshake worker, scheduler, encoder and writer stages;
//! - [`capture`]: the file source; [`batch`]: packet batches;
//! - [`pipeline`]: starts and connects the stages and runs a replay to the end;
//! - [`stats`]: where stages publish their counters;
//! - [`storage`]: the flow store on RocksDB;
//! - [`xdp`]: AF_XDP capture: the XDP program, its sockets and the bypass map.

pub mod batch;
pub mod capture;
pub mod pipeline;
pub mod runtime;
pub mod stages;
pub mod stats;
pub mod storage;
pub mod xdp;
