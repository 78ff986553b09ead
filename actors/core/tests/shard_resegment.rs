//! The whole shard (decode → flow table → reassembly → TLS session → record) gives the
//! same handshake whatever the segmentation, order and duplication of a real flow's
//! segments. The streams come from real captures of the corpus; the expected values are
//! what the shard reports on the unmodified capture (checked against the corpus'
//! expected.jsonl by the end-to-end tests).

use flowmesh_core::capture::{CaptureReader, Frame, LinkType};
use flowmesh_core::decode::{DecodeConfig, Decoder};
use flowmesh_core::handshake::WorkerConfig;
use flowmesh_core::shard::{Inline, ShardConfig};
use flowmesh_schemas::{FlowRecord, Handshake, Timestamp};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};
mod common;

fn corpus_pcap(name: &str) -> Vec<u8> {
    let path = common::pcaps_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "corpus capture {} unreadable ({e}): set FLOWMESH_CORPUS to the corpus folder",
            path.display()
        )
    })
}

fn worker_config() -> WorkerConfig {
    WorkerConfig {
        fingerprints: "ja3,ja3s,ja4,ja4s".parse().expect("valid list"),
        ..WorkerConfig::default()
    }
}

fn run(frames: &[(Timestamp, LinkType, Vec<u8>)]) -> Vec<FlowRecord> {
    run_with(ShardConfig::default(), frames)
}

fn run_with(cfg: ShardConfig, frames: &[(Timestamp, LinkType, Vec<u8>)]) -> Vec<FlowRecord> {
    let mut shard = Inline::new(cfg, worker_config());
    let mut out = Vec::new();
    for (ts, link, data) in frames {
        let frame = Frame {
            ts: *ts,
            link: *link,
            data,
            orig_len: data.len() as u32,
            interface: 0,
        };
        shard.process_frame(&frame, &mut out);
    }
    shard.finish(&mut out);
    out
}

/// One TCP connection lifted from a capture: endpoints, initial sequence numbers and
/// each direction's payload bytes in sequence order.
struct Conn {
    client: (Ipv4Addr, u16),
    server: (Ipv4Addr, u16),
    isn: [u32; 2],
    streams: [Vec<u8>; 2],
    expected: Handshake,
}

fn lift(file: &str, client_port: u16) -> Conn {
    let bytes = corpus_pcap(file);
    let mut frames = Vec::new();
    for f in CaptureReader::new(&bytes).expect("capture") {
        let f = f.expect("frame");
        frames.push((f.ts, f.link, f.data.to_vec()));
    }
    let expected = run(&frames)
        .into_iter()
        .find(|r| r.client_port == client_port)
        .and_then(|r| r.handshakes.into_iter().next())
        .expect("the flow has a handshake");
    let mut decoder = Decoder::new(DecodeConfig::default());
    let mut isn = [None, None];
    let mut segs: [Vec<(u32, Vec<u8>)>; 2] = [Vec::new(), Vec::new()];
    let (mut client, mut server) = (None, None);
    for (ts, link, data) in &frames {
        let Ok(Some(p)) = decoder.decode(*ts, *link, data, data.len() as u32) else {
            continue;
        };
        let Some(tcp) = p.tcp else { continue };
        let d = if p.src_port == client_port {
            0
        } else if p.dst_port == client_port {
            1
        } else {
            continue;
        };
        if let (IpAddr::V4(s), IpAddr::V4(t)) = (p.src, p.dst) {
            if d == 0 {
                client = Some((s, p.src_port));
                server = Some((t, p.dst_port));
            }
        }
        if tcp.flags & 0x02 != 0 {
            isn[d] = Some(tcp.seq);
        } else if !p.payload.is_empty() {
            segs[d].push((tcp.seq, p.payload.to_vec()));
        }
    }
    let isn = [isn[0].expect("client SYN"), isn[1].expect("server SYN-ACK")];
    let streams = [0, 1].map(|d| {
        let mut s = std::mem::take(&mut segs[d]);
        s.sort_by_key(|(seq, _)| seq.wrapping_sub(isn[d]));
        let mut out = Vec::new();
        for (seq, data) in s {
            let off = seq.wrapping_sub(isn[d].wrapping_add(1)) as usize;
            if off + data.len() > out.len() && off <= out.len() {
                out.extend_from_slice(&data[out.len() - off..]);
            }
        }
        out
    });
    Conn {
        client: client.expect("client"),
        server: server.expect("server"),
        isn,
        streams,
        expected,
    }
}

/// An Ethernet/IPv4/TCP frame (checksums zero: flowmesh does not verify them).
fn tcp_frame(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = (40 + payload.len()) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ]);
    f.extend_from_slice(&src.0.octets());
    f.extend_from_slice(&dst.0.octets());
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&ack.to_be_bytes());
    f.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Cuts a stream at `cuts`, then orders the pieces by `order` and adds `dups`.
fn segments(
    stream: &[u8],
    cuts: &[prop::sample::Index],
    dups: &[prop::sample::Index],
    seed: u64,
) -> Vec<(usize, Vec<u8>)> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len())).collect();
    points.extend([0, stream.len()]);
    points.sort_unstable();
    points.dedup();
    let mut segs: Vec<(usize, Vec<u8>)> = points
        .windows(2)
        .map(|w| (w[0], stream[w[0]..w[1]].to_vec()))
        .collect();
    for d in dups {
        let s = segs[d.index(segs.len())].clone();
        segs.push(s);
    }
    let mut x = seed | 1;
    for i in (1..segs.len()).rev() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        segs.swap(i, (x >> 33) as usize % (i + 1));
    }
    segs
}

/// The frames of `c` with the client's stream cut into `client_segs`: handshake (without
/// the client's SYN unless `client_syn`), client segments, server segments.
fn conn_frames(
    c: &Conn,
    client_segs: &[(usize, Vec<u8>)],
    client_syn: bool,
) -> Vec<(Timestamp, LinkType, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut t = 1_700_000_000_000_000_000i64;
    let mut push = |f: Vec<u8>| {
        t += 1000;
        frames.push((Timestamp(t), LinkType::Ethernet, f));
    };
    let (ci, si) = (c.isn[0], c.isn[1]);
    if client_syn {
        push(tcp_frame(c.client, c.server, ci, 0, 0x02, &[]));
    }
    push(tcp_frame(
        c.server,
        c.client,
        si,
        ci.wrapping_add(1),
        0x12,
        &[],
    ));
    push(tcp_frame(
        c.client,
        c.server,
        ci.wrapping_add(1),
        si.wrapping_add(1),
        0x10,
        &[],
    ));
    for (off, data) in client_segs {
        push(tcp_frame(
            c.client,
            c.server,
            ci.wrapping_add(1 + *off as u32),
            si.wrapping_add(1),
            0x18,
            data,
        ));
    }
    for (i, chunk) in c.streams[1].chunks(1448).enumerate() {
        let seq = si.wrapping_add(1 + (i * 1448) as u32);
        push(tcp_frame(
            c.server,
            c.client,
            seq,
            ci.wrapping_add(1 + c.streams[0].len() as u32),
            0x18,
            chunk,
        ));
    }
    frames
}

fn handshake_of(records: Vec<FlowRecord>, c: &Conn) -> Option<Handshake> {
    records
        .into_iter()
        .find(|r| r.client_port == c.client.1)
        .and_then(|r| r.handshakes.into_iter().next())
}

fn replay_resegmented(c: &Conn, client_segs: &[(usize, Vec<u8>)]) -> Option<Handshake> {
    handshake_of(run(&conn_frames(c, client_segs, true)), c)
}

fn same_handshake(got: Option<Handshake>, want: &Handshake) -> Result<(), TestCaseError> {
    let got = got.ok_or_else(|| TestCaseError::fail("no handshake"))?;
    prop_assert_eq!(&got.ja3, &want.ja3);
    prop_assert_eq!(&got.ja4, &want.ja4);
    prop_assert_eq!(&got.ja3s, &want.ja3s);
    prop_assert_eq!(&got.ja4s, &want.ja4s);
    prop_assert_eq!(&got.sni, &want.sni);
    prop_assert_eq!(&got.tls_version, &want.tls_version);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// curl/OpenSSL: a 517-byte ClientHello in one record.
    #[test]
    fn curl_flow_survives_any_segmentation(
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..80),
        dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        seed: u64,
    ) {
        let c = lift("pub_curl_vs_openssl_server.pcap", 44216);
        let segs = segments(&c.streams[0], &cuts, &dups, seed);
        same_handshake(replay_resegmented(&c, &segs), &c.expected)?;
    }

    /// Chromium: a ~1.9 KB ClientHello with GREASE and a post-quantum key share.
    #[test]
    fn chromium_flow_survives_any_segmentation(
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..80),
        dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        seed: u64,
    ) {
        let c = lift("pub_chromium_tcp.pcap", 59824);
        let segs = segments(&c.streams[0], &cuts, &dups, seed);
        same_handshake(replay_resegmented(&c, &segs), &c.expected)?;
    }
}

#[test]
fn lifted_flows_carry_the_corpus_values() {
    // Guards the harness itself: the lifted expectations are the corpus' values.
    let c = lift("pub_curl_vs_openssl_server.pcap", 44216);
    assert_eq!(
        c.expected.ja4.as_deref(),
        Some("t13d3112h2_e8f1e7e78f70_b26ce05bbdd6")
    );
    let c = lift("pub_chromium_tcp.pcap", 59824);
    assert_eq!(
        c.expected.ja4.as_deref(),
        Some("t13d1517h2_8daaf6152771_cb7bf5808d99")
    );
    assert!(
        c.streams[0].len() > 1800,
        "Chromium's ClientHello spans two segments"
    );
}

#[test]
fn flows_without_payload_take_no_inspection_capacity() {
    // 500 SYN-only flows (a SYN flood) in front of a real handshake, with room for 8
    // flows under inspection: the handshake is still parsed.
    let c = lift("pub_chromium_tcp.pcap", 59824);
    let mut frames = Vec::new();
    for port in 0..500u16 {
        let syn = tcp_frame(
            (Ipv4Addr::new(198, 51, 100, 7), 1024 + port),
            c.server,
            7,
            0,
            0x02,
            &[],
        );
        frames.push((
            Timestamp(1_700_000_000_000_000_000),
            LinkType::Ethernet,
            syn,
        ));
    }
    frames.extend(conn_frames(&c, &[(0, c.streams[0].clone())], true));
    let cfg = ShardConfig {
        max_inspected_flows: 8,
        ..ShardConfig::default()
    };
    let got = handshake_of(run_with(cfg, &frames), &c);
    assert_eq!(got.and_then(|h| h.ja4), c.expected.ja4);
}

#[test]
fn a_syn_ack_without_its_syn_places_the_client_stream() {
    // The client's SYN is missing and its ClientHello's second segment comes first: the
    // SYN-ACK's acknowledgment number says where the client's stream starts.
    let c = lift("pub_chromium_tcp.pcap", 59824);
    let split = 1000;
    let segs = vec![
        (split, c.streams[0][split..].to_vec()),
        (0, c.streams[0][..split].to_vec()),
    ];
    let got = handshake_of(run(&conn_frames(&c, &segs, false)), &c);
    assert_eq!(got.and_then(|h| h.ja4), c.expected.ja4);
}

#[test]
fn a_handshake_carries_the_time_of_the_packet_that_completed_its_client_hello() {
    // Chromium's ClientHello in two segments, in order and reversed: either way it is
    // complete only with the second client segment, whose timestamp the handshake carries.
    let c = lift("pub_chromium_tcp.pcap", 59824);
    let split = 1000;
    let (head, tail) = (
        (0, c.streams[0][..split].to_vec()),
        (split, c.streams[0][split..].to_vec()),
    );
    for segs in [vec![head.clone(), tail.clone()], vec![tail, head]] {
        let frames = conn_frames(&c, &segs, true);
        // SYN, SYN-ACK, ACK, then the two client segments.
        let (first, completing) = (frames[3].0, frames[4].0);
        let got = handshake_of(run(&frames), &c).expect("a handshake");
        assert_eq!(got.ja4, c.expected.ja4);
        assert_eq!(
            got.ts,
            Some(completing),
            "not the first segment's {first:?}"
        );
    }
}
