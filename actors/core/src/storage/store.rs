//! The flow store over any [`KvEngine`]: writes records with their index entries and
//! counters in one atomic batch, reads them back, and reports what it holds. Queries are
//! in [`super::query`], retention in [`super::retention`].
//!
//! Invariants:
//! - a record, all its index entries, its counter increments and the raised `next_seq`
//!   are one engine batch: after a crash either all are there or none;
//! - sequence numbers are never reused: each write reserves its range from an atomic
//!   counter, the batch raises `meta/next_seq` (a max-merge, so batches committing out of
//!   order cannot lower it), and [`Store::with_engine`] resumes from
//!   `max(meta next_seq, last stored id's seq + 1)`;
//! - an interim record is stored with a Meta marker ([`keys::open_marker`]) that the
//!   record replacing it removes in the same batch. Markers left by a process that
//!   stopped without ending its flows are what [`Store::with_engine`] closes as
//!   [`EndReason::Interrupted`].

use super::engine::{read_u64_le, EngineBatch, EngineError, Family, FamilySize, KvEngine};
use super::filter::FilterError;
use super::keys::{self, FlowId, IndexKey, TopField};
use super::open::{OpenRecords, Placement};
use flowmesh_schemas::codec::{self, CodecError};
use flowmesh_schemas::{EndReason, FlowRecord, Timestamp};
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The Meta key holding the next unused sequence number (little-endian u64).
pub const META_NEXT_SEQ: &[u8] = b"next_seq";

/// Interim records closed per batch when a store is opened.
const CLOSE_BATCH: usize = 1024;

/// Candidates a query may examine per page before it ends the page with a cursor.
pub const DEFAULT_SCAN_BUDGET: usize = 1_000_000;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The query's filter is invalid.
    #[error("invalid flow filter: {0}")]
    Filter(#[from] FilterError),
    /// A stored record does not decode.
    #[error("stored flow {id} is corrupt: {source}")]
    Corrupt {
        /// The record's id.
        id: FlowId,
        /// Why it does not decode.
        source: CodecError,
    },
}

/// One page of query results.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// Matching flows in ascending id order (first seen, then sequence).
    pub flows: Vec<(FlowId, FlowRecord)>,
    /// Where the next page starts (pass it as the cursor); `None` when no more match.
    /// A page may be shorter than the limit, even empty, and still carry a cursor when
    /// it ran out of scan budget.
    pub next_cursor: Option<FlowId>,
}

/// What one write stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Written {
    /// The records' ids, in input order.
    pub ids: Vec<FlowId>,
    /// Per record, the handshakes an interim record of its flow had already stored (0 for
    /// a new record): they were indexed and counted then.
    pub stored_before: Vec<usize>,
}

/// What the store holds, as far as it and the engine know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    /// Records written through this handle since it was opened (a record that replaced
    /// its flow's interim record is not counted again).
    pub records_written: u64,
    /// Open flows whose interim record is stored, awaiting their final record.
    pub open_records: usize,
    /// Open flows tracked at most (see [`Store::set_open_limit`]).
    pub open_limit: usize,
    /// Open flows forgotten because too many were open (their final record got a new id).
    pub open_evicted: u64,
    /// Interim records a previous process left open, closed as
    /// [`EndReason::Interrupted`] when this handle opened the store.
    pub interrupted_at_open: u64,
    /// The next sequence number to be assigned.
    pub next_seq: u64,
    /// Approximate size of each family.
    pub families: Vec<(Family, FamilySize)>,
}

/// The flow store. `&self` methods may be called from several threads at once.
#[derive(Debug)]
pub struct Store<E: KvEngine> {
    pub(super) engine: E,
    next_seq: AtomicU64,
    written: AtomicU64,
    open: Mutex<OpenRecords>,
    interrupted_at_open: u64,
    pub(super) scan_budget: usize,
}

impl<E: KvEngine> Store<E> {
    /// A store on `engine` (empty or holding a store's data), recovering the next
    /// sequence number and closing the interim records the last process left open (it
    /// stopped without storing their flows' final records): each becomes
    /// [`EndReason::Interrupted`] under its id, indexed and counted as it was.
    pub fn with_engine(engine: E) -> Result<Self, StoreError> {
        let meta = read_u64_le(
            Family::Meta,
            engine.get(Family::Meta, META_NEXT_SEQ)?.as_deref(),
        )?;
        let last = engine
            .last_key(Family::Flows)?
            .and_then(|k| FlowId::from_bytes(&k))
            .map_or(0, |id| id.seq.saturating_add(1));
        let interrupted_at_open = close_interrupted(&engine)?;
        Ok(Store {
            engine,
            next_seq: AtomicU64::new(meta.max(last)),
            written: AtomicU64::new(0),
            open: Mutex::new(OpenRecords::default()),
            interrupted_at_open,
            scan_budget: DEFAULT_SCAN_BUDGET,
        })
    }

    /// Sets how many candidates one query page may examine (at least 1).
    pub fn with_scan_budget(mut self, budget: usize) -> Self {
        self.scan_budget = budget.max(1);
        self
    }

    /// Open flows whose interim record's id is kept for their final record, at most
    /// (default 1,048,576). Set it to the live flow table's capacity: past it the oldest
    /// open flow is forgotten, and its final record is stored beside its interim one.
    pub fn set_open_limit(&self, max: usize) {
        self.lock_open().set_max(max);
    }

    /// The engine underneath (for its own statistics).
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Stores `records` in one atomic batch and returns their ids, in input order (see
    /// [`Store::write_records`]).
    pub fn write(&self, records: &[FlowRecord]) -> Result<Vec<FlowId>, StoreError> {
        self.write_records(records).map(|w| w.ids)
    }

    /// Stores `records` in one atomic batch. An interim record
    /// ([`EndReason::Open`](flowmesh_schemas::EndReason::Open)) and the later records of
    /// its flow share one id: each replaces the one before, and only what it adds is
    /// indexed and counted (the handshakes an interim record stored are its first ones).
    pub fn write_records(&self, records: &[FlowRecord]) -> Result<Written, StoreError> {
        if records.is_empty() {
            return Ok(Written::default());
        }
        let n = records.len() as u64;
        let first = self.next_seq.fetch_add(n, Ordering::Relaxed);
        let mut next = first;
        let mut next_seq = || {
            next += 1;
            next - 1
        };
        let mut written = Written {
            ids: Vec::with_capacity(records.len()),
            stored_before: Vec::with_capacity(records.len()),
        };
        let mut placements = Vec::with_capacity(records.len());
        // Places every record first, so the open-flow map is locked only for that.
        let mut undo = Vec::new();
        {
            let mut open = self.lock_open();
            for record in records {
                let (id, placement) = open.place(record, &mut next_seq, &mut undo);
                written.ids.push(id);
                written.stored_before.push(match placement {
                    Placement::New => 0,
                    Placement::Replaces { handshakes } => handshakes,
                });
                placements.push(placement);
            }
        }
        let new = placements.iter().filter(|p| **p == Placement::New).count() as u64;
        let committed = self.encode_and_write(records, &written.ids, &placements, first + n);
        if let Err(e) = committed {
            self.lock_open().undo(undo);
            return Err(e);
        }
        self.written.fetch_add(new, Ordering::Relaxed);
        Ok(written)
    }

    /// Puts `records` under `ids`, placed as `placements` say, into one batch with their
    /// index entries, counts and open markers, raises the next sequence number to
    /// `next_seq`, and commits.
    fn encode_and_write(
        &self,
        records: &[FlowRecord],
        ids: &[FlowId],
        placements: &[Placement],
        next_seq: u64,
    ) -> Result<(), StoreError> {
        let mut batch = self.engine.batch();
        let mut enc = RecordEncoder::default();
        for ((record, &id), &placement) in records.iter().zip(ids).zip(placements) {
            let before = match placement {
                Placement::New if record.is_interim() => {
                    batch.put(Family::Meta, &keys::open_marker(id), &[]);
                    0
                }
                Placement::New => 0,
                Placement::Replaces { handshakes } => {
                    if !record.is_interim() {
                        batch.delete_meta(&keys::open_marker(id));
                    }
                    handshakes
                }
            };
            let kept;
            let record = if record.handshakes.len() < before {
                // The final record lost handshakes its interim one stored (its worker
                // restarted): keep the stored ones.
                kept = self.with_stored_handshakes(id, record)?;
                kept.as_ref().unwrap_or(record)
            } else {
                record
            };
            enc.add(&mut batch, id, record, before);
        }
        // In key order: consecutive inserts into the engine's sorted structures land
        // next to each other, which is much cheaper than random positions.
        let mut counts: Vec<(&Vec<u8>, &u64)> = enc.counts.iter().collect();
        counts.sort_unstable();
        for (key, count) in counts {
            batch.add_count(key, *count);
        }
        batch.raise_meta(META_NEXT_SEQ, next_seq);
        Ok(self.engine.write(batch)?)
    }

    /// `record` with the handshakes of the record stored under `id`, if that one has more.
    fn with_stored_handshakes(
        &self,
        id: FlowId,
        record: &FlowRecord,
    ) -> Result<Option<FlowRecord>, StoreError> {
        Ok(self
            .get(id)?
            .filter(|stored| stored.handshakes.len() > record.handshakes.len())
            .map(|stored| FlowRecord {
                handshakes: stored.handshakes,
                ..record.clone()
            }))
    }

    pub(super) fn lock_open(&self) -> MutexGuard<'_, OpenRecords> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The record stored under `id`.
    pub fn get(&self, id: FlowId) -> Result<Option<FlowRecord>, StoreError> {
        self.engine
            .get(Family::Flows, &id.to_bytes())?
            .map(|v| decode(id, &v))
            .transpose()
    }

    /// The `limit` most counted values of `field` over the minutes overlapping
    /// `[since, until)` (whole minutes: `since` rounds down, `until` up), most counted
    /// first, ties by value. A value's count is the number of flows that had it.
    pub fn top(
        &self,
        field: TopField,
        since: Timestamp,
        until: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let start = keys::count_prefix(field, keys::minute_of(keys::time_key(since)));
        let end: Vec<u8> = match until {
            Some(u) => {
                let t = keys::time_key(u).saturating_add(keys::NANOS_PER_MINUTE - 1);
                keys::count_prefix(field, keys::minute_of(t)).to_vec()
            }
            None => vec![field.code() + 1],
        };
        let mut totals: FxHashMap<Vec<u8>, u64> = FxHashMap::default();
        let mut bad = None;
        self.engine
            .scan(Family::Counts, &start, Some(&end), &mut |k, v| match (
                keys::split_count_key(k),
                read_u64_le(Family::Counts, Some(v)),
            ) {
                (Some((_, value)), Ok(c)) => {
                    let t = totals.entry(value.to_vec()).or_default();
                    *t = t.saturating_add(c);
                    true
                }
                (_, Err(e)) => {
                    bad = Some(e);
                    false
                }
                (None, Ok(_)) => true,
            })?;
        if let Some(e) = bad {
            return Err(e.into());
        }
        let mut top: Vec<(String, u64)> = totals
            .into_iter()
            .map(|(k, c)| (String::from_utf8_lossy(&k).into_owned(), c))
            .collect();
        top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(limit);
        Ok(top)
    }

    /// Counts and approximate sizes.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let families = Family::ALL
            .iter()
            .map(|&f| Ok((f, self.engine.family_size(f)?)))
            .collect::<Result<_, EngineError>>()?;
        let open = self.lock_open();
        Ok(StoreStats {
            records_written: self.written.load(Ordering::Relaxed),
            open_records: open.len(),
            open_limit: open.max(),
            open_evicted: open.evicted(),
            interrupted_at_open: self.interrupted_at_open,
            next_seq: self.next_seq.load(Ordering::Relaxed),
            families,
        })
    }
}

/// Closes the interim records whose open markers a previous process left (see
/// [`Store::with_engine`]), [`CLOSE_BATCH`] per batch, and returns how many it closed. A
/// marker whose record is gone (retention) or does not decode is only removed.
fn close_interrupted<E: KvEngine>(engine: &E) -> Result<u64, StoreError> {
    let end = keys::prefix_end(keys::OPEN_MARKER_PREFIX);
    let mut from = keys::OPEN_MARKER_PREFIX.to_vec();
    let mut closed = 0;
    loop {
        let (mut ids, mut last): (Vec<[u8; 16]>, Option<Vec<u8>>) = (Vec::new(), None);
        // From past the last batch's markers: their deletions are not scanned again.
        engine.scan(Family::Meta, &from, end.as_deref(), &mut |k, _| {
            if let Ok(id) = k[keys::OPEN_MARKER_PREFIX.len()..].try_into() {
                ids.push(id);
            }
            last = Some(k.to_vec());
            ids.len() < CLOSE_BATCH
        })?;
        let Some(last) = last else {
            return Ok(closed);
        };
        from = [&last[..], &[0]].concat();
        let mut batch = engine.batch();
        for (id, stored) in ids.iter().zip(engine.multi_get(Family::Flows, &ids)?) {
            let record = stored.and_then(|bytes| codec::decode(&bytes).ok());
            if let (Some(id), Some(mut record)) = (FlowId::from_bytes(id), record) {
                record.end_reason = EndReason::Interrupted;
                batch.put_record(id, codec::encode(&record));
                closed += 1;
            }
            batch.delete_meta(&[keys::OPEN_MARKER_PREFIX, id].concat());
        }
        engine.write(batch)?;
    }
}

/// Decodes a stored record.
pub(super) fn decode(id: FlowId, bytes: &[u8]) -> Result<FlowRecord, StoreError> {
    codec::decode(bytes).map_err(|source| StoreError::Corrupt { id, source })
}

/// Turns records into batch operations, reusing its buffers across records.
#[derive(Default)]
struct RecordEncoder {
    /// Counter increments of the whole batch, summed per key (one merge per key).
    counts: FxHashMap<Vec<u8>, u64>,
    /// Index entries of the current record, to write each once.
    seen: Vec<(Family, [u8; 16])>,
    /// Counts keys of the current record, to count each value once per flow.
    seen_counts: SeenKeys,
    /// A lowercased SNI.
    lower: String,
    /// The values met now were stored by the flow's interim record: note them only.
    already_stored: bool,
    key: Vec<u8>,
}

impl RecordEncoder {
    /// Puts record `r` under `id` with its index entries and counts, except those the
    /// flow's interim record stored (under the same id, with its first `stored_before`
    /// handshakes; none if 0).
    fn add<B: EngineBatch>(
        &mut self,
        batch: &mut B,
        id: FlowId,
        r: &FlowRecord,
        stored_before: usize,
    ) {
        batch.put_record(id, codec::encode(r));
        self.seen.clear();
        self.seen_counts.clear();
        self.already_stored = stored_before > 0;
        self.index(batch, Family::Ip, &keys::ip_bytes(r.client_ip), id);
        self.index(batch, Family::Ip, &keys::ip_bytes(r.server_ip), id);
        self.index(batch, Family::Port, &r.client_port.to_be_bytes(), id);
        self.index(batch, Family::Port, &r.server_port.to_be_bytes(), id);
        if !r.community_id.is_empty() {
            let h = keys::stable_hash(r.community_id.as_bytes());
            self.index(batch, Family::CommunityId, &keys::hash_part(h), id);
        }
        let minute = keys::minute_of(id.time_ns);
        for (i, h) in r.handshakes.iter().enumerate() {
            // A value of a later handshake that an earlier one had is not new: the
            // interim record's are noted, never written or counted twice.
            self.already_stored = i < stored_before;
            if let Some(ja3) = &h.ja3_hash {
                let v = keys::hash_part(keys::stable_hash_lower(ja3));
                self.index(batch, Family::Ja3, &v, id);
                self.count(TopField::Ja3, minute, ja3.as_bytes());
            }
            if let Some(ja4) = &h.ja4 {
                let v = keys::hash_part(keys::stable_hash(ja4.as_bytes()));
                self.index(batch, Family::Ja4, &v, id);
                self.count(TopField::Ja4, minute, ja4.as_bytes());
            }
            if let Some(sni) = &h.sni {
                let sni = keys::sni_trimmed(sni);
                let v = keys::hash_part(keys::stable_hash_lower(sni));
                self.index(batch, Family::Sni, &v, id);
                let mut lower = std::mem::take(&mut self.lower);
                lower.clear();
                lower.push_str(sni);
                lower.make_ascii_lowercase();
                self.count(TopField::Sni, minute, lower.as_bytes());
                self.lower = lower;
            }
            if let Some(ja3s) = &h.ja3s_hash {
                self.count(TopField::Ja3s, minute, ja3s.as_bytes());
            }
            if let Some(ja4s) = &h.ja4s {
                self.count(TopField::Ja4s, minute, ja4s.as_bytes());
            }
        }
    }

    /// Puts one index entry unless this record already has it (or its interim record
    /// stored it).
    fn index<B: EngineBatch>(&mut self, batch: &mut B, family: Family, value: &[u8], id: FlowId) {
        let mut v = [0u8; 16];
        v[..value.len()].copy_from_slice(value);
        if self.seen.contains(&(family, v)) {
            return;
        }
        self.seen.push((family, v));
        if !self.already_stored {
            batch.put(family, IndexKey::new(value, id).as_bytes(), &[]);
        }
    }

    /// Counts `value` for `field` once per record (not at all if its interim record did).
    fn count(&mut self, field: TopField, minute: u32, value: &[u8]) {
        keys::count_key(&mut self.key, field, minute, value);
        if !self.seen_counts.insert(&self.key) {
            return;
        }
        if self.already_stored {
            return;
        }
        match self.counts.get_mut(&self.key) {
            Some(c) => *c += 1,
            None => {
                self.counts.insert(self.key.clone(), 1);
            }
        }
    }
}

/// A small set of byte strings that keeps its allocations across [`SeenKeys::clear`].
#[derive(Default)]
struct SeenKeys {
    keys: Vec<Vec<u8>>,
    len: usize,
}

impl SeenKeys {
    /// Forgets every key (keeping the buffers).
    fn clear(&mut self) {
        self.len = 0;
    }

    /// Adds `key`; false if it was there.
    fn insert(&mut self, key: &[u8]) -> bool {
        if self.keys[..self.len].iter().any(|k| k == key) {
            return false;
        }
        if self.len == self.keys.len() {
            self.keys.push(Vec::new());
        }
        let slot = &mut self.keys[self.len];
        slot.clear();
        slot.extend_from_slice(key);
        self.len += 1;
        true
    }
}
