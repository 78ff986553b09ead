//! Network-layer decoding: the IPv4 header (RFC 791 §3.1) and the IPv6 header with its
//! extension-header chain (RFC 8200 §4).
//!
//! Owns: header validation, cutting link-layer padding at the declared length, telling
//! "cut by snaplen" (`Truncated`) from "lies about its lengths" (`BadIpHeader`), and
//! extracting fragment parameters for the defragmenter.
//!
//! Invariant: the returned payload is a sub-slice of the input no longer than the
//! declared payload length (`payload.len() <= payload_len`).

use super::DropReason;
use std::net::{Ipv4Addr, Ipv6Addr};

/// IPv6 extension headers and terminal protocols (IANA protocol numbers).
const NH_HOP_BY_HOP: u8 = 0;
const NH_ROUTING: u8 = 43;
const NH_FRAGMENT: u8 = 44;
const NH_ESP: u8 = 50;
const NH_AH: u8 = 51;
const NH_NO_NEXT: u8 = 59;
const NH_DEST_OPTS: u8 = 60;
/// Mobility (135), HIP (139), Shim6 (140): extension headers in the RFC 6564 format.
const NH_MOBILITY: u8 = 135;
const NH_HIP: u8 = 139;
const NH_SHIM6: u8 = 140;

/// A parsed IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ipv4<'a> {
    pub(crate) src: Ipv4Addr,
    pub(crate) dst: Ipv4Addr,
    pub(crate) proto: u8,
    pub(crate) id: u16,
    /// Fragment offset in bytes.
    pub(crate) frag_offset: u32,
    pub(crate) more_fragments: bool,
    /// Captured payload, cut at the total length (drops Ethernet padding).
    pub(crate) payload: &'a [u8],
    /// Payload length declared by the header.
    pub(crate) payload_len: u32,
    /// Whether the header checksum verifies (informational: offload breaks it).
    pub(crate) checksum_ok: bool,
}

impl Ipv4<'_> {
    /// Whether this packet is a fragment (MF set or non-zero offset).
    pub(crate) fn is_fragment(&self) -> bool {
        self.more_fragments || self.frag_offset != 0
    }
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    let s: [u8; 2] = b.get(off..off.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(s))
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(s))
}

fn addr4(b: &[u8], off: usize) -> Option<Ipv4Addr> {
    let s: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(Ipv4Addr::from(s))
}

fn addr6(b: &[u8], off: usize) -> Option<Ipv6Addr> {
    let s: [u8; 16] = b.get(off..off.checked_add(16)?)?.try_into().ok()?;
    Some(Ipv6Addr::from(s))
}

/// RFC 1071 Internet checksum verification: the one's-complement sum of a valid header
/// is 0xffff.
fn checksum_ok(hdr: &[u8]) -> bool {
    // Whole 16-bit words (a header is a multiple of 4 bytes), then a lone trailing byte
    // as the high half of a word; at most 60 bytes, so the u32 sum cannot overflow.
    let mut words = hdr.chunks_exact(2);
    let mut sum: u32 = words
        .by_ref()
        .map(|c| match *c {
            [a, b] => u32::from(u16::from_be_bytes([a, b])),
            _ => 0,
        })
        .sum();
    if let [last] = *words.remainder() {
        sum += u32::from(last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

/// Parses an IPv4 header (RFC 791 §3.1).
pub(crate) fn parse_ipv4(data: &[u8]) -> Result<Ipv4<'_>, DropReason> {
    let first = *data.first().ok_or(DropReason::Truncated)?;
    if first >> 4 != 4 {
        return Err(DropReason::UnsupportedIpVersion);
    }
    let hlen = usize::from(first & 0x0f) * 4;
    if hlen < 20 {
        return Err(DropReason::BadIpHeader);
    }
    let hdr = data.get(..hlen).ok_or(DropReason::Truncated)?;
    let total = usize::from(be16(hdr, 2).ok_or(DropReason::Truncated)?);
    // A total length of 0 is what TCP segmentation offload leaves in captures of
    // outgoing super-frames; trust the captured length then, as Wireshark does.
    let total = if total == 0 { data.len() } else { total };
    if total < hlen {
        return Err(DropReason::BadIpHeader);
    }
    let frag = be16(hdr, 6).ok_or(DropReason::Truncated)?;
    let payload = data.get(hlen..total.min(data.len())).unwrap_or_default();
    Ok(Ipv4 {
        src: addr4(hdr, 12).ok_or(DropReason::Truncated)?,
        dst: addr4(hdr, 16).ok_or(DropReason::Truncated)?,
        proto: *hdr.get(9).ok_or(DropReason::Truncated)?,
        id: be16(hdr, 4).ok_or(DropReason::Truncated)?,
        frag_offset: u32::from(frag & 0x1fff) * 8,
        more_fragments: frag & 0x2000 != 0,
        payload,
        payload_len: u32::try_from(total - hlen).unwrap_or(u32::MAX),
        checksum_ok: checksum_ok(hdr),
    })
}

/// Where the IPv6 extension-header walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum V6Next<'a> {
    /// An upper-layer protocol (or ESP / No Next Header, which end the walk).
    Upper {
        proto: u8,
        payload: &'a [u8],
        payload_len: u32,
    },
    /// A Fragment header (RFC 8200 §4.5) with a non-zero offset or M set.
    Fragment {
        next_header: u8,
        id: u32,
        offset: u32,
        more: bool,
        /// The fragment's data after the Fragment header.
        data: &'a [u8],
        /// Declared length of that data.
        data_len: u32,
    },
}

/// A parsed IPv6 header and the end of its extension-header walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ipv6<'a> {
    pub(crate) src: Ipv6Addr,
    pub(crate) dst: Ipv6Addr,
    pub(crate) next: V6Next<'a>,
}

/// Parses an IPv6 header (RFC 8200 §3) and walks its extension headers.
pub(crate) fn parse_ipv6(data: &[u8], max_ext: usize) -> Result<Ipv6<'_>, DropReason> {
    let first = *data.first().ok_or(DropReason::Truncated)?;
    if first >> 4 != 6 {
        return Err(DropReason::UnsupportedIpVersion);
    }
    let plen = usize::from(be16(data, 4).ok_or(DropReason::Truncated)?);
    let nh = *data.get(6).ok_or(DropReason::Truncated)?;
    let src = addr6(data, 8).ok_or(DropReason::Truncated)?;
    let dst = addr6(data, 24).ok_or(DropReason::Truncated)?;
    let rest = data.get(40..).unwrap_or_default();
    // Payload length 0 with a Hop-by-Hop header is a jumbogram (RFC 2675); like TSO
    // super-frames, take the captured length.
    let plen = if plen == 0 && nh == NH_HOP_BY_HOP {
        rest.len()
    } else {
        plen
    };
    let payload = rest.get(..plen.min(rest.len())).unwrap_or_default();
    let next = walk_ext(
        nh,
        payload,
        u32::try_from(plen).unwrap_or(u32::MAX),
        max_ext,
    )?;
    Ok(Ipv6 { src, dst, next })
}

/// Walks the extension headers starting with `nh` over `data` (captured) whose declared
/// length is `declared`. Used on the packet and again on a reassembled fragmentable part.
pub(crate) fn walk_ext(
    mut nh: u8,
    mut data: &[u8],
    mut declared: u32,
    max_ext: usize,
) -> Result<V6Next<'_>, DropReason> {
    let mut count = 0usize;
    loop {
        let hlen = match nh {
            NH_HOP_BY_HOP | NH_ROUTING | NH_DEST_OPTS | NH_MOBILITY | NH_HIP | NH_SHIM6 => {
                // RFC 8200 §4.3-4.6 / RFC 6564: length in 8-octet units, excluding the first 8.
                ext_len(data, declared, |l| (usize::from(l) + 1) * 8)?
            }
            // RFC 4302 §2.2: AH length in 4-octet units, minus 2.
            NH_AH => ext_len(data, declared, |l| (usize::from(l) + 2) * 4)?,
            NH_FRAGMENT => {
                if declared < 8 {
                    return Err(DropReason::BadIpHeader);
                }
                let hdr = data.get(..8).ok_or(DropReason::Truncated)?;
                let next_header = *hdr.first().ok_or(DropReason::Truncated)?;
                let off_m = be16(hdr, 2).ok_or(DropReason::Truncated)?;
                let id = be32(hdr, 4).ok_or(DropReason::Truncated)?;
                let offset = u32::from(off_m >> 3) * 8;
                let more = off_m & 1 != 0;
                let rest = data.get(8..).unwrap_or_default();
                if offset == 0 && !more {
                    // Atomic fragment (RFC 6946 §4): process as an unfragmented packet.
                    count += 1;
                    if count > max_ext {
                        return Err(DropReason::TooManyExtensionHeaders);
                    }
                    nh = next_header;
                    data = rest;
                    declared -= 8;
                    continue;
                }
                return Ok(V6Next::Fragment {
                    next_header,
                    id,
                    offset,
                    more,
                    data: rest,
                    data_len: declared - 8,
                });
            }
            // ESP, No Next Header and every upper-layer protocol end the walk.
            NH_ESP | NH_NO_NEXT => {
                return Ok(V6Next::Upper {
                    proto: nh,
                    payload: data,
                    payload_len: declared,
                })
            }
            proto => {
                return Ok(V6Next::Upper {
                    proto,
                    payload: data,
                    payload_len: declared,
                })
            }
        };
        count += 1;
        if count > max_ext {
            return Err(DropReason::TooManyExtensionHeaders);
        }
        nh = *data.first().ok_or(DropReason::Truncated)?;
        data = data.get(hlen..).unwrap_or_default();
        declared = declared.saturating_sub(u32::try_from(hlen).unwrap_or(u32::MAX));
    }
}

/// Length of a generic extension header, checked against declared and captured bytes.
fn ext_len(data: &[u8], declared: u32, len_of: impl Fn(u8) -> usize) -> Result<usize, DropReason> {
    let declared = usize::try_from(declared).unwrap_or(usize::MAX);
    if declared < 2 {
        return Err(DropReason::BadIpHeader);
    }
    let l = *data.get(1).ok_or(DropReason::Truncated)?;
    let hlen = len_of(l);
    if hlen > declared {
        return Err(DropReason::BadIpHeader);
    }
    if hlen > data.len() {
        return Err(DropReason::Truncated);
    }
    Ok(hlen)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds an IPv4 header with a correct checksum followed by `payload`.
    pub(crate) fn ipv4(proto: u8, id: u16, frag: u16, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut h = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2,
        ];
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        h[6..8].copy_from_slice(&frag.to_be_bytes());
        let mut sum: u32 = h
            .chunks(2)
            .map(|c| u32::from(c[0]) << 8 | u32::from(c[1]))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        h.extend_from_slice(payload);
        h
    }

    /// Builds an IPv6 header with next header `nh` followed by `payload`.
    pub(crate) fn ipv6(nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        h.extend_from_slice(&[nh, 64]);
        h.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
        h.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets());
        h.extend_from_slice(payload);
        h
    }

    #[test]
    fn ipv4_basic_padding_and_truncation() {
        let mut p = ipv4(17, 7, 0, &[1, 2, 3, 4]);
        let h = parse_ipv4(&p).expect("ok");
        assert!(h.checksum_ok && !h.is_fragment());
        assert_eq!(
            (h.proto, h.id, h.payload, h.payload_len),
            (17, 7, &[1u8, 2, 3, 4][..], 4)
        );
        // Ethernet padding is cut.
        p.extend_from_slice(&[0; 6]);
        assert_eq!(parse_ipv4(&p).expect("ok").payload.len(), 4);
        // Snaplen cut the payload: keep going with what was captured.
        let h = parse_ipv4(&p[..22]).expect("ok");
        assert_eq!((h.payload.len(), h.payload_len), (2, 4));
        // Snaplen cut the header.
        assert_eq!(parse_ipv4(&p[..19]), Err(DropReason::Truncated));
        assert_eq!(parse_ipv4(&[]), Err(DropReason::Truncated));
    }

    #[test]
    fn ipv4_failures() {
        let p = ipv4(6, 1, 0, &[0; 8]);
        let mut bad = p.clone();
        bad[0] = 0x44;
        assert_eq!(parse_ipv4(&bad), Err(DropReason::BadIpHeader));
        let mut bad = p.clone();
        bad[0] = 0x65;
        assert_eq!(parse_ipv4(&bad), Err(DropReason::UnsupportedIpVersion));
        let mut bad = p.clone();
        bad[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(parse_ipv4(&bad), Err(DropReason::BadIpHeader));
        let mut bad = p.clone();
        bad[0] = 0x4f; // 60-byte header, not captured
        assert_eq!(parse_ipv4(&bad), Err(DropReason::Truncated));
        // Bad checksum is reported, not dropped.
        let mut bad = p.clone();
        bad[10] ^= 0xff;
        assert!(!parse_ipv4(&bad).expect("kept").checksum_ok);
        // Zero total length (TSO): captured length is used.
        let mut tso = p;
        tso[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(parse_ipv4(&tso).expect("ok").payload_len, 8);
    }

    #[test]
    fn ipv4_fragment_fields() {
        let p = ipv4(17, 9, 0x2000 | 3, &[0; 8]);
        let h = parse_ipv4(&p).expect("ok");
        assert!(h.is_fragment() && h.more_fragments);
        assert_eq!(h.frag_offset, 24);
    }

    #[test]
    fn ipv6_extension_walk() {
        // Hop-by-Hop (8) → Destination options (16) → UDP.
        let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[17, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        ext.extend_from_slice(&[0xaa; 12]);
        let p = ipv6(0, &ext);
        let h = parse_ipv6(&p, 8).expect("ok");
        assert_eq!(
            h.next,
            V6Next::Upper {
                proto: 17,
                payload: &[0xaa; 12],
                payload_len: 12
            }
        );
        assert_eq!(parse_ipv6(&p, 1), Err(DropReason::TooManyExtensionHeaders));
        // Cut inside the extension headers.
        assert_eq!(parse_ipv6(&p[..50], 8), Err(DropReason::Truncated));
        // Extension header longer than the payload length.
        let p = ipv6(60, &[17, 4, 0, 0, 0, 0, 0, 0]);
        assert_eq!(parse_ipv6(&p, 8), Err(DropReason::BadIpHeader));
        // AH (RFC 4302): len 1 → 12 bytes.
        let mut ah = vec![6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        ah.extend_from_slice(&[0xbb; 4]);
        let pkt = ipv6(51, &ah);
        let h = parse_ipv6(&pkt, 8).expect("ok");
        assert!(matches!(
            h.next,
            V6Next::Upper {
                proto: 6,
                payload_len: 4,
                ..
            }
        ));
        // ESP and No Next Header end the walk.
        for nh in [50u8, 59] {
            let pkt = ipv6(nh, &[1, 2, 3]);
            let h = parse_ipv6(&pkt, 8).expect("ok");
            assert!(matches!(h.next, V6Next::Upper { proto, payload_len: 3, .. } if proto == nh));
        }
        assert_eq!(
            parse_ipv6(&ipv6(17, &[])[..39], 8),
            Err(DropReason::Truncated)
        );
        let mut v4 = ipv6(17, &[]);
        v4[0] = 0x45;
        assert_eq!(parse_ipv6(&v4, 8), Err(DropReason::UnsupportedIpVersion));
    }

    #[test]
    fn ipv6_fragments_and_atomic_fragments() {
        let frag = [17, 0, 0x00, 0x11, 0, 0, 0, 42, 1, 2, 3, 4, 5, 6, 7, 8];
        let pkt = ipv6(44, &frag);
        let h = parse_ipv6(&pkt, 8).expect("ok");
        assert_eq!(
            h.next,
            V6Next::Fragment {
                next_header: 17,
                id: 42,
                offset: 16,
                more: true,
                data: &frag[8..],
                data_len: 8
            }
        );
        // Atomic fragment: offset 0, M clear → normal packet.
        let atomic = [17, 0, 0, 0, 0, 0, 0, 42, 1, 2, 3, 4];
        let pkt = ipv6(44, &atomic);
        let h = parse_ipv6(&pkt, 8).expect("ok");
        assert_eq!(
            h.next,
            V6Next::Upper {
                proto: 17,
                payload: &[1, 2, 3, 4],
                payload_len: 4
            }
        );
        assert_eq!(
            parse_ipv6(&ipv6(44, &[17, 0, 0]), 8),
            Err(DropReason::BadIpHeader)
        );
    }

    /// The word-wise checksum equals the byte-wise RFC 1071 reference on any length.
    #[test]
    fn checksum_matches_reference() {
        fn reference(hdr: &[u8]) -> bool {
            let mut sum: u32 = hdr
                .chunks(2)
                .map(|c| {
                    u32::from(c.first().copied().unwrap_or(0)) << 8
                        | u32::from(c.get(1).copied().unwrap_or(0))
                })
                .sum();
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            sum == 0xffff
        }
        let mut x: u32 = 0x1234_5678;
        for len in 0..=61usize {
            for _ in 0..200 {
                let mut h: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect();
                assert_eq!(checksum_ok(&h), reference(&h), "{h:?}");
                // Make it valid when there is a checksum field, and check again.
                if len >= 12 {
                    h[10] = 0;
                    h[11] = 0;
                    let mut sum: u32 = h
                        .chunks(2)
                        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
                        .sum();
                    while sum > 0xffff {
                        sum = (sum & 0xffff) + (sum >> 16);
                    }
                    h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
                    assert!(reference(&h));
                    assert!(checksum_ok(&h));
                }
            }
        }
    }
}
