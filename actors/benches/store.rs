//! Flow store figures on real RocksDB, printed as plain text (the sizes are too large for
//! criterion's repeated sampling):
//!
//! (a) ingest: `FLOWMESH_BENCH_RECORDS` records (default 2,000,000) in batches of 1024,
//!     WAL on, sync None, into a fresh store on disk; once with one writer thread and
//!     once with two;
//! (b) JA4 lookup latency: a store of `FLOWMESH_BENCH_LOOKUP_RECORDS` records (default
//!     10,000,000; 0 skips it), then 1,000 queries for random existing JA4 values with
//!     limit 100: p50, p99 and max.
//!
//! Records are the corpus records (see `tests/support`), varied deterministically per
//! index: first seen 50 µs apart, client address and port from the index, and the JA4's
//! last four hex digits from the index modulo 4096 (so the JA4 index holds ~100,000
//! distinct values instead of the corpus' 25). The store is created under
//! `FLOWMESH_BENCH_DIR` (default: the system temp dir), which must be on disk, and removed
//! afterwards.
//!
//! Run: `cargo bench -p flowmesh-actors --bench store` (with `FLOWMESH_CORPUS` set when
//! the corpus is not beside the workspace). Other knobs: `FLOWMESH_BENCH_WRITERS`
//! (comma-separated writer counts for (a), default `1,2`; empty skips (a)),
//! `FLOWMESH_BENCH_WRITE_BUFFER_MB`, `FLOWMESH_BENCH_FLOWS_BLOCK_KB`,
//! `FLOWMESH_BENCH_RECORD_MEMORY_MB`,
//! `FLOWMESH_BENCH_NO_STATS` (set: RocksDB statistics off).

use flowmesh_actors::storage::{FlowFilter, FlowStore, OpenFlowStore, StorageOptions};
use flowmesh_schemas::{FlowRecord, Timestamp};
use hdrhistogram::Histogram;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "../tests/support/corpus_records.rs"]
mod support;

/// The daemon's allocator, so the store's allocations cost what they cost there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 1024;
/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000_000_000;
const STEP_NS: i64 = 50_000;

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn bench_dir() -> tempfile::TempDir {
    let parent =
        std::env::var_os("FLOWMESH_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    tempfile::Builder::new()
        .prefix("flowmesh-store-bench")
        .tempdir_in(parent)
        .expect("bench directory")
}

/// Corpus records that carry at least one JA4, the templates of the generated records.
fn templates() -> Vec<FlowRecord> {
    let t: Vec<FlowRecord> = support::corpus_records()
        .into_iter()
        .filter(|r| r.handshakes.iter().any(|h| h.ja4.is_some()))
        .collect();
    assert!(!t.is_empty(), "no corpus record has a JA4");
    t
}

/// Makes `slot` record number `i` (in place, reusing its allocations).
fn vary(slot: &mut FlowRecord, template: &FlowRecord, i: u64) {
    // clone_from reuses the slot's strings and vectors.
    slot.clone_from(template);
    let t = T0 + i as i64 * STEP_NS;
    slot.first_seen = Timestamp(t);
    slot.last_seen = Timestamp(t + 30 * STEP_NS);
    let b = (i as u32).to_be_bytes();
    slot.client_ip = IpAddr::V4(Ipv4Addr::new(10, b[1], b[2], b[3]));
    slot.client_port = 1024 + (i % 60_000) as u16;
    for (h, th) in slot.handshakes.iter_mut().zip(&template.handshakes) {
        if let (Some(ja4), Some(tja4)) = (h.ja4.as_mut(), th.ja4.as_ref()) {
            ja4.clear();
            ja4.push_str(tja4);
            set_suffix(ja4, (i % 4096) as u16);
        }
    }
}

/// Replaces the last four characters of `s` with `v` in lowercase hex.
fn set_suffix(s: &mut String, v: u16) {
    if s.len() >= 4 && s.is_char_boundary(s.len() - 4) {
        let hex = format!("{v:04x}");
        let n = s.len();
        s.replace_range(n - 4.., &hex);
    }
}

/// The JA4 record `i` carries (its first handshake's).
fn ja4_of(templates: &[FlowRecord], i: u64) -> String {
    let t = &templates[(i % templates.len() as u64) as usize];
    let mut ja4 = t
        .handshakes
        .iter()
        .find_map(|h| h.ja4.clone())
        .expect("template has a JA4");
    set_suffix(&mut ja4, (i % 4096) as u16);
    ja4
}

/// Writes records `0..n` with `threads` writers taking batches from a shared counter.
/// Returns the elapsed time and the latency of each `write` call in µs.
fn ingest(
    store: &FlowStore,
    templates: &[FlowRecord],
    n: u64,
    threads: usize,
) -> (Duration, Histogram<u64>) {
    let next = AtomicU64::new(0);
    let start = Instant::now();
    let mut latency = Histogram::<u64>::new(3).expect("histogram");
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut pool: Vec<FlowRecord> = Vec::with_capacity(BATCH);
                    let mut latency = Histogram::<u64>::new(3).expect("histogram");
                    loop {
                        let first = next.fetch_add(BATCH as u64, Ordering::Relaxed);
                        if first >= n {
                            return latency;
                        }
                        let count = (n - first).min(BATCH as u64) as usize;
                        pool.truncate(count);
                        for k in 0..count {
                            let i = first + k as u64;
                            let t = &templates[(i % templates.len() as u64) as usize];
                            if k == pool.len() {
                                pool.push(t.clone());
                            }
                            vary(&mut pool[k], t, i);
                        }
                        let t = Instant::now();
                        store.write(&pool).expect("write batch");
                        latency
                            .record(t.elapsed().as_micros() as u64)
                            .expect("record latency");
                    }
                })
            })
            .collect();
        for w in writers {
            latency
                .add(w.join().expect("writer thread"))
                .expect("merge latencies");
        }
    });
    (start.elapsed(), latency)
}

fn report_ingest(label: &str, n: u64, run: (Duration, Histogram<u64>), store: &FlowStore) {
    let (took, latency) = run;
    let rate = n as f64 / took.as_secs_f64();
    println!(
        "ingest {label}: {n} records in {:.2} s = {:.0} records/s",
        took.as_secs_f64(),
        rate
    );
    println!(
        "  write({BATCH}) latency: p50 {} µs, p99 {} µs, max {} µs",
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99),
        latency.max()
    );
    if let Ok(p) = store.engine().properties() {
        let disk: u64 = p.families.iter().map(|(_, f)| f.total_sst_files_size).sum();
        let mem: u64 = p
            .families
            .iter()
            .map(|(_, f)| f.cur_size_all_mem_tables)
            .sum();
        println!(
            "  sst {:.1} MiB, memtables {:.1} MiB; {}",
            disk as f64 / 1048576.0,
            mem as f64 / 1048576.0,
            p.tickers
                .iter()
                .map(|(k, v)| format!("{}={v}", k.trim_start_matches("rocksdb.")))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}

/// SplitMix64, for reproducible query choices.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored.
    let n = env_usize("FLOWMESH_BENCH_RECORDS", 2_000_000) as u64;
    let lookup_n = env_usize("FLOWMESH_BENCH_LOOKUP_RECORDS", 10_000_000) as u64;
    let templates = templates();
    let mut opts = StorageOptions::default();
    if let Ok(v) = std::env::var("FLOWMESH_BENCH_WRITE_BUFFER_MB") {
        opts.write_buffer_mb = v
            .parse()
            .expect("FLOWMESH_BENCH_WRITE_BUFFER_MB is a number");
    }
    opts.statistics = std::env::var_os("FLOWMESH_BENCH_NO_STATS").is_none();
    opts.record_memory_mb = env_usize("FLOWMESH_BENCH_RECORD_MEMORY_MB", opts.record_memory_mb);
    if let Ok(v) = std::env::var("FLOWMESH_BENCH_FLOWS_BLOCK_KB") {
        opts.flows_block_kb = v
            .parse()
            .expect("FLOWMESH_BENCH_FLOWS_BLOCK_KB is a number");
    }
    println!(
        "flow store bench: {} corpus templates, batches of {BATCH}, WAL on, sync None",
        templates.len()
    );

    let writers: Vec<usize> = std::env::var("FLOWMESH_BENCH_WRITERS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .filter(|w| !w.trim().is_empty())
        .map(|w| {
            w.trim()
                .parse()
                .expect("FLOWMESH_BENCH_WRITERS is a comma-separated list of numbers")
        })
        .collect();
    for threads in writers {
        let dir = bench_dir();
        let store = FlowStore::open(dir.path(), &opts).expect("open store");
        let run = ingest(&store, &templates, n, threads);
        report_ingest(&format!("{threads} writer(s)"), n, run, &store);
    }

    if lookup_n == 0 {
        return;
    }
    let dir = bench_dir();
    let store = FlowStore::open(dir.path(), &opts).expect("open store");
    let run = ingest(&store, &templates, lookup_n, 2);
    report_ingest("2 writers (lookup store)", lookup_n, run, &store);
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    let mut rng = 0x5eed_u64;
    let mut returned = 0usize;
    for _ in 0..1000 {
        let i = splitmix(&mut rng) % lookup_n;
        let filter = FlowFilter {
            ja4: Some(ja4_of(&templates, i)),
            ..FlowFilter::default()
        };
        let start = Instant::now();
        let page = store.query(&filter, None, 100).expect("query");
        hist.record(start.elapsed().as_micros() as u64)
            .expect("record latency");
        assert!(!page.flows.is_empty(), "an existing JA4 found nothing");
        returned += page.flows.len();
    }
    println!(
        "ja4 lookup over {lookup_n} records, limit 100, 1000 queries ({:.1} flows/query): p50 {} µs, p99 {} µs, max {} µs",
        returned as f64 / 1000.0,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.max()
    );
}
