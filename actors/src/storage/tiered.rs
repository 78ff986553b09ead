//! How [`RocksEngine`] serves the index families and the flows family: RocksDB (ingested
//! SST files) plus the in-memory tiers of recent index entries ([`super::pending`]) and
//! of recent records ([`super::record_tier`]), merged in key order.
//!
//! - write: the batch's index entries and its records go into the `index_log` family (one
//!   blob each, in the batch's atomic `WriteBatch`), then into the active tier of each;
//! - spill: when an active tier is full (`index_memory_entries` entries, `record_memory_mb`
//!   of records), the writer that filled it freezes it and wakes the spill thread, which
//!   writes one sorted SST file per family, ingests them, then deletes the tier's blobs
//!   from the `index_log`. When more than two frozen
//!   tiers wait, writers spill them themselves (backpressure: memory stays bounded). A
//!   failed spill keeps the tier frozen (still read) and is retried by the next spill; it
//!   never fails a write, whose records are already durable;
//! - open: the `index_log` is replayed into the active tier;
//! - scan: a forward merge of the RocksDB iterator and the tiers, equal keys once.
//!
//! `last_key` and `delete_range` on an index family see RocksDB only: the store uses
//! neither there (retention reaches index entries through the cutoff, which also prunes
//! the active tier, and filters frozen tiers as they are spilled). On the flows family
//! both see the tiers: a range delete reaching records in memory spills every tier first.

use super::pending::{self, Logged, MergeIds, Tier, Tiers, Value};
use super::record_tier::{self, Records};
use super::rocks::{index_log_key, io, record_log_key, Core, INDEX_LOG};
use flowmesh_core::storage::keys::{prefix_end, FlowId, IndexKey};
use flowmesh_core::storage::{EngineError, Family};
use rocksdb::{
    DBCompressionType, IngestExternalFileOptions, Options, SliceTransform, SstFileWriter,
    WriteBatch,
};
use std::cmp::Ordering as CmpOrdering;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Where spill files are written before ingestion (inside the data directory).
const SPILL_DIR: &str = "index-spill";

impl Core {
    fn read_tiers(&self) -> RwLockReadGuard<'_, Tiers<Tier>> {
        read(&self.tiers)
    }

    fn write_tiers(&self) -> RwLockWriteGuard<'_, Tiers<Tier>> {
        write(&self.tiers)
    }

    fn read_records(&self) -> RwLockReadGuard<'_, Tiers<Records>> {
        read(&self.records)
    }

    fn write_records(&self) -> RwLockWriteGuard<'_, Tiers<Records>> {
        write(&self.records)
    }

    /// Replays the `index_log` into the active tiers and removes stale spill files.
    pub(super) fn recover_index_log(&self) -> Result<(), EngineError> {
        let spill_dir = self.spill_dir();
        if spill_dir.exists() {
            std::fs::remove_dir_all(&spill_dir).map_err(|e| {
                EngineError::Io(format!("cannot clear {}: {e}", spill_dir.display()))
            })?;
        }
        let mut tiers = self.write_tiers();
        let mut records = self.write_records();
        let mut it = self.db.raw_iterator_cf(self.cf_named(INDEX_LOG)?);
        it.seek_to_first();
        let mut next = 0u64;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let log = k
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes);
            if k.len() == 8 {
                for (slot, value, id) in pending::parse_log(v) {
                    tiers.active.insert(slot, value, id);
                }
                tiers.active.add_log(log);
            } else {
                let batch = record_tier::decode_log(v)
                    .map_err(|e| EngineError::Io(format!("index_log batch {log}: {e}")))?;
                for (id, r) in batch {
                    records.active.insert(id, r);
                }
                records.active.add_log(log);
            }
            next = next.max(log + 1);
            it.next();
        }
        it.status().map_err(io)?;
        self.next_log.store(next, Ordering::Relaxed);
        let over = tiers.freeze_at(self.spill_entries) | records.freeze_at(self.spill_record_bytes);
        drop((tiers, records));
        if over {
            self.spill_frozen();
        }
        Ok(())
    }

    /// Adds a committed batch's index entries and records (under `index_log` batch
    /// `log`), freezing an active tier when it is full. Returns whether it froze one, and
    /// how many frozen tiers of a kind wait for a spill.
    pub(super) fn add_pending(
        &self,
        log: u64,
        entries: &[(usize, Value, FlowId)],
        batch: Vec<record_tier::Entry>,
    ) -> (bool, usize) {
        let (mut froze, mut waiting) = (false, 0);
        if !entries.is_empty() {
            let mut tiers = self.write_tiers();
            for &(slot, value, id) in entries {
                tiers.active.insert(slot, value, id);
            }
            tiers.active.add_log(log);
            froze |= tiers.freeze_at(self.spill_entries);
            waiting = waiting.max(tiers.frozen.len());
        }
        if !batch.is_empty() {
            let mut records = self.write_records();
            for (id, r) in batch {
                records.active.insert(id, r);
            }
            records.active.add_log(log);
            froze |= records.freeze_at(self.spill_record_bytes);
            waiting = waiting.max(records.frozen.len());
        }
        (froze, waiting)
    }

    /// Drops in-memory entries first seen before `cutoff_ns` (frozen tiers are filtered
    /// when spilled).
    pub(super) fn prune_pending(&self, cutoff_ns: u64) {
        self.write_tiers().active.prune(cutoff_ns);
    }

    /// Entries held in memory, for one family or all.
    pub(super) fn pending_entries(&self, family: Option<Family>) -> usize {
        let tiers = self.read_tiers();
        match family.map(pending::slot) {
            None => tiers.all().map(Tier::len).sum(),
            Some(None) => 0,
            Some(Some(slot)) => tiers.all().map(|t| t.count(slot)).sum(),
        }
    }

    /// The records held in memory under flows keys `keys`, in order (`None`: not held).
    pub(super) fn pending_records_at<K: AsRef<[u8]>>(&self, keys: &[K]) -> Vec<Option<Vec<u8>>> {
        let records = self.read_records();
        keys.iter()
            .map(|k| {
                let id = FlowId::from_bytes(k.as_ref())?;
                records.newest(&id).map(<[u8]>::to_vec)
            })
            .collect()
    }

    /// The largest record id held in memory.
    pub(super) fn last_pending_record(&self) -> Option<FlowId> {
        self.read_records().all().filter_map(Records::last).max()
    }

    /// Records held in memory and their bytes.
    pub(super) fn pending_records(&self) -> (usize, usize) {
        let records = self.read_records();
        records
            .all()
            .fold((0, 0), |(n, b), t| (n + t.len(), b + t.bytes()))
    }

    /// Whether a record held in memory has a key in `[start, end)`.
    pub(super) fn pending_records_in(&self, start: &[u8], end: &[u8]) -> bool {
        self.read_records().all().any(|t| t.any_in(start, end))
    }

    /// Freezes the active tiers and spills every tier now; fails if a spill fails.
    pub(super) fn spill_all(&self) -> Result<(), EngineError> {
        self.write_tiers().freeze_at(0);
        self.write_records().freeze_at(0);
        self.spill_frozen();
        if self.read_tiers().frozen.is_empty() && self.read_records().frozen.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Io(
                "the in-memory tier could not be spilled (see the log)".into(),
            ))
        }
    }

    fn spill_dir(&self) -> PathBuf {
        self.dir.join(SPILL_DIR)
    }

    /// Spills every frozen tier, records first, oldest first; waits for a spill already
    /// running. A failed spill is logged and leaves its tier frozen, to be retried.
    pub(super) fn spill_frozen(&self) {
        let _one_at_a_time = self
            .spill_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.spill_each(&self.records, |t| self.spill_records(t), "records");
        self.spill_each(&self.tiers, |t| self.spill_tier(t), "index entries");
    }

    /// Spills the frozen tiers of `tiers` with `spill`, oldest first, until one fails.
    fn spill_each<T: Logged>(
        &self,
        tiers: &RwLock<Tiers<T>>,
        spill: impl Fn(&T) -> Result<(), EngineError>,
        what: &str,
    ) {
        let frozen: Vec<Arc<T>> = read(tiers).frozen.clone();
        for tier in frozen {
            match spill(&tier) {
                Ok(()) => write(tiers).frozen.retain(|t| !Arc::ptr_eq(t, &tier)),
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "spill of {what} failed; they stay in memory and in the index log");
                    break;
                }
            }
        }
    }

    /// The spill directory, created if needed.
    fn spill_dir_created(&self) -> Result<PathBuf, EngineError> {
        let dir = self.spill_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| EngineError::Io(format!("cannot create {}: {e}", dir.display())))?;
        Ok(dir)
    }

    /// Writes one record tier as one sorted SST file, ingests it into the flows family,
    /// and deletes the tier's record blobs from the `index_log`.
    fn spill_records(&self, tier: &Records) -> Result<(), EngineError> {
        if tier.len() > 0 {
            let n = self.spill_files.fetch_add(1, Ordering::Relaxed);
            let path = self
                .spill_dir_created()?
                .join(format!("{n}-{}.sst", Family::Flows.name()));
            let opts = sst_options(Family::Flows, self.flows_block_bytes);
            let mut writer = SstFileWriter::create(&opts);
            writer.open(&path).map_err(io)?;
            for (id, r) in tier.iter() {
                writer.put(id.to_bytes(), r).map_err(io)?;
            }
            writer.finish().map_err(io)?;
            self.ingest(Family::Flows, path)?;
        }
        self.delete_logs(tier.logs(), record_log_key)
    }

    /// Writes one index tier as one sorted SST file per family, ingests them, and deletes
    /// the tier's index blobs from the `index_log`.
    fn spill_tier(&self, tier: &Tier) -> Result<(), EngineError> {
        let dir = self.spill_dir_created()?;
        let cutoff = self.index_cutoff.load(Ordering::Relaxed);
        for (slot, &family) in Family::INDEXES.iter().enumerate() {
            let len = family.value_len().unwrap_or(0);
            let opts = sst_options(family, self.flows_block_bytes);
            let mut writer = SstFileWriter::create(&opts);
            let n = self.spill_files.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("{n}-{}.sst", family.name()));
            let mut opened = false;
            for (value, ids) in tier.sorted_values(slot) {
                for id in ids.iter().filter(|id| id.time_ns >= cutoff) {
                    if !opened {
                        writer.open(&path).map_err(io)?;
                        opened = true;
                    }
                    writer
                        .put(IndexKey::new(&value[..len], *id).as_bytes(), [])
                        .map_err(io)?;
                }
            }
            if !opened {
                continue;
            }
            writer.finish().map_err(io)?;
            self.ingest(family, path)?;
        }
        self.delete_logs(tier.logs(), index_log_key)
    }

    /// Deletes the `index_log` keys `key(log)` of `logs`.
    fn delete_logs<K: AsRef<[u8]>>(
        &self,
        logs: &[u64],
        key: impl Fn(u64) -> K,
    ) -> Result<(), EngineError> {
        let log_cf = self.cf_named(INDEX_LOG)?;
        let mut wb = WriteBatch::default();
        for &log in logs {
            wb.delete_cf(log_cf, key(log));
        }
        self.db.write(wb).map_err(io)
    }

    /// Moves one finished spill file into `family`.
    fn ingest(&self, family: Family, path: PathBuf) -> Result<(), EngineError> {
        recache(&path);
        let mut ingest = IngestExternalFileOptions::default();
        ingest.set_move_files(true);
        self.db
            .ingest_external_file_cf_opts(self.cf(family)?, &ingest, vec![path])
            .map_err(io)
    }

    /// A forward scan of the flows family over RocksDB and the in-memory tiers. A key in
    /// several is visited once, with the newest value: the newest tier's, and a tier's over
    /// RocksDB's (everything spilled is older than every tier still in memory).
    pub(super) fn scan_flows(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), EngineError> {
        if end.is_some_and(|e| e <= start) {
            return Ok(());
        }
        let mut ro = rocksdb::ReadOptions::default();
        if let Some(end) = end {
            ro.set_iterate_upper_bound(end.to_vec());
        }
        let records = self.read_records();
        let mut heads: Vec<_> = records
            .all()
            .map(|t| t.range(start, end).peekable())
            .collect();
        let mut it = self.db.raw_iterator_cf_opt(self.cf(Family::Flows)?, ro);
        it.seek(start);
        loop {
            let pending = heads
                .iter_mut()
                .filter_map(|h| h.peek().map(|(k, _)| *k))
                .min();
            let stored = if it.valid() { it.key() } else { None };
            let keep_going = match pending {
                Some(p) if stored.is_none_or(|k| k >= p.as_slice()) => {
                    if stored == Some(p.as_slice()) {
                        it.next();
                    }
                    let mut newest: Option<&[u8]> = None;
                    for h in &mut heads {
                        if let Some((_, v)) = h.next_if(|(k, _)| *k == p) {
                            newest.get_or_insert(v);
                        }
                    }
                    visit(&p, newest.unwrap_or_default())
                }
                _ => {
                    let (Some(k), Some(v)) = (stored, it.value()) else {
                        break;
                    };
                    let go = visit(k, v);
                    it.next();
                    go
                }
            };
            if !keep_going {
                return Ok(());
            }
        }
        it.status().map_err(io)
    }

    /// A forward scan of an index family over RocksDB and the in-memory tiers.
    pub(super) fn scan_index(
        &self,
        family: Family,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), EngineError> {
        let (Some(slot), Some(len)) = (pending::slot(family), family.value_len()) else {
            return Ok(());
        };
        if end.is_some_and(|e| e <= start) {
            return Ok(());
        }
        let mut ro = rocksdb::ReadOptions::default();
        if let Some(end) = end {
            ro.set_iterate_upper_bound(end.to_vec());
        }
        let value_end = (start.len() >= len)
            .then(|| prefix_end(&start[..len]))
            .flatten();
        let within = start.len() >= len
            && end.is_some_and(|e| value_end.as_deref().is_some_and(|ve| e <= ve));
        // Within one value a prefix seek (bloom filters apply); across values total order.
        if within {
            ro.set_prefix_same_as_start(true);
        } else {
            ro.set_total_order_seek(true);
        }
        let tiers = self.read_tiers();
        let in_range = |k: &[u8]| k >= start && end.is_none_or(|e| k < e);
        let mut pending: Box<dyn Iterator<Item = IndexKey> + '_> = if within {
            let mut value = [0u8; 16];
            value[..len].copy_from_slice(&start[..len]);
            let from = if start.len() >= len + 16 {
                FlowId::from_bytes(&start[len..len + 16]).unwrap_or(FlowId::MIN)
            } else {
                FlowId::MIN
            };
            let slices = tiers
                .all()
                .map(|t| {
                    let ids = t.ids(slot, &value);
                    &ids[ids.partition_point(|id| *id < from)..]
                })
                .collect();
            Box::new(MergeIds::new(slices).map(move |id| IndexKey::new(&value[..len], id)))
        } else {
            let mut keys: Vec<IndexKey> = Vec::new();
            for t in tiers.all() {
                for (value, ids) in t.sorted_values(slot) {
                    keys.extend(
                        ids.iter()
                            .map(|id| IndexKey::new(&value[..len], *id))
                            .filter(|k| in_range(k.as_bytes())),
                    );
                }
            }
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            keys.dedup_by(|a, b| a.as_bytes() == b.as_bytes());
            Box::new(keys.into_iter())
        };
        let mut it = self.db.raw_iterator_cf_opt(self.cf(family)?, ro);
        it.seek(start);
        let mut next_pending = pending.next().filter(|k| in_range(k.as_bytes()));
        loop {
            let stored = if it.valid() { it.key() } else { None };
            let order = match (stored, &next_pending) {
                (None, None) => break,
                (Some(_), None) => CmpOrdering::Less,
                (None, Some(_)) => CmpOrdering::Greater,
                (Some(s), Some(p)) => s.cmp(p.as_bytes()),
            };
            let keep_going = if order == CmpOrdering::Less {
                visit(stored.unwrap_or_default(), &[])
            } else {
                let Some(p) = next_pending.take() else { break };
                next_pending = pending.next().filter(|k| in_range(k.as_bytes()));
                if order == CmpOrdering::Equal {
                    it.next();
                }
                visit(p.as_bytes(), &[])
            };
            if !keep_going {
                return Ok(());
            }
            if order == CmpOrdering::Less {
                it.next();
            }
        }
        it.status().map_err(io)
    }
}

/// Asks the kernel to read a finished spill file back into the page cache: RocksDB's
/// SST writer drops the pages it wrote, so without this the first reads of freshly
/// spilled records and entries go to the disk (a JA4 lookup was ~3x slower), while a
/// memtable flush leaves its file cached. Linux reads at most one readahead window
/// (128 KiB by default) per `POSIX_FADV_WILLNEED`, so the file is advised window by
/// window. Advice only: failure changes nothing.
fn recache(path: &std::path::Path) {
    use std::os::fd::AsRawFd;
    /// Bytes advised per call: no larger than the smallest readahead window.
    const STEP: u64 = 128 << 10;
    let Ok(file) = std::fs::File::open(path) else {
        return;
    };
    let len = file.metadata().map_or(0, |m| m.len());
    for offset in (0..len).step_by(STEP as usize) {
        // SAFETY: the descriptor is open for the duration of the call.
        let rc = unsafe {
            libc::posix_fadvise(
                file.as_raw_fd(),
                offset as libc::off_t,
                STEP as libc::off_t,
                libc::POSIX_FADV_WILLNEED,
            )
        };
        if rc != 0 {
            return;
        }
    }
}

/// zstd level of spill files: the spill thread compresses every record once, so speed
/// first (level 3, RocksDB's default, took 60% of its time).
const SPILL_ZSTD_LEVEL: i32 = 1;

/// Options of a spill file: those of the family's SST files that matter to readers
/// (zstd; the flows family's block size; an index family's prefix bloom filter).
fn sst_options(family: Family, flows_block_bytes: usize) -> Options {
    let mut o = Options::default();
    o.set_compression_type(DBCompressionType::Zstd);
    o.set_bottommost_compression_type(DBCompressionType::Zstd);
    o.set_compression_options(-14, SPILL_ZSTD_LEVEL, 0, 0);
    o.set_bottommost_compression_options(-14, SPILL_ZSTD_LEVEL, 0, 0, true);
    let mut table = rocksdb::BlockBasedOptions::default();
    if family == Family::Flows {
        table.set_block_size(flows_block_bytes);
    }
    if let Some(len) = family.value_len() {
        o.set_prefix_extractor(SliceTransform::create_fixed_prefix(len));
        table.set_bloom_filter(10.0, false);
    }
    o.set_block_based_table_factory(&table);
    o
}

/// A read guard on tiers; they stay consistent across a panic elsewhere (every update is
/// one call).
fn read<T>(tiers: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    tiers.read().unwrap_or_else(PoisonError::into_inner)
}

/// A write guard on tiers (see [`read`]).
fn write<T>(tiers: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    tiers.write().unwrap_or_else(PoisonError::into_inner)
}
