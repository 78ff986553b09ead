//! Live-source semantics of the pipeline, with a frame source in memory: a reader never
//! waits for a full shard; it drops the batch and counts its frames, and every frame it
//! took is accounted for — sent to a shard (which counts it) or dropped with a reason.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowmesh_actors::capture::{FrameSource, KernelCounters, LiveInput};
use flowmesh_actors::pipeline::{run_pipeline, Input, ReplayConfig};
use flowmesh_actors::stages::{Output, RecordSink};
use flowmesh_core::capture::{CaptureReader, Frame, LinkType};
use flowmesh_schemas::{FlowRecord, Timestamp};

#[path = "support/corpus_records.rs"]
#[allow(dead_code, reason = "only the corpus location is used here")]
mod support;
use support::pcaps_dir;

/// Frames of a capture, handed out `per_poll` at a time; sets `done` when all are out.
struct MemorySource {
    frames: Vec<(Timestamp, LinkType, Vec<u8>)>,
    next: usize,
    per_poll: usize,
    done: Arc<AtomicBool>,
}

impl FrameSource for MemorySource {
    fn poll(&mut self, _timeout: Duration, f: &mut dyn FnMut(Frame<'_>)) -> io::Result<usize> {
        let end = (self.next + self.per_poll).min(self.frames.len());
        for (ts, link, data) in &self.frames[self.next..end] {
            f(Frame {
                ts: *ts,
                link: *link,
                data,
                orig_len: data.len() as u32,
                interface: 0,
            });
        }
        let n = end - self.next;
        self.next = end;
        if self.next == self.frames.len() {
            self.done.store(true, Ordering::Relaxed);
        }
        Ok(n)
    }

    fn kernel_counters(&mut self) -> KernelCounters {
        KernelCounters {
            received: self.next as u64,
            dropped: 0,
        }
    }
}

/// A store that takes 20 ms per batch: the pipeline backs up to the shards.
struct SlowSink(Arc<Mutex<usize>>);

impl RecordSink for SlowSink {
    fn write(&mut self, records: &[FlowRecord]) -> io::Result<()> {
        std::thread::sleep(Duration::from_millis(20));
        *self.0.lock().expect("count") += records.len();
        Ok(())
    }
}

/// Every frame of every corpus capture, `rounds` times over, in time order per round.
fn corpus_frames(rounds: usize) -> Vec<(Timestamp, LinkType, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(pcaps_dir())
        .expect("corpus")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for _ in 0..rounds {
        for path in &files {
            let bytes = std::fs::read(path).expect("read");
            let Ok(reader) = CaptureReader::new(&bytes) else {
                continue;
            };
            for f in reader.flatten() {
                out.push((f.ts, f.link, f.data.to_vec()));
            }
        }
    }
    out
}

#[test]
fn a_full_shard_drops_batches_and_every_frame_is_accounted_for() {
    let frames = corpus_frames(20);
    let offered = frames.len() as u64;
    let done = Arc::new(AtomicBool::new(false));
    let source = MemorySource {
        frames,
        next: 0,
        per_poll: 4096,
        done: Arc::clone(&done),
    };
    let stored = Arc::new(Mutex::new(0));
    let cfg = ReplayConfig {
        shards: 2,
        workers: 1,
        encoders: 1,
        shard_queue: 1,
        stop: Some(done),
        ..ReplayConfig::default()
    };
    let input = Input::Live(LiveInput {
        sources: vec![Box::new(source)],
        filter: None,
        bypass: None,
    });
    let report = run_pipeline(
        cfg,
        input,
        Output::Records(Box::new(SlowSink(Arc::clone(&stored)))),
        None,
    )
    .expect("the pipeline drains");
    let c = &report.board.capture;
    let reader = &c.readers[0];
    assert_eq!(reader.frames, offered, "the reader took every frame");
    assert_eq!(c.kernel.received, offered);
    assert!(
        c.dropped_queue_full > 0,
        "a shard with room for one batch never filled up?"
    );
    assert_eq!(c.dropped_shard_unavailable, 0);
    // Every frame routed went to a shard or was dropped with its batch.
    let routed =
        offered - c.decode.dropped_total() - c.decode.fragments_held + c.decode.defrag.reassembled;
    assert_eq!(c.frames_sent + c.dropped_queue_full, routed);
    // The shards counted exactly what was sent.
    assert_eq!(report.board.shards_total().frames, c.frames_sent);
    // Every record the shards made was stored.
    assert_eq!(
        *stored.lock().expect("count") as u64,
        report.board.shards_total().records_total()
    );
}
