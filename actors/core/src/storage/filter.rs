//! Flow filters: what a query asks for, whether a record matches, and which index a
//! query walks.
//!
//! [`FlowFilter::matches`] is the definition of a query's result; the plan
//! ([`FlowFilter::plan`]) only decides where candidates come from. Every candidate is
//! re-checked with `matches`, so a plan can change the speed of a query, never its result.

use super::engine::Family;
use super::keys::{self, stable_hash, stable_hash_lower};
use flowmesh_schemas::{FlowRecord, Timestamp, Transport};
use std::net::IpAddr;

/// Why a filter is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A CIDR prefix longer than the address.
    #[error("CIDR prefix /{prefix} is longer than the {bits} bits of {ip}")]
    BadPrefix {
        /// The network address given.
        ip: IpAddr,
        /// The prefix length given.
        prefix: u8,
        /// The address length in bits.
        bits: u8,
    },
    /// A CIDR text that is not `ADDRESS/PREFIX`.
    #[error("not a CIDR network (expected ADDRESS/PREFIX, e.g. 10.0.0.0/8): {0:?}")]
    BadCidr(String),
}

/// A query over stored flows. Every field that is set must hold (AND); `None` means any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlowFilter {
    /// First seen at or after this time.
    pub from: Option<Timestamp>,
    /// First seen before this time.
    pub to: Option<Timestamp>,
    /// Client or server address.
    pub ip: Option<IpAddr>,
    /// Client or server address inside this network (address, prefix length).
    pub cidr: Option<(IpAddr, u8)>,
    /// Client or server port.
    pub port: Option<u16>,
    /// Transport protocol.
    pub transport: Option<Transport>,
    /// SNI of any handshake (ASCII case-insensitive, trailing dot ignored).
    pub sni: Option<String>,
    /// JA3 hash (32 hex digits, case-insensitive) of any handshake.
    pub ja3: Option<String>,
    /// JA4 of any handshake (exact).
    pub ja4: Option<String>,
    /// Community ID (exact).
    pub community_id: Option<String>,
}

/// Where a query's candidates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// One value of an index family: keys `[value][time][seq]`.
    Index {
        /// The index family.
        family: Family,
        /// The value part of the keys.
        value: Vec<u8>,
    },
    /// A range of the IP index (a CIDR network): 16-byte addresses `lo..=hi`.
    IpRange {
        /// The network's first address.
        lo: [u8; 16],
        /// The network's last address.
        hi: [u8; 16],
    },
    /// Every flow in the time range, in id order.
    TimeScan,
}

/// Parses `ADDRESS/PREFIX` (a bare address is a host network: /32 or /128).
pub fn parse_cidr(text: &str) -> Result<(IpAddr, u8), FilterError> {
    let bad = || FilterError::BadCidr(text.to_owned());
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let ip: IpAddr = addr.trim().parse().map_err(|_| bad())?;
    let bits = address_bits(ip);
    let prefix = match prefix {
        Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
        None => bits,
    };
    check_prefix(ip, prefix)?;
    Ok((ip, prefix))
}

fn address_bits(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn check_prefix(ip: IpAddr, prefix: u8) -> Result<(), FilterError> {
    let bits = address_bits(ip);
    if prefix > bits {
        return Err(FilterError::BadPrefix { ip, prefix, bits });
    }
    Ok(())
}

/// The 128-bit range `lo..=hi` a network covers (IPv4 networks as IPv4-mapped IPv6).
pub fn cidr_range(ip: IpAddr, prefix: u8) -> Result<(u128, u128), FilterError> {
    check_prefix(ip, prefix)?;
    let (bits, prefix) = match ip {
        IpAddr::V4(_) => (u128::from_be_bytes(keys::ip_bytes(ip)), 96 + prefix),
        IpAddr::V6(v6) => (v6.to_bits(), prefix),
    };
    let host_mask = u128::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
    Ok((bits & !host_mask, bits | host_mask))
}

fn ip_bits(ip: IpAddr) -> u128 {
    u128::from_be_bytes(keys::ip_bytes(ip))
}

impl FlowFilter {
    /// Checks the parts that can be invalid (the CIDR prefix).
    pub fn validate(&self) -> Result<(), FilterError> {
        if let Some((ip, prefix)) = self.cidr {
            check_prefix(ip, prefix)?;
        }
        Ok(())
    }

    /// Whether `record` matches every set field. A handshake field matches if any of the
    /// record's handshakes has it. An invalid CIDR matches nothing.
    pub fn matches(&self, record: &FlowRecord) -> bool {
        let t = record.first_seen;
        if self.from.is_some_and(|from| t < from) || self.to.is_some_and(|to| t >= to) {
            return false;
        }
        if self.transport.is_some_and(|tr| record.transport != tr) {
            return false;
        }
        if let Some(port) = self.port {
            if record.client_port != port && record.server_port != port {
                return false;
            }
        }
        let (client, server) = (ip_bits(record.client_ip), ip_bits(record.server_ip));
        if let Some(ip) = self.ip {
            let ip = ip_bits(ip);
            if client != ip && server != ip {
                return false;
            }
        }
        if let Some((net, prefix)) = self.cidr {
            let Ok((lo, hi)) = cidr_range(net, prefix) else {
                return false;
            };
            let inside = |a: u128| (lo..=hi).contains(&a);
            if !inside(client) && !inside(server) {
                return false;
            }
        }
        if self
            .community_id
            .as_ref()
            .is_some_and(|c| *c != record.community_id)
        {
            return false;
        }
        let any =
            |f: &dyn Fn(&flowmesh_schemas::Handshake) -> bool| record.handshakes.iter().any(f);
        if let Some(sni) = &self.sni {
            if !any(&|h| h.sni.as_deref().is_some_and(|s| keys::sni_eq(s, sni))) {
                return false;
            }
        }
        if let Some(ja3) = &self.ja3 {
            if !any(&|h| {
                h.ja3_hash
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(ja3))
            }) {
                return false;
            }
        }
        if let Some(ja4) = &self.ja4 {
            if !any(&|h| h.ja4.as_deref() == Some(ja4.as_str())) {
                return false;
            }
        }
        true
    }

    /// The index a query walks: the most selective one the filter names (Community ID,
    /// JA4, JA3, SNI, IP, CIDR, port, in that order), else a time scan of the flows.
    pub fn plan(&self) -> Result<Plan, FilterError> {
        self.validate()?;
        let hashed = |family, h: u64| Plan::Index {
            family,
            value: keys::hash_part(h).to_vec(),
        };
        Ok(if let Some(c) = &self.community_id {
            hashed(Family::CommunityId, stable_hash(c.as_bytes()))
        } else if let Some(ja4) = &self.ja4 {
            hashed(Family::Ja4, stable_hash(ja4.as_bytes()))
        } else if let Some(ja3) = &self.ja3 {
            hashed(Family::Ja3, stable_hash_lower(ja3))
        } else if let Some(sni) = &self.sni {
            hashed(Family::Sni, stable_hash_lower(keys::sni_trimmed(sni)))
        } else if let Some(ip) = self.ip {
            Plan::Index {
                family: Family::Ip,
                value: keys::ip_bytes(ip).to_vec(),
            }
        } else if let Some((net, prefix)) = self.cidr {
            let (lo, hi) = cidr_range(net, prefix)?;
            Plan::IpRange {
                lo: lo.to_be_bytes(),
                hi: hi.to_be_bytes(),
            }
        } else if let Some(port) = self.port {
            Plan::Index {
                family: Family::Port,
                value: port.to_be_bytes().to_vec(),
            }
        } else {
            Plan::TimeScan
        })
    }

    /// The smallest key time a match can have.
    pub fn time_lower(&self) -> u64 {
        self.from.map_or(0, keys::time_key)
    }

    /// A key time no match reaches (`None` = unbounded). Records first seen before the
    /// epoch are stored at time 0, so a bound at or below the epoch still admits time 0.
    pub fn time_upper(&self) -> Option<u64> {
        self.to.map(|t| keys::time_key(t).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowmesh_schemas::{EndReason, Handshake};
    use std::net::{Ipv4Addr, Ipv6Addr};

    pub(crate) fn record(client: &str, server: &str, ports: (u16, u16), t: i64) -> FlowRecord {
        FlowRecord {
            transport: Transport::Tcp,
            l7: None,
            client_ip: client.parse().expect("client ip"),
            client_port: ports.0,
            server_ip: server.parse().expect("server ip"),
            server_port: ports.1,
            vlan: None,
            first_seen: Timestamp(t),
            last_seen: Timestamp(t),
            packets_c2s: 1,
            packets_s2c: 1,
            bytes_c2s: 60,
            bytes_s2c: 60,
            tcp_flags_c2s: 0,
            tcp_flags_s2c: 0,
            end_reason: EndReason::Fin,
            conn_state: "SF".into(),
            community_id: "1:abc".into(),
            midstream: false,
            handshakes: Vec::new(),
        }
    }

    fn hs(sni: Option<&str>, ja3: &str, ja4: &str) -> Handshake {
        Handshake {
            sni: sni.map(str::to_owned),
            ja3_hash: Some(ja3.to_owned()),
            ja4: Some(ja4.to_owned()),
            ..Handshake::default()
        }
    }

    #[test]
    fn cidr_parsing_and_ranges() {
        assert_eq!(
            parse_cidr("10.0.0.0/8"),
            Ok((IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8))
        );
        assert_eq!(
            parse_cidr("::1"),
            Ok((IpAddr::V6(Ipv6Addr::LOCALHOST), 128))
        );
        assert!(matches!(
            parse_cidr("10.0.0.0/33"),
            Err(FilterError::BadPrefix { prefix: 33, .. })
        ));
        assert!(matches!(
            parse_cidr("10.0.0/8"),
            Err(FilterError::BadCidr(_))
        ));
        assert!(matches!(
            parse_cidr("10.0.0.0/x"),
            Err(FilterError::BadCidr(_))
        ));
        let (lo, hi) = cidr_range("10.1.2.3".parse().expect("ip"), 16).expect("range");
        assert_eq!(lo, ip_bits("10.1.0.0".parse().expect("ip")));
        assert_eq!(hi, ip_bits("10.1.255.255".parse().expect("ip")));
        let (lo, hi) = cidr_range("::".parse().expect("ip"), 0).expect("range");
        assert_eq!((lo, hi), (0, u128::MAX));
        let (lo, hi) = cidr_range("0.0.0.0".parse().expect("ip"), 0).expect("range");
        assert_eq!(lo, ip_bits("0.0.0.0".parse().expect("ip")));
        assert_eq!(hi, ip_bits("255.255.255.255".parse().expect("ip")));
    }

    #[test]
    fn matching_each_field() {
        let mut r = record("10.0.0.1", "192.168.1.9", (40000, 443), 1_000);
        r.handshakes = vec![
            hs(Some("Example.com."), "AAAA", "t13d_x"),
            hs(None, "bbbb", "t12d_y"),
        ];
        let yes = |f: FlowFilter| assert!(f.matches(&r), "{f:?}");
        let no = |f: FlowFilter| assert!(!f.matches(&r), "{f:?}");
        let f = FlowFilter::default;
        yes(f());
        yes(FlowFilter {
            from: Some(Timestamp(1_000)),
            to: Some(Timestamp(1_001)),
            ..f()
        });
        no(FlowFilter {
            to: Some(Timestamp(1_000)),
            ..f()
        });
        no(FlowFilter {
            from: Some(Timestamp(1_001)),
            ..f()
        });
        yes(FlowFilter {
            ip: Some("192.168.1.9".parse().expect("ip")),
            ..f()
        });
        yes(FlowFilter {
            ip: Some("::ffff:10.0.0.1".parse().expect("ip")),
            ..f()
        });
        no(FlowFilter {
            ip: Some("10.0.0.2".parse().expect("ip")),
            ..f()
        });
        yes(FlowFilter {
            cidr: Some(("192.168.0.0".parse().expect("ip"), 16)),
            ..f()
        });
        no(FlowFilter {
            cidr: Some(("172.16.0.0".parse().expect("ip"), 12)),
            ..f()
        });
        no(FlowFilter {
            cidr: Some(("10.0.0.0".parse().expect("ip"), 40)),
            ..f()
        });
        yes(FlowFilter {
            port: Some(443),
            ..f()
        });
        yes(FlowFilter {
            port: Some(40000),
            ..f()
        });
        no(FlowFilter {
            port: Some(80),
            ..f()
        });
        yes(FlowFilter {
            transport: Some(Transport::Tcp),
            ..f()
        });
        no(FlowFilter {
            transport: Some(Transport::Udp),
            ..f()
        });
        yes(FlowFilter {
            sni: Some("example.COM".into()),
            ..f()
        });
        no(FlowFilter {
            sni: Some("example.org".into()),
            ..f()
        });
        yes(FlowFilter {
            ja3: Some("aaaa".into()),
            ..f()
        });
        yes(FlowFilter {
            ja3: Some("BBBB".into()),
            ..f()
        });
        no(FlowFilter {
            ja3: Some("cccc".into()),
            ..f()
        });
        yes(FlowFilter {
            ja4: Some("t12d_y".into()),
            ..f()
        });
        no(FlowFilter {
            ja4: Some("T12D_Y".into()),
            ..f()
        });
        yes(FlowFilter {
            community_id: Some("1:abc".into()),
            ..f()
        });
        no(FlowFilter {
            community_id: Some("1:abd".into()),
            ..f()
        });
        // AND of fields: each holds alone, not together on one record... but handshake
        // fields may hold on different handshakes (any-of per field).
        yes(FlowFilter {
            ja3: Some("aaaa".into()),
            ja4: Some("t12d_y".into()),
            ..f()
        });
        no(FlowFilter {
            ja3: Some("aaaa".into()),
            port: Some(80),
            ..f()
        });
    }

    #[test]
    fn plan_prefers_the_most_selective_index() {
        let all = FlowFilter {
            ip: Some("10.0.0.1".parse().expect("ip")),
            cidr: Some(("10.0.0.0".parse().expect("ip"), 8)),
            port: Some(443),
            sni: Some("a".into()),
            ja3: Some("b".into()),
            ja4: Some("c".into()),
            community_id: Some("d".into()),
            ..FlowFilter::default()
        };
        let family = |f: &FlowFilter| match f.plan().expect("plan") {
            Plan::Index { family, .. } => Some(family),
            Plan::IpRange { .. } => Some(Family::Ip),
            Plan::TimeScan => None,
        };
        let mut f = all.clone();
        assert_eq!(family(&f), Some(Family::CommunityId));
        f.community_id = None;
        assert_eq!(family(&f), Some(Family::Ja4));
        f.ja4 = None;
        assert_eq!(family(&f), Some(Family::Ja3));
        f.ja3 = None;
        assert_eq!(family(&f), Some(Family::Sni));
        f.sni = None;
        assert!(matches!(
            f.plan(),
            Ok(Plan::Index {
                family: Family::Ip,
                ..
            })
        ));
        f.ip = None;
        assert!(matches!(f.plan(), Ok(Plan::IpRange { .. })));
        f.cidr = None;
        assert_eq!(family(&f), Some(Family::Port));
        f.port = None;
        assert_eq!(f.plan(), Ok(Plan::TimeScan));
        f.cidr = Some(("::".parse().expect("ip"), 129));
        assert!(matches!(f.plan(), Err(FilterError::BadPrefix { .. })));
    }

    #[test]
    fn time_bounds_cover_pre_epoch_records() {
        let f = FlowFilter {
            from: Some(Timestamp(-5)),
            to: Some(Timestamp(-1)),
            ..FlowFilter::default()
        };
        assert_eq!(f.time_lower(), 0);
        assert_eq!(f.time_upper(), Some(1));
    }
}
