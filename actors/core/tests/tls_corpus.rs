//! Ground-truth test: runs the TLS direction parser and the JA3/JA3S/JA4/JA4S functions
//! over the TCP flows of the public corpus (`FLOWMESH_CORPUS`, default
//! `<workspace>/../shared/corpus`) and compares every row of `expected.jsonl`.
//!
//! The capture reading below is a deliberately tiny test-only helper (classic pcap and
//! pcapng EPB, Ethernet/VLAN, IPv4/IPv6, TCP; per-direction payloads ordered by sequence
//! number and de-duplicated, stopping at the first gap). QUIC rows are skipped: the QUIC
//! Initial decryption lives in another module.

use flowmesh_core::fingerprint::ja3::{ja3, ja3s, md5_hex};
use flowmesh_core::fingerprint::ja4::{ja4, ja4s, JaTransport};
use flowmesh_core::fingerprint::tls::{
    version_name, ClientHello, Framing, ServerHello, TlsDirectionParser, TlsEvent,
};
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;

mod common;
use common::corpus_root as corpus_dir;

type Endpoint = (IpAddr, u16);

#[derive(Default)]
struct Direction {
    syn_seq: Option<u32>,
    segments: Vec<(u32, Vec<u8>)>,
}

fn u16be(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

fn u32be(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

/// Captured frames (Ethernet) of a pcap or pcapng file.
fn frames(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let magic = bytes.get(..4).expect("short capture file");
    if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        // pcapng: walk blocks, keep Enhanced Packet Blocks (type 6). Little-endian only
        // (checked via the SHB byte-order magic).
        assert_eq!(
            bytes.get(8..12),
            Some(&[0x4d, 0x3c, 0x2b, 0x1a][..]),
            "LE pcapng only"
        );
        let mut pos = 0;
        while pos + 12 <= bytes.len() {
            let le32 = |at: usize| {
                u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize
            };
            let (ty, len) = (le32(pos), le32(pos + 4));
            if len < 12 || pos + len > bytes.len() {
                break;
            }
            if ty == 6 {
                let caplen = le32(pos + 20);
                out.push(&bytes[pos + 28..pos + 28 + caplen]);
            }
            pos += len;
        }
        return out;
    }
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("not a pcap file"),
    };
    let rd = |at: usize| {
        let b: [u8; 4] = bytes[at..at + 4].try_into().expect("4 bytes");
        (if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }) as usize
    };
    let mut pos = 24;
    while pos + 16 <= bytes.len() {
        let caplen = rd(pos + 8);
        let start = pos + 16;
        if start + caplen > bytes.len() {
            break;
        }
        out.push(&bytes[start..start + caplen]);
        pos = start + caplen;
    }
    out
}

/// (src, dst, seq, syn, payload) of a TCP segment in an Ethernet frame.
fn tcp_segment(frame: &[u8]) -> Option<(Endpoint, Endpoint, u32, bool, &[u8])> {
    let mut off = 12;
    let mut ethertype = u16be(frame, off)?;
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        off += 4;
        ethertype = u16be(frame, off)?;
    }
    let ip = frame.get(off + 2..)?;
    let (src, dst, l4): (IpAddr, IpAddr, &[u8]) = match ethertype {
        0x0800 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let total = usize::from(u16be(ip, 2)?);
            let frag = u16be(ip, 6)?;
            if *ip.get(9)? != 6 || frag & 0x3fff != 0 {
                return None;
            }
            let s: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let d: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            let end = total.min(ip.len());
            (s.into(), d.into(), ip.get(ihl..end)?)
        }
        0x86dd => {
            let plen = usize::from(u16be(ip, 4)?);
            if *ip.get(6)? != 6 {
                return None;
            }
            let s: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            let end = (40 + plen).min(ip.len());
            (s.into(), d.into(), ip.get(40..end)?)
        }
        _ => return None,
    };
    let sport = u16be(l4, 0)?;
    let dport = u16be(l4, 2)?;
    let seq = u32be(l4, 4)?;
    let doff = usize::from(l4.get(12)? >> 4) * 4;
    let syn = l4.get(13)? & 0x02 != 0;
    Some((
        (src, sport),
        (dst, dport),
        seq,
        syn,
        l4.get(doff..).unwrap_or_default(),
    ))
}

/// Per-direction streams of a capture: ordered by sequence number, de-duplicated,
/// cut at the first gap.
fn streams(bytes: &[u8]) -> HashMap<(Endpoint, Endpoint), Vec<u8>> {
    let mut dirs: HashMap<(Endpoint, Endpoint), Direction> = HashMap::new();
    for f in frames(bytes) {
        let Some((src, dst, seq, syn, payload)) = tcp_segment(f) else {
            continue;
        };
        let d = dirs.entry((src, dst)).or_default();
        if syn {
            d.syn_seq = Some(seq);
        } else if !payload.is_empty() {
            d.segments.push((seq, payload.to_vec()));
        }
    }
    let mut out = HashMap::new();
    for (key, d) in dirs {
        let Some(anchor) = d.syn_seq.map(|s| s.wrapping_add(1)).or_else(|| {
            let first = d.segments.first()?.0;
            d.segments
                .iter()
                .map(|(s, _)| s.wrapping_sub(first) as i32)
                .min()
                .map(|m| first.wrapping_add(m as u32))
        }) else {
            continue;
        };
        let mut segs: Vec<(i64, &[u8])> = d
            .segments
            .iter()
            .map(|(s, p)| (i64::from(s.wrapping_sub(anchor) as i32), p.as_slice()))
            .collect();
        segs.sort_by_key(|(s, _)| *s);
        let mut stream = Vec::new();
        for (s, p) in segs {
            let next = stream.len() as i64;
            let end = s + p.len() as i64;
            if s > next {
                break; // gap
            }
            if end > next {
                stream.extend_from_slice(&p[(next - s) as usize..]);
            }
        }
        out.insert(key, stream);
    }
    out
}

fn run(stream: &[u8]) -> Vec<TlsEvent> {
    let mut p = TlsDirectionParser::new(Framing::Records);
    let mut out = Vec::new();
    p.feed(stream, &mut out);
    p.end_of_stream(&mut out);
    out
}

fn clients(ev: &[TlsEvent]) -> Vec<&ClientHello> {
    ev.iter()
        .filter_map(|e| match e {
            TlsEvent::ClientHello(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn servers(ev: &[TlsEvent]) -> Vec<&ServerHello> {
    ev.iter()
        .filter_map(|e| match e {
            TlsEvent::ServerHello(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn check_client(row: &Value, ch: &ClientHello, ctx: &str) {
    let s = ja3(ch);
    assert_eq!(Some(s.as_str()), row["ja3"].as_str(), "{ctx}: ja3");
    assert_eq!(
        Some(md5_hex(&s).as_str()),
        row["ja3_hash"].as_str(),
        "{ctx}: ja3_hash"
    );
    assert_eq!(
        Some(ja4(ch, JaTransport::Tcp).as_str()),
        row["ja4"].as_str(),
        "{ctx}: ja4"
    );
    assert_eq!(ch.sni.as_deref(), row["sni"].as_str(), "{ctx}: sni");
    let alpn: Vec<&str> = row["alpn"]
        .as_array()
        .expect("alpn array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(ch.alpn, alpn, "{ctx}: alpn");
}

fn check_server(row: &Value, sh: &ServerHello, ctx: &str) {
    let s = ja3s(sh);
    assert_eq!(Some(s.as_str()), row["ja3s"].as_str(), "{ctx}: ja3s");
    assert_eq!(
        Some(md5_hex(&s).as_str()),
        row["ja3s_hash"].as_str(),
        "{ctx}: ja3s_hash"
    );
    assert_eq!(
        Some(ja4s(sh, JaTransport::Tcp).as_str()),
        row["ja4s"].as_str(),
        "{ctx}: ja4s"
    );
    assert_eq!(
        sh.alpn.as_deref(),
        row["alpn_selected"].as_str(),
        "{ctx}: alpn_selected"
    );
    let hrr = row["server_hello_is_hrr"].as_bool().unwrap_or(false);
    assert_eq!(sh.is_hello_retry_request, hrr, "{ctx}: server_hello_is_hrr");
    let version = if hrr {
        None
    } else {
        version_name(sh.negotiated_version())
    };
    assert_eq!(version, row["tls_version"].as_str(), "{ctx}: tls_version");
}

#[test]
fn corpus_fingerprints_match_ground_truth() {
    let dir = corpus_dir();
    let text = std::fs::read_to_string(dir.join("expected.jsonl")).expect("expected.jsonl");
    let mut cache: HashMap<String, HashMap<(Endpoint, Endpoint), Vec<u8>>> = HashMap::new();
    let (mut client_ok, mut server_ok, mut negative_ok, mut skipped) = (0, 0, 0, 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row: Value = serde_json::from_str(line).expect("json row");
        let file = row["file"].as_str().expect("file");
        if row["transport"] != "tcp" {
            skipped += 1;
            continue;
        }
        let flows = cache.entry(file.to_string()).or_insert_with(|| {
            streams(&std::fs::read(dir.join("pcaps").join(file)).expect("read pcap"))
        });
        let ep = |ip: &str, port: &str| -> Endpoint {
            (
                row[ip].as_str().expect("ip").parse().expect("ip parse"),
                u16::try_from(row[port].as_u64().expect("port")).expect("port range"),
            )
        };
        let (c, s) = (
            ep("client_ip", "client_port"),
            ep("server_ip", "server_port"),
        );
        let idx = row["client_hello_index"].as_u64().unwrap_or(0) as usize;
        let ctx = format!("{file} {}:{} #{idx}", c.0, c.1);
        let empty = Vec::new();
        let cev = run(flows.get(&(c, s)).unwrap_or(&empty));
        let sev = run(flows.get(&(s, c)).unwrap_or(&empty));
        let (chs, shs) = (clients(&cev), servers(&sev));

        match &row["expect_client_fp"] {
            Value::Bool(true) => {
                let ch = chs
                    .get(idx)
                    .unwrap_or_else(|| panic!("{ctx}: no ClientHello {cev:?}"));
                check_client(&row, ch, &ctx);
                client_ok += 1;
            }
            Value::Bool(false) => {
                assert!(chs.is_empty(), "{ctx}: unexpected ClientHello");
                assert!(
                    cev.iter().any(|e| matches!(e, TlsEvent::Malformed { .. })),
                    "{ctx}: expected a Malformed event, got {cev:?}"
                );
                negative_ok += 1;
            }
            _ => {
                if let Some(ch) = chs.get(idx) {
                    check_client(&row, ch, &ctx);
                    client_ok += 1;
                }
            }
        }
        match &row["expect_server_fp"] {
            Value::Bool(true) => {
                let sh = shs
                    .get(idx)
                    .unwrap_or_else(|| panic!("{ctx}: no ServerHello {sev:?}"));
                check_server(&row, sh, &ctx);
                server_ok += 1;
            }
            Value::Bool(false) => assert!(shs.is_empty(), "{ctx}: unexpected ServerHello"),
            _ => {
                if let Some(sh) = shs.get(idx) {
                    check_server(&row, sh, &ctx);
                    server_ok += 1;
                }
            }
        }
    }
    eprintln!(
        "corpus: {client_ok} client rows, {server_ok} server rows matched, \
         {negative_ok} negative rows, {skipped} QUIC rows skipped"
    );
    assert!(client_ok >= 38, "too few client rows matched: {client_ok}");
}

/// Every TCP stream of the corpus gives the same events when fed one byte at a time.
#[test]
fn corpus_byte_at_a_time_is_identical() {
    let dir = corpus_dir();
    for entry in std::fs::read_dir(dir.join("pcaps")).expect("pcaps dir") {
        let path = entry.expect("dir entry").path();
        if path.to_string_lossy().contains("quic") {
            continue;
        }
        for stream in streams(&std::fs::read(&path).expect("read")).values() {
            let stream = &stream[..stream.len().min(8192)];
            let whole = run(stream);
            let mut p = TlsDirectionParser::new(Framing::Records);
            let mut out = Vec::new();
            for b in stream {
                p.feed(std::slice::from_ref(b), &mut out);
            }
            p.end_of_stream(&mut out);
            assert_eq!(whole, out, "{}", path.display());
        }
    }
}

/// The corrupted ClientHello is rejected for its extensions length; TLS 1.2 full
/// handshakes yield the server certificate chain.
#[test]
fn corpus_malformed_reason_and_certificates() {
    let dir = corpus_dir();
    let flows =
        streams(&std::fs::read(dir.join("pcaps/pub_edge_malformed_ch.pcap")).expect("read"));
    let mut reasons = Vec::new();
    let mut chains = Vec::new();
    for stream in flows.values() {
        for e in run(stream) {
            match e {
                TlsEvent::Malformed { hello, reason } => reasons.push((hello, reason.as_str())),
                TlsEvent::Certificates(c) => chains.push(c),
                _ => {}
            }
        }
    }
    assert_eq!(
        reasons,
        vec![(
            flowmesh_core::fingerprint::tls::HelloKind::Client,
            "extensions_length"
        )]
    );
    assert!(!chains.is_empty(), "no certificate chain in TLS 1.2 flows");
    for chain in &chains {
        let leaf = chain.first().expect("leaf");
        assert!(leaf.subject.contains("www.pub.test"), "{leaf:?}");
        assert_eq!(leaf.sha256.len(), 64);
        assert!(
            leaf.not_before.ends_with('Z') && leaf.not_before.len() == 20,
            "{leaf:?}"
        );
        eprintln!("{leaf:?}");
    }
}
