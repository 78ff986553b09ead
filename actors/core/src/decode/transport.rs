//! Transport-layer decoding: TCP header and options (RFC 9293 §3.1, RFC 7323, RFC 2018),
//! UDP header (RFC 768), and port-less protocols.
//!
//! Owns: ports, the TCP fields the flow table and reassembler need, and the L4 payload
//! bounds. Invariant: `payload.len() <= payload_len`; malformed TCP options never drop a
//! packet, they stop option parsing and set `bad_options`.

use super::{DropReason, TcpInfo};
use flowmesh_schemas::flow::{IPPROTO_TCP, IPPROTO_UDP};

/// TCP option kinds (IANA "TCP Option Kind Numbers").
const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_WSCALE: u8 = 3;
const OPT_SACK_PERMITTED: u8 = 4;
const OPT_TIMESTAMP: u8 = 8;

/// The decoded transport layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct L4<'a> {
    pub(crate) src_port: u16,
    pub(crate) dst_port: u16,
    pub(crate) tcp: Option<TcpInfo>,
    pub(crate) payload: &'a [u8],
    pub(crate) payload_len: u32,
    /// TCP options were malformed (parsing stopped there).
    pub(crate) bad_options: bool,
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    let s: [u8; 2] = b.get(off..off.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(s))
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(s))
}

/// Decodes the transport header of `proto` from the captured IP payload `data` whose
/// declared length is `declared` (`data.len() <= declared`).
#[inline]
pub(crate) fn parse_l4(proto: u8, data: &[u8], declared: u32) -> Result<L4<'_>, DropReason> {
    match proto {
        IPPROTO_TCP => parse_tcp(data, declared),
        IPPROTO_UDP => parse_udp(data, declared),
        // ICMP, ICMPv6, ESP, GRE, ...: no ports; the payload is the whole IP payload.
        _ => Ok(L4 {
            src_port: 0,
            dst_port: 0,
            tcp: None,
            payload: data,
            payload_len: declared,
            bad_options: false,
        }),
    }
}

/// `Truncated` if the declared length holds `need` bytes but the capture does not,
/// `BadTransportHeader` if even the declared length is too short.
fn require(data: &[u8], declared: u32, need: usize) -> Result<(), DropReason> {
    if usize::try_from(declared).unwrap_or(usize::MAX) < need {
        Err(DropReason::BadTransportHeader)
    } else if data.len() < need {
        Err(DropReason::Truncated)
    } else {
        Ok(())
    }
}

#[inline]
fn parse_tcp(data: &[u8], declared: u32) -> Result<L4<'_>, DropReason> {
    require(data, declared, 20)?;
    let short = DropReason::Truncated;
    let off_flags = be16(data, 12).ok_or(short)?;
    let hlen = usize::from(off_flags >> 12) * 4;
    if hlen < 20 {
        return Err(DropReason::BadTransportHeader);
    }
    require(data, declared, hlen)?;
    let mut tcp = TcpInfo {
        seq: be32(data, 4).ok_or(short)?,
        ack: be32(data, 8).ok_or(short)?,
        flags: (off_flags & 0xff) as u8,
        window: be16(data, 14).ok_or(short)?,
        mss: None,
        window_scale: None,
        sack_permitted: false,
        timestamp: None,
    };
    // Most segments carry no options or only a few: parse in place, without a call.
    let opts = data.get(20..hlen).unwrap_or_default();
    let bad_options = !opts.is_empty() && !parse_options(opts, &mut tcp);
    Ok(L4 {
        src_port: be16(data, 0).ok_or(short)?,
        dst_port: be16(data, 2).ok_or(short)?,
        tcp: Some(tcp),
        payload: data.get(hlen..).unwrap_or_default(),
        payload_len: declared.saturating_sub(hlen as u32),
        bad_options,
    })
}

/// Parses TCP options into `tcp`; false if they were malformed (RFC 9293 §3.1: an option
/// with a length field that runs past the header ends parsing).
#[inline(always)]
fn parse_options(mut opts: &[u8], tcp: &mut TcpInfo) -> bool {
    while let Some(&kind) = opts.first() {
        match kind {
            OPT_EOL => return true,
            OPT_NOP => {
                opts = opts.get(1..).unwrap_or_default();
                continue;
            }
            _ => {}
        }
        let Some(&len) = opts.get(1) else {
            return false;
        };
        let len = usize::from(len);
        let Some(body) = opts.get(2..len.max(2)).filter(|_| len >= 2) else {
            return false;
        };
        match (kind, body) {
            (OPT_MSS, &[a, b]) => tcp.mss = Some(u16::from_be_bytes([a, b])),
            (OPT_WSCALE, &[s]) => tcp.window_scale = Some(s),
            (OPT_SACK_PERMITTED, []) => tcp.sack_permitted = true,
            (OPT_TIMESTAMP, &[a, b, c, d, e, f, g, h]) => {
                tcp.timestamp = Some((
                    u32::from_be_bytes([a, b, c, d]),
                    u32::from_be_bytes([e, f, g, h]),
                ));
            }
            // A known option with the wrong length is malformed.
            (OPT_MSS | OPT_WSCALE | OPT_SACK_PERMITTED | OPT_TIMESTAMP, _) => return false,
            _ => {}
        }
        opts = opts.get(len..).unwrap_or_default();
    }
    true
}

fn parse_udp(data: &[u8], declared: u32) -> Result<L4<'_>, DropReason> {
    require(data, declared, 8)?;
    let short = DropReason::Truncated;
    let ulen = u32::from(be16(data, 4).ok_or(short)?);
    // UDP length 0 only appears in IPv6 jumbograms (RFC 2675 §4); otherwise < 8 is bad.
    let total = match ulen {
        0 => declared,
        1..=7 => return Err(DropReason::BadTransportHeader),
        // The UDP length may not exceed what IP carries; take the smaller of the two.
        n => n.min(declared),
    };
    let payload_len = total - 8;
    let end = 8usize
        .saturating_add(usize::try_from(payload_len).unwrap_or(usize::MAX))
        .min(data.len());
    Ok(L4 {
        src_port: be16(data, 0).ok_or(short)?,
        dst_port: be16(data, 2).ok_or(short)?,
        tcp: None,
        payload: data.get(8..end).unwrap_or_default(),
        payload_len,
        bad_options: false,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a TCP header with `opts` (padded to 4) and `payload`.
    pub(crate) fn tcp(sport: u16, dport: u16, flags: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut o = opts.to_vec();
        while !o.len().is_multiple_of(4) {
            o.push(0);
        }
        let doff = ((20 + o.len()) / 4) as u8;
        let mut h = Vec::new();
        h.extend_from_slice(&sport.to_be_bytes());
        h.extend_from_slice(&dport.to_be_bytes());
        h.extend_from_slice(&1000u32.to_be_bytes());
        h.extend_from_slice(&2000u32.to_be_bytes());
        h.extend_from_slice(&[doff << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
        h.extend_from_slice(&o);
        h.extend_from_slice(payload);
        h
    }

    /// Builds a UDP header and payload.
    pub(crate) fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&sport.to_be_bytes());
        h.extend_from_slice(&dport.to_be_bytes());
        h.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(payload);
        h
    }

    const SYN_OPTS: [u8; 20] = [
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 3, 3, 7,
    ];

    #[test]
    fn tcp_with_options() {
        let seg = tcp(1234, 443, 0x02, &SYN_OPTS, b"");
        let l4 = parse_l4(6, &seg, seg.len() as u32).expect("ok");
        let t = l4.tcp.expect("tcp");
        assert_eq!(
            (l4.src_port, l4.dst_port, t.seq, t.ack, t.flags, t.window),
            (1234, 443, 1000, 2000, 0x02, 0xffff)
        );
        assert_eq!(
            (t.mss, t.window_scale, t.sack_permitted, t.timestamp),
            (Some(1460), Some(7), true, Some((1, 2)))
        );
        assert!(!l4.bad_options);
    }

    #[test]
    fn tcp_malformed_options_keep_packet() {
        // MSS then an option whose length runs past the header.
        let seg = tcp(1, 2, 0x10, &[2, 4, 0, 100, 8, 30, 0, 0], b"data");
        let l4 = parse_l4(6, &seg, seg.len() as u32).expect("kept");
        assert!(l4.bad_options);
        assert_eq!(l4.tcp.and_then(|t| t.mss), Some(100));
        assert_eq!(l4.payload, b"data");
        // Length byte 0 / 1 and wrong known length.
        for bad in [[5u8, 0, 0, 0], [5, 1, 0, 0], [3, 4, 0, 0]] {
            let seg = tcp(1, 2, 0x10, &bad, b"");
            assert!(
                parse_l4(6, &seg, seg.len() as u32)
                    .expect("kept")
                    .bad_options
            );
        }
    }

    #[test]
    fn tcp_failures_and_truncation() {
        let seg = tcp(1, 2, 0x18, &SYN_OPTS, b"hello");
        // Header cut by snaplen.
        assert_eq!(
            parse_l4(6, &seg[..30], seg.len() as u32),
            Err(DropReason::Truncated)
        );
        assert_eq!(
            parse_l4(6, &seg[..10], seg.len() as u32),
            Err(DropReason::Truncated)
        );
        // Payload cut by snaplen: kept, declared length preserved.
        let l4 = parse_l4(6, &seg[..42], seg.len() as u32).expect("ok");
        assert_eq!((l4.payload, l4.payload_len), (&b"he"[..], 5));
        // Data offset < 5 or past the IP payload.
        let mut bad = seg.clone();
        bad[12] = 0x40;
        assert_eq!(
            parse_l4(6, &bad, bad.len() as u32),
            Err(DropReason::BadTransportHeader)
        );
        assert_eq!(
            parse_l4(6, &seg[..30], 30),
            Err(DropReason::BadTransportHeader)
        );
        assert_eq!(
            parse_l4(6, &seg[..10], 10),
            Err(DropReason::BadTransportHeader)
        );
    }

    #[test]
    fn udp_lengths() {
        let dg = udp(53, 5353, b"abcdef");
        let l4 = parse_l4(17, &dg, dg.len() as u32).expect("ok");
        assert_eq!(
            (l4.src_port, l4.dst_port, l4.payload, l4.payload_len),
            (53, 5353, &b"abcdef"[..], 6)
        );
        // UDP length shorter than IP payload: trailing bytes are not payload.
        let mut longer = dg.clone();
        longer.extend_from_slice(&[0; 4]);
        assert_eq!(
            parse_l4(17, &longer, longer.len() as u32)
                .expect("ok")
                .payload,
            b"abcdef"
        );
        // UDP length larger than the IP payload: the IP payload wins.
        let l4 = parse_l4(17, &dg[..10], 10).expect("ok");
        assert_eq!((l4.payload, l4.payload_len), (&b"ab"[..], 2));
        // Truncated capture.
        let l4 = parse_l4(17, &dg[..10], dg.len() as u32).expect("ok");
        assert_eq!((l4.payload, l4.payload_len), (&b"ab"[..], 6));
        assert_eq!(
            parse_l4(17, &dg[..7], dg.len() as u32),
            Err(DropReason::Truncated)
        );
        let mut bad = dg.clone();
        bad[4..6].copy_from_slice(&5u16.to_be_bytes());
        assert_eq!(
            parse_l4(17, &bad, bad.len() as u32),
            Err(DropReason::BadTransportHeader)
        );
        assert_eq!(
            parse_l4(17, &dg[..4], 4),
            Err(DropReason::BadTransportHeader)
        );
    }

    #[test]
    fn portless_protocols() {
        let l4 = parse_l4(1, &[8, 0, 1, 2], 6).expect("ok");
        assert_eq!(
            (l4.src_port, l4.dst_port, l4.payload.len(), l4.payload_len),
            (0, 0, 4, 6)
        );
    }
}
