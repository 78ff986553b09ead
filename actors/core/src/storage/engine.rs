//! The key-value surface the flow store needs, and an in-memory engine for tests.
//!
//! [`KvEngine`] is all [`Store`](super::Store) asks of a database: column families
//! ([`Family`]), one atomic batch per write (puts, u64 counter merges, a monotonic meta
//! value), point and multi gets, ordered forward scans, range deletes, and the hooks
//! retention uses. RocksDB implements it in `flowmesh-actors`; [`MemEngine`] (a `BTreeMap`
//! per family behind a mutex) implements it here so the store's logic is tested without
//! RocksDB.
//!
//! Invariants every engine keeps:
//! - keys compare as bytes (lexicographically), so a scan visits them in that order;
//! - a batch is applied whole or not at all;
//! - a [`Family::Counts`] merge adds a little-endian u64 to the stored one (absent = 0);
//!   a [`Family::Meta`] merge keeps the larger little-endian u64, so concurrent writers
//!   committing out of order can never lower it;
//! - after [`KvEngine::set_index_cutoff`], an index-family entry whose time field
//!   (`key[len-16..len-8]`, big-endian nanoseconds) is below the cutoff may disappear at
//!   any later compaction, and does at the latest after [`KvEngine::compact`] of its family.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

/// A column family of the flow store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Flow records by [`FlowId`](super::FlowId): Cap'n Proto values.
    Flows,
    /// Index: JA3 hash → flows.
    Ja3,
    /// Index: JA4 → flows.
    Ja4,
    /// Index: SNI → flows.
    Sni,
    /// Index: client and server IP → flows.
    Ip,
    /// Index: client and server port → flows.
    Port,
    /// Index: Community ID → flows.
    CommunityId,
    /// Per-minute fingerprint counters (merge = add).
    Counts,
    /// Store metadata (merge = max).
    Meta,
}

impl Family {
    /// Every family, in a fixed order.
    pub const ALL: [Family; 9] = [
        Family::Flows,
        Family::Ja3,
        Family::Ja4,
        Family::Sni,
        Family::Ip,
        Family::Port,
        Family::CommunityId,
        Family::Counts,
        Family::Meta,
    ];

    /// The index families: keys end with `[first_seen u64 BE][seq u64 BE]`.
    pub const INDEXES: [Family; 6] = [
        Family::Ja3,
        Family::Ja4,
        Family::Sni,
        Family::Ip,
        Family::Port,
        Family::CommunityId,
    ];

    /// The family's name (the RocksDB column family name).
    pub fn name(self) -> &'static str {
        match self {
            Family::Flows => "flows",
            Family::Ja3 => "idx_ja3",
            Family::Ja4 => "idx_ja4",
            Family::Sni => "idx_sni",
            Family::Ip => "idx_ip",
            Family::Port => "idx_port",
            Family::CommunityId => "idx_community_id",
            Family::Counts => "counts",
            Family::Meta => "meta",
        }
    }

    /// Whether this is an index family (subject to the retention cutoff by key time).
    pub fn is_index(self) -> bool {
        Family::INDEXES.contains(&self)
    }

    /// Length of the value part of an index family's keys (the part before
    /// `[time][seq]`); `None` for the other families.
    pub fn value_len(self) -> Option<usize> {
        match self {
            Family::Ip => Some(16),
            Family::Port => Some(2),
            Family::Ja3 | Family::Ja4 | Family::Sni | Family::CommunityId => Some(8),
            Family::Flows | Family::Counts | Family::Meta => None,
        }
    }

    /// Position in [`Family::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// An engine failure. Engines put what they know (directory, family, cause) in the text.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The database could not be opened.
    #[error("{0}")]
    Open(String),
    /// A read, write or maintenance call failed.
    #[error("storage engine error: {0}")]
    Io(String),
    /// Stored bytes are not what the store wrote (e.g. a counter that is not 8 bytes).
    #[error("corrupt value in {family}: {what}")]
    Corrupt {
        /// The family's name.
        family: &'static str,
        /// What was wrong.
        what: String,
    },
}

/// Writes collected for one atomic [`KvEngine::write`].
pub trait EngineBatch {
    /// Sets `key` to `value` in `family`.
    fn put(&mut self, family: Family, key: &[u8], value: &[u8]);
    /// Sets flow record `id` (in [`Family::Flows`]) to `record`, which the batch may keep
    /// instead of copying.
    fn put_record(&mut self, id: super::FlowId, record: Vec<u8>) {
        self.put(Family::Flows, &id.to_bytes(), &record);
    }
    /// Adds `delta` to the u64 counter at `key` in [`Family::Counts`].
    fn add_count(&mut self, key: &[u8], delta: u64);
    /// Removes `key` from [`Family::Meta`].
    fn delete_meta(&mut self, key: &[u8]);
    /// Raises the u64 at `key` in [`Family::Meta`] to at least `value`.
    fn raise_meta(&mut self, key: &[u8], value: u64);
    /// Operations collected so far.
    fn len(&self) -> usize;
    /// Whether nothing was collected.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Approximate size of one family, as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FamilySize {
    /// Estimated number of keys.
    pub keys: u64,
    /// Estimated bytes (on disk plus in memory).
    pub bytes: u64,
}

/// The minimal key-value engine the flow store runs on. See the module docs for the
/// invariants an implementation keeps.
pub trait KvEngine: Send + Sync {
    /// The engine's batch type (it may borrow the engine, e.g. its column family handles).
    type Batch<'a>: EngineBatch
    where
        Self: 'a;

    /// A new, empty batch.
    fn batch(&self) -> Self::Batch<'_>;
    /// Applies `batch` atomically (durably as the engine is configured).
    fn write(&self, batch: Self::Batch<'_>) -> Result<(), EngineError>;
    /// The value at `key`.
    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError>;
    /// The values at `keys`, in the same order.
    fn multi_get(
        &self,
        family: Family,
        keys: &[[u8; 16]],
    ) -> Result<Vec<Option<Vec<u8>>>, EngineError>;
    /// Visits the entries with `start <= key < end` (no upper bound when `end` is `None`)
    /// in ascending key order until `visit` returns `false`.
    fn scan(
        &self,
        family: Family,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), EngineError>;
    /// The greatest key of `family`.
    fn last_key(&self, family: Family) -> Result<Option<Vec<u8>>, EngineError>;
    /// Deletes every key with `start <= key < end`.
    fn delete_range(&self, family: Family, start: &[u8], end: &[u8]) -> Result<(), EngineError>;
    /// Index entries whose time field is below `cutoff_ns` may be dropped from now on.
    /// The cutoff only rises: a lower value than the current one is ignored.
    fn set_index_cutoff(&self, cutoff_ns: u64);
    /// Compacts `family` over `start..end` (`None` = unbounded), reclaiming deleted space
    /// and applying the index cutoff.
    fn compact(
        &self,
        family: Family,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
    ) -> Result<(), EngineError>;
    /// Approximate size of `family`.
    fn family_size(&self, family: Family) -> Result<FamilySize, EngineError>;
    /// Bytes the store occupies on disk (what size-based retention compares).
    fn disk_bytes(&self) -> Result<u64, EngineError>;
}

/// One operation of a [`MemBatch`].
#[derive(Debug, Clone)]
enum MemOp {
    Put(Family, Vec<u8>, Vec<u8>),
    Add(Vec<u8>, u64),
    Max(Vec<u8>, u64),
    DeleteMeta(Vec<u8>),
}

/// [`MemEngine`]'s batch.
#[derive(Debug, Default)]
pub struct MemBatch {
    ops: Vec<MemOp>,
}

impl EngineBatch for MemBatch {
    fn put(&mut self, family: Family, key: &[u8], value: &[u8]) {
        self.ops
            .push(MemOp::Put(family, key.to_vec(), value.to_vec()));
    }

    fn add_count(&mut self, key: &[u8], delta: u64) {
        self.ops.push(MemOp::Add(key.to_vec(), delta));
    }

    fn delete_meta(&mut self, key: &[u8]) {
        self.ops.push(MemOp::DeleteMeta(key.to_vec()));
    }

    fn raise_meta(&mut self, key: &[u8], value: u64) {
        self.ops.push(MemOp::Max(key.to_vec(), value));
    }

    fn len(&self) -> usize {
        self.ops.len()
    }
}

type Tree = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Default)]
struct MemState {
    families: [Tree; 9],
    index_cutoff: u64,
}

/// An in-memory [`KvEngine`]: one `BTreeMap` per family behind a mutex. For tests.
#[derive(Debug, Default)]
pub struct MemEngine {
    state: Mutex<MemState>,
}

impl MemEngine {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemState> {
        // A panic while holding the lock leaves maps that are still valid maps.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Reads a little-endian u64 counter (absent = 0).
pub fn read_u64_le(family: Family, value: Option<&[u8]>) -> Result<u64, EngineError> {
    match value {
        None => Ok(0),
        Some(v) => v
            .try_into()
            .map(u64::from_le_bytes)
            .map_err(|_| EngineError::Corrupt {
                family: family.name(),
                what: format!("counter of {} bytes, expected 8", v.len()),
            }),
    }
}

impl KvEngine for MemEngine {
    type Batch<'a> = MemBatch;

    fn batch(&self) -> MemBatch {
        MemBatch::default()
    }

    fn write(&self, batch: MemBatch) -> Result<(), EngineError> {
        let mut s = self.lock();
        // Validate first so that the batch applies whole or not at all.
        for op in &batch.ops {
            let (family, key) = match op {
                MemOp::Put(..) | MemOp::DeleteMeta(_) => continue,
                MemOp::Add(k, _) => (Family::Counts, k),
                MemOp::Max(k, _) => (Family::Meta, k),
            };
            read_u64_le(
                family,
                s.families[family.index()].get(key).map(Vec::as_slice),
            )?;
        }
        for op in batch.ops {
            match op {
                MemOp::Put(f, k, v) => {
                    s.families[f.index()].insert(k, v);
                }
                MemOp::Add(k, d) => {
                    let t = &mut s.families[Family::Counts.index()];
                    let old = read_u64_le(Family::Counts, t.get(&k).map(Vec::as_slice))?;
                    t.insert(k, old.wrapping_add(d).to_le_bytes().to_vec());
                }
                MemOp::DeleteMeta(k) => {
                    s.families[Family::Meta.index()].remove(&k);
                }
                MemOp::Max(k, v) => {
                    let t = &mut s.families[Family::Meta.index()];
                    let old = read_u64_le(Family::Meta, t.get(&k).map(Vec::as_slice))?;
                    t.insert(k, old.max(v).to_le_bytes().to_vec());
                }
            }
        }
        Ok(())
    }

    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.lock().families[family.index()].get(key).cloned())
    }

    fn multi_get(
        &self,
        family: Family,
        keys: &[[u8; 16]],
    ) -> Result<Vec<Option<Vec<u8>>>, EngineError> {
        let s = self.lock();
        let t = &s.families[family.index()];
        Ok(keys.iter().map(|k| t.get(k.as_slice()).cloned()).collect())
    }

    fn scan(
        &self,
        family: Family,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), EngineError> {
        let s = self.lock();
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        if end.is_some_and(|e| e <= start) {
            return Ok(());
        }
        for (k, v) in s.families[family.index()].range::<[u8], _>((Bound::Included(start), upper)) {
            if !visit(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn last_key(&self, family: Family) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.lock().families[family.index()]
            .last_key_value()
            .map(|(k, _)| k.clone()))
    }

    fn delete_range(&self, family: Family, start: &[u8], end: &[u8]) -> Result<(), EngineError> {
        if end <= start {
            return Ok(());
        }
        let mut s = self.lock();
        let t = &mut s.families[family.index()];
        let mut tail = t.split_off(start);
        let mut after = tail.split_off(end);
        t.append(&mut after);
        Ok(())
    }

    fn set_index_cutoff(&self, cutoff_ns: u64) {
        let mut s = self.lock();
        s.index_cutoff = s.index_cutoff.max(cutoff_ns);
    }

    fn compact(
        &self,
        family: Family,
        _start: Option<&[u8]>,
        _end: Option<&[u8]>,
    ) -> Result<(), EngineError> {
        if family.is_index() {
            let mut s = self.lock();
            let cutoff = s.index_cutoff;
            s.families[family.index()]
                .retain(|k, _| super::keys::index_key_time(k).is_none_or(|t| t >= cutoff));
        }
        Ok(())
    }

    fn family_size(&self, family: Family) -> Result<FamilySize, EngineError> {
        let s = self.lock();
        let t = &s.families[family.index()];
        Ok(FamilySize {
            keys: t.len() as u64,
            bytes: t.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum(),
        })
    }

    fn disk_bytes(&self) -> Result<u64, EngineError> {
        Family::ALL
            .iter()
            .map(|&f| self.family_size(f).map(|s| s.bytes))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_merges_add_and_max() {
        let e = MemEngine::new();
        let mut b = e.batch();
        b.add_count(b"c", 2);
        b.add_count(b"c", 3);
        b.raise_meta(b"m", 10);
        b.raise_meta(b"m", 4);
        e.write(b).expect("write");
        let get = |f, k: &[u8]| read_u64_le(f, e.get(f, k).expect("get").as_deref());
        assert_eq!(get(Family::Counts, b"c").expect("counter"), 5);
        assert_eq!(get(Family::Meta, b"m").expect("meta"), 10);
    }

    #[test]
    fn corrupt_counter_rejects_the_whole_batch() {
        let e = MemEngine::new();
        let mut b = e.batch();
        b.put(Family::Counts, b"c", b"xyz");
        e.write(b).expect("write");
        let mut b = e.batch();
        b.put(Family::Flows, b"f", b"v");
        b.add_count(b"c", 1);
        assert!(matches!(e.write(b), Err(EngineError::Corrupt { .. })));
        assert_eq!(e.get(Family::Flows, b"f").expect("get"), None);
    }

    #[test]
    fn scan_and_delete_range_respect_bounds() {
        let e = MemEngine::new();
        let mut b = e.batch();
        for k in [b"a", b"b", b"c", b"d"] {
            b.put(Family::Flows, k, b"");
        }
        e.write(b).expect("write");
        let mut seen = Vec::new();
        e.scan(Family::Flows, b"b", Some(b"d"), &mut |k, _| {
            seen.push(k.to_vec());
            true
        })
        .expect("scan");
        assert_eq!(seen, [b"b".to_vec(), b"c".to_vec()]);
        e.delete_range(Family::Flows, b"b", b"d").expect("delete");
        let mut seen = Vec::new();
        e.scan(Family::Flows, b"", None, &mut |k, _| {
            seen.push(k.to_vec());
            true
        })
        .expect("scan");
        assert_eq!(seen, [b"a".to_vec(), b"d".to_vec()]);
        assert_eq!(
            e.last_key(Family::Flows).expect("last"),
            Some(b"d".to_vec())
        );
    }
}
