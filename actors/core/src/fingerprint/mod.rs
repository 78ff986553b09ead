//! Handshake fingerprinting: TLS hello parsing ([`tls`]) and the JA3/JA3S ([`ja3`]) and
//! JA4/JA4S ([`ja4`]) fingerprints computed from the parsed hellos.
//!
//! Everything here is pure: bytes in, events and strings out; no I/O, no clock.

pub mod ja3;
pub mod ja4;
pub mod tls;
