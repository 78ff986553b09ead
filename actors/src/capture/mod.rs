//! Capture: where frames come from.
//!
//! - [`file`]: pcap and pcapng files, memory-mapped, lossless (waits for full shards);
//! - [`live`]: reader threads over kernel rings, droppable (never blocks a ring), with the
//!   backends [`afpacket`] (TPACKET_V3 ring, fanout) and [`xdp`] (AF_XDP sockets fed by
//!   our XDP program, with in-kernel bypass);
//! - [`filter`]: capture filters in tcpdump syntax.

pub mod afpacket;
pub mod afxdp;
pub mod file;
pub mod filter;
pub mod live;
pub mod xdp;

pub use file::replay_files;
pub use live::{capture_live, BypassFactory, FrameSource, KernelCounters, LiveInput};
