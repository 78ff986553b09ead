//! Capture: where frames come from.
//!
//! - [`file`]: pcap and pcapng files, memory-mapped, lossless (waits for full shards);
//! - [`live`]: reader threads over kernel rings, droppable (never blocks a ring), with the
//!   backends [`afpacket`] (TPACKET_V3 ring, fanout) and AF_XDP;
//! - [`filter`]: capture filters in tcpdump syntax.

pub mod afpacket;
pub mod file;
pub mod filter;
pub mod live;

pub use file::replay_files;
pub use live::{capture_live, BypassFactory, FrameSource, KernelCounters, LiveInput};
