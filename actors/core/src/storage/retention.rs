//! Retention: dropping the oldest flows by age and by size.
//!
//! Dropping everything first seen before a cutoff means: a range delete of the flows (and
//! of their interim records' open markers) below the cutoff and of each field's counters
//! for the minutes before the cutoff's minute (so the minute holding the cutoff keeps its
//! counts), and raising the engine's index cutoff so index entries older than it are
//! dropped by compaction (index keys are ordered by value, so a range delete cannot reach
//! them). Then the affected families are compacted so the space is actually reclaimed. Until an index entry is compacted away
//! it may still be walked; the record it points to is gone and it is skipped.
//!
//! By size: while the engine reports more than `max_bytes` on disk, the oldest tenth of
//! the stored time span (first to last stored first-seen time, at least 1 ns) is dropped,
//! for at most [`MAX_SIZE_ROUNDS`] rounds per call, so one call's work is bounded.
//!
//! The index cutoff lives in the engine's memory only: run retention when the store is
//! opened and then periodically (the daemon's job), and every later compaction drops
//! what the last pass cut off.
//!
//! A record first seen before a cutoff but written after the retention pass ran is kept
//! in the flows family until the next pass, but its index entries may be dropped by any
//! compaction meanwhile: such late records may be found only by a time-range query.

use super::engine::{Family, KvEngine};
use super::keys::{self, FlowId, TopField};
use super::store::{Store, StoreError};
use flowmesh_schemas::Timestamp;
use std::time::Duration;

/// Most size-driven rounds in one [`Store::apply_retention`] call.
pub const MAX_SIZE_ROUNDS: u32 = 20;

/// What one retention pass did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetentionReport {
    /// The age cutoff applied: flows first seen before it were dropped.
    pub age_cutoff: Option<Timestamp>,
    /// The last size cutoff applied, if the store was over its size limit.
    pub size_cutoff: Option<Timestamp>,
    /// Size-driven rounds run.
    pub size_rounds: u32,
    /// Bytes on disk before the pass, as the engine reports them.
    pub disk_bytes_before: u64,
    /// Bytes on disk after the pass.
    pub disk_bytes_after: u64,
}

impl<E: KvEngine> Store<E> {
    /// Drops flows first seen before `now - max_age`, then the oldest flows while the
    /// store is over `max_bytes` on disk. See the module docs for the exact behaviour.
    pub fn apply_retention(
        &self,
        now: Timestamp,
        max_age: Option<Duration>,
        max_bytes: Option<u64>,
    ) -> Result<RetentionReport, StoreError> {
        let mut report = RetentionReport {
            disk_bytes_before: self.engine.disk_bytes()?,
            ..RetentionReport::default()
        };
        if let Some(age) = max_age {
            let age = i64::try_from(age.as_nanos()).unwrap_or(i64::MAX);
            let cutoff = Timestamp(now.as_nanos().saturating_sub(age));
            self.drop_before(keys::time_key(cutoff))?;
            report.age_cutoff = Some(cutoff);
        }
        if let Some(max) = max_bytes {
            while report.size_rounds < MAX_SIZE_ROUNDS && self.engine.disk_bytes()? > max {
                let Some((oldest, newest)) = self.time_span()? else {
                    break;
                };
                let step = ((newest - oldest) / 10).max(1);
                let cutoff = oldest.saturating_add(step);
                self.drop_before(cutoff)?;
                report.size_cutoff = Some(Timestamp(i64::try_from(cutoff).unwrap_or(i64::MAX)));
                report.size_rounds += 1;
            }
        }
        report.disk_bytes_after = self.engine.disk_bytes()?;
        Ok(report)
    }

    /// First and last stored key times.
    fn time_span(&self) -> Result<Option<(u64, u64)>, StoreError> {
        let mut first = None;
        self.engine.scan(Family::Flows, &[], None, &mut |k, _| {
            first = FlowId::from_bytes(k);
            first.is_none()
        })?;
        let last = self
            .engine
            .last_key(Family::Flows)?
            .and_then(|k| FlowId::from_bytes(&k));
        Ok(first
            .zip(last)
            .map(|(a, b)| (a.time_ns, b.time_ns.max(a.time_ns))))
    }

    /// Drops every flow, counter minute and index entry before `cutoff` (key time).
    fn drop_before(&self, cutoff: u64) -> Result<(), StoreError> {
        let end = FlowId {
            time_ns: cutoff,
            seq: 0,
        }
        .to_bytes();
        self.engine.delete_range(Family::Flows, &[], &end)?;
        let markers_end = keys::open_marker(FlowId {
            time_ns: cutoff,
            seq: 0,
        });
        self.engine
            .delete_range(Family::Meta, keys::OPEN_MARKER_PREFIX, &markers_end)?;
        self.lock_open().forget_before(cutoff);
        self.engine.compact(Family::Flows, None, Some(&end))?;
        let minute = keys::minute_of(cutoff);
        for field in TopField::ALL {
            let start = keys::count_prefix(field, 0);
            let end = keys::count_prefix(field, minute);
            self.engine.delete_range(Family::Counts, &start, &end)?;
            self.engine
                .compact(Family::Counts, Some(&start), Some(&end))?;
        }
        self.engine.set_index_cutoff(cutoff);
        for family in Family::INDEXES {
            self.engine.compact(family, None, None)?;
        }
        Ok(())
    }
}
