//! Per-packet cost of the shard fast path: a data segment of a TCP flow whose TLS
//! handshake was already parsed (inspection over), i.e. decode + flow lookup + counters.
//!
//! - `decode/eth_ipv4_tcp_1400`: `Decoder::decode` alone on the same frame.
//! - `shard/1_flow_1400`: `Shard::process_frame`, one established flow, seq advancing.
//! - `shard/10k_flows_1400`: 10,000 established flows visited round-robin.
//! - `route/eth_ipv4_tcp_1400`: `Router::route` (the capture side's per-packet cost:
//!   decode + flow key + symmetric hash) on the same frame.
//! - `route/symmetric_hash_{ipv4,ipv6}`: `FlowKey::symmetric_hash` alone.
#![allow(clippy::unwrap_used)]

mod common;

use common::{c2s, establish, frame, hellos, hex, Tuple, ACK, OFF_SEQ, OFF_SRC_PORT, PSH};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use flowmesh_core::capture::LinkType;
use flowmesh_core::decode::{DecodeConfig, Decoder};
use flowmesh_core::handshake::WorkerConfig;
use flowmesh_core::shard::{Inline, Route, Router, ShardConfig};
use flowmesh_schemas::flow::Endpoint;
use flowmesh_schemas::{FlowKey, Timestamp};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const SEGMENT: usize = 1400;
/// Packet-time step per packet (1 µs: ~1 Mpps on this shard).
const STEP_NS: i64 = 1_000;

fn start_ts() -> Timestamp {
    Timestamp::from_parts(1_700_000_000, 0)
}

/// Sanity check the setup once: the handshake is fingerprinted and inspection has
/// released its buffers before data flows.
fn check_setup(ch: &[u8]) {
    let mut shard = Inline::new(ShardConfig::default(), WorkerConfig::default());
    let mut out = Vec::new();
    let mut ts = start_ts();
    let t = Tuple::nth(1);
    let e = establish(&mut shard, &t, ch, &mut ts, &mut out);
    assert_eq!(
        shard.reassembly_bytes(),
        0,
        "inspection still holds buffers"
    );
    let data = c2s(&t, e.cseq, e.sseq, PSH | ACK, &[0xab; SEGMENT]);
    shard.process_frame(&frame(ts.add_nanos(STEP_NS), &data), &mut out);
    assert_eq!(shard.reassembly_bytes(), 0, "data segment was buffered");
    shard.finish(&mut out);
    assert_eq!(out.len(), 1);
    let hs = &out[0].handshakes;
    assert_eq!(hs.len(), 1, "{:?}", out[0]);
    assert!(hs[0].ja4.is_some() && hs[0].tls_version.as_deref() == Some("TLS 1.3"));
}

fn bench_decode(c: &mut Criterion) {
    let t = Tuple::nth(1);
    let mut buf = c2s(&t, 1, 1, PSH | ACK, &[0xab; SEGMENT]);
    let mut dec = Decoder::new(DecodeConfig::default());
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    let mut seq = 1u32;
    let mut ts = start_ts();
    g.bench_function("eth_ipv4_tcp_1400", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(SEGMENT as u32);
            ts = ts.add_nanos(STEP_NS);
            buf[OFF_SEQ..OFF_SEQ + 4].copy_from_slice(&seq.to_be_bytes());
            let len = buf.len() as u32;
            let p = dec
                .decode(ts, LinkType::Ethernet, black_box(&buf), len)
                .unwrap()
                .unwrap();
            black_box(p.payload.len())
        })
    });
    g.finish();
}

fn bench_shard(c: &mut Criterion) {
    let ch = hex(hellos::CURL_CLIENT_HELLO_RECORD);
    check_setup(&ch);
    let mut g = c.benchmark_group("shard");
    g.throughput(Throughput::Elements(1));

    // One flow past its handshake.
    {
        let mut shard = Inline::new(ShardConfig::default(), WorkerConfig::default());
        let mut out = Vec::new();
        let mut ts = start_ts();
        let t = Tuple::nth(1);
        let e = establish(&mut shard, &t, &ch, &mut ts, &mut out);
        let mut buf = c2s(&t, e.cseq, e.sseq, PSH | ACK, &[0xab; SEGMENT]);
        let mut seq = e.cseq;
        g.bench_function("1_flow_1400", |b| {
            b.iter(|| {
                ts = ts.add_nanos(STEP_NS);
                buf[OFF_SEQ..OFF_SEQ + 4].copy_from_slice(&seq.to_be_bytes());
                seq = seq.wrapping_add(SEGMENT as u32);
                shard.process_frame(&frame(ts, black_box(&buf)), &mut out);
            })
        });
        assert!(out.is_empty(), "the flow ended during the bench");
        assert_eq!(shard.flow_count(), 1);
    }

    // 10,000 flows past their handshakes, visited round-robin.
    {
        const FLOWS: u32 = 10_000;
        let mut shard = Inline::new(ShardConfig::default(), WorkerConfig::default());
        let mut out = Vec::new();
        let mut ts = start_ts();
        let tuples: Vec<Tuple> = (0..FLOWS).map(Tuple::nth).collect();
        let mut seqs: Vec<u32> = tuples
            .iter()
            .map(|t| establish(&mut shard, t, &ch, &mut ts, &mut out).cseq)
            .collect();
        assert_eq!(shard.flow_count(), FLOWS as usize);
        assert_eq!(shard.reassembly_bytes(), 0);
        // One template frame; each packet patches the client address, port and seq.
        let mut buf = c2s(&tuples[0], seqs[0], 1, PSH | ACK, &[0xab; SEGMENT]);
        let mut i = 0usize;
        g.bench_function("10k_flows_1400", |b| {
            b.iter(|| {
                ts = ts.add_nanos(STEP_NS);
                let t = &tuples[i];
                // Source address bytes 26..30 are covered by the IPv4 checksum; the
                // decoder only counts bad checksums, as offloaded captures have them.
                buf[26..30].copy_from_slice(&t.client);
                buf[OFF_SRC_PORT..OFF_SRC_PORT + 2].copy_from_slice(&t.cport.to_be_bytes());
                buf[OFF_SEQ..OFF_SEQ + 4].copy_from_slice(&seqs[i].to_be_bytes());
                seqs[i] = seqs[i].wrapping_add(SEGMENT as u32);
                shard.process_frame(&frame(ts, black_box(&buf)), &mut out);
                i += 1;
                if i == tuples.len() {
                    i = 0;
                }
            })
        });
        assert!(out.is_empty(), "flows ended during the bench");
        assert_eq!(shard.flow_count(), FLOWS as usize);
    }
    g.finish();
}

fn bench_route(c: &mut Criterion) {
    let t = Tuple::nth(1);
    let mut buf = c2s(&t, 1, 1, PSH | ACK, &[0xab; SEGMENT]);
    let mut router = Router::new(DecodeConfig::default());
    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(1));
    let mut seq = 1u32;
    let mut ts = start_ts();
    g.bench_function("eth_ipv4_tcp_1400", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(SEGMENT as u32);
            ts = ts.add_nanos(STEP_NS);
            buf[OFF_SEQ..OFF_SEQ + 4].copy_from_slice(&seq.to_be_bytes());
            match router.route(&frame(ts, black_box(&buf))) {
                Route::Whole { hash } => black_box(hash),
                r => panic!("{r:?}"),
            }
        })
    });
    let ep = |ip: IpAddr, port| Endpoint { ip, port };
    let v4 = FlowKey::from_packet(
        ep(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000),
        ep(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 443),
        6,
        None,
    )
    .0;
    let v6 = FlowKey::from_packet(
        ep(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            40000,
        ),
        ep(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
            443,
        ),
        17,
        Some(100),
    )
    .0;
    for (name, key) in [("symmetric_hash_ipv4", v4), ("symmetric_hash_ipv6", v6)] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(black_box(&key).symmetric_hash()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_decode, bench_shard, bench_route);
criterion_main!(benches);
