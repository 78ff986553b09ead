//! `StreamReassembler::insert` + `take_new`, per segment, with the default limits
//! (32 KiB depth). A stream that reaches its depth is released and a fresh one started,
//! so buffer growth and release are amortised into the per-segment figure as they are
//! in a shard (every inspected flow starts from an empty stream).
//!
//! - `in_order_1448`: full-MSS segments in order (22 per stream).
//! - `tiny_8`: 8-byte segments in order (4096 per stream).
//! - `ooo_pair_1448`: segment n+1 then segment n; one iteration = one pair.
#![allow(clippy::unwrap_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use flowmesh_core::reassembly::{
    InsertOutcome, ReassemblyBudget, ReassemblyConfig, ReassemblyStats, StreamReassembler,
};

const ISN: u32 = 0xfff0_0000; // close to the wrap, so seq arithmetic wraps in every stream

struct Bench {
    cfg: ReassemblyConfig,
    budget: ReassemblyBudget,
    stats: ReassemblyStats,
    stream: StreamReassembler,
    /// Next stream offset to send.
    off: u32,
}

impl Bench {
    fn new() -> Self {
        let mut b = Bench {
            cfg: ReassemblyConfig::default(),
            budget: ReassemblyBudget::new(256 << 20),
            stats: ReassemblyStats::default(),
            stream: StreamReassembler::new(),
            off: 0,
        };
        b.stream.set_base(ISN);
        b
    }

    /// Releases the stream and starts a new one when `need` more bytes would pass the depth.
    fn maybe_restart(&mut self, need: u32) {
        if self.off + need > self.cfg.depth {
            self.stream.release(&mut self.budget);
            self.stream = StreamReassembler::new();
            self.stream.set_base(ISN);
            self.off = 0;
        }
    }

    fn insert(&mut self, off: u32, data: &[u8]) -> InsertOutcome {
        self.stream.insert(
            ISN.wrapping_add(off),
            data,
            &self.cfg,
            &mut self.budget,
            &mut self.stats,
        )
    }
}

fn in_order(c: &mut Criterion, name: &str, seg: usize) {
    let data = vec![0x5au8; seg];
    let mut s = Bench::new();
    let mut g = c.benchmark_group("reassembly");
    g.throughput(Throughput::Elements(1));
    g.bench_function(name, |b| {
        b.iter(|| {
            s.maybe_restart(seg as u32);
            let r = s.insert(s.off, black_box(&data));
            debug_assert_eq!(r, InsertOutcome::Stored);
            s.off += seg as u32;
            black_box(s.stream.take_new().len())
        })
    });
    g.finish();
    assert_eq!(s.stats.out_of_order, 0);
    assert_eq!(s.stats.beyond_depth, 0);
}

fn out_of_order_pairs(c: &mut Criterion) {
    const SEG: usize = 1448;
    let data = vec![0x5au8; SEG];
    let mut s = Bench::new();
    let mut g = c.benchmark_group("reassembly");
    g.throughput(Throughput::Elements(2));
    g.bench_function("ooo_pair_1448", |b| {
        b.iter(|| {
            s.maybe_restart(2 * SEG as u32);
            let off = s.off;
            s.insert(off + SEG as u32, black_box(&data));
            // Nothing new is contiguous until the hole is filled.
            let none = s.stream.take_new().len();
            s.insert(off, black_box(&data));
            s.off += 2 * SEG as u32;
            black_box(none + s.stream.take_new().len())
        })
    });
    g.finish();
    assert!(s.stats.out_of_order > 0);
    assert_eq!(s.stats.beyond_depth, 0);
}

fn benches(c: &mut Criterion) {
    in_order(c, "in_order_1448", 1448);
    in_order(c, "tiny_8", 8);
    out_of_order_pairs(c);
}

criterion_group!(reassembly, benches);
criterion_main!(reassembly);
