//! flowmesh-actors: thin actix actors around the pure stages of flowmesh-core, and the
//! runtime they share.
//!
//! So far this crate holds the [`runtime`]: priority inboxes, bounded edges with explicit
//! backpressure, supervision with a restart budget, and per-stage counters. The stage actors
//! (capture, reassembly shards, fingerprint workers, scheduler, sink) build on it.

pub mod runtime;
