//! Flows whose interim record is stored and whose final record has not come yet: where
//! that final record goes (the same [`FlowId`]) and which of its handshakes are already
//! stored, indexed and counted.
//!
//! Live capture stores a flow's record as soon as its ClientHellos are all answered
//! ([`EndReason::Open`](flowmesh_schemas::EndReason::Open)) and again when the flow
//! ends; the second write replaces the first. A flow is named by its first-seen time and
//! a hash of its Community ID, VLAN and transport, so both records find the same entry
//! whatever their orientation.
//!
//! Bounded: at [`OpenRecords::MAX`] entries (or the limit set with
//! [`OpenRecords::set_max`], the live flow table's capacity) the oldest flow is forgotten
//! (counted in [`OpenRecords::evicted`]); its final record is then stored under a new id
//! beside the interim one. Entries only outlive their flow when a shard loses its flows (restart
//! after a fault), so the bound is reached only by such leaks or by more flows open at
//! once than a flow table holds. The map lives in memory; what survives the process is
//! each interim record's open marker, which [`Store::with_engine`](super::Store::with_engine)
//! turns into an [`EndReason::Interrupted`](flowmesh_schemas::EndReason::Interrupted) record.

use super::keys::{self, FlowId};
use flowmesh_schemas::FlowRecord;
use std::collections::BTreeMap;

/// A flow's name: first-seen time and a hash of its identity.
type OpenKey = (i64, u64);

/// What is stored of an open flow: its id's sequence number and how many handshakes its
/// interim record held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    seq: u64,
    handshakes: usize,
}

/// Where a record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placement {
    /// A new record: it needs a fresh sequence number.
    New,
    /// It replaces the interim record under the same id, which stored its first
    /// `handshakes` handshakes.
    Replaces {
        /// Handshakes the interim record held (stored, indexed and counted).
        handshakes: usize,
    },
}

/// One change made by [`OpenRecords::place`], undone if the write fails.
#[derive(Debug)]
pub(super) struct Undo {
    key: OpenKey,
    before: Option<Stored>,
}

/// The open flows with a stored interim record. See the module docs.
#[derive(Debug)]
pub(super) struct OpenRecords {
    map: BTreeMap<OpenKey, Stored>,
    max: usize,
    evicted: u64,
}

impl Default for OpenRecords {
    fn default() -> Self {
        OpenRecords {
            map: BTreeMap::new(),
            max: Self::MAX,
            evicted: 0,
        }
    }
}

impl OpenRecords {
    /// Open flows tracked at most.
    pub(super) const MAX: usize = 1 << 20;

    /// Where `record` goes, taking sequence numbers from `next_seq` for new records; the
    /// changes made are pushed on `undo`, for [`Self::undo`] if the write fails. Records
    /// of flows no protocol claimed never had an interim record: they are not looked up.
    pub(super) fn place(
        &mut self,
        record: &FlowRecord,
        next_seq: &mut impl FnMut() -> u64,
        undo: &mut Vec<Undo>,
    ) -> (FlowId, Placement) {
        let interim = record.is_interim();
        if !interim && (record.l7.is_none() || self.map.is_empty()) {
            return (FlowId::new(record.first_seen, next_seq()), Placement::New);
        }
        let key = open_key(record);
        let before = self.map.get(&key).copied();
        let after = match (before, interim) {
            (Some(s), true) => Some(Stored {
                handshakes: record.handshakes.len().max(s.handshakes),
                ..s
            }),
            (Some(_), false) => None,
            (None, true) => Some(Stored {
                seq: next_seq(),
                handshakes: record.handshakes.len(),
            }),
            (None, false) => return (FlowId::new(record.first_seen, next_seq()), Placement::New),
        };
        undo.push(Undo { key, before });
        match after {
            Some(s) => {
                self.map.insert(key, s);
                if before.is_none() {
                    self.evict_over_max(undo);
                }
            }
            None => {
                self.map.remove(&key);
            }
        }
        let seq = before.or(after).map_or(0, |s| s.seq);
        let id = FlowId::new(record.first_seen, seq);
        let placement = match before {
            Some(s) => Placement::Replaces {
                handshakes: s.handshakes,
            },
            None => Placement::New,
        };
        (id, placement)
    }

    /// Undoes the changes of a failed write, newest first.
    pub(super) fn undo(&mut self, undo: Vec<Undo>) {
        for u in undo.into_iter().rev() {
            match u.before {
                Some(s) => self.map.insert(u.key, s),
                None => self.map.remove(&u.key),
            };
        }
    }

    /// Forgets the open flows first seen before `cutoff_ns` (key time: negative times
    /// count as 0): retention dropped their interim records, so their final records are
    /// stored as new ones, indexed in full.
    pub(super) fn forget_before(&mut self, cutoff_ns: u64) {
        if cutoff_ns > 0 {
            let from = (i64::try_from(cutoff_ns).unwrap_or(i64::MAX), 0);
            self.map = self.map.split_off(&from);
        }
    }

    /// Tracks at most `max` open flows (at least 1), forgetting the oldest over it.
    pub(super) fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
        self.evict_over_max(&mut Vec::new());
    }

    /// Open flows tracked at most.
    pub(super) fn max(&self) -> usize {
        self.max
    }

    /// Open flows tracked.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Open flows forgotten because the map was full.
    pub(super) fn evicted(&self) -> u64 {
        self.evicted
    }

    fn evict_over_max(&mut self, undo: &mut Vec<Undo>) {
        while self.map.len() > self.max {
            if let Some((key, s)) = self.map.pop_first() {
                undo.push(Undo {
                    key,
                    before: Some(s),
                });
                self.evicted += 1;
            }
        }
    }
}

/// The name of `record`'s flow.
fn open_key(record: &FlowRecord) -> OpenKey {
    let vlan = record.vlan.map_or(u32::MAX, u32::from).to_be_bytes();
    let id = (record.community_id.bytes())
        .chain(vlan)
        .chain([record.transport.proto()]);
    (record.first_seen.as_nanos(), keys::stable_hash_iter(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowmesh_schemas::{EndReason, Handshake, Timestamp, Transport, L7};
    use std::net::{IpAddr, Ipv4Addr};

    fn record(reason: EndReason, handshakes: usize) -> FlowRecord {
        FlowRecord {
            transport: Transport::Tcp,
            l7: Some(L7::Tls),
            client_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            client_port: 40000,
            server_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            server_port: 443,
            vlan: None,
            first_seen: Timestamp(1_700_000_000_000_000_000),
            last_seen: Timestamp(1_700_000_001_000_000_000),
            packets_c2s: 1,
            packets_s2c: 1,
            bytes_c2s: 1,
            bytes_s2c: 1,
            tcp_flags_c2s: 0,
            tcp_flags_s2c: 0,
            end_reason: reason,
            conn_state: "S1".into(),
            community_id: "1:abc".into(),
            midstream: false,
            handshakes: vec![Handshake::default(); handshakes],
        }
    }

    fn counter() -> impl FnMut() -> u64 {
        let mut n = 0;
        move || {
            n += 1;
            n
        }
    }

    #[test]
    fn a_final_record_takes_the_id_of_its_interim_one_and_frees_the_entry() {
        let (mut open, mut seq, mut undo) = (OpenRecords::default(), counter(), Vec::new());
        let (id, p) = open.place(&record(EndReason::Open, 1), &mut seq, &mut undo);
        assert_eq!(p, Placement::New);
        assert_eq!(open.len(), 1);
        let (again, p) = open.place(&record(EndReason::Fin, 2), &mut seq, &mut undo);
        assert_eq!(again, id);
        assert_eq!(p, Placement::Replaces { handshakes: 1 });
        assert_eq!(open.len(), 0);
        let (other, p) = open.place(&record(EndReason::Fin, 1), &mut seq, &mut undo);
        assert_ne!(other, id, "a later flow with the same name is a new record");
        assert_eq!(p, Placement::New);
    }

    #[test]
    fn undo_restores_the_entries_a_failed_write_changed() {
        let (mut open, mut seq) = (OpenRecords::default(), counter());
        let mut first = Vec::new();
        let (id, _) = open.place(&record(EndReason::Open, 1), &mut seq, &mut first);
        let mut failed = Vec::new();
        open.place(&record(EndReason::Idle, 1), &mut seq, &mut failed);
        assert_eq!(open.len(), 0);
        open.undo(failed);
        let (again, p) = open.place(&record(EndReason::Idle, 1), &mut seq, &mut Vec::new());
        assert_eq!((again, p), (id, Placement::Replaces { handshakes: 1 }));
    }

    #[test]
    fn past_its_bound_the_oldest_open_flow_is_forgotten_and_counted() {
        let mut open = OpenRecords {
            max: 2,
            ..OpenRecords::default()
        };
        let (mut seq, mut undo) = (counter(), Vec::new());
        let at = |s: i64| {
            let mut r = record(EndReason::Open, 1);
            r.first_seen = Timestamp(s * Timestamp::NANOS_PER_SEC);
            r
        };
        for s in [3, 1, 2] {
            open.place(&at(s), &mut seq, &mut undo);
        }
        assert_eq!((open.len(), open.evicted()), (2, 1));
        let mut ended = at(1);
        ended.end_reason = EndReason::Fin;
        assert_eq!(open.place(&ended, &mut seq, &mut undo).1, Placement::New);
        ended.first_seen = at(2).first_seen;
        assert!(matches!(
            open.place(&ended, &mut seq, &mut undo).1,
            Placement::Replaces { .. }
        ));
    }

    #[test]
    fn a_lower_limit_forgets_the_oldest_open_flows_at_once() {
        let (mut open, mut seq, mut undo) = (OpenRecords::default(), counter(), Vec::new());
        for s in [3, 1, 2] {
            let mut r = record(EndReason::Open, 1);
            r.first_seen = Timestamp(s);
            open.place(&r, &mut seq, &mut undo);
        }
        open.set_max(1);
        assert_eq!((open.len(), open.evicted()), (1, 2));
        let mut ended = record(EndReason::Fin, 1);
        ended.first_seen = Timestamp(3);
        assert!(matches!(
            open.place(&ended, &mut seq, &mut undo).1,
            Placement::Replaces { .. }
        ));
    }

    #[test]
    fn flows_retention_dropped_are_forgotten() {
        let (mut open, mut seq, mut undo) = (OpenRecords::default(), counter(), Vec::new());
        let at = |ns: i64, reason| {
            let mut r = record(reason, 1);
            r.first_seen = Timestamp(ns);
            r
        };
        for ns in [-5, 10, 20] {
            open.place(&at(ns, EndReason::Open), &mut seq, &mut undo);
        }
        open.forget_before(0);
        assert_eq!(open.len(), 3, "a cutoff of 0 drops nothing");
        open.forget_before(20);
        assert_eq!(open.len(), 1);
        assert_eq!(
            open.place(&at(10, EndReason::Fin), &mut seq, &mut undo).1,
            Placement::New
        );
        assert!(matches!(
            open.place(&at(20, EndReason::Fin), &mut seq, &mut undo).1,
            Placement::Replaces { .. }
        ));
    }

    #[test]
    fn records_of_unclaimed_flows_are_always_new() {
        let (mut open, mut seq, mut undo) = (OpenRecords::default(), counter(), Vec::new());
        open.place(&record(EndReason::Open, 1), &mut seq, &mut undo);
        let mut plain = record(EndReason::Fin, 0);
        plain.l7 = None;
        assert_eq!(open.place(&plain, &mut seq, &mut undo).1, Placement::New);
        assert_eq!(open.len(), 1);
    }
}
