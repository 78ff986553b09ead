//! Packet batches: what capture sends a shard. Never single packets (ARCHITECTURE §2).
//!
//! Owns: [`PacketBatch`] and where its frames' bytes live: in a memory-mapped capture file
//! ([`MappedInput`], zero-copy) or in the batch's own buffer (reassembled datagrams, and the
//! live capture backends).
//!
//! Invariants:
//! - A batch keeps the file regions its frames point into alive through [`Chunk`] handles;
//!   when the last batch holding a chunk is dropped and capture has moved past it, the
//!   chunk's pages are handed back to the kernel, so replaying a file of any size keeps
//!   resident memory bounded by queue sizes, not by the file.
//! - Frames are kept in capture order.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flowmesh_core::capture::{CaptureReader, Frame, LinkType};
use flowmesh_schemas::Timestamp;
use memmap2::{Advice, Mmap, UncheckedAdvice};
use thiserror::Error;

/// A capture file that cannot be replayed.
#[derive(Debug, Error)]
pub enum InputError {
    /// Not readable (missing, permissions).
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A directory was given.
    #[error("{0} is a directory; give capture files (pcap or pcapng)")]
    Directory(PathBuf),
    /// An empty file.
    #[error("{0} is empty: not a pcap or pcapng file")]
    Empty(PathBuf),
    /// Not a capture file this reader understands.
    #[error("{path} is not a readable capture file: {source}")]
    NotCapture {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        source: flowmesh_core::capture::CaptureError,
    },
}

/// A capture file mapped into memory and checked to be readable.
#[derive(Debug)]
pub struct MappedInput {
    path: PathBuf,
    map: Mmap,
}

impl MappedInput {
    /// Opens and maps `path`, checking that it is a pcap or pcapng file.
    pub fn open(path: &Path) -> Result<Self, InputError> {
        let unreadable = |source| InputError::Unreadable {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(unreadable)?;
        if meta.is_dir() {
            return Err(InputError::Directory(path.to_owned()));
        }
        if meta.len() == 0 {
            return Err(InputError::Empty(path.to_owned()));
        }
        let file = File::open(path).map_err(unreadable)?;
        // SAFETY: the mapping is read-only and private to this process. A file truncated
        // by another process while mapped would fault (SIGBUS); capture files being replayed
        // are not expected to shrink, which is the usual contract of pcap readers that map.
        let map = unsafe { Mmap::map(&file) }.map_err(unreadable)?;
        // Read-ahead helps; failure to advise only costs speed.
        let _ = map.advise(Advice::Sequential);
        CaptureReader::new(&map).map_err(|source| InputError::NotCapture {
            path: path.to_owned(),
            source,
        })?;
        Ok(MappedInput {
            path: path.to_owned(),
            map,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Maps the pages of `[start, end)` into the process ahead of use, in one system call
    /// rather than a page fault every few pages. Failure only costs speed.
    pub fn populate(&self, start: usize, end: usize) {
        let end = end.min(self.map.len());
        if end > start {
            #[cfg(target_os = "linux")]
            let _ = self
                .map
                .advise_range(memmap2::Advice::PopulateRead, start, end - start);
        }
    }
}

/// A region of a mapped file that batches point into; its pages are released when the last
/// handle is dropped.
#[derive(Debug)]
pub struct Chunk {
    input: Arc<MappedInput>,
    start: usize,
    end: usize,
}

impl Chunk {
    /// The region `[start, end)` of `input`.
    pub fn new(input: Arc<MappedInput>, start: usize, end: usize) -> Self {
        Chunk { input, start, end }
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        const PAGE: usize = 4096;
        let start = self.start.next_multiple_of(PAGE);
        let end = self.end.min(self.input.map.len()) / PAGE * PAGE;
        if end > start {
            // SAFETY: MADV_DONTNEED on a private, read-only file mapping only discards this
            // process's view of cached pages; a later access would re-read them from the
            // file. No frame of this region is borrowed any more: every batch pointing into
            // it has been dropped (they hold this chunk) and capture has moved past it.
            let _ = unsafe {
                self.input
                    .map
                    .unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }
}

/// Asks the CPU to start loading the cache line at `at` (a hint; nothing if out of range).
#[inline(always)]
pub(crate) fn prefetch(bytes: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = bytes.get(at) {
        // SAFETY: a prefetch is a hint that never faults and reads nothing into the
        // program; SSE (which provides it) is part of the x86_64 baseline.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                (p as *const u8).cast(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, at);
}

/// Bytes of a cache line.
pub(crate) const CACHE_LINE: usize = 64;

/// How many frames ahead [`PacketBatch::entries`] prefetches a frame's headers: the shard
/// runs on another core than capture, so the headers are not in its caches yet, and
/// decoding them one miss after another was the shard's largest cost.
const PREFETCH_FRAMES: usize = 6;

/// Where a frame's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    /// In the batch's mapped input.
    Mapped { offset: usize },
    /// In the batch's own buffer.
    Owned { offset: usize },
    /// Not a frame: an expiry tick of the capture's clock at `ts`.
    Tick,
}

/// One entry of a batch, in capture order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchEntry<'a> {
    /// A frame.
    Frame(Frame<'a>),
    /// The capture's [`ExpiryClock`](flowmesh_core::shard::ExpiryClock) ticked: expire idle
    /// flows at this time.
    Tick(Timestamp),
}

/// One frame of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameRef {
    ts: Timestamp,
    link: LinkType,
    orig_len: u32,
    len: u32,
    loc: Loc,
}

/// Frames for one shard, in capture order. Message: low priority; must-deliver when
/// replaying files (capture waits), droppable from live sources (dropped and counted).
#[derive(Debug, Default)]
pub struct PacketBatch {
    input: Option<Arc<MappedInput>>,
    chunks: Vec<Arc<Chunk>>,
    owned: Vec<u8>,
    frames: Vec<FrameRef>,
    ticks: usize,
}

impl PacketBatch {
    /// An empty batch with room for `frames` frames.
    pub fn with_capacity(frames: usize) -> Self {
        PacketBatch {
            frames: Vec::with_capacity(frames),
            ..PacketBatch::default()
        }
    }

    /// An empty batch with room for `frames` frames and `bytes` bytes of copied frames
    /// (live capture copies every frame out of the kernel's ring).
    pub fn with_capacity_bytes(frames: usize, bytes: usize) -> Self {
        PacketBatch {
            frames: Vec::with_capacity(frames),
            owned: Vec::with_capacity(bytes),
            ..PacketBatch::default()
        }
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.input = None;
        self.chunks.clear();
        self.owned.clear();
        self.frames.clear();
        self.ticks = 0;
    }

    /// Frames in the batch (entries that are not ticks).
    pub fn frames(&self) -> usize {
        self.frames.len() - self.ticks
    }

    /// Entries (frames and ticks) in the batch.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// No frames.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Adds a frame that lies at `offset` in `chunk`'s mapped input.
    pub fn push_mapped(&mut self, chunk: &Arc<Chunk>, offset: usize, frame: &Frame<'_>) {
        if !self
            .input
            .as_ref()
            .is_some_and(|i| Arc::ptr_eq(i, &chunk.input))
        {
            self.input = Some(Arc::clone(&chunk.input));
        }
        if !self.chunks.last().is_some_and(|c| Arc::ptr_eq(c, chunk)) {
            self.chunks.push(Arc::clone(chunk));
        }
        self.frames.push(FrameRef {
            ts: frame.ts,
            link: frame.link,
            orig_len: frame.orig_len,
            len: frame.data.len() as u32,
            loc: Loc::Mapped { offset },
        });
    }

    /// Adds a frame whose bytes are copied into the batch.
    pub fn push_owned(&mut self, ts: Timestamp, link: LinkType, data: &[u8], orig_len: u32) {
        let offset = self.owned.len();
        self.owned.extend_from_slice(data);
        self.frames.push(FrameRef {
            ts,
            link,
            orig_len,
            len: data.len() as u32,
            loc: Loc::Owned { offset },
        });
    }

    /// Adds an expiry tick at `now`.
    pub fn push_tick(&mut self, now: Timestamp) {
        self.ticks += 1;
        self.frames.push(FrameRef {
            ts: now,
            link: LinkType::Ethernet,
            orig_len: 0,
            len: 0,
            loc: Loc::Tick,
        });
    }

    /// The entries, in order.
    pub fn entries(&self) -> impl Iterator<Item = BatchEntry<'_>> + '_ {
        let mapped = self.input.as_ref().map_or(&[][..], |i| i.bytes());
        let frames = &self.frames;
        frames.iter().enumerate().map(move |(i, f)| {
            if let Some((buf, offset)) = frames
                .get(i + PREFETCH_FRAMES)
                .and_then(|ahead| self.locate(mapped, ahead.loc))
            {
                // Link, IP and TCP headers with options span up to two lines.
                prefetch(buf, offset);
                prefetch(buf, offset + CACHE_LINE);
            }
            let Some((buf, offset)) = self.locate(mapped, f.loc) else {
                return BatchEntry::Tick(f.ts);
            };
            BatchEntry::Frame(Frame {
                ts: f.ts,
                link: f.link,
                data: buf.get(offset..offset + f.len as usize).unwrap_or(&[]),
                orig_len: f.orig_len,
                interface: 0,
            })
        })
    }

    /// The buffer a frame's bytes are in and their offset there (`mapped`: the input's
    /// bytes); `None` for a tick.
    fn locate<'a>(&'a self, mapped: &'a [u8], loc: Loc) -> Option<(&'a [u8], usize)> {
        match loc {
            Loc::Mapped { offset } => Some((mapped, offset)),
            Loc::Owned { offset } => Some((&self.owned[..], offset)),
            Loc::Tick => None,
        }
    }
}

/// Frames per batch when a batch is cut for size: enough to amortise a hop (~100 ns) to a
/// few hundred picoseconds per packet, small enough to stay in cache.
pub const BATCH_FRAMES: usize = 256;
