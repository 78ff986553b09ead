//! Flow records of the in-memory tier (see [`super::pending`]): recent records held in id
//! order instead of RocksDB memtables, logged per write batch as one zstd-compressed blob,
//! and spilled to RocksDB as sorted SST files.
//!
//! Why: a record is ~1 KB of Cap'n Proto. Through a memtable it is copied into the WAL
//! uncompressed and inserted into a skiplist, ~6.5 µs per record on the writer here; as
//! part of a compressed batch blob the WAL takes a fifth of the bytes, and the sorting
//! and block compression happen on the spill thread.

use super::pending::{Logged, Tiers};
use flowmesh_core::storage::keys::FlowId;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;

/// zstd level of record log blobs: the writer compresses every batch, so speed first.
const LOG_LEVEL: i32 = 1;

/// Largest raw log buffer a writer thread keeps between batches (a batch of 1,024
/// records of 1 KiB needs about 1 MiB).
const KEPT_BUFFER_BYTES: usize = 8 << 20;

/// One encoded record and its id, as a write batch carries it.
pub(super) type Entry = (FlowId, Box<[u8]>);

/// Records of one tier, by id.
#[derive(Debug, Default)]
pub(super) struct Records {
    map: BTreeMap<FlowId, Box<[u8]>>,
    bytes: usize,
    /// The `index_log` batches whose records this tier holds.
    logs: Vec<u64>,
}

impl Logged for Records {
    fn logs(&self) -> &[u64] {
        &self.logs
    }
    fn logs_mut(&mut self) -> &mut Vec<u64> {
        &mut self.logs
    }
    fn size(&self) -> usize {
        self.bytes
    }
}

impl Records {
    /// Adds (or replaces) the record `id`.
    pub(super) fn insert(&mut self, id: FlowId, record: Box<[u8]>) {
        self.bytes += record.len();
        if let Some(old) = self.map.insert(id, record) {
            self.bytes -= old.len();
        }
    }

    /// The record `id`.
    pub(super) fn get(&self, id: &FlowId) -> Option<&[u8]> {
        self.map.get(id).map(|b| &**b)
    }

    /// Records held.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Bytes of the records held.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The largest id held.
    pub(super) fn last(&self) -> Option<FlowId> {
        self.map.last_key_value().map(|(id, _)| *id)
    }

    /// Records with keys in `[start, end)` (raw key bytes, as the flows family orders
    /// them), in ascending order.
    pub(super) fn range<'a>(
        &'a self,
        start: &'a [u8],
        end: Option<&'a [u8]>,
    ) -> impl Iterator<Item = ([u8; 16], &'a [u8])> + 'a {
        self.map
            .range((Bound::Included(padded(start)), Bound::Unbounded))
            .map(|(id, r)| (id.to_bytes(), &**r))
            .skip_while(move |(k, _)| k.as_slice() < start)
            .take_while(move |(k, _)| end.is_none_or(|e| k.as_slice() < e))
    }

    /// Whether any record has a key in `[start, end)`.
    pub(super) fn any_in(&self, start: &[u8], end: &[u8]) -> bool {
        self.range(start, Some(end)).next().is_some()
    }

    /// Every record, ascending.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&FlowId, &[u8])> {
        self.map.iter().map(|(id, r)| (id, &**r))
    }
}

impl Tiers<Records> {
    /// The newest record `id` held in memory.
    pub(super) fn newest(&self, id: &FlowId) -> Option<&[u8]> {
        self.all().find_map(|t| t.get(id))
    }
}

/// The smallest id whose key is at least `key` (keys shorter than 16 bytes are padded
/// with zeros; longer ones are cut, and the caller filters the exact bound).
fn padded(key: &[u8]) -> FlowId {
    let mut b = [0u8; 16];
    let n = key.len().min(16);
    b[..n].copy_from_slice(&key[..n]);
    FlowId::from_bytes(&b).unwrap_or(FlowId::MIN)
}

/// Why a record log blob could not be read back.
#[derive(Debug, thiserror::Error)]
pub(super) enum RecordLogError {
    /// zstd failed.
    #[error("record log blob does not decompress: {0}")]
    Decompress(std::io::Error),
    /// The decompressed blob is cut short.
    #[error("record log blob is truncated at byte {0}")]
    Truncated(usize),
}

/// One batch's records as a record log blob: zstd of `[id: 16][len: u32 LE][record]`….
/// Each writer thread keeps its compression context and buffer: allocating them per batch
/// (about 2 MiB, faulted in afresh) cost more than the compression.
pub(super) fn encode_log(records: &[Entry]) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static SCRATCH: RefCell<Option<(zstd::bulk::Compressor<'static>, Vec<u8>)>> =
            const { RefCell::new(None) };
    }
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let (compressor, raw) = match &mut *scratch {
            Some(s) => s,
            None => scratch.insert((zstd::bulk::Compressor::new(LOG_LEVEL)?, Vec::new())),
        };
        raw.clear();
        for (id, r) in records {
            raw.extend_from_slice(&id.to_bytes());
            raw.extend_from_slice(&(r.len() as u32).to_le_bytes());
            raw.extend_from_slice(r);
        }
        let blob = compressor.compress(raw);
        if raw.capacity() > KEPT_BUFFER_BYTES {
            *raw = Vec::new();
        }
        blob
    })
}

/// Reads a record log blob back.
pub(super) fn decode_log(blob: &[u8]) -> Result<Vec<Entry>, RecordLogError> {
    let raw = zstd::stream::decode_all(blob).map_err(RecordLogError::Decompress)?;
    let mut out = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let head = raw.get(at..at + 20).ok_or(RecordLogError::Truncated(at))?;
        let id = FlowId::from_bytes(&head[..16]).ok_or(RecordLogError::Truncated(at))?;
        let len = u32::from_le_bytes([head[16], head[17], head[18], head[19]]) as usize;
        let body = raw
            .get(at + 20..at + 20 + len)
            .ok_or(RecordLogError::Truncated(at))?;
        out.push((id, body.into()));
        at += 20 + len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(t: u64, s: u64) -> FlowId {
        FlowId { time_ns: t, seq: s }
    }

    #[test]
    fn ranges_follow_key_byte_order() {
        let mut r = Records::default();
        for (i, t) in [5u64, 1, 9, 3].into_iter().enumerate() {
            r.insert(id(t, i as u64), vec![t as u8; t as usize].into());
        }
        assert_eq!(r.len(), 4);
        assert_eq!(r.bytes(), 18);
        let keys = |s: &[u8], e: Option<&[u8]>| -> Vec<u64> {
            r.range(s, e)
                .map(|(k, _)| FlowId::from_bytes(&k).expect("key").time_ns)
                .collect()
        };
        assert_eq!(keys(&[], None), [1, 3, 5, 9]);
        let three = id(3, 3).to_bytes();
        let nine = id(9, 0).to_bytes();
        assert_eq!(keys(&three, Some(&nine)), [3, 5]);
        // A bound longer than a key: the key equal to its first 16 bytes is below it.
        let mut past_three = three.to_vec();
        past_three.push(0);
        assert_eq!(keys(&past_three, None), [5, 9]);
        // A short bound is a prefix: [0] precedes every key here, [0, 0, …] too.
        assert_eq!(keys(&[0], Some(&[0, 0, 0, 0, 0, 0, 0, 4])), [1, 3]);
        assert!(r.any_in(&[], &nine));
        assert!(!r.any_in(&id(10, 0).to_bytes(), &[0xff]));
        assert_eq!(r.last(), Some(id(9, 2)));
        assert_eq!(r.get(&id(5, 0)), Some(&[5u8; 5][..]));
        r.insert(id(5, 0), vec![1].into());
        assert_eq!((r.len(), r.bytes()), (4, 14));
    }

    /// A flow's interim record and its final one under the same id, in different tiers:
    /// reads see the newest, whichever tiers are frozen.
    #[test]
    fn the_newest_tier_holding_an_id_wins() {
        let mut tiers = Tiers::<Records>::default();
        let flow = id(7, 1);
        for (version, log) in [(1u8, 0u64), (2, 1), (3, 2)] {
            tiers.active.insert(flow, vec![version].into());
            tiers.active.add_log(log);
            assert_eq!(tiers.newest(&flow), Some(&[version][..]));
            tiers.freeze_at(0);
            assert_eq!(tiers.newest(&flow), Some(&[version][..]), "after freezing");
        }
        assert_eq!(tiers.frozen.len(), 3);
        tiers.active.insert(flow, vec![4].into());
        assert_eq!(tiers.newest(&flow), Some(&[4u8][..]));
        assert_eq!(tiers.newest(&id(7, 2)), None);
    }

    #[test]
    fn log_blobs_round_trip_and_reject_truncation() {
        let records: Vec<Entry> = (0..100u64)
            .map(|i| (id(i * 7, i), vec![(i % 3) as u8; 900 + i as usize].into()))
            .collect();
        let blob = encode_log(&records).expect("compress");
        let raw: usize = records.iter().map(|(_, r)| r.len()).sum();
        assert!(blob.len() * 10 < raw, "{} bytes for {raw}", blob.len());
        assert_eq!(decode_log(&blob).expect("decode"), records);
        assert!(decode_log(&blob[..blob.len() / 2]).is_err());
        assert!(decode_log(b"not zstd").is_err());
        let mut raw = Vec::new();
        raw.extend_from_slice(&id(1, 1).to_bytes());
        raw.extend_from_slice(&100u32.to_le_bytes());
        raw.extend_from_slice(&[7; 10]);
        let cut = zstd::bulk::compress(&raw, 1).expect("compress");
        assert!(matches!(
            decode_log(&cut),
            Err(RecordLogError::Truncated(0))
        ));
    }
}
