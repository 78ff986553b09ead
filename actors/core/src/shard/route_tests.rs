//! Tests of the [`Router`]: hashes of whole frames, fragment trains (IPv4/IPv6, any
//! order, VLAN, extension headers, the largest datagrams) turned into synthetic frames
//! that decode to the same packet, expiry, and frame accounting on arbitrary input.

use super::*;
use crate::decode::test_util::{tcp, udp};
use crate::decode::{Packet, TcpInfo};
use proptest::prelude::*;

const T0: Timestamp = Timestamp(1_000_000_000);
const A4: [u8; 4] = [192, 0, 2, 1];
const B4: [u8; 4] = [198, 51, 100, 2];

/// IPv4 header (valid checksum) with the given flags+offset word, then `payload`.
fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, id: u16, frag: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    let sum = !checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut v = h.to_vec();
    v.extend_from_slice(payload);
    v
}

/// IPv6 header from `::1:<src>` to `::2:<dst>` with next header `nh`, then `payload`.
fn ipv6(src: u16, dst: u16, nh: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[nh, 64]);
    h.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, src).octets());
    h.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 2, dst).octets());
    h.extend_from_slice(payload);
    h
}

/// Frames `ip` for `link`, with an 802.1Q tag of `vlan` on Ethernet.
fn framed(link: LinkType, vlan: Option<u16>, ip: &[u8]) -> Vec<u8> {
    let v6 = ip.first().is_some_and(|b| b >> 4 == 6);
    let ethertype = if v6 { ETH_P_IPV6 } else { ETH_P_IP };
    let mut f = match link {
        LinkType::Ethernet => {
            let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
            if let Some(v) = vlan {
                f.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
                f.extend_from_slice(&(0x2000 | v).to_be_bytes());
            }
            f.extend_from_slice(&ethertype.to_be_bytes());
            f
        }
        LinkType::LinuxSll => {
            let mut f = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0];
            f.extend_from_slice(&ethertype.to_be_bytes());
            f
        }
        _ => Vec::new(),
    };
    f.extend_from_slice(ip);
    f
}

/// A transport segment (TCP with options, or UDP) from port 40000 to 443 carrying
/// `len` bytes.
fn l4(is_tcp: bool, len: usize) -> (u8, Vec<u8>) {
    let payload: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
    if is_tcp {
        let opts = [2, 4, 5, 0xb4, 1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9];
        (
            6,
            tcp(40000, 443, TcpInfo::ACK | TcpInfo::PSH, &opts, &payload),
        )
    } else {
        (17, udp(40000, 443, &payload))
    }
}

/// One fragment train.
#[derive(Debug, Clone)]
struct Train {
    v6: bool,
    link: LinkType,
    vlan: Option<u16>,
    /// IPv6: a Hop-by-Hop header before the Fragment header and a Destination Options
    /// header at the start of the fragmentable part.
    ext: bool,
    id: u32,
}

/// Cuts `proto`/`l4` into fragments of `size` bytes (a multiple of 8) framed for `t`.
fn fragments(t: &Train, proto: u8, l4: &[u8], size: usize) -> Vec<Vec<u8>> {
    let mut body = Vec::new();
    let mut first_nh = proto;
    if t.v6 && t.ext {
        body.extend_from_slice(&[proto, 0, 1, 4, 0, 0, 0, 0]);
        first_nh = 60;
    }
    body.extend_from_slice(l4);
    let n = body.chunks(size).count();
    body.chunks(size)
        .enumerate()
        .map(|(i, c)| {
            let (off8, more) = ((i * size / 8) as u16, i + 1 < n);
            let ip = if t.v6 {
                let mut p = Vec::new();
                let mut nh = 44;
                if t.ext {
                    p.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]);
                    nh = 0;
                }
                p.extend_from_slice(&[first_nh, 0]);
                p.extend_from_slice(&(off8 << 3 | u16::from(more)).to_be_bytes());
                p.extend_from_slice(&t.id.to_be_bytes());
                p.extend_from_slice(c);
                ipv6(1, 2, nh, &p)
            } else {
                let frag = off8 | if more { 0x2000 } else { 0 };
                ipv4(A4, B4, proto, t.id as u16, frag, c)
            };
            framed(t.link, t.vlan, &ip)
        })
        .collect()
}

fn at(link: LinkType, data: &[u8], ts: Timestamp) -> Frame<'_> {
    Frame {
        ts,
        link,
        data,
        orig_len: data.len() as u32 + 4,
        interface: 3,
    }
}

fn key_hash(p: &Packet<'_>) -> u64 {
    p.flow_key().0.symmetric_hash()
}

/// Sends `frames` (in `order`) through one decoder and through a router, and checks the
/// router's synthetic frame decodes, in a fresh decoder, to the packet the decoder gave.
fn check_train(link: LinkType, frames: &[Vec<u8>], order: &[usize]) -> Result<(), TestCaseError> {
    let mut direct = Decoder::new(DecodeConfig::default());
    let mut router = Router::new(DecodeConfig::default());
    let mut fresh = Decoder::new(DecodeConfig::default());
    let last = order.len() - 1;
    for (i, &k) in order.iter().enumerate() {
        let f = at(link, &frames[k], T0.add_nanos(i as i64));
        let want = direct.decode(f.ts, f.link, f.data, f.orig_len);
        let route = router.route(&f);
        if i < last {
            prop_assert_eq!(want, Ok(None));
            prop_assert_eq!(route, Route::Held);
            continue;
        }
        let want = want.expect("decodes").expect("complete");
        prop_assert!(want.fragmented);
        let Route::Reassembled { hash, frame } = route else {
            return Err(TestCaseError::fail(format!("{route:?}")));
        };
        prop_assert_eq!((frame.ts, frame.interface), (f.ts, 3));
        prop_assert_eq!(hash, key_hash(&want));
        let got = fresh
            .decode(frame.ts, frame.link, frame.data, frame.orig_len)
            .expect("synthetic frame decodes")
            .expect("not a fragment");
        prop_assert_eq!(
            got,
            Packet {
                fragmented: false,
                ..want
            }
        );
        prop_assert_eq!(fresh.stats().ipv4_bad_checksum, 0);
    }
    let s = router.stats();
    prop_assert_eq!((s.frames, s.packets), (order.len() as u64, 1));
    prop_assert_eq!(router.fragments_in_progress(), 0);
    Ok(())
}

#[test]
fn whole_frames_hash_like_their_flow_key_both_ways() {
    let mut router = Router::new(DecodeConfig::default());
    let mut hashes = Vec::new();
    for (src, dst, sport, dport) in [(A4, B4, 40000, 443), (B4, A4, 443, 40000)] {
        let seg = tcp(sport, dport, TcpInfo::ACK, &[], b"x");
        let f = framed(
            LinkType::Ethernet,
            Some(7),
            &ipv4(src, dst, 6, 1, 0x4000, &seg),
        );
        let mut d = Decoder::new(DecodeConfig::default());
        let want = key_hash(
            &d.decode(T0, LinkType::Ethernet, &f, 0)
                .expect("ok")
                .expect("p"),
        );
        assert_eq!(
            router.route(&at(LinkType::Ethernet, &f, T0)),
            Route::Whole { hash: want }
        );
        hashes.push(want);
    }
    assert_eq!(hashes[0], hashes[1]);
    // An IPv6 atomic fragment (offset 0, M clear) is an ordinary packet (RFC 6946).
    let mut atomic = vec![17, 0, 0, 0, 0, 0, 0, 9];
    atomic.extend_from_slice(&udp(1, 2, b"q"));
    let f = ipv6(1, 2, 44, &atomic);
    assert!(matches!(
        router.route(&at(LinkType::Ipv6, &f, T0)),
        Route::Whole { .. }
    ));
}

#[test]
fn trains_in_order_and_reversed_every_shape() {
    for v6 in [false, true] {
        for (link, vlan) in [
            (LinkType::Ethernet, None),
            (LinkType::Ethernet, Some(100)),
            (LinkType::Raw, None),
        ] {
            for is_tcp in [false, true] {
                let t = Train {
                    v6,
                    link,
                    vlan,
                    ext: v6,
                    id: 0x1234,
                };
                let (proto, seg) = l4(is_tcp, 3000);
                let frames = fragments(&t, proto, &seg, 1232);
                let mut order: Vec<usize> = (0..frames.len()).collect();
                check_train(link, &frames, &order).expect("in order");
                order.reverse();
                check_train(link, &frames, &order).expect("reversed");
            }
        }
    }
}

/// More than 65515 data bytes do not fit an IPv4 Total Length: the synthetic header
/// says 0 and the decoder takes the captured length.
#[test]
fn largest_ipv4_datagram() {
    let t = Train {
        v6: false,
        link: LinkType::Ethernet,
        vlan: None,
        ext: false,
        id: 9,
    };
    let (proto, seg) = l4(false, 65_535 - 8);
    let frames = fragments(&t, proto, &seg, 1480);
    let order: Vec<usize> = (0..frames.len()).collect();
    check_train(t.link, &frames, &order).expect("reassembled");
}

/// A completed datagram that does not decode is dropped by the router, not sent.
#[test]
fn undecodable_datagram_is_dropped_and_counted() {
    let t = Train {
        v6: false,
        link: LinkType::Raw,
        vlan: None,
        ext: false,
        id: 1,
    };
    // UDP length field smaller than the header.
    let mut seg = udp(1, 2, &[0; 40]);
    seg[4..6].copy_from_slice(&3u16.to_be_bytes());
    let frames = fragments(&t, 17, &seg, 24);
    let mut router = Router::new(DecodeConfig::default());
    let routes: Vec<_> = frames
        .iter()
        .map(|f| kind(&router.route(&at(t.link, f, T0))))
        .collect();
    assert_eq!(
        routes.last(),
        Some(&Kind::Dropped(DropReason::BadTransportHeader))
    );
    let s = router.stats();
    assert_eq!((s.packets, s.dropped_total()), (0, 1));
}

#[test]
fn fragments_expire_on_packet_time() {
    let t = Train {
        v6: true,
        link: LinkType::Ipv6,
        vlan: None,
        ext: false,
        id: 5,
    };
    let (proto, seg) = l4(false, 100);
    let frames = fragments(&t, proto, &seg, 64);
    let mut router = Router::new(DecodeConfig::default());
    assert_eq!(router.route(&at(t.link, &frames[0], T0)), Route::Held);
    let other = ipv6(3, 4, 17, &udp(5, 6, b""));
    let late = T0.add_nanos(DecodeConfig::default().defrag_timeout_ns);
    assert!(matches!(
        router.route(&at(LinkType::Ipv6, &other, late)),
        Route::Whole { .. }
    ));
    assert_eq!(router.fragments_in_progress(), 0);
    assert_eq!(router.stats().defrag.expired, 1);
}

/// What a route was, without the borrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Whole,
    Reassembled,
    Held,
    Dropped(DropReason),
}

fn kind(r: &Route<'_>) -> Kind {
    match r {
        Route::Whole { .. } => Kind::Whole,
        Route::Reassembled { .. } => Kind::Reassembled,
        Route::Held => Kind::Held,
        Route::Dropped(r) => Kind::Dropped(*r),
    }
}

const LINKS: [LinkType; 9] = [
    LinkType::Ethernet,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Null,
    LinkType::Loop,
    LinkType::Unsupported(147),
];

proptest! {
    #[test]
    fn any_train_any_order_reassembles_to_the_same_packet(
        v6 in any::<bool>(),
        is_tcp in any::<bool>(),
        shape in 0usize..4,
        vlan in proptest::option::of(1u16..4095),
        ext in any::<bool>(),
        len in 0usize..3000,
        units in 1usize..64,
        swaps in proptest::collection::vec(any::<proptest::sample::Index>(), 0..40),
    ) {
        let link = [LinkType::Ethernet, LinkType::Raw, LinkType::LinuxSll, LinkType::Ipv4][shape];
        let link = if link == LinkType::Ipv4 && v6 { LinkType::Ipv6 } else { link };
        let vlan = vlan.filter(|_| link == LinkType::Ethernet);
        let t = Train { v6, link, vlan, ext, id: len as u32 };
        let (proto, seg) = l4(is_tcp, len);
        let frames = fragments(&t, proto, &seg, units * 8);
        prop_assume!(frames.len() > 1);
        let mut order: Vec<usize> = (0..frames.len()).collect();
        for (i, s) in swaps.iter().enumerate() {
            let (n, j) = (order.len(), s.index(order.len()));
            order.swap(i % n, j);
        }
        check_train(link, &frames, &order)?;
    }

    /// Arbitrary bytes of every link type, mixed with valid and damaged fragments: no
    /// panic, every frame accounted exactly once, and every synthetic frame decodes, in a
    /// fresh decoder, to an unfragmented packet with the routed hash.
    #[test]
    fn every_frame_is_accounted_once(
        items in proptest::collection::vec(
            (0usize..LINKS.len(), proptest::collection::vec(any::<u8>(), 0..120), any::<u16>(), 0u8..4),
            1..40,
        ),
    ) {
        let mut router = Router::new(DecodeConfig { defrag_max_datagrams: 4, ..DecodeConfig::default() });
        let mut counts = [0u64; 4];
        for (i, (li, bytes, sel, mode)) in items.iter().enumerate() {
            // mode 0: raw bytes; 1-3: an IPv4 or IPv6 fragment of one of a few trains,
            // built around the bytes, its fields from `sel`, cut short in mode 3.
            let data = if *mode == 0 {
                bytes.clone()
            } else {
                // Small offsets and 8-byte non-last fragments, so that trains complete.
                let id = u32::from(sel & 3);
                let off8 = (sel >> 2) & 3;
                let more = sel & 0x80 != 0;
                let body = if more { bytes.get(..8).unwrap_or(&[0; 8]) } else { bytes };
                let udp = sel & 0x40 != 0;
                let ip = if *mode == 1 {
                    let proto = if udp { 17 } else { 1 };
                    ipv4(A4, B4, proto, id as u16, off8 | if more { 0x2000 } else { 0 }, body)
                } else {
                    let mut p = vec![if udp { 17 } else { 58 }, 0];
                    p.extend_from_slice(&(off8 << 3 | u16::from(more)).to_be_bytes());
                    p.extend_from_slice(&id.to_be_bytes());
                    p.extend_from_slice(body);
                    ipv6(1, 2, 44, &p)
                };
                let mut f = framed(LinkType::Ethernet, None, &ip);
                if *mode == 3 { f.truncate(usize::from(*sel) % (f.len() + 1)); }
                f
            };
            let link = if *mode == 0 { LINKS[*li] } else { LinkType::Ethernet };
            let f = at(link, &data, T0.add_nanos(i as i64 * 100_000_000));
            match router.route(&f) {
                Route::Whole { .. } => counts[0] += 1,
                Route::Reassembled { hash, frame } => {
                    counts[1] += 1;
                    let mut fresh = Decoder::new(DecodeConfig::default());
                    let p = fresh.decode(frame.ts, frame.link, frame.data, frame.orig_len);
                    let p = p.ok().flatten();
                    prop_assert!(p.is_some_and(|p| !p.fragmented && key_hash(&p) == hash));
                }
                Route::Held => counts[2] += 1,
                Route::Dropped(_) => counts[3] += 1,
            }
        }
        let s = router.stats();
        prop_assert_eq!(s.frames, items.len() as u64);
        prop_assert_eq!(counts[0] + counts[1], s.packets);
        prop_assert_eq!(counts[2], s.fragments_held);
        prop_assert_eq!(counts[3], s.dropped_total());
    }
}
