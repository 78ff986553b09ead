//! The file capture source: reads pcap/pcapng files, routes each frame to the shard that
//! owns its flow, and sends the shards batches of frames.
//!
//! Owns the [`Router`] (flow hash, defragmentation of IP fragments so every fragment of a
//! datagram meets its flow) and one open batch per shard. Runs as a task on its own
//! thread. Batches are cut at [`BATCH_FRAMES`] frames and at the end of each file.
//!
//! Invariants:
//! - Every frame of every file is accounted for: sent in a batch, held or dropped by the
//!   router (counted there), or in a batch a droppable edge dropped (counted, by frame).
//! - Each shard's `EndOfInput` follows its last batch on the same queue.
//! - Expiry ticks of the one [`ExpiryClock`] go into every shard's batch at the same point
//!   of the packet stream, so flows end the same way whatever the number of shards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use flowmesh_core::capture::CaptureReader;
use flowmesh_core::decode::DecodeConfig;
use flowmesh_core::shard::{ExpiryClock, Route, Router};

use crate::batch::{prefetch, Chunk, MappedInput, PacketBatch, BATCH_FRAMES, CACHE_LINE};
use crate::runtime::{Delivered, Edge};
use crate::stages::ShardItem;
use crate::stats::StatsBoard;

/// Bytes of a file covered by one [`Chunk`]: its pages are released once every batch
/// pointing into it is gone.
const CHUNK_BYTES: usize = 4 << 20;

/// How far ahead of the frame being read the file is prefetched, every cache line of it:
/// the pcap record chain is walked one dependent load at a time, each record header is a
/// new cache line, and where the next headers lie is not known in advance. Prefetching
/// one line per record at a fixed distance mostly misses them (measured: ~115 ns per
/// record either way on the 1 GB mixed file); every line ahead, 35-47 ns.
const PREFETCH_AHEAD: usize = 64 << 10;

/// Frames between two progress publications.
const PUBLISH_EVERY: u64 = 1 << 14;

/// Replays `inputs` into `shards` (indexed by shard). Returns when every batch and every
/// `EndOfInput` is enqueued (or a shard has failed for good). When `stop` turns true, reading
/// ends at the next check (every [`PUBLISH_EVERY`] frames) as if the input ended there.
pub async fn replay_files(
    inputs: Vec<Arc<MappedInput>>,
    shards: Vec<Edge<ShardItem>>,
    decode: DecodeConfig,
    expire_interval_ns: i64,
    stop: Option<Arc<AtomicBool>>,
    board: StatsBoard,
) {
    let mut source = FileSource {
        router: Router::new(decode),
        clock: ExpiryClock::new(expire_interval_ns),
        batches: (0..shards.len())
            .map(|_| PacketBatch::with_capacity(BATCH_FRAMES))
            .collect(),
        shards,
        board,
        sent: 0,
        dropped: 0,
        files_done: 0,
        stop,
    };
    for input in inputs {
        if !source.read_file(&input).await {
            break;
        }
    }
    source.finish().await;
}

struct FileSource {
    router: Router,
    clock: ExpiryClock,
    batches: Vec<PacketBatch>,
    shards: Vec<Edge<ShardItem>>,
    board: StatsBoard,
    sent: u64,
    dropped: u64,
    /// Bytes of the files read to the end.
    files_done: u64,
    stop: Option<Arc<AtomicBool>>,
}

impl FileSource {
    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Reads one file into the batches; `false` when told to stop.
    async fn read_file(&mut self, input: &Arc<MappedInput>) -> bool {
        let bytes = input.bytes();
        let base = bytes.as_ptr() as usize;
        let Ok(mut reader) = CaptureReader::new(bytes) else {
            // Checked when the file was opened.
            return true;
        };
        let n = self.shards.len().max(1) as u64;
        let mut chunk = Arc::new(Chunk::new(Arc::clone(input), 0, CHUNK_BYTES));
        input.populate(0, 2 * CHUNK_BYTES);
        let mut chunk_end = CHUNK_BYTES;
        let mut frames = 0u64;
        let mut prefetched = 0;
        while let Some(item) = reader.next_frame() {
            let frame = match item {
                Ok(frame) => frame,
                Err(e) => {
                    let warning = format!(
                        "{}: {e}; kept the records read so far",
                        input.path().display()
                    );
                    let mut board = self.board.lock();
                    board.capture.warnings.push(warning);
                    board.capture.stopped = true;
                    break;
                }
            };
            let offset = frame.data.as_ptr() as usize - base;
            if offset >= chunk_end {
                let start = offset / CHUNK_BYTES * CHUNK_BYTES;
                chunk_end = start + CHUNK_BYTES;
                chunk = Arc::new(Chunk::new(Arc::clone(input), start, chunk_end));
                input.populate(chunk_end, chunk_end + CHUNK_BYTES);
            }
            let until = (offset + PREFETCH_AHEAD).min(bytes.len());
            while prefetched < until {
                prefetch(bytes, prefetched);
                prefetched += CACHE_LINE;
            }
            if let Some(now) = self.clock.observe(frame.ts) {
                for batch in &mut self.batches {
                    batch.push_tick(now);
                }
            }
            let target = match self.router.route(&frame) {
                Route::Whole { hash } => {
                    let i = (hash % n) as usize;
                    self.batches[i].push_mapped(&chunk, offset, &frame);
                    i
                }
                Route::Reassembled { hash, frame: whole } => {
                    let i = (hash % n) as usize;
                    self.batches[i].push_owned(whole.ts, whole.link, whole.data, whole.orig_len);
                    i
                }
                Route::Held | Route::Dropped(_) => continue,
            };
            if self.batches[target].len() >= BATCH_FRAMES {
                self.send(target).await;
            }
            frames += 1;
            if frames.is_multiple_of(PUBLISH_EVERY) {
                self.publish(reader.offset() as u64);
                if self.stopped() {
                    let warning = format!(
                        "{}: stopped after {frames} frames; kept the records read so far",
                        input.path().display()
                    );
                    let mut board = self.board.lock();
                    board.capture.warnings.push(warning);
                    board.capture.stopped = true;
                    break;
                }
            }
        }
        // A batch points into one file: cut them all at its end.
        for i in 0..self.batches.len() {
            self.send(i).await;
        }
        self.files_done += bytes.len() as u64;
        self.publish(0);
        !self.stopped()
    }

    async fn send(&mut self, i: usize) {
        if self.batches[i].is_empty() {
            return;
        }
        let batch = std::mem::replace(
            &mut self.batches[i],
            PacketBatch::with_capacity(BATCH_FRAMES),
        );
        let frames = batch.len() as u64;
        match self.shards[i].deliver(ShardItem::Packets(batch)).await {
            Ok(Delivered::Enqueued) => self.sent += frames,
            Ok(Delivered::Dropped(_)) | Err(_) => self.dropped += frames,
        }
    }

    fn publish(&self, offset_in_file: u64) {
        let mut board = self.board.lock();
        let c = &mut board.capture;
        c.bytes_read = self.files_done + offset_in_file;
        c.frames_sent = self.sent;
        c.frames_dropped = self.dropped;
        c.decode = self.router.stats().clone();
    }

    async fn finish(&mut self) {
        for edge in &self.shards {
            // Control: always waits for room, even on a droppable edge. A shard that failed
            // for good has been reported by its supervisor already.
            let _ = edge.sender().send(ShardItem::EndOfInput).await;
        }
        self.publish(0);
    }
}
