//! The [`Router`] over every capture of the shared corpus (`$FLOWMESH_CORPUS/pcaps/`,
//! default `<workspace root>/../shared/corpus`):
//! - each `Whole` hash is the symmetric hash of the key a fresh decoder gives the frame;
//! - routing unfragmented frames does not allocate;
//! - a router feeding n shards (n = 1..=8) emits exactly the flow records one shard
//!   emits alone, on the captures as they are and with every packet cut into IP
//!   fragments (in order for some datagrams, reversed for others).

use flowmesh_core::capture::{CaptureReader, Frame, LinkType};
use flowmesh_core::decode::{DecodeConfig, Decoder};
use flowmesh_core::handshake::WorkerConfig;
use flowmesh_core::shard::{Inline, Route, Router, ShardConfig};
use flowmesh_schemas::FlowRecord;

mod common;
use common::{allocations, pcaps_dir as corpus_dir, CountingAlloc};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Every capture of the corpus, by name.
fn captures() -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("list corpus")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "corpus directory holds no captures");
    names
        .into_iter()
        .map(|n| {
            let bytes = std::fs::read(dir.join(&n)).expect("read capture");
            (n, bytes)
        })
        .collect()
}

fn frames(bytes: &[u8]) -> Vec<Frame<'_>> {
    CaptureReader::new(bytes)
        .expect("capture header")
        .map(|f| f.expect("no capture error in the corpus"))
        .collect()
}

#[test]
fn whole_routes_carry_the_flow_key_hash() {
    for (name, bytes) in captures() {
        let mut router = Router::new(DecodeConfig::default());
        let mut whole = 0;
        for f in frames(&bytes) {
            let route = router.route(&f);
            let mut fresh = Decoder::new(DecodeConfig::default());
            match (route, fresh.decode(f.ts, f.link, f.data, f.orig_len)) {
                (Route::Whole { hash }, Ok(Some(p))) => {
                    assert!(!p.fragmented);
                    assert_eq!(hash, p.flow_key().0.symmetric_hash(), "{name}");
                    whole += 1;
                }
                (Route::Dropped(r), Err(e)) => assert_eq!(r, e, "{name}"),
                (route, fresh) => panic!("{name}: router {route:?}, fresh decoder {fresh:?}"),
            }
        }
        let s = router.stats();
        assert_eq!(s.packets, whole, "{name}");
        assert_eq!(s.frames, s.packets + s.dropped_total(), "{name}");
        assert!(whole > 0, "{name}");
    }
}

#[test]
fn routing_unfragmented_frames_does_not_allocate() {
    // The counter must see allocations, or this test could never fail.
    let before = allocations();
    let v = std::hint::black_box(vec![1u8; 8]);
    assert!(allocations() > before, "allocation counter is not counting");
    drop(v);
    for (name, bytes) in captures() {
        let frames = frames(&bytes);
        let mut router = Router::new(DecodeConfig::default());
        for f in &frames {
            let before = allocations();
            let route = router.route(f);
            let n = allocations() - before;
            if matches!(route, Route::Whole { .. }) {
                assert_eq!(n, 0, "{name}: routing a whole frame allocated");
            }
        }
    }
}

/// Records as sorted JSON lines, so that emission order does not matter.
fn canonical(records: &[FlowRecord]) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .map(|r| serde_json::to_string(r).expect("json"))
        .collect();
    v.sort();
    v
}

/// One shard over every frame.
fn one_shard(frames: &[Frame<'_>]) -> Vec<String> {
    let mut shard = Inline::new(ShardConfig::default(), WorkerConfig::default());
    let mut out = Vec::new();
    for f in frames {
        shard.process_frame(f, &mut out);
    }
    shard.finish(&mut out);
    canonical(&out)
}

/// A router in front of `n` shards.
fn routed(frames: &[Frame<'_>], n: u64) -> Vec<String> {
    let mut router = Router::new(DecodeConfig::default());
    let mut shards: Vec<Inline> = (0..n)
        .map(|_| Inline::new(ShardConfig::default(), WorkerConfig::default()))
        .collect();
    let mut out = Vec::new();
    for f in frames {
        let (hash, frame) = match router.route(f) {
            Route::Whole { hash } => (hash, *f),
            Route::Reassembled { hash, frame } => (hash, frame),
            Route::Held | Route::Dropped(_) => continue,
        };
        shards[(hash % n) as usize].process_frame(&frame, &mut out);
    }
    for s in &mut shards {
        s.finish(&mut out);
    }
    canonical(&out)
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The fragments of a whole Ethernet frame carrying IPv4, or IPv6 with TCP/UDP right
/// after the fixed header; `None` for anything else. About three fragments each.
fn fragment(f: &Frame<'_>, id: u32) -> Option<Vec<Vec<u8>>> {
    if f.link != LinkType::Ethernet || f.is_truncated() {
        return None;
    }
    let mut l2 = 14;
    while matches!(f.data.get(l2 - 2..l2)?, [0x81, 0x00] | [0x88, 0xa8]) {
        l2 += 4;
    }
    let (eth, ip) = f.data.split_at(l2);
    let (hlen, payload_len) = match (ip.first()? >> 4, ip.get(6)?) {
        (4, _) => (
            usize::from(ip[0] & 0xf) * 4,
            usize::from(u16::from_be_bytes([ip[2], ip[3]]))
                .checked_sub(usize::from(ip[0] & 0xf) * 4)?,
        ),
        (6, 6 | 17) => (40, usize::from(u16::from_be_bytes([ip[4], ip[5]]))),
        _ => return None,
    };
    let payload = ip.get(hlen..hlen + payload_len)?;
    if payload.len() < 24 || (ip[0] >> 4 == 4 && ((ip[6] & 0x3f) | ip[7]) != 0) {
        return None;
    }
    let size = payload.len().div_ceil(3).next_multiple_of(8);
    let n = payload.chunks(size).count();
    let out = payload
        .chunks(size)
        .enumerate()
        .map(|(i, c)| {
            let (off8, more) = ((i * size / 8) as u16, i + 1 < n);
            let mut v = eth.to_vec();
            if ip[0] >> 4 == 4 {
                let mut h = ip[..hlen].to_vec();
                h[2..4].copy_from_slice(&((hlen + c.len()) as u16).to_be_bytes());
                h[6..8].copy_from_slice(&(off8 | if more { 0x2000 } else { 0 }).to_be_bytes());
                h[10..12].copy_from_slice(&[0, 0]);
                let sum = ipv4_checksum(&h);
                h[10..12].copy_from_slice(&sum.to_be_bytes());
                v.extend_from_slice(&h);
            } else {
                let mut h = ip[..40].to_vec();
                h[4..6].copy_from_slice(&((8 + c.len()) as u16).to_be_bytes());
                h[6] = 44;
                v.extend_from_slice(&h);
                v.extend_from_slice(&[ip[6], 0]);
                v.extend_from_slice(&(off8 << 3 | u16::from(more)).to_be_bytes());
                v.extend_from_slice(&id.to_be_bytes());
            }
            v.extend_from_slice(c);
            v
        })
        .collect();
    Some(out)
}

#[test]
fn n_shards_emit_what_one_shard_emits() {
    for (name, bytes) in captures() {
        let original = frames(&bytes);
        // The same capture with every packet that can be cut into fragments cut, every
        // other datagram's fragments sent in reverse.
        let mut cut: Vec<(Frame<'_>, Option<Vec<u8>>)> = Vec::new();
        let mut trains = 0;
        for (i, f) in original.iter().enumerate() {
            match fragment(f, i as u32) {
                Some(mut frags) => {
                    if trains % 2 == 1 {
                        frags.reverse();
                    }
                    trains += 1;
                    cut.extend(frags.into_iter().map(|d| (*f, Some(d))));
                }
                None => cut.push((*f, None)),
            }
        }
        let cut: Vec<Frame<'_>> = cut
            .iter()
            .map(|(f, d)| match d {
                Some(d) => Frame {
                    data: d,
                    orig_len: d.len() as u32,
                    ..*f
                },
                None => *f,
            })
            .collect();
        for (what, input) in [("original", &original), ("fragmented", &cut)] {
            let want = one_shard(input);
            assert!(!want.is_empty(), "{name}: no records");
            for n in 1..=8 {
                assert!(
                    routed(input, n) == want,
                    "{name} ({what}): {n} shards differ from one"
                );
            }
        }
        let mut r = Router::new(DecodeConfig::default());
        let reassembled = cut
            .iter()
            .filter(|f| matches!(r.route(f), Route::Reassembled { .. }))
            .count();
        assert_eq!(reassembled, trains, "{name}: every train reassembled");
        eprintln!(
            "{name}: {} frames, {trains} cut into fragments",
            original.len()
        );
    }
}
