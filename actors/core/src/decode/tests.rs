//! End-to-end tests of [`Decoder`]: hand-built frames through every link type, the
//! failure paths, and IPv4/IPv6 defragmentation through the decoder.

use super::ip::tests::{ipv4, ipv6};
use super::transport::tests::{tcp, udp};
use super::*;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

fn eth(ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

fn decoder() -> Decoder {
    Decoder::new(DecodeConfig::default())
}

const T0: Timestamp = Timestamp(1_000_000_000);

#[test]
fn ethernet_ipv4_tcp() {
    let seg = tcp(
        40000,
        443,
        TcpInfo::PSH | TcpInfo::ACK,
        &[1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6],
        b"hello",
    );
    let mut frame = eth(0x0800, &ipv4(6, 1, 0x4000, &seg));
    frame.extend_from_slice(&[0; 4]); // Ethernet padding / FCS
    let mut d = decoder();
    let p = d
        .decode(T0, LinkType::Ethernet, &frame, 99)
        .expect("ok")
        .expect("packet");
    assert_eq!(p.src, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(p.dst, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)));
    assert_eq!(
        (p.proto, p.src_port, p.dst_port, p.vlan),
        (6, 40000, 443, None)
    );
    assert_eq!(
        (p.payload, p.payload_len, p.wire_len, p.fragmented),
        (&b"hello"[..], 5, 99, false)
    );
    let t = p.tcp.expect("tcp");
    assert_eq!((t.flags, t.timestamp), (0x18, Some((5, 6))));
    assert_eq!(
        (
            d.stats().frames,
            d.stats().packets,
            d.stats().dropped_total()
        ),
        (1, 1, 0)
    );
}

#[test]
fn every_link_type_reaches_udp() {
    let v4 = ipv4(17, 1, 0, &udp(53, 1053, b"q"));
    let v6 = ipv6(17, &udp(53, 1053, b"q"));
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&v4);
    let mut sll2 = vec![
        0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
    ];
    sll2.extend_from_slice(&v6);
    let mut null = vec![30, 0, 0, 0];
    null.extend_from_slice(&v6);
    let mut lo = vec![0, 0, 0, 2];
    lo.extend_from_slice(&v4);
    let mut vlan = eth(0x8100, &[0x00, 0x64, 0x86, 0xdd]);
    vlan.extend_from_slice(&v6);
    let cases: Vec<(LinkType, Vec<u8>, bool)> = vec![
        (LinkType::Ethernet, eth(0x86dd, &v6), false),
        (LinkType::Ethernet, vlan, false),
        (LinkType::LinuxSll, sll, true),
        (LinkType::LinuxSll2, sll2, false),
        (LinkType::Null, null, false),
        (LinkType::Loop, lo, true),
        (LinkType::Raw, v4.clone(), true),
        (LinkType::Raw, v6.clone(), false),
        (LinkType::Ipv4, v4.clone(), true),
        (LinkType::Ipv6, v6.clone(), false),
    ];
    let mut d = decoder();
    for (link, frame, is_v4) in &cases {
        let p = d
            .decode(T0, *link, frame, frame.len() as u32)
            .expect("ok")
            .expect("packet");
        assert_eq!(p.src.is_ipv4(), *is_v4, "{link:?}");
        assert_eq!(
            (p.proto, p.src_port, p.dst_port, p.payload),
            (17, 53, 1053, &b"q"[..]),
            "{link:?}"
        );
    }
    let mut vlan = eth(0x8100, &[0x00, 0x64, 0x08, 0x00]);
    vlan.extend_from_slice(&v4);
    assert_eq!(
        d.decode(T0, LinkType::Ethernet, &vlan, 0)
            .expect("ok")
            .expect("p")
            .vlan,
        Some(100)
    );
}

#[test]
fn failure_paths_are_counted_by_reason() {
    let v4 = ipv4(17, 1, 0, &udp(53, 1053, b"q"));
    let v6 = ipv6(17, &udp(53, 1053, b"q"));
    let mut deep = eth(
        0x8100,
        &[
            0, 1, 0x81, 0x00, 0, 2, 0x81, 0x00, 0, 3, 0x81, 0x00, 0, 4, 0x81, 0x00, 0, 5, 0x08,
            0x00,
        ],
    );
    deep.extend_from_slice(&v4);
    let mut bad_ihl = v4.clone();
    bad_ihl[0] = 0x43;
    let mut bad_udp = v4.clone();
    bad_udp[24..26].copy_from_slice(&3u16.to_be_bytes());
    let mut ext_loop = Vec::new();
    for _ in 0..20 {
        ext_loop.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
    }
    let cases: Vec<(LinkType, Vec<u8>, DropReason)> = vec![
        (
            LinkType::Unsupported(147),
            v4.clone(),
            DropReason::UnsupportedLinkType,
        ),
        (
            LinkType::Ethernet,
            eth(0x0806, &[0; 28]),
            DropReason::UnsupportedEthertype,
        ),
        (
            LinkType::Ethernet,
            eth(0x0040, &[0; 64]),
            DropReason::UnsupportedEthertype,
        ),
        (
            LinkType::Ethernet,
            eth(0x0800, &v4)[..20].to_vec(),
            DropReason::Truncated,
        ),
        (LinkType::Ethernet, eth(0x0800, &[]), DropReason::Truncated),
        (
            LinkType::Ethernet,
            eth(0x0800, &v6),
            DropReason::UnsupportedIpVersion,
        ),
        (LinkType::Ethernet, deep, DropReason::VlanTooDeep),
        (
            LinkType::Null,
            vec![99, 0, 0, 0, 0x45],
            DropReason::UnsupportedAddressFamily,
        ),
        (
            LinkType::Raw,
            vec![0x55, 0, 0, 0],
            DropReason::UnsupportedIpVersion,
        ),
        (LinkType::Ipv6, v4.clone(), DropReason::UnsupportedIpVersion),
        (LinkType::Raw, bad_ihl, DropReason::BadIpHeader),
        (LinkType::Raw, bad_udp, DropReason::BadTransportHeader),
        (LinkType::Raw, v4[..25].to_vec(), DropReason::Truncated),
        (
            LinkType::Raw,
            ipv6(60, &ext_loop),
            DropReason::TooManyExtensionHeaders,
        ),
        (
            LinkType::Raw,
            ipv4(17, 1, 0x2000, &[0; 7]),
            DropReason::FragmentDropped(FragDropReason::BadFragment),
        ),
        (
            LinkType::Raw,
            ipv4(17, 1, 0x2000 | 8190, &[0; 16]),
            DropReason::FragmentDropped(FragDropReason::TooLarge),
        ),
    ];
    let mut d = decoder();
    for (link, frame, want) in &cases {
        assert_eq!(
            d.decode(T0, *link, frame, 0),
            Err(*want),
            "{link:?} {want:?}"
        );
    }
    let s = d.stats();
    assert_eq!(s.frames, cases.len() as u64);
    assert_eq!(s.dropped_total(), cases.len() as u64);
    assert_eq!(s.dropped(DropReason::UnsupportedIpVersion), 3);
    assert_eq!(s.dropped(DropReason::Truncated), 3);
    assert_eq!(s.drops().count(), DropReason::COUNT);
}

#[test]
fn drop_reason_names_and_indices_are_stable() {
    for (i, r) in DropReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
        assert!(r
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_'));
    }
    let mut names: Vec<_> = DropReason::ALL.iter().map(DropReason::as_str).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), DropReason::COUNT);
    assert_eq!(DropReason::Truncated.to_string(), "truncated");
}

#[test]
fn truncated_capture_keeps_declared_lengths() {
    let seg = tcp(1, 80, TcpInfo::ACK, &[], &[7; 100]);
    let frame = eth(0x0800, &ipv4(6, 1, 0, &seg));
    let mut d = decoder();
    let p = d
        .decode(T0, LinkType::Ethernet, &frame[..96], frame.len() as u32)
        .expect("ok")
        .expect("p");
    assert_eq!((p.payload.len(), p.payload_len), (96 - 54, 100));
    assert!(p.is_truncated());
    assert_eq!(d.stats().truncated_payloads, 1);
}

#[test]
fn bad_ipv4_checksum_is_counted_not_dropped() {
    let mut pkt = ipv4(17, 1, 0, &udp(1, 2, b""));
    pkt[10] ^= 0x55;
    let mut d = decoder();
    assert!(d.decode(T0, LinkType::Raw, &pkt, 0).expect("ok").is_some());
    assert_eq!(d.stats().ipv4_bad_checksum, 1);
}

#[test]
fn bad_tcp_options_counted_not_dropped() {
    let seg = tcp(1, 2, TcpInfo::SYN, &[2, 9, 0, 0], b"");
    let mut d = decoder();
    assert!(d
        .decode(T0, LinkType::Raw, &ipv4(6, 1, 0, &seg), 0)
        .expect("ok")
        .is_some());
    assert_eq!(d.stats().tcp_bad_options, 1);
}

/// IPv4 fragments of a UDP datagram carrying `payload`, `size` data bytes each.
fn v4_fragments(id: u16, payload: &[u8], size: usize) -> Vec<Vec<u8>> {
    let l4 = udp(5000, 53, payload);
    let n = l4.chunks(size).count();
    l4.chunks(size)
        .enumerate()
        .map(|(i, c)| {
            let more = if i + 1 < n { 0x2000 } else { 0 };
            ipv4(17, id, more | ((i * size / 8) as u16), c)
        })
        .collect()
}

#[test]
fn ipv4_fragments_reassemble_through_decoder() {
    let payload: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let frags = v4_fragments(77, &payload, 1480);
    let mut d = decoder();
    for f in frags[1..].iter().rev() {
        assert_eq!(d.decode(T0, LinkType::Raw, f, f.len() as u32), Ok(None));
    }
    let first = &frags[0];
    let p = d
        .decode(T0, LinkType::Raw, first, first.len() as u32)
        .expect("ok")
        .expect("packet");
    assert!(p.fragmented);
    assert_eq!((p.src_port, p.dst_port, p.payload_len), (5000, 53, 3000));
    assert_eq!(p.payload, &payload[..]);
    assert_eq!(
        p.wire_len as usize,
        frags.iter().map(Vec::len).sum::<usize>()
    );
    let s = d.stats();
    assert_eq!(
        (s.fragments_held, s.packets, s.defrag.reassembled),
        (2, 1, 1)
    );
    assert_eq!(d.fragments_in_progress(), 0);
}

#[test]
fn vlan_separates_fragment_trains() {
    let frags = v4_fragments(5, b"0123456789abcdef0123", 16);
    let mut on_vlan = eth(0x8100, &[0, 7, 0x08, 0x00]);
    on_vlan.extend_from_slice(&frags[1]);
    let mut d = decoder();
    assert_eq!(d.decode(T0, LinkType::Raw, &frags[0], 0), Ok(None));
    assert_eq!(d.decode(T0, LinkType::Ethernet, &on_vlan, 0), Ok(None));
    assert_eq!(d.fragments_in_progress(), 2);
}

#[test]
fn truncated_fragment_is_dropped() {
    let frags = v4_fragments(5, &[1; 64], 32);
    let mut d = decoder();
    assert_eq!(
        d.decode(T0, LinkType::Raw, &frags[0][..30], 0),
        Err(DropReason::Truncated)
    );
}

#[test]
fn fragments_expire() {
    let frags = v4_fragments(9, &[1; 64], 32);
    let mut d = decoder();
    assert_eq!(d.decode(T0, LinkType::Raw, &frags[0], 0), Ok(None));
    d.expire(T0.add_nanos(DecodeConfig::default().defrag_timeout_ns));
    assert_eq!(
        (d.fragments_in_progress(), d.stats().defrag.expired),
        (0, 1)
    );
}

/// IPv6 fragments: unfragmentable part = fixed header; fragmentable part = `ext` + UDP.
fn v6_fragments(id: u32, first_nh: u8, fragmentable: &[u8], size: usize) -> Vec<Vec<u8>> {
    let n = fragmentable.chunks(size).count();
    fragmentable
        .chunks(size)
        .enumerate()
        .map(|(i, c)| {
            let off = ((i * size / 8) as u16) << 3 | u16::from(i + 1 < n);
            let mut fh = vec![first_nh, 0];
            fh.extend_from_slice(&off.to_be_bytes());
            fh.extend_from_slice(&id.to_be_bytes());
            fh.extend_from_slice(c);
            ipv6(44, &fh)
        })
        .collect()
}

#[test]
fn ipv6_fragments_reassemble_with_extension_headers_after() {
    // Fragmentable part: Destination Options (8 bytes) then TCP.
    let seg = tcp(50000, 14433, TcpInfo::ACK, &[], &[0x42; 200]);
    let mut fragmentable = vec![6, 0, 1, 4, 0, 0, 0, 0];
    fragmentable.extend_from_slice(&seg);
    let frags = v6_fragments(0xdead, 60, &fragmentable, 64);
    let mut d = decoder();
    let mut out = None;
    for (i, f) in frags.iter().enumerate() {
        match d.decode(T0, LinkType::Ipv6, f, f.len() as u32).expect("ok") {
            Some(p) => {
                assert_eq!(i + 1, frags.len());
                out = Some((p.src, p.proto, p.dst_port, p.payload.to_vec(), p.fragmented));
            }
            None => assert!(i + 1 < frags.len()),
        }
    }
    let (src, proto, port, payload, fragmented) = out.expect("reassembled");
    assert_eq!(
        src,
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
    );
    assert_eq!((proto, port, fragmented), (6, 14433, true));
    assert_eq!(payload, vec![0x42; 200]);
}

#[test]
fn nested_ipv6_fragment_header_is_bad() {
    let inner = [17, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0];
    let frags = v6_fragments(1, 44, &inner, 8);
    let mut d = decoder();
    assert_eq!(d.decode(T0, LinkType::Raw, &frags[0], 0), Ok(None));
    assert_eq!(
        d.decode(T0, LinkType::Raw, &frags[1], 0),
        Err(DropReason::BadIpHeader)
    );
}

proptest! {
    #[test]
    fn decode_never_panics(
        link in 0u32..300,
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut d = decoder();
        let link = LinkType::from_linktype_lossy(link);
        for i in 0..3 {
            let _ = d.decode(Timestamp(i), link, &bytes, bytes.len() as u32);
        }
        let s = d.stats();
        prop_assert_eq!(s.frames, s.packets + s.fragments_held + s.dropped_total());
    }

    #[test]
    fn decode_never_panics_on_mutated_valid_frames(
        flips in proptest::collection::vec((0usize..120, any::<u8>()), 1..6),
        cut in 0usize..130,
        v6 in any::<bool>(),
    ) {
        let seg = tcp(1, 2, TcpInfo::SYN, &[2, 4, 5, 0xb4, 4, 2, 1, 0], &[9; 20]);
        let l3 = if v6 { ipv6(44, &[6, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]) } else { ipv4(6, 3, 0x2000, &seg) };
        let mut frame = eth(if v6 { 0x86dd } else { 0x0800 }, &l3);
        for (pos, val) in &flips {
            if let Some(b) = frame.get_mut(*pos) { *b = *val; }
        }
        frame.truncate(cut);
        let mut d = decoder();
        let _ = d.decode(T0, LinkType::Ethernet, &frame, 0);
        let _ = d.decode(T0, LinkType::Ethernet, &frame, 0);
        prop_assert_eq!(d.stats().frames, 2);
    }
}
