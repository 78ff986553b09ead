//! Reads every capture of the shared corpus (`$FLOWMESH_CORPUS/pcaps/`, default
//! `<workspace root>/../shared/corpus`) through `CaptureReader` and `Decoder`, and checks
//! per-file facts the corpus was built to exhibit. Fails loudly if the corpus is absent.

use flowmesh_core::capture::{CaptureFormat, CaptureReader};
use flowmesh_core::decode::{DecodeConfig, DecodeStats, Decoder};
use std::net::IpAddr;

mod common;
use common::{allocations, pcaps_dir as corpus_dir, CountingAlloc};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn read(name: &str) -> Vec<u8> {
    let path = corpus_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// What one file yielded.
#[derive(Default)]
struct Summary {
    format: Option<CaptureFormat>,
    frames: usize,
    stats: Option<DecodeStats>,
    vlans: Vec<Option<u16>>,
    /// (is_ipv6, proto, dst_port, payload captured, payload declared, frame truncated,
    /// frame captured length)
    packets: Vec<(bool, u8, u16, usize, u32, bool, usize)>,
    truncated_frames: usize,
}

fn run(bytes: &[u8]) -> Summary {
    let mut reader = CaptureReader::new(bytes).expect("capture header");
    let mut s = Summary {
        format: Some(reader.format()),
        ..Summary::default()
    };
    let mut dec = Decoder::new(DecodeConfig::default());
    for item in reader.by_ref() {
        let frame = item.expect("no capture error in the corpus");
        s.frames += 1;
        if frame.is_truncated() {
            s.truncated_frames += 1;
        }
        if let Ok(Some(p)) = dec.decode(frame.ts, frame.link, frame.data, frame.orig_len) {
            s.vlans.push(p.vlan);
            s.packets.push((
                p.src.is_ipv6(),
                p.proto,
                p.dst_port,
                p.payload.len(),
                p.payload_len,
                frame.is_truncated(),
                frame.data.len(),
            ));
            assert!(matches!(
                (p.src, p.dst),
                (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_))
            ));
        }
    }
    assert_eq!(reader.offset(), bytes.len(), "whole file consumed");
    s.stats = Some(dec.stats().clone());
    s
}

#[test]
fn every_corpus_file_reads_and_decodes() {
    let mut names: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("list corpus")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "corpus directory holds no captures");
    for name in &names {
        let s = run(&read(name));
        let st = s.stats.as_ref().expect("stats");
        // Every frame is accounted for: a packet, a held fragment, or a drop with a reason.
        assert_eq!(st.frames, s.frames as u64, "{name}");
        assert_eq!(
            st.frames,
            st.packets + st.fragments_held + st.dropped_total(),
            "{name}"
        );
        assert!(st.packets > 0, "{name}: no packet decoded");
        let drops: Vec<_> = st
            .drops()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{}={n}", r.as_str()))
            .collect();
        eprintln!(
            "{name}: {:?} frames={} packets={} held={} drops=[{}] truncated_payloads={}",
            s.format.expect("format"),
            st.frames,
            st.packets,
            st.fragments_held,
            drops.join(","),
            st.truncated_payloads
        );
    }
}

/// Every frame of `pub_snaplen96.pcap` was captured with a 96-byte snaplen. Frames that
/// fit in 96 bytes (bare ACKs, short segments) are whole; every frame the snaplen cut
/// still decodes, with `payload.len() < payload_len`.
#[test]
fn snaplen96_payloads_are_truncated() {
    let s = run(&read("pub_snaplen96.pcap"));
    assert_eq!(
        s.packets.len(),
        s.frames,
        "every frame decodes despite the snaplen"
    );
    let mut cut = 0;
    for p in s.packets.iter().filter(|p| p.1 == 6 && p.4 > 0) {
        assert!(p.6 <= 96, "frame of {} bytes exceeds the snaplen", p.6);
        if p.5 {
            cut += 1;
            assert!(
                p.3 < p.4 as usize,
                "cut frame: captured {} of {} payload bytes",
                p.3,
                p.4
            );
        } else {
            assert_eq!(
                p.3, p.4 as usize,
                "whole frame must carry its whole payload"
            );
        }
    }
    assert!(
        cut >= 10,
        "expected the snaplen to cut at least 10 TCP segments, got {cut}"
    );
    assert_eq!(cut, s.truncated_frames);
}

#[test]
fn edge_vlan_has_vlan_100() {
    let s = run(&read("pub_edge_vlan.pcap"));
    assert!(s.vlans.contains(&Some(100)), "vlans seen: {:?}", s.vlans);
}

#[test]
fn node_server_is_pcapng() {
    let s = run(&read("pub_node_server.pcapng"));
    assert_eq!(s.format, Some(CaptureFormat::PcapNg));
    assert!(s.frames > 0);
}

#[test]
fn ipv6_noise_ports_has_tcp_to_14433() {
    let s = run(&read("pub_ipv6_noise_ports.pcap"));
    assert!(
        s.packets.iter().any(|p| p.0 && p.1 == 6 && p.2 == 14433),
        "no IPv6 TCP to port 14433"
    );
}

/// The steady-state decode path (unfragmented packets) must not touch the heap.
#[test]
fn decoding_unfragmented_packets_does_not_allocate() {
    // The counter must see allocations, or this test could never fail.
    let before = allocations();
    let v = std::hint::black_box(vec![1u8; 8]);
    assert!(allocations() > before, "allocation counter is not counting");
    drop(v);
    for name in [
        "pub_chromium_tcp.pcap",
        "pub_edge_vlan.pcap",
        "pub_ipv6_noise_ports.pcap",
        "pub_snaplen96.pcap",
        "pub_node_server.pcapng",
    ] {
        let bytes = read(name);
        let frames: Vec<_> = CaptureReader::new(&bytes)
            .expect("header")
            .map(|f| f.expect("frame"))
            .collect();
        let mut dec = Decoder::new(DecodeConfig::default());
        let mut checked = 0;
        for f in &frames {
            let before = allocations();
            let out = dec.decode(f.ts, f.link, f.data, f.orig_len);
            let after = allocations();
            if let Ok(Some(p)) = out {
                if !p.fragmented {
                    assert_eq!(after, before, "{name}: decode allocated");
                    checked += 1;
                }
            }
        }
        assert!(checked > 0, "{name}");
    }
}
