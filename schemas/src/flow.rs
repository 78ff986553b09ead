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
        if src <= dst {
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

    /// A direction-independent 64-bit hash for choosing a shard: both directions map to
    /// the same value. FNV-1a over the canonical key; stable across runs and builds.
    pub fn symmetric_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for ep in [self.lo, self.hi] {
            match ep.ip {
                IpAddr::V4(a) => eat(&a.octets()),
                IpAddr::V6(a) => eat(&a.octets()),
            }
            eat(&ep.port.to_be_bytes());
        }
        eat(&[self.proto]);
        eat(&self.vlan.unwrap_or(0).to_be_bytes());
        h
    }
}

impl std::hash::Hash for FlowKey {
    /// Feeds the key to the hasher as a few whole words (an IPv4 key is two), instead of
    /// the field-by-field calls a derived impl makes: flow lookup runs once per packet.
    /// Consistent with `Eq`: every field is fed.
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let tail = u64::from(self.lo.port)
            | u64::from(self.hi.port) << 16
            | u64::from(self.proto) << 32
            | u64::from(self.vlan.map_or(0, |v| u32::from(v) | 0x1_0000)) << 40;
        match (self.lo.ip, self.hi.ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                state.write_u64(u64::from(u32::from(a)) << 32 | u64::from(u32::from(b)));
            }
            (a, b) => {
                for ip in [a, b] {
                    let v = match ip {
                        IpAddr::V4(x) => x.to_ipv6_mapped().to_bits(),
                        IpAddr::V6(x) => x.to_bits(),
                    };
                    state.write_u128(v);
                }
                // Mark the family so a v4 pair never collides by construction with a v6 pair.
                state.write_u8(6);
            }
        }
        state.write_u64(tail);
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
}

impl EndReason {
    /// Every reason, for counters and tests.
    pub const ALL: [EndReason; 5] = [
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
