//! In-kernel bypass, as the shard sees it: a place that counts a flow's packets instead
//! of delivering them (the XDP program's bypass map), behind a trait so the shard stays
//! free of I/O and tests can stand in for the kernel.
//!
//! The shard asks for a flow to be bypassed once its inspection is over (handshake
//! fingerprinted, or given up: past the depth, not TLS/QUIC). Until the flow ends, the
//! kernel counts its packets; TCP segments with FIN or RST still reach the shard, so the
//! flow ends as usual. When it ends, the shard takes the kernel's counts back and adds them
//! to the record, so packets and bytes stay exact. A flow that looks idle asks the kernel
//! when it last saw a packet before it is timed out.

use flowmesh_schemas::{FlowKey, Timestamp};

/// What the kernel counted for a bypassed flow, per physical side (index
/// [`crate::flow::Side::index`]: 0 = sent by `key.lo`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelCounts {
    /// Packets.
    pub packets: [u64; 2],
    /// Bytes on the wire.
    pub bytes: [u64; 2],
    /// OR of TCP flags.
    pub tcp_flags: [u8; 2],
    /// The last packet the kernel counted, if any.
    pub last_seen: Option<Timestamp>,
}

/// Where bypassed flows are counted.
pub trait KernelBypass: Send + std::fmt::Debug {
    /// Starts counting `key`'s packets in the kernel; `false` if it could not (map full,
    /// error), in which case the flow's packets keep coming to the shard.
    fn insert(&mut self, key: &FlowKey) -> bool;

    /// When the kernel last counted a packet of `key`, if it holds the flow.
    fn last_seen(&mut self, key: &FlowKey) -> Option<Timestamp>;

    /// Stops bypassing `key` and returns what the kernel counted (`None` if the kernel no
    /// longer holds it, e.g. evicted from a full map: its packets came to the shard since).
    fn take(&mut self, key: &FlowKey) -> Option<KernelCounts>;
}
