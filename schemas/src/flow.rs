//! Flow identity and classification: the symmetric flow key, transport, application
//! protocol, direction and the reason a flow ended.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// IANA protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IANA protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IANA protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IANA protocol number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;

/// One end of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// IP address.
    pub ip: IpAddr,
    /// Port (0 for protocols without ports).
    pub port: u16,
}

impl Endpoint {
    /// `self <= other` in [`Endpoint`]'s order, comparing addresses of one family as
    /// integers (what the derived order of their octets amounts to) instead of byte by
    /// byte: it runs twice per packet.
    #[inline]
    fn le_fast(&self, other: &Endpoint) -> bool {
        match (self.ip, other.ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (a.to_bits(), self.port) <= (b.to_bits(), other.port),
            (IpAddr::V6(a), IpAddr::V6(b)) => (a.to_bits(), self.port) <= (b.to_bits(), other.port),
            _ => self <= other,
        }
    }
}

/// A symmetric flow key: both directions of a conversation produce the same key.
/// The endpoints are stored in canonical order (`lo <= hi`); which one is the client is
/// decided by the flow table, not by the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    /// The lower endpoint in (ip, port) order.
    pub lo: Endpoint,
    /// The higher endpoint in (ip, port) order.
    pub hi: Endpoint,
    /// IP protocol number.
    pub proto: u8,
    /// Outermost VLAN id, if any: the same 5-tuple on two VLANs is two flows.
    pub vlan: Option<u16>,
}

impl FlowKey {
    /// Builds the key of a packet from `src` to `dst`, and tells whether the packet
    /// travels from `lo` to `hi` (`true`) or back.
    #[inline]
    pub fn from_packet(src: Endpoint, dst: Endpoint, proto: u8, vlan: Option<u16>) -> (Self, bool) {
        if src.le_fast(&dst) {
            (
                FlowKey {
                    lo: src,
                    hi: dst,
                    proto,
                    vlan,
                },
                true,
            )
        } else {
            (
                FlowKey {
                    lo: dst,
                    hi: src,
                    proto,
                    vlan,
                },
                false,
            )
        }
    }

    /// A direction-independent 64-bit hash for choosing a shard (`hash % n`): both
    /// directions of a flow give the same value because the key is canonical (`lo <= hi`).
    ///
    /// Stable: the value depends only on the key, never on the platform, the run or the
    /// build (explicit `u64` arithmetic on the numeric values of the fields; no seed, no
    /// `std::hash`), and stays the same across versions until this function is
    /// deliberately changed (the `symmetric_hash_is_pinned` test guards it).
    ///
    /// FxHash-style rotate-xor-multiply over whole words of the key (an IPv4 key is two
    /// words, an IPv6 key five), then the MurmurHash3 `fmix64` finalizer so that every
    /// input bit reaches the low bits `% n` looks at. Unrelated to the flow table's
    /// `FxHasher`, so the keys that land on one shard still spread over its table.
    #[inline]
    pub fn symmetric_hash(&self) -> u64 {
        /// rustc-hash 1.x's multiplier (odd, so each step is a bijection of `h ^ w`).
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mix = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
        let (h, tail) = match (self.lo.ip, self.hi.ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (mix(0, v4_pair(a, b)), self.tail_word()),
            (a, b) => {
                let (a, b) = (v6_bits(a), v6_bits(b));
                let words = [(a >> 64) as u64, a as u64, (b >> 64) as u64, b as u64];
                // Bit 63 of the tail marks the family: a v6 key never equals a v4 one.
                (words.into_iter().fold(0, mix), self.tail_word() | 1 << 63)
            }
        };
        fmix64(mix(h, tail))
    }

    /// Ports, protocol and VLAN (with a presence bit, so `None` differs from `Some(0)`)
    /// packed in one word: bits 0-15 lo port, 16-31 hi port, 32-39 proto, 40-56 VLAN.
    #[inline]
    fn tail_word(&self) -> u64 {
        u64::from(self.lo.port)
            | u64::from(self.hi.port) << 16
            | u64::from(self.proto) << 32
            | u64::from(self.vlan.map_or(0, |v| u32::from(v) | 0x1_0000)) << 40
    }
}

/// Two IPv4 addresses in one word.
#[inline]
fn v4_pair(a: std::net::Ipv4Addr, b: std::net::Ipv4Addr) -> u64 {
    u64::from(u32::from(a)) << 32 | u64::from(u32::from(b))
}

/// An address as 128 bits (IPv4 as its IPv4-mapped IPv6 form).
#[inline]
fn v6_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(x) => x.to_ipv6_mapped().to_bits(),
        IpAddr::V6(x) => x.to_bits(),
    }
}

/// MurmurHash3's 64-bit finalizer (Appleby, `fmix64`): a bijection in which every input
/// bit affects every output bit with probability close to 1/2.
#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ k >> 33
}

impl std::hash::Hash for FlowKey {
    /// Feeds the key to the hasher as a few whole words (an IPv4 key is two), instead of
    /// the field-by-field calls a derived impl makes: flow lookup runs once per packet.
    /// Consistent with `Eq`: every field is fed.
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match (self.lo.ip, self.hi.ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => state.write_u64(v4_pair(a, b)),
            (a, b) => {
                state.write_u128(v6_bits(a));
                state.write_u128(v6_bits(b));
                // Mark the family so a v4 pair never collides by construction with a v6 pair.
                state.write_u8(6);
            }
        }
        state.write_u64(self.tail_word());
    }
}

/// Transport protocol of a flow, printed as `tcp`, `udp`, `icmp`, `icmpv6` or `ip-N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP.
    Icmp,
    /// ICMPv6.
    Icmpv6,
    /// Any other IP protocol, by number.
    Other(u8),
}

impl Transport {
    /// The transport of an IP protocol number.
    pub fn from_proto(proto: u8) -> Self {
        match proto {
            IPPROTO_TCP => Transport::Tcp,
            IPPROTO_UDP => Transport::Udp,
            IPPROTO_ICMP => Transport::Icmp,
            IPPROTO_ICMPV6 => Transport::Icmpv6,
            p => Transport::Other(p),
        }
    }

    /// The IP protocol number.
    pub fn proto(self) -> u8 {
        match self {
            Transport::Tcp => IPPROTO_TCP,
            Transport::Udp => IPPROTO_UDP,
            Transport::Icmp => IPPROTO_ICMP,
            Transport::Icmpv6 => IPPROTO_ICMPV6,
            Transport::Other(p) => p,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Tcp => f.write_str("tcp"),
            Transport::Udp => f.write_str("udp"),
            Transport::Icmp => f.write_str("icmp"),
            Transport::Icmpv6 => f.write_str("icmpv6"),
            Transport::Other(p) => write!(f, "ip-{p}"),
        }
    }
}

impl std::str::FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "tcp" => Transport::Tcp,
            "udp" => Transport::Udp,
            "icmp" => Transport::Icmp,
            "icmpv6" => Transport::Icmpv6,
            other => match other.strip_prefix("ip-").and_then(|n| n.parse().ok()) {
                Some(p) => Transport::Other(p),
                None => return Err(format!("unknown transport {other:?}")),
            },
        })
    }
}

impl Serialize for Transport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Transport {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Application protocol recognised on a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L7 {
    /// TLS over TCP.
    Tls,
    /// QUIC (TLS 1.3 inside QUIC Initial packets).
    Quic,
}

/// Why a flow record was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Both sides sent FIN (or one FIN and the flow went quiet).
    Fin,
    /// A RST was seen.
    Rst,
    /// No packet for the protocol's idle timeout.
    Idle,
    /// Evicted to make room in a full flow table.
    Evicted,
    /// The input ended (end of file, shutdown) with the flow still open.
    EndOfInput,
    /// The flow has not ended: an interim record, stored by live capture once the flow's
    /// handshakes are fingerprinted and replaced (same flow id) by the final record.
    Open,
    /// The daemon stopped without ending the flow (it was killed or crashed): the flow's
    /// last interim record, closed when the store was next opened. Its counters stop at
    /// that interim record.
    Interrupted,
}

impl EndReason {
    /// Every reason a shard ends a flow for, for counters and tests ([`EndReason::Open`]
    /// and [`EndReason::Interrupted`] are the store's).
    pub const ENDED: [EndReason; 5] = [
        EndReason::Fin,
        EndReason::Rst,
        EndReason::Idle,
        EndReason::Evicted,
        EndReason::EndOfInput,
    ];

    /// The name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Fin => "fin",
            EndReason::Rst => "rst",
            EndReason::Idle => "idle",
            EndReason::Evicted => "evicted",
            EndReason::EndOfInput => "end_of_input",
            EndReason::Open => "open",
            EndReason::Interrupted => "interrupted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn ep(a: u32, port: u16) -> Endpoint {
        Endpoint {
            ip: IpAddr::V4(Ipv4Addr::from(a)),
            port,
        }
    }

    proptest! {
        #[test]
        fn key_and_hash_are_symmetric(a: u32, b: u32, pa: u16, pb: u16, proto: u8, vlan: Option<u16>) {
            let (k1, fwd1) = FlowKey::from_packet(ep(a, pa), ep(b, pb), proto, vlan);
            let (k2, fwd2) = FlowKey::from_packet(ep(b, pb), ep(a, pa), proto, vlan);
            prop_assert_eq!(k1, k2);
            prop_assert_eq!(k1.symmetric_hash(), k2.symmetric_hash());
            if (a, pa) != (b, pb) {
                prop_assert_ne!(fwd1, fwd2);
            }
        }
    }

    fn any_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|a| IpAddr::V4(a.into())),
            any::<u128>().prop_map(|a| IpAddr::V6(a.into())),
            // Near neighbours, so equal addresses and ports are compared too.
            (0u32..4).prop_map(|a| IpAddr::V4(a.into())),
            (0u128..4).prop_map(|a| IpAddr::V6(a.into())),
        ]
    }

    proptest! {
        #[test]
        fn fast_order_is_the_derived_order(a in any_ip(), b in any_ip(), pa in 0u16..3, pb in 0u16..3) {
            let (x, y) = (Endpoint { ip: a, port: pa }, Endpoint { ip: b, port: pb });
            prop_assert_eq!(x.le_fast(&y), x <= y);
            prop_assert_eq!(y.le_fast(&x), y <= x);
        }
    }

    proptest! {
        #[test]
        fn v6_hash_is_symmetric(a: u128, b: u128, pa: u16, pb: u16, proto: u8, vlan: Option<u16>) {
            let ep6 = |a: u128, port| Endpoint { ip: IpAddr::V6(a.into()), port };
            let (k1, _) = FlowKey::from_packet(ep6(a, pa), ep6(b, pb), proto, vlan);
            let (k2, _) = FlowKey::from_packet(ep6(b, pb), ep6(a, pa), proto, vlan);
            prop_assert_eq!(k1.symmetric_hash(), k2.symmetric_hash());
        }
    }

    /// The documented stability: these values may only change together with a deliberate
    /// change of the function (which moves every flow to another shard). They were
    /// cross-checked against an independent model of the algorithm.
    #[test]
    fn symmetric_hash_is_pinned() {
        let (v4, _) = FlowKey::from_packet(ep(0x0a00_0001, 40000), ep(0xc000_020a, 443), 6, None);
        let v6 = FlowKey {
            lo: Endpoint {
                ip: IpAddr::V6(1u128.into()),
                port: 1,
            },
            hi: Endpoint {
                ip: IpAddr::V6(u128::MAX.into()),
                port: 2,
            },
            proto: 17,
            vlan: Some(100),
        };
        assert_eq!(v4.symmetric_hash(), 0xa42a_8297_66d4_b9e6);
        assert_eq!(v6.symmetric_hash(), 0x90c8_8423_1115_201e);
    }

    /// Every field of the key reaches the hash.
    #[test]
    fn symmetric_hash_feeds_every_field() {
        let (base, _) = FlowKey::from_packet(ep(1, 10), ep(2, 20), 6, None);
        let mut variants = vec![base];
        variants.push(FlowKey {
            lo: ep(3, 10),
            ..base
        });
        variants.push(FlowKey {
            lo: ep(1, 11),
            ..base
        });
        variants.push(FlowKey {
            hi: ep(4, 20),
            ..base
        });
        variants.push(FlowKey {
            hi: ep(2, 21),
            ..base
        });
        variants.push(FlowKey { proto: 17, ..base });
        variants.push(FlowKey {
            vlan: Some(0),
            ..base
        });
        variants.push(FlowKey {
            vlan: Some(1),
            ..base
        });
        let mapped = |e: Endpoint| match e.ip {
            IpAddr::V4(a) => Endpoint {
                ip: IpAddr::V6(a.to_ipv6_mapped()),
                ..e
            },
            IpAddr::V6(_) => e,
        };
        variants.push(FlowKey {
            lo: mapped(base.lo),
            hi: mapped(base.hi),
            ..base
        });
        let mut hashes: Vec<u64> = variants.iter().map(FlowKey::symmetric_hash).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), variants.len());
    }

    /// Counts of `hash % n` for n in 2..=8 are each within `tol` of the mean.
    fn assert_balanced(keys: &[FlowKey], tol: f64) {
        for n in 2..=8u64 {
            let mut counts = vec![0u64; n as usize];
            for k in keys {
                counts[(k.symmetric_hash() % n) as usize] += 1;
            }
            let mean = keys.len() as f64 / n as f64;
            for (i, c) in counts.iter().enumerate() {
                let dev = (*c as f64 - mean).abs() / mean;
                assert!(
                    dev < tol,
                    "n={n} shard {i}: {c} vs mean {mean} ({counts:?})"
                );
            }
        }
    }

    /// 100k random IPv4 5-tuples spread evenly over 2..=8 shards.
    #[test]
    fn symmetric_hash_balances_random_tuples() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            // splitmix64: deterministic, so the test is too.
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ z >> 30).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ z >> 27).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ z >> 31
        };
        let keys: Vec<FlowKey> = (0..100_000)
            .map(|_| {
                let (r1, r2) = (next(), next());
                let proto = if r2 & 1 == 0 {
                    IPPROTO_TCP
                } else {
                    IPPROTO_UDP
                };
                let a = ep(r1 as u32, (r2 >> 16) as u16);
                let b = ep((r1 >> 32) as u32, (r2 >> 32) as u16);
                FlowKey::from_packet(a, b, proto, None).0
            })
            .collect();
        assert_balanced(&keys, 0.03);
    }

    /// The realistic worst case for a weak hash: many clients of one subnet, sequential
    /// ephemeral ports, one server port.
    #[test]
    fn symmetric_hash_balances_sequential_clients() {
        let keys: Vec<FlowKey> = (0..100_000u32)
            .map(|i| {
                let client = ep(0x0a00_0000 | i >> 4, 32768 + (i & 15) as u16);
                FlowKey::from_packet(client, ep(0xc000_020a, 443), IPPROTO_TCP, None).0
            })
            .collect();
        assert_balanced(&keys, 0.03);
    }

    #[test]
    fn transport_names_round_trip() {
        for t in [
            Transport::Tcp,
            Transport::Udp,
            Transport::Icmp,
            Transport::Icmpv6,
            Transport::Other(132),
        ] {
            assert_eq!(t.to_string().parse::<Transport>(), Ok(t));
            assert_eq!(Transport::from_proto(t.proto()), t);
        }
        assert!("sctp".parse::<Transport>().is_err());
    }
}
