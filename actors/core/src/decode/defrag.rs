//! IP defragmentation: one engine for IPv4 (RFC 791 §3.2) and IPv6 (RFC 8200 §4.5),
//! keyed by [`FragKey`].
//!
//! Owns: the trains (datagrams in progress), their byte buffers and received-interval
//! lists, and the bounds that keep an attacker from exhausting memory or CPU.
//!
//! Design: each train keeps a buffer of the fragmentable data and a sorted list of
//! disjoint half-open byte intervals already received (an interval list rather than
//! RFC 815 hole descriptors: the same information, but it also tells which bytes
//! overlap). Overlap policy is *first copy wins* (Suricata's "first"). Hosts differ here
//! (Novak, "Target-Based Fragmentation Reassembly", 2005): the BSD policy keeps earlier
//! data unless the new fragment starts before the existing one, Linux favours the new
//! fragment in more cases; that difference is the classic Ptacek-Newsham evasion
//! surface. Keeping first bytes also neutralises the RFC 1858 tiny-fragment overlap
//! attack that rewrites TCP flags with a later fragment at offset 8. Overlapping bytes
//! that differ are counted, never silently merged.
//!
//! Invariants:
//! - at most `max_datagrams` trains, at most `max_bytes` buffer bytes in total, at most
//!   `max_fragments` fragments per train, datagram data ≤ 65535 bytes;
//! - `age` holds exactly one entry per train, ordered by first-fragment time, so expiry
//!   and eviction of the oldest train are O(log n);
//! - BTreeMaps, not HashMaps: iteration and eviction are deterministic (no random seed).

use flowmesh_schemas::Timestamp;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Largest reassembled data we accept: the 16-bit IP length fields bound a datagram.
pub const MAX_DATAGRAM: u32 = 65_535;

/// Identity of a datagram being reassembled (RFC 791 §3.2; RFC 8200 §4.5), plus the VLAN
/// so that identical addresses on two VLANs never mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FragKey {
    /// IPv4: source, destination, protocol, identification.
    V4 {
        /// Source address.
        src: Ipv4Addr,
        /// Destination address.
        dst: Ipv4Addr,
        /// IP protocol.
        proto: u8,
        /// Identification field.
        id: u16,
        /// Outermost VLAN.
        vlan: Option<u16>,
    },
    /// IPv6: source, destination, Fragment header identification.
    V6 {
        /// Source address.
        src: Ipv6Addr,
        /// Destination address.
        dst: Ipv6Addr,
        /// Fragment header identification.
        id: u32,
        /// Outermost VLAN.
        vlan: Option<u16>,
    },
}

/// Why a fragment (and possibly its whole train) was discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FragDropReason {
    /// A non-last fragment whose length is zero or not a multiple of 8 (RFC 791 §3.2,
    /// RFC 8200 §4.5).
    BadFragment,
    /// The fragment ends beyond 65535 bytes of data.
    TooLarge,
    /// Fragments disagree on the datagram length; the train is dropped.
    Inconsistent,
    /// The train exceeded the per-datagram fragment limit; the train is dropped.
    TooManyFragments,
    /// The byte budget could not hold this fragment even after evicting older trains.
    MemoryLimit,
}

/// Counters of the defragmenter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Fragments accepted into a train.
    pub fragments: u64,
    /// Datagrams completed.
    pub reassembled: u64,
    /// Trains dropped because their timeout passed.
    pub expired: u64,
    /// Trains evicted to make room (datagram or byte cap).
    pub evicted: u64,
    /// Trains dropped for inconsistency or too many fragments.
    pub trains_dropped: u64,
    /// Fragments entirely covered by data already received.
    pub duplicates: u64,
    /// Bytes received more than once.
    pub overlap_bytes: u64,
    /// Overlapping bytes whose value differed from the first copy (evasion attempts).
    pub overlap_conflict_bytes: u64,
}

impl DefragStats {
    /// Adds `o`'s counts.
    pub fn merge(&mut self, o: &DefragStats) {
        self.fragments += o.fragments;
        self.reassembled += o.reassembled;
        self.expired += o.expired;
        self.evicted += o.evicted;
        self.trains_dropped += o.trains_dropped;
        self.duplicates += o.duplicates;
        self.overlap_bytes += o.overlap_bytes;
        self.overlap_conflict_bytes += o.overlap_conflict_bytes;
    }
}

/// Limits of the defragmenter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefragLimits {
    /// Maximum trains in progress.
    pub max_datagrams: usize,
    /// Maximum buffered bytes over all trains.
    pub max_bytes: usize,
    /// Maximum fragments per train (bounds tiny-fragment CPU attacks).
    pub max_fragments: usize,
    /// Nanoseconds after its first fragment that a train expires.
    pub timeout_ns: i64,
}

/// One fragment handed to the engine.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fragment<'a> {
    /// Byte offset of `data` in the datagram's fragmentable part.
    pub(crate) offset: u32,
    /// More-fragments flag.
    pub(crate) more: bool,
    /// The fragment's data (fully captured).
    pub(crate) data: &'a [u8],
    /// Protocol of the fragmentable part (IPv4 protocol, IPv6 Fragment next header).
    pub(crate) next_header: u8,
    /// Wire length of the frame, summed over the train.
    pub(crate) wire_len: u32,
}

/// A completed datagram.
#[derive(Debug)]
pub(crate) struct Reassembled {
    /// Protocol of the data, from the first fragment.
    pub(crate) next_header: u8,
    /// The reassembled fragmentable part.
    pub(crate) data: Vec<u8>,
    /// Sum of the fragments' wire lengths.
    pub(crate) wire_len: u32,
}

/// What happened to a fragment.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Stored; the datagram is incomplete.
    Held,
    /// The datagram is complete.
    Complete(Reassembled),
}

#[derive(Debug)]
struct Train {
    started: Timestamp,
    seq: u64,
    buf: Vec<u8>,
    /// Received byte ranges, sorted, disjoint and non-adjacent.
    have: Vec<(u32, u32)>,
    /// Datagram data length, known once the last fragment arrived.
    total: Option<u32>,
    /// Next header of the offset-0 fragment.
    next_header: Option<u8>,
    fragments: usize,
    wire_len: u32,
}

/// The defragmentation engine shared by IPv4 and IPv6.
#[derive(Debug)]
pub(crate) struct Defragmenter {
    limits: DefragLimits,
    trains: BTreeMap<FragKey, Train>,
    age: BTreeMap<(Timestamp, u64), FragKey>,
    seq: u64,
    bytes: usize,
}

impl Defragmenter {
    pub(crate) fn new(limits: DefragLimits) -> Self {
        Defragmenter {
            limits,
            trains: BTreeMap::new(),
            age: BTreeMap::new(),
            seq: 0,
            bytes: 0,
        }
    }

    /// Trains in progress.
    pub(crate) fn in_progress(&self) -> usize {
        self.trains.len()
    }

    /// Buffered bytes over all trains.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// Drops trains whose first fragment is older than the timeout.
    pub(crate) fn expire(&mut self, now: Timestamp, stats: &mut DefragStats) {
        while let Some((&(started, _), &key)) = self.age.first_key_value() {
            if now.nanos_since(started) < self.limits.timeout_ns {
                break;
            }
            self.remove(&key);
            stats.expired += 1;
        }
    }

    fn remove(&mut self, key: &FragKey) -> Option<Train> {
        let t = self.trains.remove(key)?;
        self.age.remove(&(t.started, t.seq));
        self.bytes = self.bytes.saturating_sub(t.buf.len());
        Some(t)
    }

    /// Evicts the oldest train other than `keep`; false if there is none.
    fn evict_oldest(&mut self, keep: &FragKey, stats: &mut DefragStats) -> bool {
        let Some(victim) = self.age.values().find(|k| *k != keep).copied() else {
            return false;
        };
        self.remove(&victim);
        stats.evicted += 1;
        true
    }

    /// Adds a fragment of datagram `key`.
    pub(crate) fn insert(
        &mut self,
        now: Timestamp,
        key: FragKey,
        frag: Fragment<'_>,
        stats: &mut DefragStats,
    ) -> Result<Outcome, FragDropReason> {
        self.expire(now, stats);
        let len = u32::try_from(frag.data.len()).map_err(|_| FragDropReason::TooLarge)?;
        let start = frag.offset;
        let end = start.checked_add(len).ok_or(FragDropReason::TooLarge)?;
        if end > MAX_DATAGRAM {
            return Err(FragDropReason::TooLarge);
        }
        if frag.more && (len == 0 || len % 8 != 0) {
            return Err(FragDropReason::BadFragment);
        }
        if !self.trains.contains_key(&key) {
            if self.limits.max_datagrams == 0 {
                return Err(FragDropReason::MemoryLimit);
            }
            while self.trains.len() >= self.limits.max_datagrams && self.evict_oldest(&key, stats) {
            }
            self.seq = self.seq.wrapping_add(1);
            let train = Train {
                started: now,
                seq: self.seq,
                buf: Vec::new(),
                have: Vec::new(),
                total: None,
                next_header: None,
                fragments: 0,
                wire_len: 0,
            };
            self.age.insert((now, self.seq), key);
            self.trains.insert(key, train);
        }
        // Make room for the buffer growth before touching the train.
        let cur_len = self.trains.get(&key).map_or(0, |t| t.buf.len());
        let growth = usize::try_from(end)
            .unwrap_or(usize::MAX)
            .saturating_sub(cur_len);
        while self.bytes.saturating_add(growth) > self.limits.max_bytes {
            if !self.evict_oldest(&key, stats) {
                if cur_len == 0 {
                    self.remove(&key);
                }
                return Err(FragDropReason::MemoryLimit);
            }
        }
        let max_fragments = self.limits.max_fragments;
        let Some(train) = self.trains.get_mut(&key) else {
            return Err(FragDropReason::MemoryLimit);
        };
        train.fragments += 1;
        let verdict = if train.fragments > max_fragments {
            Err(FragDropReason::TooManyFragments)
        } else {
            check_length(train, frag.more, end)
        };
        if let Err(r) = verdict {
            self.remove(&key);
            stats.trains_dropped += 1;
            return Err(r);
        }
        stats.fragments += 1;
        if growth > 0 {
            train.buf.resize(cur_len.saturating_add(growth), 0);
            self.bytes = self.bytes.saturating_add(growth);
        }
        if start == 0 && train.next_header.is_none() {
            train.next_header = Some(frag.next_header);
        }
        train.wire_len = train.wire_len.saturating_add(frag.wire_len);
        let (overlap, conflicts) = fill(train, start, end, frag.data);
        stats.overlap_bytes += u64::from(overlap);
        stats.overlap_conflict_bytes += u64::from(conflicts);
        if overlap == len && len > 0 {
            stats.duplicates += 1;
        }
        merge(&mut train.have, (start, end));
        let complete =
            matches!((train.total, train.have.as_slice()), (Some(t), [(0, e)]) if *e == t);
        if !complete {
            return Ok(Outcome::Held);
        }
        let Some(mut t) = self.remove(&key) else {
            return Ok(Outcome::Held);
        };
        stats.reassembled += 1;
        t.buf
            .truncate(usize::try_from(t.total.unwrap_or(0)).unwrap_or(usize::MAX));
        Ok(Outcome::Complete(Reassembled {
            next_header: t.next_header.unwrap_or(frag.next_header),
            data: t.buf,
            wire_len: t.wire_len,
        }))
    }
}

/// Checks a fragment ending at `end` against the datagram length known so far, and
/// records the length when this is the last fragment.
fn check_length(train: &mut Train, more: bool, end: u32) -> Result<(), FragDropReason> {
    let max_seen = train.have.last().map_or(0, |&(_, e)| e);
    if more {
        if train.total.is_some_and(|t| end > t) {
            return Err(FragDropReason::Inconsistent);
        }
    } else {
        if train.total.is_some_and(|t| t != end) || max_seen > end {
            return Err(FragDropReason::Inconsistent);
        }
        train.total = Some(end);
    }
    Ok(())
}

/// Copies the bytes of `[start, end)` not yet received into the buffer (first copy
/// wins); returns (overlapping bytes, overlapping bytes that differ).
fn fill(train: &mut Train, start: u32, end: u32, data: &[u8]) -> (u32, u32) {
    let (mut overlap, mut conflicts) = (0u32, 0u32);
    let copy = |buf: &mut Vec<u8>, from: u32, to: u32| {
        let src = data
            .get(idx(from - start)..idx(to - start))
            .unwrap_or_default();
        if let Some(dst) = buf.get_mut(idx(from)..idx(to)) {
            dst.copy_from_slice(src);
        }
    };
    let mut cur = start;
    // Intervals ending at or before `start` cannot overlap: skip them by binary search.
    let first = train.have.partition_point(|&(_, b)| b <= start);
    for &(a, b) in train.have.get(first..).unwrap_or_default() {
        if a >= end {
            break;
        }
        if a > cur {
            copy(&mut train.buf, cur, a);
        }
        let (os, oe) = (a.max(cur), b.min(end));
        overlap += oe - os;
        let old = train.buf.get(idx(os)..idx(oe)).unwrap_or_default();
        let new = data
            .get(idx(os - start)..idx(oe - start))
            .unwrap_or_default();
        conflicts += old.iter().zip(new).filter(|(x, y)| x != y).count() as u32;
        cur = oe;
        if cur >= end {
            break;
        }
    }
    if cur < end {
        copy(&mut train.buf, cur, end);
    }
    (overlap, conflicts)
}

fn idx(v: u32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Inserts `[s, e)` into a sorted list of disjoint intervals, merging touching ones.
fn merge(have: &mut Vec<(u32, u32)>, (s, e): (u32, u32)) {
    if s == e {
        return;
    }
    let pos = have.partition_point(|&(a, _)| a < s);
    have.insert(pos, (s, e));
    let mut out = 0usize;
    for i in 0..have.len() {
        let Some(&(a, b)) = have.get(i) else { break };
        match out.checked_sub(1).and_then(|p| have.get_mut(p)) {
            Some(prev) if a <= prev.1 => prev.1 = prev.1.max(b),
            _ => {
                if let Some(slot) = have.get_mut(out) {
                    *slot = (a, b);
                }
                out += 1;
            }
        }
    }
    have.truncate(out);
}

#[cfg(test)]
#[path = "defrag_tests.rs"]
mod tests;
