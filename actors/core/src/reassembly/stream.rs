//! One direction of a TCP stream, reassembled up to a depth.
//!
//! Invariants: `buf` holds stream offsets `[0, buf.len())`; `ranges` lists the filled
//! intervals of `buf`, sorted, disjoint and non-adjacent; bytes outside `ranges` are
//! meaningless. `delivered <= contiguous_end()`. The first copy of a byte wins: a later
//! segment never overwrites it (Suricata's "first" policy, which also matches what most
//! end hosts keep for overlapping data); differing overlapping bytes are counted.

use super::seq::seq_diff;
use super::ReassemblyBudget;

/// Limits of one direction's reassembly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// Bytes kept from the start of each direction; later bytes are only counted.
    pub depth: u32,
    /// Maximum number of disjoint filled ranges (holes) before the stream gives up.
    pub max_ranges: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            depth: 32 * 1024,
            max_ranges: 64,
        }
    }
}

/// Counters of reassembly work, summed per shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Segments with payload offered to a stream.
    pub segments: u64,
    /// Segments that started after the contiguous end (arrived out of order).
    pub out_of_order: u64,
    /// Payload bytes that were already present (retransmissions, overlaps).
    pub overlap_bytes: u64,
    /// Overlapping bytes whose content differed from the first copy (kept the first).
    pub conflicting_overlap_bytes: u64,
    /// Segments entirely before the stream's first byte.
    pub before_start: u64,
    /// Segments (or tails) past the depth limit.
    pub beyond_depth: u64,
    /// Segments refused because the shard's reassembly memory was exhausted.
    pub memcap_drops: u64,
    /// Streams abandoned because they had too many holes.
    pub too_fragmented: u64,
}

impl ReassemblyStats {
    /// Adds another set of counters to this one.
    pub fn add(&mut self, o: &ReassemblyStats) {
        self.segments += o.segments;
        self.out_of_order += o.out_of_order;
        self.overlap_bytes += o.overlap_bytes;
        self.conflicting_overlap_bytes += o.conflicting_overlap_bytes;
        self.before_start += o.before_start;
        self.beyond_depth += o.beyond_depth;
        self.memcap_drops += o.memcap_drops;
        self.too_fragmented += o.too_fragmented;
    }
}

/// What happened to one inserted segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored (possibly trimmed to the depth or to the stream start).
    Stored,
    /// Nothing new: empty, a full retransmission, or entirely before the stream start.
    Nothing,
    /// The segment lies entirely past the depth limit.
    BeyondDepth,
    /// The shard's reassembly memory cap refused the bytes: the stream is abandoned.
    MemCap,
    /// Too many holes: the stream is abandoned.
    TooFragmented,
}

/// Reassembles the first `depth` bytes of one direction of a TCP connection.
#[derive(Debug, Default)]
pub struct StreamReassembler {
    /// Sequence number of stream offset 0 (SYN's sequence + 1, or the first data seen).
    base: Option<u32>,
    /// Stream offset of `buf[0]`; bytes before it were delivered and dropped.
    origin: u32,
    buf: Vec<u8>,
    /// Filled ranges, absolute stream offsets, all at or after `origin`.
    ranges: Vec<(u32, u32)>,
    /// Stream offset up to which bytes were handed out.
    delivered: u32,
    reserved: usize,
    abandoned: bool,
}

impl StreamReassembler {
    /// An empty stream; allocates nothing until data arrives.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the sequence number of the first data byte (from a SYN: its sequence + 1;
    /// RFC 9293 §3.4: the SYN occupies one sequence number). Ignored once data was stored.
    pub fn set_base(&mut self, first_data_seq: u32) {
        if self.ranges.is_empty() && self.delivered == 0 {
            self.base = Some(first_data_seq);
        }
    }

    /// Whether the first byte's sequence number is known.
    pub fn has_base(&self) -> bool {
        self.base.is_some()
    }

    /// The stream gave up (memory cap or too many holes); it takes no more data.
    pub fn is_abandoned(&self) -> bool {
        self.abandoned
    }

    /// End offset of the contiguous data from the start of the stream (delivered or not).
    pub fn contiguous_end(&self) -> u32 {
        match self.ranges.first() {
            Some(&(start, end)) if start <= self.delivered => end,
            _ => self.delivered,
        }
    }

    /// Contiguous bytes not yet handed out (from offset 0 when nothing was taken, which
    /// is what protocol probes look at).
    pub fn pending(&self) -> &[u8] {
        let from = (self.delivered - self.origin) as usize;
        let to = (self.contiguous_end() - self.origin) as usize;
        &self.buf[from..to]
    }

    /// Takes the contiguous bytes not yet handed out and marks them delivered; they are
    /// dropped from the buffer at the next insert.
    pub fn take_new(&mut self) -> &[u8] {
        let from = (self.delivered - self.origin) as usize;
        let end = self.contiguous_end();
        self.delivered = end;
        &self.buf[from..(end - self.origin) as usize]
    }

    /// Drops delivered bytes from the front of the buffer; a buffer left empty is freed,
    /// so a flow between handshake segments holds no reassembly memory. Call it once the
    /// bytes from [`Self::take_new`] were consumed.
    pub fn compact(&mut self, budget: &mut ReassemblyBudget) {
        if self.delivered <= self.origin {
            return;
        }
        let n = ((self.delivered - self.origin) as usize).min(self.buf.len());
        self.buf.drain(..n);
        self.origin = self.delivered;
        self.ranges.retain(|&(_, e)| e > self.delivered);
        if self.buf.is_empty() {
            budget.release(self.reserved);
            self.reserved = 0;
            self.buf = Vec::new();
        }
    }

    /// Inserts a segment's payload that starts at sequence number `seq`.
    pub fn insert(
        &mut self,
        seq: u32,
        data: &[u8],
        cfg: &ReassemblyConfig,
        budget: &mut ReassemblyBudget,
        stats: &mut ReassemblyStats,
    ) -> InsertOutcome {
        if data.is_empty() || self.abandoned {
            return InsertOutcome::Nothing;
        }
        stats.segments += 1;
        self.compact(budget);
        // Midstream pickup: the first data seen defines offset 0.
        let base = *self.base.get_or_insert(seq);
        let mut rel = i64::from(seq_diff(seq, base));
        let mut data = data;
        // Bytes already delivered and dropped cannot be compared any more: count them as
        // overlap and keep what follows. Bytes before the stream start are trimmed.
        let floor = i64::from(self.origin);
        if rel < floor {
            let seg_end = rel + data.len() as i64;
            if seg_end <= 0 {
                stats.before_start += 1;
                return InsertOutcome::Nothing;
            }
            // The part in [0, origin) was delivered already.
            stats.overlap_bytes += (seg_end.min(floor) - rel.max(0)).max(0) as u64;
            if seg_end <= floor {
                return InsertOutcome::Nothing;
            }
            data = &data[(floor - rel) as usize..];
            rel = floor;
        }
        let depth = i64::from(cfg.depth);
        if rel >= depth {
            stats.beyond_depth += 1;
            return InsertOutcome::BeyondDepth;
        }
        let end = (rel + data.len() as i64).min(depth);
        if end < rel + data.len() as i64 {
            stats.beyond_depth += 1;
        }
        let (start, end) = (rel as u32, end as u32);
        let data = &data[..(end - start) as usize];
        if start > self.contiguous_end() {
            stats.out_of_order += 1;
        }
        let len = (end - self.origin) as usize;
        if len > self.buf.len() && !self.grow(len, cfg, budget) {
            stats.memcap_drops += 1;
            self.abandon(budget);
            return InsertOutcome::MemCap;
        }
        let stored = self.fill(start, end, data, stats);
        if self.ranges.len() > cfg.max_ranges {
            stats.too_fragmented += 1;
            self.abandon(budget);
            return InsertOutcome::TooFragmented;
        }
        if stored {
            InsertOutcome::Stored
        } else {
            InsertOutcome::Nothing
        }
    }

    /// Grows `buf` to `len` bytes, reserving the capacity change from the budget.
    fn grow(&mut self, len: usize, cfg: &ReassemblyConfig, budget: &mut ReassemblyBudget) -> bool {
        // Grow geometrically but never past what the depth allows, so small handshakes
        // stay small; and only when the reservation is too small: doubling on every
        // append would reserve the whole depth after a few small segments.
        if len <= self.reserved {
            self.buf.resize(len, 0);
            return true;
        }
        let room = (cfg.depth - self.origin) as usize;
        let want = self.reserved.saturating_mul(2).max(len).min(room).max(len);
        let extra = want.saturating_sub(self.reserved);
        if extra > 0 {
            if !budget.try_reserve(extra) {
                return false;
            }
            self.buf.reserve_exact(want - self.buf.len());
            self.reserved += extra;
        }
        self.buf.resize(len, 0);
        true
    }

    /// Copies the parts of `[start, end)` not yet filled; counts overlaps. Returns
    /// whether any new byte was stored. Offsets are absolute; `buf` is at `origin`.
    fn fill(&mut self, start: u32, end: u32, data: &[u8], stats: &mut ReassemblyStats) -> bool {
        let o = self.origin;
        let mut pos = start;
        let mut stored = false;
        // Walk the existing ranges that intersect [start, end).
        for &(rs, re) in &self.ranges {
            if re <= pos {
                continue;
            }
            if rs >= end {
                break;
            }
            if rs > pos {
                let (a, b) = (pos, rs.min(end));
                self.buf[(a - o) as usize..(b - o) as usize]
                    .copy_from_slice(&data[(a - start) as usize..(b - start) as usize]);
                stored = true;
            }
            // Overlap with an existing range: keep the first copy, count differences.
            let (a, b) = (rs.max(pos), re.min(end));
            if a < b {
                stats.overlap_bytes += u64::from(b - a);
                let old = &self.buf[(a - o) as usize..(b - o) as usize];
                let new = &data[(a - start) as usize..(b - start) as usize];
                if old != new {
                    stats.conflicting_overlap_bytes +=
                        old.iter().zip(new).filter(|(x, y)| x != y).count() as u64;
                }
            }
            pos = re.max(pos);
            if pos >= end {
                break;
            }
        }
        if pos < end {
            self.buf[(pos - o) as usize..(end - o) as usize]
                .copy_from_slice(&data[(pos - start) as usize..]);
            stored = true;
        }
        if stored {
            self.add_range(start, end);
        }
        stored
    }

    /// Adds `[start, end)` to the range set, merging touching or overlapping ranges.
    fn add_range(&mut self, start: u32, end: u32) {
        let i = self.ranges.partition_point(|&(_, re)| re < start);
        let mut j = i;
        let (mut s, mut e) = (start, end);
        while j < self.ranges.len() && self.ranges[j].0 <= e {
            s = s.min(self.ranges[j].0);
            e = e.max(self.ranges[j].1);
            j += 1;
        }
        self.ranges.splice(i..j, std::iter::once((s, e)));
    }

    /// Frees the buffer and returns its memory to the budget; the stream takes no more data.
    pub fn abandon(&mut self, budget: &mut ReassemblyBudget) {
        self.abandoned = true;
        self.release(budget);
    }

    /// Frees the buffer and returns its memory to the budget.
    pub fn release(&mut self, budget: &mut ReassemblyBudget) {
        budget.release(self.reserved);
        self.reserved = 0;
        self.buf = Vec::new();
        self.ranges = Vec::new();
        // Re-anchor the empty window at `delivered`, keeping `delivered <= contiguous_end()`
        // so `take_new` after an abandon returns nothing rather than slicing past the end.
        self.origin = self.delivered;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg() -> ReassemblyConfig {
        ReassemblyConfig {
            depth: 4096,
            max_ranges: 64,
        }
    }

    fn reassemble(base: u32, segments: &[(u32, Vec<u8>)]) -> (Vec<u8>, ReassemblyStats) {
        let mut s = StreamReassembler::new();
        s.set_base(base);
        let mut budget = ReassemblyBudget::new(1 << 20);
        let mut stats = ReassemblyStats::default();
        let mut out = Vec::new();
        for (seq, data) in segments {
            s.insert(*seq, data, &cfg(), &mut budget, &mut stats);
            out.extend_from_slice(s.take_new());
        }
        (out, stats)
    }

    /// Fuzz regression (reassembly target): 54 in-order 8-byte segments with `take_new`
    /// after each doubled the reservation on every append (8, 16, 32, ... 4096 bytes for
    /// 80 bytes of data) until an 8176-byte memcap abandoned the stream.
    #[test]
    fn fuzz_small_segments_reserve_proportionally() {
        let cfg = ReassemblyConfig {
            depth: 0x7fff,
            max_ranges: 64,
        };
        let mut budget = ReassemblyBudget::new(0x01ff * 16);
        let mut stats = ReassemblyStats::default();
        let mut s = StreamReassembler::new();
        let isn = 0x9a15_7c57u32;
        s.set_base(isn);
        let mut out = Vec::new();
        for i in 0..54u32 {
            let seg = [i as u8; 8];
            let o = s.insert(isn.wrapping_add(i * 8), &seg, &cfg, &mut budget, &mut stats);
            assert_eq!(o, InsertOutcome::Stored, "segment {i}");
            out.extend_from_slice(s.take_new());
            assert!(
                budget.used <= 2 * out.len(),
                "{} reserved for {}",
                budget.used,
                out.len()
            );
        }
        assert_eq!(out.len(), 54 * 8);
        s.release(&mut budget);
        assert_eq!(budget.used, 0);
    }

    /// Fuzz regression (reassembly target): `take_new` after the stream was abandoned
    /// (its buffer freed) sliced `buf[delivered..]` of an empty buffer and panicked.
    #[test]
    fn fuzz_take_new_after_abandon_is_empty() {
        let mut budget = ReassemblyBudget::new(16);
        let mut stats = ReassemblyStats::default();
        let mut s = StreamReassembler::new();
        s.set_base(0);
        s.insert(0, &[1; 8], &cfg(), &mut budget, &mut stats);
        assert_eq!(s.take_new(), &[1; 8]);
        let o = s.insert(8, &[2; 64], &cfg(), &mut budget, &mut stats);
        assert_eq!(o, InsertOutcome::MemCap);
        assert!(s.is_abandoned());
        assert!(s.take_new().is_empty());
        assert_eq!(budget.used, 0);
    }

    #[test]
    fn in_order_and_out_of_order() {
        let (out, st) = reassemble(100, &[(104, b"efgh".to_vec()), (100, b"abcd".to_vec())]);
        assert_eq!(out, b"abcdefgh");
        assert_eq!(st.out_of_order, 1);
    }

    #[test]
    fn first_copy_wins_and_conflicts_are_counted() {
        let (out, st) = reassemble(0, &[(2, b"CD".to_vec()), (0, b"abXY".to_vec())]);
        assert_eq!(out, b"abCD");
        assert_eq!(st.overlap_bytes, 2);
        assert_eq!(st.conflicting_overlap_bytes, 2);
    }

    #[test]
    fn sequence_wraps_inside_the_stream() {
        let base = u32::MAX - 2;
        let (out, _) = reassemble(
            base,
            &[
                (base.wrapping_add(4), b"efg".to_vec()),
                (base, b"abcd".to_vec()),
            ],
        );
        assert_eq!(out, b"abcdefg");
    }

    #[test]
    fn data_before_start_is_trimmed() {
        let (out, st) = reassemble(10, &[(5, b"xxxxxabc".to_vec()), (0, b"zz".to_vec())]);
        assert_eq!(out, b"abc");
        assert_eq!(st.before_start, 1);
    }

    #[test]
    fn depth_limits_what_is_kept() {
        let mut s = StreamReassembler::new();
        s.set_base(0);
        let c = ReassemblyConfig {
            depth: 6,
            max_ranges: 8,
        };
        let mut b = ReassemblyBudget::new(1 << 20);
        let mut st = ReassemblyStats::default();
        assert_eq!(
            s.insert(0, b"abcd", &c, &mut b, &mut st),
            InsertOutcome::Stored
        );
        assert_eq!(
            s.insert(4, b"efgh", &c, &mut b, &mut st),
            InsertOutcome::Stored
        );
        assert_eq!(
            s.insert(8, b"ijkl", &c, &mut b, &mut st),
            InsertOutcome::BeyondDepth
        );
        assert_eq!(s.take_new(), b"abcdef");
        assert_eq!(st.beyond_depth, 2);
        assert!(b.used <= 6);
    }

    #[test]
    fn memory_cap_abandons_and_releases() {
        let mut s = StreamReassembler::new();
        s.set_base(0);
        let mut b = ReassemblyBudget::new(10);
        let mut st = ReassemblyStats::default();
        assert_eq!(
            s.insert(0, &[1; 8], &cfg(), &mut b, &mut st),
            InsertOutcome::Stored
        );
        assert_eq!(
            s.insert(8, &[2; 8], &cfg(), &mut b, &mut st),
            InsertOutcome::MemCap
        );
        assert!(s.is_abandoned());
        assert_eq!(b.used, 0);
        assert_eq!(st.memcap_drops, 1);
    }

    #[test]
    fn too_many_holes_abandons() {
        let mut s = StreamReassembler::new();
        s.set_base(0);
        let c = ReassemblyConfig {
            depth: 4096,
            max_ranges: 3,
        };
        let mut b = ReassemblyBudget::new(1 << 20);
        let mut st = ReassemblyStats::default();
        for i in 0..3 {
            assert_eq!(
                s.insert(10 + i * 10, b"x", &c, &mut b, &mut st),
                InsertOutcome::Stored
            );
        }
        assert_eq!(
            s.insert(50, b"x", &c, &mut b, &mut st),
            InsertOutcome::TooFragmented
        );
        assert_eq!(b.used, 0);
    }

    #[test]
    fn delivered_bytes_are_dropped_and_memory_returned() {
        let mut s = StreamReassembler::new();
        s.set_base(0);
        let c = ReassemblyConfig {
            depth: 1 << 20,
            max_ranges: 8,
        };
        let mut b = ReassemblyBudget::new(1 << 20);
        let mut st = ReassemblyStats::default();
        for i in 0..64u32 {
            assert_eq!(
                s.insert(i * 1000, &[i as u8; 1000], &c, &mut b, &mut st),
                InsertOutcome::Stored
            );
            assert_eq!(s.take_new(), &[i as u8; 1000][..]);
            s.compact(&mut b);
            // Nothing is held once consumed, never the whole stream.
            assert_eq!(b.used, 0, "at segment {i}");
        }
        // A retransmission of delivered bytes is an overlap, not new data.
        assert_eq!(
            s.insert(0, &[9; 100], &c, &mut b, &mut st),
            InsertOutcome::Nothing
        );
        assert_eq!(st.overlap_bytes, 100);
        assert_eq!(s.take_new(), b"");
    }

    #[test]
    fn bytes_after_a_hole_wait_for_it() {
        let mut s = StreamReassembler::new();
        s.set_base(0);
        let mut b = ReassemblyBudget::new(1 << 20);
        let mut st = ReassemblyStats::default();
        s.insert(4, b"efgh", &cfg(), &mut b, &mut st);
        assert_eq!(s.contiguous_end(), 0, "a hole before the buffered bytes");
        assert_eq!(s.take_new(), b"");
        s.insert(0, b"abcd", &cfg(), &mut b, &mut st);
        assert_eq!(s.take_new(), b"abcdefgh");
    }

    proptest! {
        /// Any permutation, duplication or re-segmentation of a stream's segments
        /// reassembles to the same bytes.
        #[test]
        fn any_segmentation_order_and_duplication_reassembles(
            stream in proptest::collection::vec(any::<u8>(), 1..2000),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
            dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
            order_seed in any::<u64>(),
            base: u32,
        ) {
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len())).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            points.dedup();
            let mut segs: Vec<(u32, Vec<u8>)> = points.windows(2)
                .map(|w| (base.wrapping_add(w[0] as u32), stream[w[0]..w[1]].to_vec()))
                .collect();
            for d in &dups {
                let s = segs[d.index(segs.len())].clone();
                segs.push(s);
            }
            // Deterministic shuffle from the seed (Fisher-Yates with an LCG).
            let mut x = order_seed | 1;
            for i in (1..segs.len()).rev() {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                segs.swap(i, (x >> 33) as usize % (i + 1));
            }
            let (out, st) = reassemble(base, &segs);
            prop_assert_eq!(&out, &stream);
            prop_assert_eq!(st.conflicting_overlap_bytes, 0);
        }

        #[test]
        fn arbitrary_inserts_never_panic_and_respect_depth(
            ops in proptest::collection::vec((any::<u32>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..50),
            base: Option<u32>,
        ) {
            let mut s = StreamReassembler::new();
            if let Some(b) = base { s.set_base(b); }
            let c = ReassemblyConfig { depth: 1000, max_ranges: 16 };
            let mut b = ReassemblyBudget::new(1 << 20);
            let mut st = ReassemblyStats::default();
            let mut total = 0usize;
            for (seq, data) in &ops {
                s.insert(*seq, data, &c, &mut b, &mut st);
                total += s.take_new().len();
            }
            prop_assert!(total <= 1000);
            prop_assert!(b.used <= 1000);
        }
    }
}
