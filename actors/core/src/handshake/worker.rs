//! The handshake worker: runs the handshake sessions that shards hand over, and completes
//! the records of their flows.
//!
//! Owns: one [`HandshakeSession`] and [`HandshakeLog`] per flow a shard handed over (keyed by
//! [`SessionId`]), the latest epoch seen per shard, and the worker's counters.
//!
//! Invariants:
//! - Every `End` op yields exactly one record, whatever happened to its session (unknown,
//!   refused for capacity, orphaned): records are never lost here.
//! - A session is fed only while it has not finished and wants the direction; once it has
//!   finished, stopped or aborted, its parser is freed and only its log is kept until `End`.
//! - Sessions are bounded by [`WorkerConfig::max_sessions`]; a `Start` beyond it is refused,
//!   counted, and answered with a `finished` update so the shard stops forwarding.
//! - A batch from a newer epoch of a shard drops the sessions of its older epochs (the shard
//!   restarted with fresh state; their flows will never end), counting them as orphaned.

use super::work::{
    FlowIdent, HandshakeBatch, HandshakeEvent, HandshakeOp, HelloSeen, InspectionUpdate, SessionId,
};
use super::{FingerprintSet, HandshakeLog, HandshakeSession, Registry, SessionCounts};
use flowmesh_schemas::{EndReason, FlowRecord, Timestamp};
use rustc_hash::FxHashMap;

/// Limits and settings of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Fingerprints to compute.
    pub fingerprints: FingerprintSet,
    /// Sessions held at once; more are refused and counted.
    pub max_sessions: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            fingerprints: FingerprintSet::default(),
            max_sessions: 200_000,
        }
    }
}

/// Counters of one worker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Sessions started.
    pub sessions_started: u64,
    /// ClientHellos fingerprinted (in records completed).
    pub handshakes: u64,
    /// Handshake events emitted.
    pub events: u64,
    /// Records completed.
    pub records: u64,
    /// Interim records of flows still open (see [`HandshakeOp::Snapshot`]).
    pub interim_records: u64,
    /// Malformed and incomplete handshakes, unusable data.
    pub sessions: SessionCounts,
    /// Sessions refused because the worker was full.
    pub refused: u64,
    /// Sessions dropped because their shard restarted or the input ended without their `End`.
    pub orphaned: u64,
}

impl WorkerStats {
    /// Adds another worker's counters.
    pub fn merge(&mut self, o: &WorkerStats) {
        self.sessions_started += o.sessions_started;
        self.handshakes += o.handshakes;
        self.events += o.events;
        self.records += o.records;
        self.interim_records += o.interim_records;
        self.sessions.merge(&o.sessions);
        self.refused += o.refused;
        self.orphaned += o.orphaned;
    }
}

/// What handling a batch produced.
#[derive(Debug, Default)]
pub struct WorkerOutput {
    /// Inspection updates for the owning shards (each names its shard).
    pub updates: Vec<InspectionUpdate>,
    /// Handshake events, in the order they were learnt.
    pub events: Vec<HandshakeEvent>,
    /// Completed flow records, and interim ones (end reason `open`) before them.
    pub records: Vec<FlowRecord>,
}

impl WorkerOutput {
    /// Nothing produced.
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty() && self.events.is_empty() && self.records.is_empty()
    }

    /// Empties every list, keeping their allocations.
    pub fn clear(&mut self) {
        self.updates.clear();
        self.events.clear();
        self.records.clear();
    }
}

#[derive(Debug)]
struct Session {
    slot: u32,
    flow: FlowIdent,
    /// `None` once finished, stopped or aborted.
    parser: Option<Box<dyn HandshakeSession>>,
    log: HandshakeLog,
    /// Log entries / answers already reported as events.
    reported: (usize, usize),
    /// Last update sent (wants client, wants server).
    wants: (bool, bool),
}

/// Runs handshake sessions for shards. See the module docs.
#[derive(Debug)]
pub struct HandshakeWorker {
    cfg: WorkerConfig,
    registry: Registry,
    sessions: FxHashMap<SessionId, Session>,
    /// Latest epoch seen per shard index.
    epochs: Vec<u32>,
    stats: WorkerStats,
}

impl HandshakeWorker {
    /// A worker for the protocols of [`Registry::with_defaults`].
    pub fn new(cfg: WorkerConfig) -> Self {
        HandshakeWorker {
            cfg,
            registry: Registry::with_defaults(),
            sessions: FxHashMap::default(),
            epochs: Vec::new(),
            stats: WorkerStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// Sessions held.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Handles one batch from a shard; what it produces is appended to `out`.
    pub fn handle(&mut self, batch: HandshakeBatch, out: &mut WorkerOutput) {
        let HandshakeBatch {
            shard,
            epoch,
            bytes,
            ops,
        } = batch;
        self.observe_epoch(shard, epoch);
        let id = |serial| SessionId {
            shard,
            epoch,
            serial,
        };
        for op in ops {
            match op {
                HandshakeOp::Start {
                    serial,
                    slot,
                    protocol,
                    flow,
                } => self.start(id(serial), slot, protocol, flow, out),
                HandshakeOp::Data {
                    serial,
                    from_client,
                    start,
                    len,
                    ts,
                } => {
                    let (s, l) = (start as usize, len as usize);
                    let data = bytes.get(s..s.saturating_add(l)).unwrap_or(&[]);
                    self.feed(id(serial), from_client, data, ts, out);
                }
                HandshakeOp::Stop {
                    serial,
                    incomplete,
                    abort,
                } => {
                    if let Some(s) = self.sessions.get_mut(&id(serial)) {
                        stop(s, incomplete, abort, &mut self.stats.sessions);
                        report(s, out, &mut self.stats.events);
                    }
                }
                HandshakeOp::Snapshot { serial, record } => {
                    self.snapshot(id(serial), *record, out);
                }
                HandshakeOp::End {
                    serial,
                    abort,
                    record,
                } => self.end(id(serial), abort, *record, out),
            }
        }
    }

    /// Drops every session left (the input ended; their flows' `End`s will not come).
    pub fn finish(&mut self) {
        self.stats.orphaned += self.sessions.len() as u64;
        self.sessions.clear();
    }

    fn observe_epoch(&mut self, shard: u16, epoch: u32) {
        let i = usize::from(shard);
        if self.epochs.len() <= i {
            self.epochs.resize(i + 1, 0);
        }
        if epoch > self.epochs[i] {
            self.epochs[i] = epoch;
            let before = self.sessions.len();
            self.sessions
                .retain(|id, _| id.shard != shard || id.epoch >= epoch);
            self.stats.orphaned += (before - self.sessions.len()) as u64;
        }
    }

    fn start(
        &mut self,
        id: SessionId,
        slot: u32,
        protocol: u8,
        flow: FlowIdent,
        out: &mut WorkerOutput,
    ) {
        let Some(proto) = self.registry.get(protocol) else {
            self.stats.sessions.drops.bump("unknown_protocol");
            return refuse(id, slot, out);
        };
        if self.sessions.len() >= self.cfg.max_sessions {
            self.stats.refused += 1;
            self.stats.sessions.drops.bump("worker_capacity");
            return refuse(id, slot, out);
        }
        self.stats.sessions_started += 1;
        self.sessions.insert(
            id,
            Session {
                slot,
                flow,
                parser: Some(proto.start(self.cfg.fingerprints)),
                log: HandshakeLog::default(),
                reported: (0, 0),
                wants: (true, true),
            },
        );
    }

    fn feed(
        &mut self,
        id: SessionId,
        from_client: bool,
        data: &[u8],
        ts: Timestamp,
        out: &mut WorkerOutput,
    ) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(parser) = s.parser.as_deref_mut() else {
            return;
        };
        if !parser.wants(from_client) {
            return;
        }
        s.log.at(ts);
        parser.feed(from_client, data, &mut s.log, &mut self.stats.sessions);
        let finished = parser.is_finished();
        let wants = (parser.wants(true), parser.wants(false));
        if finished {
            s.parser = None;
        }
        let answered = s.log.answered();
        let newly_answered = answered > s.reported.1 && answered == s.log.entries().len();
        report(s, out, &mut self.stats.events);
        if finished || wants != s.wants || newly_answered {
            s.wants = wants;
            out.updates.push(InspectionUpdate {
                slot: s.slot,
                session: id,
                wants_client: wants.0 && !finished,
                wants_server: wants.1 && !finished,
                finished,
                answered: newly_answered,
            });
        }
    }

    /// An interim record of a flow that goes on: its handshakes so far (none known: no
    /// record, the final one will come).
    fn snapshot(&mut self, id: SessionId, mut record: FlowRecord, out: &mut WorkerOutput) {
        let Some(s) = self.sessions.get(&id) else {
            return;
        };
        if s.log.entries().is_empty() {
            return;
        }
        record.handshakes = s.log.entries().to_vec();
        record.end_reason = EndReason::Open;
        self.stats.interim_records += 1;
        out.records.push(record);
    }

    fn end(&mut self, id: SessionId, abort: bool, mut record: FlowRecord, out: &mut WorkerOutput) {
        if let Some(mut s) = self.sessions.remove(&id) {
            if abort {
                stop(&mut s, None, true, &mut self.stats.sessions);
                report(&mut s, out, &mut self.stats.events);
            }
            self.stats.handshakes += s.log.client_hellos() as u64;
            record.handshakes = s.log.take();
        }
        self.stats.records += 1;
        out.records.push(record);
    }
}

/// Tells the shard to stop: the session was not started.
fn refuse(id: SessionId, slot: u32, out: &mut WorkerOutput) {
    out.updates.push(InspectionUpdate {
        slot,
        session: id,
        wants_client: false,
        wants_server: false,
        finished: true,
        answered: false,
    });
}

/// Ends an unfinished session: counts `incomplete`, and with `abort` lets the parser report
/// what it left incomplete. A finished session is left as it is.
fn stop(
    s: &mut Session,
    incomplete: Option<&'static str>,
    abort: bool,
    counts: &mut SessionCounts,
) {
    let Some(mut parser) = s.parser.take() else {
        return;
    };
    if let Some(reason) = incomplete {
        counts.incomplete.bump(reason);
    }
    if abort {
        parser.abort(&mut s.log, counts);
    }
}

/// Emits events for log entries learnt since the last report: a new unanswered entry is a
/// ClientHello, a newly answered one a complete handshake.
fn report(s: &mut Session, out: &mut WorkerOutput, events: &mut u64) {
    let entries = s.log.entries();
    let answered = s.log.answered();
    let (seen_entries, seen_answers) = s.reported;
    for h in entries.iter().skip(seen_entries.max(answered)) {
        out.events.push(HandshakeEvent {
            flow: s.flow,
            seen: HelloSeen::Client,
            handshake: h.clone(),
        });
        *events += 1;
    }
    for h in entries.iter().take(answered).skip(seen_answers) {
        out.events.push(HandshakeEvent {
            flow: s.flow,
            seen: HelloSeen::Server,
            handshake: h.clone(),
        });
        *events += 1;
    }
    s.reported = (entries.len(), answered);
}
