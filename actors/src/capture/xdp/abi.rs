//! The Rust mirror of `ebpf/flowmesh_xdp.h`: the structs the XDP program and user space
//! exchange through maps, with the same sizes (asserted here and by `_Static_assert` in
//! the header), and the canonical bypass key built the way the C program builds it.
//!
//! Invariant: every struct is `#[repr(C)]` with explicit padding, so all bit patterns are
//! valid and no byte is uninitialised (the kernel hashes every byte of a key).

use std::net::IpAddr;

use flowmesh_schemas::flow::{Endpoint, FlowKey};

/// VLAN id of an untagged (or only priority-tagged) frame in a [`BypassKey`].
pub const VLAN_NONE: u16 = 0xFFFF;

/// `struct fm_bypass_key`: the symmetric flow key of the bypass map.
///
/// Endpoint "a" is the lower of (address as 16 bytes, IPv4 mapped to `::ffff:a.b.c.d`,
/// then port) compared as big-endian bytes. Ports are in host order.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BypassKey {
    /// Address of endpoint "a" (IPv6, or IPv4-mapped).
    pub addr_a: [u8; 16],
    /// Address of endpoint "b".
    pub addr_b: [u8; 16],
    /// Port of "a" (0 for protocols without ports).
    pub port_a: u16,
    /// Port of "b".
    pub port_b: u16,
    /// Outermost non-zero VLAN id, or [`VLAN_NONE`].
    pub vlan: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Always 0.
    pub pad: u8,
}
const _: () = assert!(size_of::<BypassKey>() == 40);

/// `struct fm_bypass_value`: what the program counted for one bypassed flow.
/// Index 0 = sent by endpoint "a" of the key.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BypassValue {
    /// Packets per direction.
    pub packets: [u64; 2],
    /// Frame bytes per direction.
    pub bytes: [u64; 2],
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) of the last counted packet.
    pub last_seen_ns: u64,
    /// OR of the TCP flag bytes seen per direction (low 8 bits used).
    pub tcp_flags: [u32; 2],
}
const _: () = assert!(size_of::<BypassValue>() == 48);

/// `enum fm_bypass_action`: `bypass_action` of [`ProgramConfig`] for XDP_PASS.
pub const BYPASS_PASS: u32 = 0;
/// `enum fm_bypass_action`: `bypass_action` of [`ProgramConfig`] for XDP_DROP.
pub const BYPASS_DROP: u32 = 1;

/// `struct fm_config`: the one entry of the `config` map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgramConfig {
    /// [`BYPASS_PASS`] or [`BYPASS_DROP`].
    pub bypass_action: u32,
    /// Always 0.
    pub pad: u32,
}
const _: () = assert!(size_of::<ProgramConfig>() == 8);

/// `FM_CNT_MAX`: the number of per-CPU counters.
pub const COUNTERS: usize = 9;

/// Indexes of [`CounterBlock::c`] (`enum fm_counter`).
pub mod counter {
    /// Packets the program ran on.
    pub const SEEN: usize = 0;
    /// Redirected to the socket of the receive queue.
    pub const REDIRECTED: usize = 1;
    /// No socket on that queue: passed to the kernel.
    pub const REDIRECT_FAILED: usize = 2;
    /// Packets of bypassed flows (counted in the map, then passed or dropped).
    pub const BYPASS_PACKETS: usize = 3;
    /// Their frame bytes.
    pub const BYPASS_BYTES: usize = 4;
    /// FIN/RST segments of bypassed flows, redirected and not counted in the map.
    pub const BYPASS_FIN_RST: usize = 5;
    /// Not IPv4/IPv6, or a truncated/malformed L2/L3 header: passed to the kernel.
    pub const UNPARSED: usize = 6;
    /// IP fragments: redirected without a bypass lookup.
    pub const FRAGMENTS: usize = 7;
    /// Transport header not reached: redirected without a bypass lookup.
    pub const L4_UNREACHED: usize = 8;
}

/// `struct fm_counters`: one CPU's counters, indexed by [`counter`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CounterBlock {
    /// The counters.
    pub c: [u64; COUNTERS],
}
const _: () = assert!(size_of::<CounterBlock>() == 8 * COUNTERS);

// SAFETY: each type is #[repr(C)], made only of integers and integer arrays with no
// implicit padding (the sizes are asserted above), so every byte is initialised and every
// bit pattern is a valid value: the kernel may read and write them as plain bytes.
unsafe impl aya::Pod for BypassKey {}
// SAFETY: as above.
unsafe impl aya::Pod for BypassValue {}
// SAFETY: as above.
unsafe impl aya::Pod for ProgramConfig {}
// SAFETY: as above.
unsafe impl aya::Pod for CounterBlock {}

/// An address as the 16 bytes the program compares (IPv4 as `::ffff:a.b.c.d`).
fn addr_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

impl BypassKey {
    /// The key of a packet from `src` to `dst`, and its direction: 0 when `src` is
    /// endpoint "a", 1 otherwise (the index the program counts it under).
    pub fn from_packet(
        src: Endpoint,
        dst: Endpoint,
        proto: u8,
        vlan: Option<u16>,
    ) -> (Self, usize) {
        let s = (addr_bytes(src.ip), src.port);
        let d = (addr_bytes(dst.ip), dst.port);
        // Tuples compare lexicographically: address bytes, then the port as a number,
        // which is the big-endian byte order the C code compares.
        let (a, b, dir) = if s <= d { (s, d, 0) } else { (d, s, 1) };
        let key = BypassKey {
            addr_a: a.0,
            addr_b: b.0,
            port_a: a.1,
            port_b: b.1,
            vlan: vlan.unwrap_or(VLAN_NONE),
            proto,
            pad: 0,
        };
        (key, dir)
    }

    /// The bypass key of a flow.
    pub fn from_flow_key(key: &FlowKey) -> Self {
        Self::with_lo_index(key).0
    }

    /// The bypass key of a flow and the value index of packets sent by `key.lo` (0 when
    /// `lo` is endpoint "a"; always so for a key of one address family).
    pub fn with_lo_index(key: &FlowKey) -> (Self, usize) {
        Self::from_packet(key.lo, key.hi, key.proto, key.vlan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
            any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
            // Few distinct values, so equal addresses and ports come up.
            (0u8..3).prop_map(|x| IpAddr::V4(Ipv4Addr::new(10, 0, 0, x))),
        ]
    }

    fn endpoint() -> impl Strategy<Value = Endpoint> {
        (ip(), prop_oneof![any::<u16>(), 0u16..3]).prop_map(|(ip, port)| Endpoint { ip, port })
    }

    /// Two endpoints of one family, as a real packet has.
    fn same_family_pair() -> impl Strategy<Value = (Endpoint, Endpoint)> {
        (endpoint(), endpoint()).prop_map(|(a, mut b)| {
            b.ip = match (a.ip, b.ip) {
                (IpAddr::V4(_), IpAddr::V6(v6)) => IpAddr::V4(Ipv4Addr::from(
                    <[u8; 4]>::try_from(&v6.octets()[12..]).expect("4 bytes"),
                )),
                (IpAddr::V6(_), IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
                (_, ip) => ip,
            };
            (a, b)
        })
    }

    proptest! {
        #[test]
        fn both_directions_give_one_key(
            src in endpoint(), dst in endpoint(), proto in any::<u8>(), vlan in any::<Option<u16>>()
        ) {
            let (k1, d1) = BypassKey::from_packet(src, dst, proto, vlan);
            let (k2, d2) = BypassKey::from_packet(dst, src, proto, vlan);
            prop_assert_eq!(k1, k2);
            if (addr_bytes(src.ip), src.port) != (addr_bytes(dst.ip), dst.port) {
                prop_assert_ne!(d1, d2);
            }
        }

        #[test]
        fn flow_key_lo_maps_to_counter_index((src, dst) in same_family_pair(), proto in any::<u8>()) {
            let (flow, src_is_lo) = FlowKey::from_packet(src, dst, proto, Some(7));
            let (key, lo_index) = BypassKey::with_lo_index(&flow);
            let (pkt_key, pkt_dir) = BypassKey::from_packet(src, dst, proto, Some(7));
            prop_assert_eq!(key, pkt_key);
            prop_assert_eq!(lo_index, 0, "one family: FlowKey order is the byte order");
            // The program counts this packet at pkt_dir; lo sent it iff src is lo.
            prop_assert_eq!(pkt_dir == lo_index, src_is_lo);
        }
    }

    #[test]
    fn ipv4_key_layout() {
        let a = Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            port: 443,
        };
        let b = Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
            port: 50000,
        };
        let (k, dir) = BypassKey::from_packet(a, b, 6, None);
        assert_eq!(dir, 1, "10.1.2.3 < 192.0.2.1");
        assert_eq!(
            k.addr_a,
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3]
        );
        assert_eq!(k.addr_b[12..], [192, 0, 2, 1]);
        assert_eq!(
            (k.port_a, k.port_b, k.vlan, k.proto, k.pad),
            (50000, 443, VLAN_NONE, 6, 0)
        );
    }

    #[test]
    fn equal_addresses_order_by_port_number() {
        let ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
        // 0x0100 > 0x00ff as a number and as big-endian bytes.
        let (k, dir) = BypassKey::from_packet(
            Endpoint { ip, port: 0x0100 },
            Endpoint { ip, port: 0x00ff },
            17,
            Some(5),
        );
        assert_eq!((k.port_a, k.port_b, k.vlan, dir), (0x00ff, 0x0100, 5, 1));
    }
}
