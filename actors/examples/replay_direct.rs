//! The baseline the actor pipeline is measured against: the same core work as
//! `flowmesh replay --shards 1` (decode, flows, reassembly, handshakes, JSON lines), called
//! directly on one thread with no actors, queues or routing.
//!
//! With `--route-only` it does only what the capture stage does per frame (read, route by
//! flow hash), to size the capture's share of the work.
//!
//! usage: cargo run --release -p flowmesh-actors --example replay_direct -- [--route-only] FILE [OUT]

use std::io::{BufWriter, Write};
use std::time::Instant;

use flowmesh_actors::batch::MappedInput;
use flowmesh_core::capture::CaptureReader;
use flowmesh_core::decode::DecodeConfig;
use flowmesh_core::handshake::WorkerConfig;
use flowmesh_core::shard::{Inline, Route, Router, ShardConfig};

/// The same allocator as the flowmesh binary, so the comparison is of the pipeline alone.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).peekable();
    let route_only = args.next_if(|a| a == "--route-only").is_some();
    let path = args
        .next()
        .ok_or("usage: replay_direct [--route-only] FILE [OUT]")?;
    let out_path = args.next().unwrap_or_else(|| "/dev/null".to_owned());
    let input = MappedInput::open(path.as_ref())?;
    let mut out = BufWriter::with_capacity(1 << 16, std::fs::File::create(out_path)?);
    let started = Instant::now();
    if route_only {
        let mut router = Router::new(DecodeConfig::default());
        let mut reader = CaptureReader::new(input.bytes())?;
        let (mut frames, mut spread) = (0u64, [0u64; 2]);
        while let Some(Ok(frame)) = reader.next_frame() {
            if let Route::Whole { hash } | Route::Reassembled { hash, .. } = router.route(&frame) {
                spread[(hash % 2) as usize] += 1;
            }
            frames += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!("route_only: {frames} frames in {secs:.3} s, split {spread:?} over 2 shards");
        return Ok(());
    }
    let mut inline = Inline::new(ShardConfig::default(), WorkerConfig::default());
    let mut records = Vec::with_capacity(1024);
    let mut reader = CaptureReader::new(input.bytes())?;
    let mut frames = 0u64;
    while let Some(Ok(frame)) = reader.next_frame() {
        inline.process_frame(&frame, &mut records);
        frames += 1;
        for r in records.drain(..) {
            serde_json::to_writer(&mut out, &r)?;
            out.write_all(b"\n")?;
        }
    }
    inline.finish(&mut records);
    for r in records.drain(..) {
        serde_json::to_writer(&mut out, &r)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "replay_direct: {frames} frames in {secs:.3} s ({:.0} frames/s), {} flows",
        frames as f64 / secs,
        inline.shard_stats().records_total()
    );
    Ok(())
}
