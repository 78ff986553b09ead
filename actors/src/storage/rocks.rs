//! [`RocksEngine`]: the flow store's [`KvEngine`] on RocksDB.
//!
//! One column family per [`Family`], each zstd-compressed (bottommost level too). The WAL
//! is always on: with [`SyncPolicy::None`] a batch is in the WAL (the OS page cache) when
//! `write` returns, which survives the process being killed (`kill -9`) but not a power
//! loss or kernel crash; with [`SyncPolicy::EveryBatch`] each batch is fsynced first.
//! `counts` adds little-endian u64 operands (merge operator `flowmesh.u64add`), `meta`
//! keeps the largest (`flowmesh.u64max`), and the index families carry a compaction
//! filter dropping entries whose time field (`key[len-16..len-8]`) is below the shared
//! retention cutoff. Flow records and index entries bypass the memtables: they are held
//! in an in-memory tier, logged per batch in `index_log`, and spilled as sorted SST files
//! (the `tiered` module). `counts` uses a vector memtable: a batch's counter merges land
//! all over the key space, and appending them is far cheaper than skiplist inserts; a
//! `top` query sorts the memtable once.

use super::pending::{self, Tiers};
use super::record_tier;
use flowmesh_core::storage::keys::{index_key_time, FlowId};
use flowmesh_core::storage::{EngineBatch, EngineError, Family, FamilySize, KvEngine};
use rocksdb::compaction_filter::Decision;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType,
    MergeOperands, Options, SliceTransform, WriteOptions, DB,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};

/// The column family holding each write batch's index entries and records (one blob
/// each) until they are spilled.
pub(super) const INDEX_LOG: &str = "index_log";

/// The `index_log` key of batch `log`'s index entries.
pub(super) fn index_log_key(log: u64) -> [u8; 8] {
    log.to_be_bytes()
}

/// The `index_log` key of batch `log`'s records: the index key, then `r`.
pub(super) fn record_log_key(log: u64) -> [u8; 9] {
    let mut k = [b'r'; 9];
    k[..8].copy_from_slice(&log.to_be_bytes());
    k
}

/// When a write batch is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// Written to the WAL, not fsynced per batch: survives `kill -9`, not power loss.
    #[default]
    None,
    /// Each batch's WAL write is fsynced before `write` returns: survives power loss.
    EveryBatch,
}

/// RocksDB tuning of the flow store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageOptions {
    /// WAL fsync policy.
    pub sync: SyncPolicy,
    /// Shared block cache in MiB.
    pub block_cache_mb: usize,
    /// Memtable size per column family in MiB (the flows family gets this, the others
    /// a quarter).
    pub write_buffer_mb: usize,
    /// Memtables per column family before writes stall.
    pub max_write_buffers: i32,
    /// Background flush and compaction threads.
    pub background_jobs: i32,
    /// Collect RocksDB statistics (tickers in [`EngineProperties`]); costs a few percent.
    pub statistics: bool,
    /// Block size of the flows family in KiB. Reading one record decompresses its whole
    /// block: 4 KiB makes index lookups ~1.5x faster than 16 KiB, at ~35% more disk.
    pub flows_block_kb: usize,
    /// Index entries held in memory before they are spilled to SST files (see the
    /// `tiered` module); ~24 bytes each, twice that while a spill runs.
    pub index_memory_entries: usize,
    /// MiB of flow records held in memory before they are spilled to SST files (see
    /// the `record_tier` module); up to four times this while spills run. Each spill
    /// adds a file to the flows family: much smaller means more compaction work.
    pub record_memory_mb: usize,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            sync: SyncPolicy::None,
            block_cache_mb: 256,
            write_buffer_mb: 64,
            max_write_buffers: 4,
            background_jobs: 2,
            statistics: true,
            flows_block_kb: 16,
            index_memory_entries: 4_000_000,
            record_memory_mb: 64,
        }
    }
}

/// Why the RocksDB engine failed to open.
#[derive(Debug, thiserror::Error)]
pub enum RocksError {
    /// The directory is locked by another process.
    #[error("cannot open flow store at {dir}: {cause} (is another flowmesh running with this data dir?)")]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// RocksDB's message.
        cause: String,
    },
    /// Any other open failure.
    #[error("cannot open flow store at {dir}: {cause}")]
    Open {
        /// The data directory.
        dir: PathBuf,
        /// RocksDB's message.
        cause: String,
    },
}

impl From<RocksError> for EngineError {
    fn from(e: RocksError) -> Self {
        EngineError::Open(e.to_string())
    }
}

/// Per-family RocksDB properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FamilyProperties {
    /// `rocksdb.estimate-num-keys`.
    pub estimate_num_keys: u64,
    /// `rocksdb.total-sst-files-size` (including obsolete files not yet deleted).
    pub total_sst_files_size: u64,
    /// `rocksdb.live-sst-files-size`.
    pub live_sst_files_size: u64,
    /// `rocksdb.cur-size-all-mem-tables`.
    pub cur_size_all_mem_tables: u64,
}

/// Engine-wide RocksDB figures, for export as metrics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EngineProperties {
    /// Properties of each family.
    pub families: Vec<(Family, FamilyProperties)>,
    /// Statistics tickers (`rocksdb.bytes.written`, `rocksdb.wal.synced`, …) when
    /// statistics are enabled.
    pub tickers: Vec<(&'static str, u64)>,
    /// Index entries held in memory, not yet in SST files.
    pub pending_index_entries: u64,
    /// Flow records held in memory, not yet in SST files.
    pub pending_records: u64,
}

/// Tickers reported by [`RocksEngine::properties`].
pub const TICKERS: [&str; 8] = [
    "rocksdb.bytes.written",
    "rocksdb.bytes.read",
    "rocksdb.wal.synced",
    "rocksdb.wal.bytes",
    "rocksdb.compact.read.bytes",
    "rocksdb.compact.write.bytes",
    "rocksdb.flush.write.bytes",
    "rocksdb.stall.micros",
];

/// The flow store's RocksDB database. Dropping it waits for a running index spill.
pub struct RocksEngine {
    core: Arc<Core>,
    spiller: Option<Spiller>,
}

/// The thread spilling frozen index tiers, woken through a channel.
struct Spiller {
    wake: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// Frozen tiers waiting beyond which a writer spills them itself (backpressure).
const MAX_FROZEN: usize = 2;

impl Drop for RocksEngine {
    fn drop(&mut self) {
        if let Some(Spiller { wake, thread }) = self.spiller.take() {
            drop(wake);
            // A panic in the spill thread is already reported by the panic hook.
            let _ = thread.join();
        }
    }
}

/// What the engine and its spill thread share.
pub(super) struct Core {
    pub(super) db: DB,
    pub(super) dir: PathBuf,
    sync: SyncPolicy,
    statistics: Option<Options>,
    pub(super) index_cutoff: Arc<AtomicU64>,
    /// Recent index entries (see the `tiered` module).
    pub(super) tiers: RwLock<Tiers<pending::Tier>>,
    /// Recent flow records (see the `tiered` module).
    pub(super) records: RwLock<Tiers<record_tier::Records>>,
    /// Held while frozen tiers are spilled (one spill at a time).
    pub(super) spill_lock: Mutex<()>,
    /// Index entries in the active tier that start a spill.
    pub(super) spill_entries: usize,
    /// Record bytes in the active tier that start a spill.
    pub(super) spill_record_bytes: usize,
    /// Block size of the flows family in bytes (spill files use it too).
    pub(super) flows_block_bytes: usize,
    /// Next `index_log` key.
    pub(super) next_log: AtomicU64,
    /// Next spill file number.
    pub(super) spill_files: AtomicU64,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine")
            .field("dir", &self.core.dir)
            .field("sync", &self.core.sync)
            .finish_non_exhaustive()
    }
}

fn u64_add(_key: &[u8], existing: Option<&[u8]>, ops: &MergeOperands) -> Option<Vec<u8>> {
    let mut sum = existing.map_or(0, le_u64);
    for op in ops.iter() {
        sum = sum.wrapping_add(le_u64(op));
    }
    Some(sum.to_le_bytes().to_vec())
}

fn u64_max(_key: &[u8], existing: Option<&[u8]>, ops: &MergeOperands) -> Option<Vec<u8>> {
    let mut max = existing.map_or(0, le_u64);
    for op in ops.iter() {
        max = max.max(le_u64(op));
    }
    Some(max.to_le_bytes().to_vec())
}

/// A little-endian u64; a value of another length (never written by the store) counts 0.
fn le_u64(b: &[u8]) -> u64 {
    b.try_into().map_or(0, u64::from_le_bytes)
}

pub(super) fn io(e: rocksdb::Error) -> EngineError {
    EngineError::Io(e.into_string())
}

impl RocksEngine {
    /// Opens (creating if needed) the store in `dir` with every column family, replays
    /// the index log, and starts the index spill thread.
    pub fn open(dir: &Path, options: &StorageOptions) -> Result<Self, RocksError> {
        let core = Arc::new(Core::open(dir, options)?);
        core.recover_index_log().map_err(|e| RocksError::Open {
            dir: dir.to_path_buf(),
            cause: e.to_string(),
        })?;
        let (wake, woken) = mpsc::channel::<()>();
        let spilling = Arc::clone(&core);
        let thread = std::thread::Builder::new()
            .name("flowmesh-index-spill".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    spilling.spill_frozen();
                }
            })
            .map_err(|e| RocksError::Open {
                dir: dir.to_path_buf(),
                cause: format!("cannot start the index spill thread: {e}"),
            })?;
        Ok(RocksEngine {
            core,
            spiller: Some(Spiller { wake, thread }),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.core.dir
    }

    /// Per-family properties and statistics tickers, for metrics.
    pub fn properties(&self) -> Result<EngineProperties, EngineError> {
        self.core.properties()
    }

    /// Spills the in-memory tier and flushes every memtable, so that everything stored
    /// is in SST files (for tests and clean shutdowns).
    pub fn flush(&self) -> Result<(), EngineError> {
        self.core.spill_all()?;
        self.core.flush()
    }

    /// Spills the frozen tiers now, after waiting for a running spill (for tests and
    /// clean shutdowns; the active tiers stay in memory and in the index log).
    pub fn spill_frozen(&self) {
        self.core.spill_frozen();
    }
}

impl Core {
    fn open(dir: &Path, options: &StorageOptions) -> Result<Self, RocksError> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(options.background_jobs.max(1));
        db_opts.set_bytes_per_sync(1 << 20);
        db_opts.set_allow_concurrent_memtable_write(false);
        if options.statistics {
            db_opts.enable_statistics();
        }
        let cache = Cache::new_lru_cache(options.block_cache_mb.max(1) << 20).map_err(|e| {
            RocksError::Open {
                dir: dir.to_path_buf(),
                cause: e.into_string(),
            }
        })?;
        let index_cutoff = Arc::new(AtomicU64::new(0));
        let mut descriptors: Vec<ColumnFamilyDescriptor> = Family::ALL
            .iter()
            .map(|&f| {
                ColumnFamilyDescriptor::new(
                    f.name(),
                    family_options(f, options, &cache, &index_cutoff),
                )
            })
            .collect();
        let mut log_opts = Options::default();
        log_opts.set_compression_type(DBCompressionType::Zstd);
        descriptors.push(ColumnFamilyDescriptor::new(INDEX_LOG, log_opts));
        let db = DB::open_cf_descriptors(&db_opts, dir, descriptors).map_err(|e| {
            let cause = e.clone().into_string();
            let dir = dir.to_path_buf();
            if cause.contains("lock") || cause.contains("LOCK") {
                RocksError::Locked { dir, cause }
            } else {
                RocksError::Open { dir, cause }
            }
        })?;
        Ok(Core {
            db,
            dir: dir.to_path_buf(),
            sync: options.sync,
            statistics: options.statistics.then_some(db_opts),
            index_cutoff,
            tiers: RwLock::new(Tiers::default()),
            records: RwLock::new(Tiers::default()),
            spill_lock: Mutex::new(()),
            spill_entries: options.index_memory_entries.max(1),
            spill_record_bytes: options.record_memory_mb.max(1) << 20,
            flows_block_bytes: options.flows_block_kb.max(1) << 10,
            next_log: AtomicU64::new(0),
            spill_files: AtomicU64::new(0),
        })
    }

    pub(super) fn cf(&self, family: Family) -> Result<&ColumnFamily, EngineError> {
        self.cf_named(family.name())
    }

    pub(super) fn cf_named(&self, name: &str) -> Result<&ColumnFamily, EngineError> {
        self.db.cf_handle(name).ok_or_else(|| {
            EngineError::Io(format!(
                "column family {name} missing in {}",
                self.dir.display()
            ))
        })
    }

    fn properties(&self) -> Result<EngineProperties, EngineError> {
        let mut families = Vec::with_capacity(Family::ALL.len());
        for f in Family::ALL {
            let cf = self.cf(f)?;
            let p = |name: &str| self.int_property(cf, name);
            families.push((
                f,
                FamilyProperties {
                    estimate_num_keys: p("rocksdb.estimate-num-keys")?,
                    total_sst_files_size: p("rocksdb.total-sst-files-size")?,
                    live_sst_files_size: p("rocksdb.live-sst-files-size")?,
                    cur_size_all_mem_tables: p("rocksdb.cur-size-all-mem-tables")?,
                },
            ));
        }
        let tickers = self
            .statistics
            .as_ref()
            .and_then(Options::get_statistics)
            .map(|text| parse_tickers(&text))
            .unwrap_or_default();
        Ok(EngineProperties {
            families,
            tickers,
            pending_index_entries: self.pending_entries(None) as u64,
            pending_records: self.pending_records().0 as u64,
        })
    }

    /// An integer property of one column family (absent = 0).
    fn int_property(&self, cf: &ColumnFamily, name: &str) -> Result<u64, EngineError> {
        Ok(self
            .db
            .property_int_value_cf(cf, name)
            .map_err(io)?
            .unwrap_or(0))
    }

    fn flush(&self) -> Result<(), EngineError> {
        for f in Family::ALL {
            self.db.flush_cf(self.cf(f)?).map_err(io)?;
        }
        Ok(())
    }
}

/// Reads the [`TICKERS`] counts from RocksDB's statistics dump
/// (lines `rocksdb.bytes.written COUNT : 123`).
fn parse_tickers(text: &str) -> Vec<(&'static str, u64)> {
    TICKERS
        .iter()
        .filter_map(|&name| {
            text.lines().find_map(|line| {
                let rest = line
                    .strip_prefix(name)?
                    .trim_start()
                    .strip_prefix("COUNT")?;
                let n = rest.trim_start().strip_prefix(':')?.trim().parse().ok()?;
                Some((name, n))
            })
        })
        .collect()
}

pub(super) fn family_options(
    family: Family,
    options: &StorageOptions,
    cache: &Cache,
    index_cutoff: &Arc<AtomicU64>,
) -> Options {
    let mut o = Options::default();
    o.set_compression_type(DBCompressionType::Zstd);
    o.set_bottommost_compression_type(DBCompressionType::Zstd);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    let mb = options.write_buffer_mb.max(1) << 20;
    match family {
        Family::Flows => {
            o.set_write_buffer_size(mb);
            table.set_block_size(options.flows_block_kb.max(1) << 10);
        }
        _ => o.set_write_buffer_size((mb / 4).max(1 << 20)),
    }
    o.set_max_write_buffer_number(options.max_write_buffers.max(2));
    match family {
        Family::Counts => {
            o.set_merge_operator_associative("flowmesh.u64add", u64_add);
            o.set_memtable_factory(rocksdb::MemtableFactory::Vector);
        }
        Family::Meta => o.set_merge_operator_associative("flowmesh.u64max", u64_max),
        f if f.is_index() => {
            // Prefix bloom filters by value part: a lookup skips files without the value.
            if let Some(len) = f.value_len() {
                o.set_prefix_extractor(SliceTransform::create_fixed_prefix(len));
                table.set_bloom_filter(10.0, false);
            }
            let cutoff = Arc::clone(index_cutoff);
            o.set_compaction_filter(
                "flowmesh.index_retention",
                move |_level, key: &[u8], _value: &[u8]| {
                    let limit = cutoff.load(Ordering::Relaxed);
                    match index_key_time(key) {
                        Some(t) if t < limit => Decision::Remove,
                        _ => Decision::Keep,
                    }
                },
            );
        }
        _ => {}
    }
    o.set_block_based_table_factory(&table);
    o
}

/// [`RocksEngine`]'s batch: a RocksDB `WriteBatch` built in place, except for index
/// entries and flow records, which go to the in-memory tier and, as one blob each, to
/// the `index_log`.
pub struct RocksBatch<'a> {
    wb: rocksdb::WriteBatch,
    cfs: [Option<&'a ColumnFamily>; 9],
    /// A family whose handle was missing (reported by `write`).
    missing: Option<Family>,
    /// Index entries: (family slot, value part, id), for the in-memory tier.
    index: Vec<(usize, pending::Value, FlowId)>,
    /// The same entries as one `index_log` blob.
    log: Vec<u8>,
    /// The id of the blob's last entry.
    last_logged: Option<FlowId>,
    /// Flow records under 16-byte keys, for the in-memory tier and the record blob.
    records: Vec<record_tier::Entry>,
}

impl std::fmt::Debug for RocksBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksBatch")
            .field("ops", &self.wb.len())
            .field("index_entries", &self.index.len())
            .field("records", &self.records.len())
            .finish_non_exhaustive()
    }
}

impl<'a> RocksBatch<'a> {
    fn handle(&mut self, family: Family) -> Option<&'a ColumnFamily> {
        let cf = self.cfs[family.index()];
        if cf.is_none() {
            self.missing = Some(family);
        }
        cf
    }
}

impl EngineBatch for RocksBatch<'_> {
    fn put(&mut self, family: Family, key: &[u8], value: &[u8]) {
        let slot = pending::slot(family);
        let len = family.value_len().unwrap_or(0);
        match (slot, FlowId::from_index_key(key)) {
            (Some(slot), Some(id)) if key.len() == len + 16 => {
                let mut v = [0u8; 16];
                v[..len].copy_from_slice(&key[..len]);
                self.index.push((slot, v, id));
                pending::log_entry(&mut self.log, &mut self.last_logged, slot, &key[..len], id);
            }
            _ => match FlowId::from_bytes(key).filter(|_| family == Family::Flows) {
                Some(id) => self.records.push((id, value.into())),
                None => {
                    if let Some(cf) = self.handle(family) {
                        self.wb.put_cf(cf, key, value);
                    }
                }
            },
        }
    }

    fn put_record(&mut self, id: FlowId, record: Vec<u8>) {
        self.records.push((id, record.into_boxed_slice()));
    }

    fn add_count(&mut self, key: &[u8], delta: u64) {
        if let Some(cf) = self.handle(Family::Counts) {
            self.wb.merge_cf(cf, key, delta.to_le_bytes());
        }
    }

    fn delete_meta(&mut self, key: &[u8]) {
        if let Some(cf) = self.handle(Family::Meta) {
            self.wb.delete_cf(cf, key);
        }
    }

    fn raise_meta(&mut self, key: &[u8], value: u64) {
        if let Some(cf) = self.handle(Family::Meta) {
            self.wb.merge_cf(cf, key, value.to_le_bytes());
        }
    }

    fn len(&self) -> usize {
        self.wb.len() + self.index.len() + self.records.len()
    }
}

impl KvEngine for RocksEngine {
    type Batch<'a> = RocksBatch<'a>;

    fn batch(&self) -> RocksBatch<'_> {
        RocksBatch {
            wb: rocksdb::WriteBatch::default(),
            cfs: Family::ALL.map(|f| self.core.db.cf_handle(f.name())),
            missing: None,
            index: Vec::new(),
            log: Vec::new(),
            last_logged: None,
            records: Vec::new(),
        }
    }

    fn write(&self, batch: RocksBatch<'_>) -> Result<(), EngineError> {
        if let Some(f) = batch.missing {
            self.core.cf(f)?;
        }
        let RocksBatch {
            mut wb,
            index,
            log,
            records,
            ..
        } = batch;
        let log_key = (!index.is_empty() || !records.is_empty())
            .then(|| self.core.next_log.fetch_add(1, Ordering::Relaxed));
        if let Some(k) = log_key {
            let cf = self.core.cf_named(INDEX_LOG)?;
            if !index.is_empty() {
                wb.put_cf(cf, index_log_key(k), &log);
            }
            if !records.is_empty() {
                let blob = record_tier::encode_log(&records)
                    .map_err(|e| EngineError::Io(format!("cannot compress records: {e}")))?;
                wb.put_cf(cf, record_log_key(k), blob);
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(self.core.sync == SyncPolicy::EveryBatch);
        self.core.db.write_opt(wb, &wo).map_err(io)?;
        if let Some(k) = log_key {
            let (froze, waiting) = self.core.add_pending(k, &index, records);
            if waiting > MAX_FROZEN {
                // The spill thread is behind: this writer helps, and waits meanwhile.
                self.core.spill_frozen();
            } else if froze {
                if let Some(s) = &self.spiller {
                    // A send fails only when the thread is gone; spill here instead.
                    if s.wake.send(()).is_err() {
                        self.core.spill_frozen();
                    }
                }
            }
        }
        Ok(())
    }

    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        if family == Family::Flows {
            if let Some(r) = self.core.pending_records_at(&[key]).pop().flatten() {
                return Ok(Some(r));
            }
        }
        self.core.db.get_cf(self.core.cf(family)?, key).map_err(io)
    }

    fn multi_get(
        &self,
        family: Family,
        keys: &[[u8; 16]],
    ) -> Result<Vec<Option<Vec<u8>>>, EngineError> {
        let cf = self.core.cf(family)?;
        let mut found: Vec<Option<Vec<u8>>> = if family == Family::Flows {
            self.core.pending_records_at(keys)
        } else {
            vec![None; keys.len()]
        };
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| found[i].is_none()).collect();
        let stored = self
            .core
            .db
            .batched_multi_get_cf(cf, missing.iter().map(|&i| &keys[i]), true);
        for (i, r) in missing.into_iter().zip(stored) {
            found[i] = r.map_err(io)?.map(|s| s.to_vec());
        }
        Ok(found)
    }

    fn scan(
        &self,
        family: Family,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), EngineError> {
        if family.is_index() {
            return self.core.scan_index(family, start, end, visit);
        }
        if family == Family::Flows {
            return self.core.scan_flows(start, end, visit);
        }
        let mut ro = rocksdb::ReadOptions::default();
        if let Some(end) = end {
            if end <= start {
                return Ok(());
            }
            ro.set_iterate_upper_bound(end.to_vec());
        }
        let mut it = self.core.db.raw_iterator_cf_opt(self.core.cf(family)?, ro);
        it.seek(start);
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            if !visit(k, v) {
                return Ok(());
            }
            it.next();
        }
        it.status().map_err(io)
    }

    fn last_key(&self, family: Family) -> Result<Option<Vec<u8>>, EngineError> {
        let mut it = self.core.db.raw_iterator_cf(self.core.cf(family)?);
        it.seek_to_last();
        let mut key = it.key().map(<[u8]>::to_vec);
        it.status().map_err(io)?;
        if family == Family::Flows {
            if let Some(last) = self.core.last_pending_record() {
                let last = last.to_bytes();
                if key.as_deref().is_none_or(|k| k < last.as_slice()) {
                    key = Some(last.to_vec());
                }
            }
        }
        Ok(key)
    }

    fn delete_range(&self, family: Family, start: &[u8], end: &[u8]) -> Result<(), EngineError> {
        if end <= start {
            return Ok(());
        }
        if family == Family::Flows && self.core.pending_records_in(start, end) {
            // Records in memory are also in the record log: spill them all, so that the
            // range delete reaches them and a restart cannot replay them.
            self.core.spill_all()?;
        }
        self.core
            .db
            .delete_range_cf(self.core.cf(family)?, start, end)
            .map_err(io)
    }

    fn set_index_cutoff(&self, cutoff_ns: u64) {
        self.core
            .index_cutoff
            .fetch_max(cutoff_ns, Ordering::Relaxed);
        self.core.prune_pending(cutoff_ns);
    }

    fn compact(
        &self,
        family: Family,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
    ) -> Result<(), EngineError> {
        let mut co = rocksdb::CompactOptions::default();
        // Run the compaction filter on the last level too, so retention reaches every entry.
        co.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        self.core
            .db
            .compact_range_cf_opt(self.core.cf(family)?, start, end, &co);
        Ok(())
    }

    fn family_size(&self, family: Family) -> Result<FamilySize, EngineError> {
        let (keys, bytes) = match family {
            Family::Flows => self.core.pending_records(),
            f => {
                let n = self.core.pending_entries(Some(f));
                (n, n * 16)
            }
        };
        let cf = self.core.cf(family)?;
        let p = |name: &str| self.core.int_property(cf, name);
        Ok(FamilySize {
            keys: p("rocksdb.estimate-num-keys")? + keys as u64,
            bytes: p("rocksdb.live-sst-files-size")?
                + p("rocksdb.cur-size-all-mem-tables")?
                + bytes as u64,
        })
    }

    fn disk_bytes(&self) -> Result<u64, EngineError> {
        let mut total = 0;
        for f in Family::ALL {
            total += self
                .core
                .int_property(self.core.cf(f)?, "rocksdb.live-sst-files-size")?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickers_parse_from_the_statistics_dump() {
        let text = "rocksdb.block.cache.miss COUNT : 7\nrocksdb.bytes.written COUNT : 1234\n\
                    rocksdb.wal.synced COUNT : 3\nrocksdb.db.get.micros P50 : 1.0";
        let t = parse_tickers(text);
        assert!(t.contains(&("rocksdb.bytes.written", 1234)));
        assert!(t.contains(&("rocksdb.wal.synced", 3)));
        assert!(!t.iter().any(|(n, _)| *n == "rocksdb.bytes.read"));
    }
}
