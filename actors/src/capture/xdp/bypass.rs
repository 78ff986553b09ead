//! [`BypassMap`]: user space's handle on the XDP program's bypass map, shared by the
//! shard threads.
//!
//! A shard inserts a flow once it no longer needs its packets; from then on the program
//! counts them in the map instead of redirecting them (except TCP FIN/RST segments, which
//! still come up so the shard sees the flow end). At the end of the flow the shard takes
//! the entry, which removes it and returns what was counted.
//!
//! The handle is a file descriptor of the map and raw bpf(2) element calls, so clones are
//! usable concurrently from any thread: the kernel serialises element operations.
//! Invariant: the map's key and value sizes are those of [`BypassKey`] and
//! [`BypassValue`] (checked when the handle is made), as `sys` requires.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use flowmesh_schemas::FlowKey;

use super::abi::{BypassKey, BypassValue};
use super::{clock, sys, XdpError};

/// What the program counted for a bypassed flow, in [`FlowKey`] order: index 0 = sent by
/// `FlowKey.lo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BypassCounters {
    /// Packets per direction.
    pub packets: [u64; 2],
    /// Frame bytes per direction (Ethernet header included, no FCS).
    pub bytes: [u64; 2],
    /// OR of the TCP flags seen per direction (FIN and RST segments are never counted).
    pub tcp_flags: [u8; 2],
    /// CLOCK_MONOTONIC of the last counted packet, or of the insertion if none; see
    /// [`clock::mono_to_timestamp`].
    pub last_seen_mono_ns: u64,
}

impl BypassCounters {
    /// Reorders a map value so that index 0 is the direction sent by `lo`, which the
    /// value holds at `lo_index`.
    fn from_value(v: &BypassValue, lo_index: usize) -> Self {
        let (lo, hi) = if lo_index == 0 { (0, 1) } else { (1, 0) };
        BypassCounters {
            packets: [v.packets[lo], v.packets[hi]],
            bytes: [v.bytes[lo], v.bytes[hi]],
            // The program ORs flag bytes only: the high bits are always 0.
            tcp_flags: [v.tcp_flags[lo] as u8, v.tcp_flags[hi] as u8],
            last_seen_mono_ns: v.last_seen_ns,
        }
    }
}

/// A handle on the bypass map: `Clone + Send + Sync`, usable from several threads at once.
/// The map lives while any handle (or the loaded program) does.
#[derive(Debug, Clone)]
pub struct BypassMap {
    fd: Arc<OwnedFd>,
    capacity: u32,
}

impl BypassMap {
    /// Wraps `fd`, a hash map whose key and value sizes the caller has checked.
    pub(super) fn new(fd: OwnedFd, capacity: u32) -> Self {
        BypassMap {
            fd: Arc::new(fd),
            capacity,
        }
    }

    /// Starts bypassing `key`: the program counts its packets instead of redirecting them.
    /// A flow already present is left as it is (its counters keep running).
    pub fn insert(&self, key: &FlowKey) -> Result<(), XdpError> {
        let value = BypassValue {
            last_seen_ns: clock::mono_now_ns(),
            ..BypassValue::default()
        };
        let k = BypassKey::from_flow_key(key);
        match sys::update_elem(self.fd.as_fd(), &k, &value, sys::BPF_NOEXIST) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            // A preallocated hash map that is full refuses new keys with E2BIG.
            Err(e) if e.raw_os_error() == Some(libc::E2BIG) => Err(XdpError::BypassFull {
                capacity: self.capacity,
            }),
            Err(source) => Err(XdpError::Bypass {
                op: "insert",
                source,
            }),
        }
    }

    /// Removes `key` and returns its counters (`None` if it was not bypassed). Lookup and
    /// delete are one atomic step: no packet counted in between is lost.
    pub fn take(&self, key: &FlowKey) -> Result<Option<BypassCounters>, XdpError> {
        self.lookup(key, true, "take")
    }

    /// The counters of `key` so far, leaving it bypassed.
    pub fn peek(&self, key: &FlowKey) -> Result<Option<BypassCounters>, XdpError> {
        self.lookup(key, false, "peek")
    }

    /// The maximum number of flows the map holds.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    fn lookup(
        &self,
        key: &FlowKey,
        take: bool,
        op: &'static str,
    ) -> Result<Option<BypassCounters>, XdpError> {
        let (k, lo_index) = BypassKey::with_lo_index(key);
        let value = sys::lookup_elem::<BypassKey, BypassValue>(self.fd.as_fd(), &k, take)
            .map_err(|source| XdpError::Bypass { op, source })?;
        Ok(value.map(|v| BypassCounters::from_value(&v, lo_index)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_follow_lo() {
        let v = BypassValue {
            packets: [1, 2],
            bytes: [100, 200],
            last_seen_ns: 9,
            tcp_flags: [0x02, 0x12],
        };
        let same = BypassCounters::from_value(&v, 0);
        assert_eq!(
            (same.packets, same.bytes, same.tcp_flags),
            ([1, 2], [100, 200], [0x02, 0x12])
        );
        let swapped = BypassCounters::from_value(&v, 1);
        assert_eq!(
            (
                swapped.packets,
                swapped.bytes,
                swapped.tcp_flags,
                swapped.last_seen_mono_ns
            ),
            ([2, 1], [200, 100], [0x12, 0x02], 9)
        );
    }

    #[test]
    fn handle_is_shareable() {
        fn shareable<T: Clone + Send + Sync>() {}
        shareable::<BypassMap>();
    }
}
