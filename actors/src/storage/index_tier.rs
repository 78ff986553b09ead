//! How [`RocksEngine`] serves the index families: RocksDB (ingested SST files) plus the
//! in-memory tier of recent entries ([`super::pending`]), merged in key order.
//!
//! - write: the batch's index entries go into the `index_log` family (one blob, in the
//!   batch's atomic `WriteBatch`), then into the active tier;
//! - spill: when the active tier holds `index_memory_entries`, the writer that filled it
//!   freezes it and wakes the spill thread, which writes one sorted SST file per family,
//!   ingests them, then deletes the tier's `index_log` keys. When more than two frozen
//!   tiers wait, writers spill them themselves (backpressure: memory stays bounded). A
//!   failed spill keeps the tier frozen (still read) and is retried by the next spill; it
//!   never fails a write, whose records are already durable;
//! - open: the `index_log` is replayed into the active tier;
//! - scan: a forward merge of the RocksDB iterator and the tiers, equal keys once.
//!
//! `last_key` and `delete_range` on an index family see RocksDB only: the store uses
//! neither there (retention reaches index entries through the cutoff, which also prunes
//! the active tier, and filters frozen tiers as they are spilled).

use super::pending::{self, MergeIds, Tier, Value};
use super::rocks::{io, Core, INDEX_LOG};
use flowmesh_core::storage::keys::{prefix_end, FlowId, IndexKey};
use flowmesh_core::storage::{EngineError, Family};
use rocksdb::{
    DBCompressionType, IngestExternalFileOptions, Options, SliceTransform, SstFileWriter,
    WriteBatch,
};
use std::cmp::Ordering as CmpOrdering;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLockReadGuard};

/// Where spill files are written before ingestion (inside the data directory).
const SPILL_DIR: &str = "index-spill";

impl Core {
    fn read_tiers(&self) -> RwLockReadGuard<'_, pending::Tiers> {
        // Tiers stay consistent across a panic elsewhere: every update is one call.
        self.tiers.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_tiers(&self) -> std::sync::RwLockWriteGuard<'_, pending::Tiers> {
        self.tiers.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replays the `index_log` into the active tier and removes stale spill files.
    pub(super) fn recover_index_log(&self) -> Result<(), EngineError> {
        let spill_dir = self.spill_dir();
        if spill_dir.exists() {
            std::fs::remove_dir_all(&spill_dir).map_err(|e| {
                EngineError::Io(format!("cannot clear {}: {e}", spill_dir.display()))
            })?;
        }
        let mut tiers = self.write_tiers();
        let mut it = self.db.raw_iterator_cf(self.cf_named(INDEX_LOG)?);
        it.seek_to_first();
        let mut next = 0u64;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let log = k.try_into().map_or(0, u64::from_be_bytes);
            for (slot, value, id) in pending::parse_log(v) {
                tiers.active.insert(slot, value, id);
            }
            tiers.active.logs.push(log);
            next = next.max(log + 1);
            it.next();
        }
        it.status().map_err(io)?;
        self.next_log.store(next, Ordering::Relaxed);
        let over = tiers.active.len() >= self.spill_entries;
        if over {
            let full = std::mem::take(&mut tiers.active);
            tiers.frozen.push(Arc::new(full));
        }
        drop(tiers);
        if over {
            self.spill_frozen();
        }
        Ok(())
    }

    /// Adds a committed batch's index entries (its `index_log` key is `log`), freezing
    /// the active tier when it is full. Returns whether it froze one, and how many
    /// frozen tiers wait for a spill.
    pub(super) fn add_pending(
        &self,
        log: u64,
        entries: &[(usize, Value, FlowId)],
    ) -> (bool, usize) {
        let mut tiers = self.write_tiers();
        for &(slot, value, id) in entries {
            tiers.active.insert(slot, value, id);
        }
        tiers.active.logs.push(log);
        let froze = tiers.active.len() >= self.spill_entries;
        if froze {
            let full = std::mem::take(&mut tiers.active);
            tiers.frozen.push(Arc::new(full));
        }
        (froze, tiers.frozen.len())
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

    fn spill_dir(&self) -> PathBuf {
        self.dir.join(SPILL_DIR)
    }

    /// Spills every frozen tier, oldest first; waits for a spill already running.
    pub(super) fn spill_frozen(&self) {
        let _one_at_a_time = self
            .spill_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let frozen: Vec<Arc<Tier>> = self.read_tiers().frozen.clone();
        for tier in frozen {
            match self.spill_tier(&tier) {
                Ok(()) => self.write_tiers().frozen.retain(|t| !Arc::ptr_eq(t, &tier)),
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "index spill failed; entries stay in memory and in the index log");
                    break;
                }
            }
        }
    }

    /// Writes one tier as one sorted SST file per family, ingests them, and deletes the
    /// tier's `index_log` keys.
    fn spill_tier(&self, tier: &Tier) -> Result<(), EngineError> {
        let dir = self.spill_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| EngineError::Io(format!("cannot create {}: {e}", dir.display())))?;
        let cutoff = self.index_cutoff.load(Ordering::Relaxed);
        for (slot, &family) in Family::INDEXES.iter().enumerate() {
            let len = family.value_len().unwrap_or(0);
            let opts = sst_options(family);
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
            let mut ingest = IngestExternalFileOptions::default();
            ingest.set_move_files(true);
            self.db
                .ingest_external_file_cf_opts(self.cf(family)?, &ingest, vec![path])
                .map_err(io)?;
        }
        let log_cf = self.cf_named(INDEX_LOG)?;
        let mut wb = WriteBatch::default();
        for log in &tier.logs {
            wb.delete_cf(log_cf, log.to_be_bytes());
        }
        self.db.write(wb).map_err(io)
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

/// Options of a spill file: those of the family's SST files that matter to readers.
fn sst_options(family: Family) -> Options {
    let mut o = Options::default();
    o.set_compression_type(DBCompressionType::Zstd);
    o.set_bottommost_compression_type(DBCompressionType::Zstd);
    if let Some(len) = family.value_len() {
        o.set_prefix_extractor(SliceTransform::create_fixed_prefix(len));
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        o.set_block_based_table_factory(&table);
    }
    o
}
