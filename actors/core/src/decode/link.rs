//! Link-layer decoding: strips Ethernet II (with any 802.1Q/802.1ad stacking up to a
//! limit), Linux cooked v1/v2, BSD Null/Loop and raw-IP framings down to the network
//! layer.
//!
//! Owns: recognising which network protocol follows and the outermost VLAN id.
//! Invariant: returns a sub-slice of its input, never copies, never allocates.

use super::DropReason;
use crate::capture::LinkType;

/// EtherType of IPv4.
const ETH_P_IP: u16 = 0x0800;
/// EtherType of IPv6.
const ETH_P_IPV6: u16 = 0x86DD;
/// IEEE 802.1Q customer VLAN tag.
const ETH_P_8021Q: u16 = 0x8100;
/// IEEE 802.1ad service VLAN tag (QinQ).
const ETH_P_8021AD: u16 = 0x88A8;
/// Pre-standard QinQ tag used by some vendors.
const ETH_P_QINQ_OLD: u16 = 0x9100;
/// EtherType values below this are IEEE 802.3 length fields (IEEE 802.3 §3.2.6).
const ETH_MIN_TYPE: u16 = 0x0600;
/// ARPHRD_NETLINK: SLL frames carrying netlink messages, whose protocol is not an EtherType.
const ARPHRD_NETLINK: u16 = 824;

/// The network protocol found under the link layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetProto {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
    /// Decided by the IP version nibble (raw IP link types).
    ByVersion,
}

/// The result of link-layer decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct L3<'a> {
    pub(crate) proto: NetProto,
    /// Outermost non-zero VLAN id.
    pub(crate) vlan: Option<u16>,
    /// Bytes from the network-layer header on.
    pub(crate) data: &'a [u8],
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    let s: [u8; 2] = b.get(off..off.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(s))
}

/// Strips the link layer of `data`.
pub(crate) fn decode_link(
    link: LinkType,
    data: &[u8],
    max_vlan_depth: usize,
) -> Result<L3<'_>, DropReason> {
    match link {
        LinkType::Ethernet => {
            let ethertype = be16(data, 12).ok_or(DropReason::Truncated)?;
            ethertype_payload(
                ethertype,
                data.get(14..).unwrap_or_default(),
                max_vlan_depth,
            )
        }
        LinkType::LinuxSll => {
            // struct sll_header: pkttype(2) hatype(2) halen(2) addr(8) protocol(2).
            let hatype = be16(data, 2).ok_or(DropReason::Truncated)?;
            let proto = be16(data, 14).ok_or(DropReason::Truncated)?;
            if hatype == ARPHRD_NETLINK {
                return Err(DropReason::UnsupportedEthertype);
            }
            ethertype_payload(proto, data.get(16..).unwrap_or_default(), max_vlan_depth)
        }
        LinkType::LinuxSll2 => {
            // struct sll2_header: protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1)
            // halen(1) addr(8).
            if data.len() < 20 {
                return Err(DropReason::Truncated);
            }
            let proto = be16(data, 0).ok_or(DropReason::Truncated)?;
            let hatype = be16(data, 8).ok_or(DropReason::Truncated)?;
            if hatype == ARPHRD_NETLINK {
                return Err(DropReason::UnsupportedEthertype);
            }
            ethertype_payload(proto, data.get(20..).unwrap_or_default(), max_vlan_depth)
        }
        LinkType::Null | LinkType::Loop => {
            let af: [u8; 4] = data
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or(DropReason::Truncated)?;
            // LINKTYPE_NULL stores the AF in the writer's byte order, which the file does
            // not record; the AF values are small, so the order that yields a known value
            // wins. LINKTYPE_LOOP is always network order.
            let candidates = if link == LinkType::Loop {
                [u32::from_be_bytes(af), u32::from_be_bytes(af)]
            } else {
                [u32::from_le_bytes(af), u32::from_be_bytes(af)]
            };
            let proto = candidates.iter().find_map(|&v| match v {
                2 => Some(NetProto::V4),
                // AF_INET6 is 24 (NetBSD/OpenBSD), 28 (FreeBSD) or 30 (macOS).
                24 | 28 | 30 => Some(NetProto::V6),
                _ => None,
            });
            let proto = proto.ok_or(DropReason::UnsupportedAddressFamily)?;
            Ok(L3 {
                proto,
                vlan: None,
                data: data.get(4..).unwrap_or_default(),
            })
        }
        LinkType::Raw => Ok(L3 {
            proto: NetProto::ByVersion,
            vlan: None,
            data,
        }),
        LinkType::Ipv4 => Ok(L3 {
            proto: NetProto::V4,
            vlan: None,
            data,
        }),
        LinkType::Ipv6 => Ok(L3 {
            proto: NetProto::V6,
            vlan: None,
            data,
        }),
        LinkType::Unsupported(_) => Err(DropReason::UnsupportedLinkType),
    }
}

/// Follows VLAN tags from `ethertype` and returns the IP payload.
fn ethertype_payload(
    mut ethertype: u16,
    mut rest: &[u8],
    max_vlan_depth: usize,
) -> Result<L3<'_>, DropReason> {
    let mut vlan = None;
    let mut depth = 0usize;
    while matches!(ethertype, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ_OLD) {
        depth += 1;
        if depth > max_vlan_depth {
            return Err(DropReason::VlanTooDeep);
        }
        let tci = be16(rest, 0).ok_or(DropReason::Truncated)?;
        ethertype = be16(rest, 2).ok_or(DropReason::Truncated)?;
        // VID 0 is a priority tag, not a VLAN (IEEE 802.1Q §9.6); the outermost real
        // VLAN identifies the flow.
        let vid = tci & 0x0fff;
        if vlan.is_none() && vid != 0 {
            vlan = Some(vid);
        }
        rest = rest.get(4..).unwrap_or_default();
    }
    let proto = match ethertype {
        ETH_P_IP => NetProto::V4,
        ETH_P_IPV6 => NetProto::V6,
        // 802.3 length field (LLC/SNAP) and every other EtherType: not decoded.
        t if t < ETH_MIN_TYPE => return Err(DropReason::UnsupportedEthertype),
        _ => return Err(DropReason::UnsupportedEthertype),
    };
    Ok(L3 {
        proto,
        vlan,
        data: rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ethertype_and_rest: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(ethertype_and_rest);
        f
    }

    #[test]
    fn ethernet_plain_and_vlan_stacks() {
        let f = eth(&[0x08, 0x00, 0x45]);
        assert_eq!(
            decode_link(LinkType::Ethernet, &f, 4),
            Ok(L3 {
                proto: NetProto::V4,
                vlan: None,
                data: &[0x45]
            })
        );
        let f = eth(&[0x81, 0x00, 0x00, 0x64, 0x86, 0xdd, 0x60]);
        assert_eq!(
            decode_link(LinkType::Ethernet, &f, 4),
            Ok(L3 {
                proto: NetProto::V6,
                vlan: Some(100),
                data: &[0x60]
            })
        );
        // QinQ: 802.1ad outer 200, 802.1Q inner 100 → outermost wins.
        let f = eth(&[
            0x88, 0xa8, 0x00, 0xc8, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00, 0x45,
        ]);
        assert_eq!(
            decode_link(LinkType::Ethernet, &f, 4).map(|l| l.vlan),
            Ok(Some(200))
        );
        // 0x9100 outer with a priority tag (VID 0) inside.
        let f = eth(&[
            0x91, 0x00, 0x00, 0x00, 0x81, 0x00, 0x20, 0x07, 0x08, 0x00, 0x45,
        ]);
        assert_eq!(
            decode_link(LinkType::Ethernet, &f, 4).map(|l| l.vlan),
            Ok(Some(7))
        );
        // Depth limit.
        assert_eq!(
            decode_link(LinkType::Ethernet, &f, 1),
            Err(DropReason::VlanTooDeep)
        );
    }

    #[test]
    fn ethernet_failures() {
        assert_eq!(
            decode_link(LinkType::Ethernet, &[0; 13], 4),
            Err(DropReason::Truncated)
        );
        assert_eq!(
            decode_link(LinkType::Ethernet, &eth(&[0x81, 0x00, 0x00]), 4),
            Err(DropReason::Truncated)
        );
        // 802.3 length field.
        assert_eq!(
            decode_link(LinkType::Ethernet, &eth(&[0x00, 0x40, 0xaa]), 4),
            Err(DropReason::UnsupportedEthertype)
        );
        // ARP.
        assert_eq!(
            decode_link(LinkType::Ethernet, &eth(&[0x08, 0x06]), 4),
            Err(DropReason::UnsupportedEthertype)
        );
    }

    #[test]
    fn linux_cooked() {
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        sll.push(0x45);
        assert_eq!(
            decode_link(LinkType::LinuxSll, &sll, 4),
            Ok(L3 {
                proto: NetProto::V4,
                vlan: None,
                data: &[0x45]
            })
        );
        assert_eq!(
            decode_link(LinkType::LinuxSll, &sll[..15], 4),
            Err(DropReason::Truncated)
        );
        sll[2..4].copy_from_slice(&ARPHRD_NETLINK.to_be_bytes());
        assert_eq!(
            decode_link(LinkType::LinuxSll, &sll, 4),
            Err(DropReason::UnsupportedEthertype)
        );

        let mut sll2 = vec![
            0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        sll2.push(0x60);
        assert_eq!(
            decode_link(LinkType::LinuxSll2, &sll2, 4),
            Ok(L3 {
                proto: NetProto::V6,
                vlan: None,
                data: &[0x60]
            })
        );
        assert_eq!(
            decode_link(LinkType::LinuxSll2, &sll2[..19], 4),
            Err(DropReason::Truncated)
        );
        sll2[0..2].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(
            decode_link(LinkType::LinuxSll2, &sll2, 4),
            Err(DropReason::UnsupportedEthertype)
        );
    }

    #[test]
    fn null_and_loop() {
        let v4_le = [2, 0, 0, 0, 0x45];
        let v4_be = [0, 0, 0, 2, 0x45];
        assert_eq!(
            decode_link(LinkType::Null, &v4_le, 4).map(|l| l.proto),
            Ok(NetProto::V4)
        );
        assert_eq!(
            decode_link(LinkType::Null, &v4_be, 4).map(|l| l.proto),
            Ok(NetProto::V4)
        );
        for af in [24u8, 28, 30] {
            assert_eq!(
                decode_link(LinkType::Null, &[af, 0, 0, 0, 0x60], 4).map(|l| l.proto),
                Ok(NetProto::V6)
            );
            assert_eq!(
                decode_link(LinkType::Loop, &[0, 0, 0, af, 0x60], 4).map(|l| l.proto),
                Ok(NetProto::V6)
            );
        }
        // Loop is network order only.
        assert_eq!(
            decode_link(LinkType::Loop, &v4_le, 4),
            Err(DropReason::UnsupportedAddressFamily)
        );
        assert_eq!(
            decode_link(LinkType::Loop, &v4_be, 4).map(|l| l.data),
            Ok(&[0x45][..])
        );
        assert_eq!(
            decode_link(LinkType::Null, &[7, 0, 0, 0], 4),
            Err(DropReason::UnsupportedAddressFamily)
        );
        assert_eq!(
            decode_link(LinkType::Null, &[2, 0, 0], 4),
            Err(DropReason::Truncated)
        );
    }

    #[test]
    fn raw_and_unsupported() {
        assert_eq!(
            decode_link(LinkType::Raw, &[0x45], 4).map(|l| l.proto),
            Ok(NetProto::ByVersion)
        );
        assert_eq!(
            decode_link(LinkType::Ipv4, &[0x45], 4).map(|l| l.proto),
            Ok(NetProto::V4)
        );
        assert_eq!(
            decode_link(LinkType::Ipv6, &[0x60], 4).map(|l| l.proto),
            Ok(NetProto::V6)
        );
        assert_eq!(
            decode_link(LinkType::Unsupported(147), &[0x60], 4),
            Err(DropReason::UnsupportedLinkType)
        );
    }
}
