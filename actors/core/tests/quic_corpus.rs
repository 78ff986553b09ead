//! QUIC Initial decryption over the real captures of the public corpus
//! (`pcaps/pub_quic_aioquic.pcap`, `pcaps/pub_quic_chromium.pcap`).
//!
//! Corpus location: env `FLOWMESH_CORPUS`, default `<workspace root>/../shared/corpus`.
//! Run with `FLOWMESH_CORPUS=/work/shared/corpus cargo test -p flowmesh-core`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use flowmesh_core::quic::{probe_quic_initial, QuicInitialTracker};

mod common;
use common::corpus_root as corpus_dir;

/// An IPv4 address and UDP port.
type Endpoint = ([u8; 4], u16);

/// One UDP datagram from the capture.
#[derive(Debug, Clone)]
struct Udp {
    src: Endpoint,
    dst: Endpoint,
    payload: Vec<u8>,
}

fn u16be(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// Test-only classic-pcap reader: Ethernet (optionally 802.1Q), IPv4, UDP. Other
/// frames (IPv6, ARP, TCP, IP fragments) are skipped.
fn read_pcap_udp(bytes: &[u8]) -> Vec<Udp> {
    assert!(bytes.len() >= 24, "pcap too short");
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        m => panic!("not a classic pcap (magic {m:#x})"),
    };
    let rd32 = |b: &[u8]| {
        let a: [u8; 4] = b.try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    assert_eq!(rd32(&bytes[20..24]), 1, "linktype must be Ethernet");
    let mut out = Vec::new();
    let mut pos = 24;
    while pos + 16 <= bytes.len() {
        let incl = rd32(&bytes[pos + 8..pos + 12]) as usize;
        let frame = &bytes[pos + 16..(pos + 16 + incl).min(bytes.len())];
        pos += 16 + incl;
        if let Some(u) = parse_frame(frame) {
            out.push(u);
        }
    }
    out
}

fn parse_frame(f: &[u8]) -> Option<Udp> {
    let mut off = 12;
    let mut ethertype = u16be(f, off)?;
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        off += 4;
        ethertype = u16be(f, off)?;
    }
    if ethertype != 0x0800 {
        return None;
    }
    let ip = f.get(off + 2..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let total = usize::from(u16be(ip, 2)?);
    let frag = u16be(ip, 6)?;
    if *ip.get(9)? != 17 || frag & 0x3fff != 0 {
        return None;
    }
    let ip = ip.get(..total.min(ip.len()))?;
    let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
    let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
    let udp = ip.get(ihl..)?;
    let ulen = usize::from(u16be(udp, 4)?);
    let payload = udp.get(8..ulen.min(udp.len()))?.to_vec();
    Some(Udp {
        src: (src, u16be(udp, 0)?),
        dst: (dst, u16be(udp, 2)?),
        payload,
    })
}

/// Per flow, keyed by the client port: (client endpoint, tracker).
struct FlowRun {
    client: Endpoint,
    tracker: QuicInitialTracker,
    datagrams: usize,
}

fn run_file(name: &str) -> HashMap<u16, FlowRun> {
    let path = corpus_dir().join("pcaps").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut flows: HashMap<(Endpoint, Endpoint), FlowRun> = HashMap::new();
    for d in read_pcap_udp(&bytes) {
        let key = if d.src <= d.dst {
            (d.src, d.dst)
        } else {
            (d.dst, d.src)
        };
        let flow = match flows.entry(key) {
            Entry::Occupied(o) => o.into_mut(),
            // The first datagram of a QUIC flow is the client's Initial.
            Entry::Vacant(_) if !probe_quic_initial(&d.payload) => continue,
            Entry::Vacant(v) => v.insert(FlowRun {
                client: d.src,
                tracker: QuicInitialTracker::new(),
                datagrams: 0,
            }),
        };
        let from_client = d.src == flow.client;
        flow.tracker.on_datagram(from_client, &d.payload);
        flow.datagrams += 1;
    }
    flows.into_values().map(|f| (f.client.1, f)).collect()
}

/// `(client_port, sni)` of the QUIC rows of `expected.jsonl` for `file`.
fn expected_rows(file: &str) -> Vec<(u16, String)> {
    let text = std::fs::read_to_string(corpus_dir().join("expected.jsonl")).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["file"] == file && v["transport"] == "quic")
        .map(|v| {
            (
                v["client_port"].as_u64().unwrap() as u16,
                v["sni"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn handshake_len(stream: &[u8]) -> usize {
    assert!(
        stream.len() >= 4,
        "CRYPTO stream shorter than a handshake header"
    );
    (usize::from(stream[1]) << 16 | usize::from(stream[2]) << 8 | usize::from(stream[3])) + 4
}

fn check_file(file: &str, expected_flows: usize) {
    let rows = expected_rows(file);
    assert_eq!(rows.len(), expected_flows, "expected.jsonl rows for {file}");
    let flows = run_file(file);
    for (port, sni) in rows {
        let f = flows
            .get(&port)
            .unwrap_or_else(|| panic!("{file}: no QUIC flow from client port {port}"));
        let t = &f.tracker;
        let s = t.stats();
        eprintln!(
            "{file} client port {port}: {} datagrams, {} packets, {} Initials decrypted, \
             {} CRYPTO frames, {} skipped, rekeys {}, drops {:?}, client stream {} B, server stream {} B",
            f.datagrams,
            s.packets,
            s.initials_decrypted,
            s.crypto_frames,
            s.not_initial,
            s.rekeys,
            s.drops.iter().map(|(d, n)| (d.as_str(), n)).collect::<Vec<_>>(),
            t.crypto_stream(true).len(),
            t.crypto_stream(false).len(),
        );
        let ch = t.crypto_stream(true);
        assert_eq!(ch.first(), Some(&0x01), "{file}:{port}: not a ClientHello");
        let ch_len = handshake_len(ch);
        assert!(
            ch.len() >= ch_len,
            "{file}:{port}: ClientHello incomplete ({} of {ch_len} bytes)",
            ch.len()
        );
        let ch = &ch[..ch_len];
        assert!(
            ch.windows(sni.len()).any(|w| w == sni.as_bytes()),
            "{file}:{port}: SNI {sni} not in ClientHello"
        );
        let sh = t.crypto_stream(false);
        assert_eq!(sh.first(), Some(&0x02), "{file}:{port}: not a ServerHello");
        // The server's Initial space carries only the ServerHello (RFC 9001 §4.1.4).
        assert_eq!(
            sh.len(),
            handshake_len(sh),
            "{file}:{port}: ServerHello incomplete"
        );
        assert!(t.version().is_some());
        assert_eq!(s.drops.get(flowmesh_core::quic::QuicDrop::FrameError), 0);
    }
}

#[test]
fn aioquic_two_connections() {
    check_file("pub_quic_aioquic.pcap", 2);
}

#[test]
fn chromium_chaos_protected_client_hello() {
    check_file("pub_quic_chromium.pcap", 1);
}
