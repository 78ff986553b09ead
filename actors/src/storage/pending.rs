//! The index families' in-memory tier: recent index entries, held per value in sorted
//! vectors instead of RocksDB memtables, and spilled to RocksDB as sorted SST files.
//! Flow records have a tier of their own ([`super::record_tier`]); both are [`Tiers`].
//!
//! Why: index entries land all over each family's key space (one value after another),
//! and a RocksDB skiplist memtable insert at a random position costs ~2 µs here (the
//! Debian build's comparator calls and thread-local perf counters), ~10 entries per
//! record. A hash map of per-value vectors costs a hash probe and a push.
//!
//! Durability: each write batch's index entries are also one blob in the `index_log`
//! column family (its records another), in the same atomic `WriteBatch`; opening replays the log
//! into the tier. A tier records the log keys it holds, and a spill deletes exactly those
//! keys once its SST files are ingested, so every entry is in the log, an SST, or both
//! (both after a crash between ingest and delete: the merged scans drop equal keys).

use flowmesh_core::storage::keys::FlowId;
use flowmesh_core::storage::Family;
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// A value part padded to 16 bytes (all values of one family have the same length).
pub(super) type Value = [u8; 16];

/// Position of an index family in [`Family::INDEXES`].
pub(super) fn slot(family: Family) -> Option<usize> {
    Family::INDEXES.iter().position(|&f| f == family)
}

/// Index entries of one tier: per family, value → ids in ascending order.
#[derive(Debug, Default)]
pub(super) struct Tier {
    values: [FxHashMap<Value, Vec<FlowId>>; 6],
    entries: usize,
    /// The `index_log` keys whose entries this tier holds.
    pub(super) logs: Vec<u64>,
}

impl Tier {
    /// Adds one entry (a duplicate is ignored).
    pub(super) fn insert(&mut self, slot: usize, value: Value, id: FlowId) {
        let ids = self.values[slot].entry(value).or_default();
        match ids.last() {
            Some(&last) if last >= id => {
                // Out of order (another writer's batch, or a late record): keep it sorted.
                if let Err(pos) = ids.binary_search(&id) {
                    ids.insert(pos, id);
                    self.entries += 1;
                }
            }
            _ => {
                ids.push(id);
                self.entries += 1;
            }
        }
    }

    /// Index entries held.
    pub(super) fn len(&self) -> usize {
        self.entries
    }

    /// Entries of one family.
    pub(super) fn count(&self, slot: usize) -> usize {
        self.values[slot].values().map(Vec::len).sum()
    }

    /// The ids of one value, ascending.
    pub(super) fn ids(&self, slot: usize, value: &Value) -> &[FlowId] {
        self.values[slot].get(value).map_or(&[], Vec::as_slice)
    }

    /// Every (value, ids) of one family, values in ascending order.
    pub(super) fn sorted_values(&self, slot: usize) -> Vec<(&Value, &[FlowId])> {
        let mut v: Vec<(&Value, &[FlowId])> = self.values[slot]
            .iter()
            .map(|(k, ids)| (k, ids.as_slice()))
            .collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// Drops the entries first seen before `cutoff_ns`.
    pub(super) fn prune(&mut self, cutoff_ns: u64) {
        let mut removed = 0;
        for map in &mut self.values {
            map.retain(|_, ids| {
                let keep_from = ids.partition_point(|id| id.time_ns < cutoff_ns);
                removed += keep_from;
                ids.drain(..keep_from);
                !ids.is_empty()
            });
        }
        self.entries -= removed;
    }
}

/// What a tier tells its [`Tiers`]: how full it is and which log keys it holds.
pub(super) trait Logged: Default {
    /// The `index_log` batches whose contents this tier holds, ascending.
    fn logs(&self) -> &[u64];
    /// The same, to add to.
    fn logs_mut(&mut self) -> &mut Vec<u64>;
    /// Its size in the unit of its spill threshold (index entries, record bytes).
    fn size(&self) -> usize;

    /// Notes that the tier holds batch `log`'s contents.
    fn add_log(&mut self, log: u64) {
        let logs = self.logs_mut();
        if logs.last() != Some(&log) {
            logs.push(log);
        }
    }
}

impl Logged for Tier {
    fn logs(&self) -> &[u64] {
        &self.logs
    }
    fn logs_mut(&mut self) -> &mut Vec<u64> {
        &mut self.logs
    }
    fn size(&self) -> usize {
        self.entries
    }
}

/// The active tier (taking inserts) and the frozen ones (being spilled).
#[derive(Debug, Default)]
pub(super) struct Tiers<T> {
    /// Takes new entries.
    pub(super) active: T,
    /// Frozen tiers, oldest first, readable until their SST files are ingested.
    pub(super) frozen: Vec<Arc<T>>,
}

impl<T: Logged> Tiers<T> {
    /// Every tier, newest first (a key in several has the first one's value: a flow's
    /// final record replaces its interim record under the same id).
    pub(super) fn all(&self) -> impl Iterator<Item = &T> {
        std::iter::once(&self.active).chain(self.frozen.iter().rev().map(|t| &**t))
    }

    /// Freezes the active tier if it holds anything and has reached `limit` (0: always).
    /// Returns whether it froze it.
    pub(super) fn freeze_at(&mut self, limit: usize) -> bool {
        let froze = !self.active.logs().is_empty() && self.active.size() >= limit;
        if froze {
            let full = std::mem::take(&mut self.active);
            self.frozen.push(Arc::new(full));
        }
        froze
    }
}

/// Flag on an `index_log` entry's slot byte: the entry has the previous entry's id.
const SAME_ID: u8 = 0x80;

/// Appends one entry to an `index_log` blob: `[slot][value part][time][seq]`, or
/// `[slot | SAME_ID][value part]` when `id` is the previous entry's (a record's entries
/// are consecutive, so most entries are 9 or 3 bytes instead of 25 or 19).
pub(super) fn log_entry(
    blob: &mut Vec<u8>,
    prev: &mut Option<FlowId>,
    slot: usize,
    value: &[u8],
    id: FlowId,
) {
    let same = *prev == Some(id);
    blob.push(slot as u8 | if same { SAME_ID } else { 0 });
    blob.extend_from_slice(value);
    if !same {
        blob.extend_from_slice(&id.to_bytes());
        *prev = Some(id);
    }
}

/// Reads an `index_log` blob back (stops at the first malformed entry).
pub(super) fn parse_log(blob: &[u8]) -> Vec<(usize, Value, FlowId)> {
    let mut out = Vec::new();
    let mut rest = blob;
    let mut prev: Option<FlowId> = None;
    while let Some((&s, tail)) = rest.split_first() {
        let same = s & SAME_ID != 0;
        let slot = usize::from(s & !SAME_ID);
        let Some(len) = Family::INDEXES.get(slot).and_then(|f| f.value_len()) else {
            break;
        };
        let need = len + if same { 0 } else { 16 };
        if tail.len() < need {
            break;
        }
        let mut value = [0u8; 16];
        value[..len].copy_from_slice(&tail[..len]);
        let id = if same {
            prev
        } else {
            FlowId::from_bytes(&tail[len..len + 16])
        };
        let Some(id) = id else {
            break;
        };
        prev = Some(id);
        out.push((slot, value, id));
        rest = &tail[need..];
    }
    out
}

/// Merges ascending id slices (a few tiers) into one ascending, duplicate-free stream.
pub(super) struct MergeIds<'a> {
    slices: Vec<&'a [FlowId]>,
}

impl<'a> MergeIds<'a> {
    /// A merge of `slices`, each ascending.
    pub(super) fn new(slices: Vec<&'a [FlowId]>) -> Self {
        MergeIds { slices }
    }
}

impl Iterator for MergeIds<'_> {
    type Item = FlowId;

    fn next(&mut self) -> Option<FlowId> {
        let min = self
            .slices
            .iter()
            .filter_map(|s| s.first())
            .min()
            .copied()?;
        for s in &mut self.slices {
            if s.first() == Some(&min) {
                *s = &s[1..];
            }
        }
        Some(min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(t: u64, s: u64) -> FlowId {
        FlowId { time_ns: t, seq: s }
    }

    #[test]
    fn tier_keeps_ids_sorted_and_unique_and_prunes() {
        let mut t = Tier::default();
        let v = [1u8; 16];
        for i in [id(5, 1), id(3, 2), id(9, 3), id(3, 2), id(4, 0)] {
            t.insert(0, v, i);
        }
        assert_eq!(t.ids(0, &v), [id(3, 2), id(4, 0), id(5, 1), id(9, 3)]);
        assert_eq!(t.len(), 4);
        t.prune(5);
        assert_eq!(t.ids(0, &v), [id(5, 1), id(9, 3)]);
        assert_eq!(t.len(), 2);
        t.prune(100);
        assert_eq!(t.len(), 0);
        assert!(t.sorted_values(0).is_empty());
    }

    #[test]
    fn log_blobs_round_trip() {
        let mut blob = Vec::new();
        let mut prev = None;
        let port = slot(Family::Port).expect("index");
        let ip = slot(Family::Ip).expect("index");
        log_entry(&mut blob, &mut prev, port, &[1, 187], id(7, 8));
        log_entry(&mut blob, &mut prev, ip, &[9; 16], id(7, 8));
        log_entry(&mut blob, &mut prev, ip, &[5; 16], id(1, 2));
        assert_eq!(blob.len(), (1 + 2 + 16) + (1 + 16) + (1 + 16 + 16));
        let parsed = parse_log(&blob);
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].1[..2], [1, 187]);
        assert_eq!(parsed[0].2, id(7, 8));
        assert_eq!(parsed[1], (ip, [9; 16], id(7, 8)));
        assert_eq!(parsed[2], (ip, [5; 16], id(1, 2)));
        // A truncated blob yields the whole entries before the cut.
        assert_eq!(parse_log(&blob[..blob.len() - 1]).len(), 2);
    }

    #[test]
    fn merge_is_ascending_without_duplicates() {
        let a = [id(1, 0), id(3, 0), id(5, 0)];
        let b = [id(2, 0), id(3, 0), id(6, 0)];
        let m: Vec<FlowId> = MergeIds::new(vec![&a, &b, &[]]).collect();
        assert_eq!(m, [id(1, 0), id(2, 0), id(3, 0), id(5, 0), id(6, 0)]);
    }
}
