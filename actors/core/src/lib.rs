//! flowmesh-core: the pure packet stages of flowmesh.
//!
//! Capture-file parsing, frame decoding and IP defragmentation, the flow table, TCP
//! reassembly, TLS/QUIC handshake parsing with JA3/JA3S/JA4/JA4S fingerprints, and the
//! scheduler's load-balancing arithmetic (time-decayed EWMA, least expected wait).
//! No actors, no async runtime, no sockets, no clock, no randomness: every call that
//! depends on time takes `now` (a packet timestamp), so any result is reproducible from
//! bytes and timestamps alone.
#![forbid(unsafe_code)]
pub mod capture;
pub mod decode;
pub mod fingerprint;
pub mod flow;
pub mod handshake;
pub mod quic;
pub mod reassembly;
pub mod scheduler;
pub mod shard;
pub mod stats;
pub mod storage;
