//! Link, network and transport headers written into a reusable buffer.
//!
//! Everything here writes bytes; nothing parses. Checksums are computed, never left zero.

pub mod checksum;
pub mod frame;

pub use frame::{Addrs, FrameBuilder, TcpFlags, TcpMeta, L2};
