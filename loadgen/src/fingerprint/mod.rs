//! JA3/JA3S (Salesforce) and JA4/JA4S (FoxIO) computed from the fields loadgen chose.
//!
//! This is loadgen's own implementation, validated against the reference values of
//! the public corpus; it shares no code with the daemon.

pub mod ja3;
pub mod ja4;

pub use ja3::{ja3, ja3s, md5_hex};
pub use ja4::{ja4, ja4s, Transport};
