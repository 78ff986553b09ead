//! flowmesh-loadgen: a traffic generator for flowmesh, independent of the daemon's code.
//!
//! It builds every byte itself (Ethernet to TLS/QUIC), writes classic pcap files from
//! profiles, and records in a manifest what it generated, including the JA3/JA4 each
//! handshake must yield, computed by its own fingerprint code. `send` puts such frames on an
//! interface through AF_PACKET; `bench` times flowmesh against Suricata and tshark on a file,
//! or (`drive`) measures a running daemon capturing what `send` puts on its link.

pub mod bench;
pub mod drive;
pub mod fingerprint;
pub mod flows;
pub mod gen;
pub mod netns;
pub mod pcap;
pub mod prom;
pub mod quic;
pub mod rng;
pub mod send;
pub mod tls;
pub mod wire;
