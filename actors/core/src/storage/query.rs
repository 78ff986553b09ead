//! Query execution: walks the planned index in id order, fetches candidates, re-checks
//! them with [`FlowFilter::matches`], and pages with a cursor.
//!
//! Every page is ascending in [`FlowId`] and starts after the cursor, so pages never
//! overlap and their union is the full result whatever the plan. The work of one page is
//! bounded by the store's scan budget (candidates examined): a page that runs out ends
//! early with a cursor, possibly with fewer flows than asked, even none.

use super::engine::{Family, KvEngine};
use super::filter::{FlowFilter, Plan};
use super::keys::{self, FlowId, IndexKey};
use super::store::{decode, Page, Store, StoreError};
use std::collections::BTreeSet;

/// Largest number of candidates fetched in one multi-get.
const MAX_CHUNK: usize = 4096;

/// Where a walk starts and stops.
#[derive(Debug, Clone, Copy)]
struct Span {
    /// The first id to consider.
    start: FlowId,
    /// Key time at which the walk stops (exclusive); `None` = unbounded.
    end_time: Option<u64>,
}

impl<E: KvEngine> Store<E> {
    /// One page of the flows matching `filter`, in ascending id order, after `cursor`
    /// (the previous page's `next_cursor`). `limit` is at least 1.
    pub fn query(
        &self,
        filter: &FlowFilter,
        cursor: Option<FlowId>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let plan = filter.plan()?;
        let limit = limit.max(1);
        let lower = FlowId {
            time_ns: filter.time_lower(),
            seq: 0,
        };
        let start = match cursor {
            None => lower,
            Some(c) => match c.successor() {
                Some(next) => next.max(lower),
                None => return Ok(Page::default()),
            },
        };
        let span = Span {
            start,
            end_time: filter.time_upper(),
        };
        if span.end_time.is_some_and(|t| start.time_ns >= t) {
            return Ok(Page::default());
        }
        match plan {
            Plan::Index { family, value } => self.walk_index(filter, family, &value, span, limit),
            Plan::IpRange { lo, hi } => self.walk_ip_range(filter, lo, hi, span, limit),
            Plan::TimeScan => self.scan_flows(filter, span, limit),
        }
    }

    /// Walks the keys `value|time|seq` from `span.start` in order, in growing chunks.
    fn walk_index(
        &self,
        filter: &FlowFilter,
        family: Family,
        value: &[u8],
        span: Span,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let end: Option<Vec<u8>> = match span.end_time {
            Some(t) => Some(
                IndexKey::new(value, FlowId { time_ns: t, seq: 0 })
                    .as_bytes()
                    .to_vec(),
            ),
            None => keys::prefix_end(value),
        };
        let mut page = Page::default();
        let mut ids: Vec<FlowId> = Vec::new();
        let mut pos = span.start;
        let mut scanned = 0usize;
        let mut chunk = limit;
        loop {
            // One more than needed, so that a full page knows whether more follow.
            let want = (chunk + 1).min(MAX_CHUNK).min(self.scan_budget - scanned);
            ids.clear();
            let start = IndexKey::new(value, pos);
            self.engine
                .scan(family, start.as_bytes(), end.as_deref(), &mut |k, _| {
                    if let Some(id) = FlowId::from_index_key(k) {
                        ids.push(id);
                    }
                    ids.len() < want
                })?;
            let exhausted = ids.len() < want;
            scanned += ids.len();
            if self.check_candidates(filter, &ids, exhausted, limit, &mut page)? {
                return Ok(page);
            }
            let Some(&last) = ids.last() else {
                return Ok(page);
            };
            if exhausted {
                return Ok(page);
            }
            if scanned >= self.scan_budget {
                page.next_cursor = Some(last);
                return Ok(page);
            }
            match last.successor() {
                Some(next) => pos = next,
                None => return Ok(page),
            }
            chunk = (chunk * 2).min(MAX_CHUNK);
        }
    }

    /// Fetches `ids` (ascending) and appends the matching records to `page`. Returns
    /// `true` when the page is full (its cursor then set unless nothing can follow:
    /// `exhausted` says `ids` ends the walk).
    fn check_candidates(
        &self,
        filter: &FlowFilter,
        ids: &[FlowId],
        exhausted: bool,
        limit: usize,
        page: &mut Page,
    ) -> Result<bool, StoreError> {
        let keys: Vec<[u8; 16]> = ids.iter().map(|id| id.to_bytes()).collect();
        let values = self.engine.multi_get(Family::Flows, &keys)?;
        for (i, (&id, value)) in ids.iter().zip(values).enumerate() {
            // An index entry may outlive its record (retention drops records first).
            let Some(value) = value else { continue };
            let record = decode(id, &value)?;
            if !filter.matches(&record) {
                continue;
            }
            page.flows.push((id, record));
            if page.flows.len() >= limit {
                let more = !exhausted || i + 1 < ids.len();
                page.next_cursor = more.then_some(id);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A CIDR network: walks the IP index over the network's addresses (ordered by
    /// address, not time), keeping the smallest ids in a set bounded by the page size,
    /// then fetches and checks them; repeats after the largest kept id while the page is
    /// not full. If one walk exceeds the scan budget, the page is served by a time scan
    /// instead (so a page costs at most twice the budget).
    fn walk_ip_range(
        &self,
        filter: &FlowFilter,
        lo: [u8; 16],
        hi: [u8; 16],
        mut span: Span,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let end = u128::from_be_bytes(hi)
            .checked_add(1)
            .map(|e| e.to_be_bytes().to_vec());
        let mut page = Page::default();
        let mut scanned = 0usize;
        loop {
            let cap = limit - page.flows.len() + 1;
            let mut best: BTreeSet<FlowId> = BTreeSet::new();
            let mut over_budget = false;
            self.engine
                .scan(Family::Ip, &lo, end.as_deref(), &mut |k, _| {
                    scanned += 1;
                    if let Some(id) = FlowId::from_index_key(k) {
                        let in_time = span.end_time.is_none_or(|t| id.time_ns < t);
                        if id >= span.start
                            && in_time
                            && best.last().is_none_or(|&m| id < m || best.len() < cap)
                        {
                            best.insert(id);
                            if best.len() > cap {
                                best.pop_last();
                            }
                        }
                    }
                    over_budget = scanned >= self.scan_budget;
                    !over_budget
                })?;
            if over_budget {
                // A walk over too many addresses: a time scan is as good and is bounded.
                let mut rest = self.scan_flows(filter, span, limit - page.flows.len())?;
                page.flows.append(&mut rest.flows);
                page.next_cursor = rest.next_cursor;
                return Ok(page);
            }
            let exhausted = best.len() < cap;
            let ids: Vec<FlowId> = best.into_iter().collect();
            if self.check_candidates(filter, &ids, exhausted, limit, &mut page)? || exhausted {
                return Ok(page);
            }
            let Some(next) = ids.last().and_then(|id| id.successor()) else {
                return Ok(page);
            };
            span.start = next;
        }
    }

    /// Scans the flows family in id order, decoding and checking every record.
    fn scan_flows(
        &self,
        filter: &FlowFilter,
        span: Span,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let end = span
            .end_time
            .map(|t| FlowId { time_ns: t, seq: 0 }.to_bytes());
        let mut page = Page::default();
        let mut scanned = 0usize;
        let mut failure = None;
        let mut last = None;
        let mut stopped = false;
        self.engine.scan(
            Family::Flows,
            &span.start.to_bytes(),
            end.as_ref().map(|e| e.as_slice()),
            &mut |k, v| {
                let Some(id) = FlowId::from_bytes(k) else {
                    return true;
                };
                scanned += 1;
                last = Some(id);
                match decode(id, v) {
                    Ok(record) if filter.matches(&record) => page.flows.push((id, record)),
                    Ok(_) => {}
                    Err(e) => {
                        failure = Some(e);
                        return false;
                    }
                }
                stopped = page.flows.len() >= limit || scanned >= self.scan_budget;
                !stopped
            },
        )?;
        if let Some(e) = failure {
            return Err(e);
        }
        if stopped {
            page.next_cursor = last;
        }
        Ok(page)
    }
}
