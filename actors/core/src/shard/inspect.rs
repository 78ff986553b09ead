//! Per-flow inspection: reassembly of the first bytes and protocol probing. Once a protocol
//! claims a flow, its handshake bytes go to a handshake worker as [`HandshakeOp`]s; the
//! worker's [`InspectionUpdate`]s say which directions still matter. A flow leaves inspection
//! as soon as the worker says its handshake is parsed, no protocol claims it, its depth is
//! exhausted or a memory cap is hit; from then on it costs only counters, and its buffers
//! are freed.

use crate::decode::Packet;
use crate::decode::TcpInfo;
use crate::flow::{FlowMeta, Side};
use crate::handshake::{
    Feed, FlowIdent, HandshakeBatch, HandshakeOp, InspectionUpdate, Probe, Registry, SessionCounts,
};
use crate::reassembly::{
    InsertOutcome, ReassemblyBudget, ReassemblyConfig, ReassemblyStats, StreamReassembler,
};
use flowmesh_schemas::flow::{IPPROTO_TCP, IPPROTO_UDP};
use flowmesh_schemas::{Transport, L7};

/// What a shard keeps per flow beyond the table's metadata.
#[derive(Debug, Default)]
pub struct FlowState {
    /// Application protocol recognised.
    pub l7: Option<L7>,
    /// Live inspection; `None` before the first packet that carries bytes to inspect
    /// (so a flow that only handshakes, like a SYN flood's, holds no buffers) and after
    /// inspection ended.
    inspection: Option<Box<Inspection>>,
    /// A SYN-ACK's acknowledgment number, seen before the inspection existed and without
    /// the SYN it answers: where the other side's data starts.
    syn_ack: Option<(Side, u32)>,
    /// Inspection is over for this flow (finished or given up).
    done: bool,
    /// The handshake session a worker runs for this flow, once a protocol claimed it.
    session: Option<SessionRef>,
    /// The kernel counts this flow's packets (in-kernel bypass).
    pub(crate) bypassed: bool,
    /// The kernel could not take the flow; not asked again.
    pub(crate) bypass_refused: bool,
}

/// Where a flow's handshake session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRef {
    /// Serial within the shard's epoch.
    pub serial: u64,
    /// Index of the worker running it.
    pub worker: u16,
}

#[derive(Debug)]
struct Inspection {
    /// Per physical side (index [`Side::index`]).
    streams: [StreamReassembler; 2],
    /// Per physical side: the worker still wants these bytes.
    wants: [bool; 2],
    /// Per physical side: datagram bytes forwarded (bounded by the depth).
    forwarded: [usize; 2],
}

impl Default for Inspection {
    fn default() -> Self {
        Inspection {
            streams: Default::default(),
            wants: [true; 2],
            forwarded: [0; 2],
        }
    }
}

/// Shared, per-shard context for inspection.
#[derive(Debug)]
pub struct InspectContext<'a> {
    /// Protocols to probe.
    pub registry: &'a Registry,
    /// Reassembly limits.
    pub reassembly: &'a ReassemblyConfig,
    /// Shard-wide reassembly memory.
    pub budget: &'a mut ReassemblyBudget,
    /// Reassembly counters.
    pub reassembly_stats: &'a mut ReassemblyStats,
    /// Shard-side handshake counters (capacity, truncation, caps hit before a session).
    pub counts: &'a mut SessionCounts,
    /// Flows currently under inspection, against `max_inspected`.
    pub inspecting: &'a mut usize,
    /// Cap on flows under inspection at once.
    pub max_inspected: usize,
    /// Handshake work per worker index.
    pub work: &'a mut [HandshakeBatch],
    /// Workers this shard hands sessions to (indexes into `work`).
    pub workers: &'a [u16],
    /// Next session serial.
    pub next_serial: &'a mut u64,
}

impl InspectContext<'_> {
    fn batch(&mut self, worker: u16) -> Option<&mut HandshakeBatch> {
        self.work.get_mut(usize::from(worker))
    }
}

impl FlowState {
    /// Whether the flow is still being inspected.
    pub fn is_inspecting(&self) -> bool {
        !self.done
    }

    /// The flow's handshake session, if a protocol claimed it.
    pub fn session(&self) -> Option<SessionRef> {
        self.session
    }

    /// Runs inspection for one packet of the flow in table slot `slot`.
    pub fn inspect(
        &mut self,
        slot: u32,
        meta: &mut FlowMeta,
        side: Side,
        pkt: &Packet<'_>,
        cx: &mut InspectContext<'_>,
    ) {
        if self.done {
            return;
        }
        let feed = match pkt.proto {
            IPPROTO_TCP => Feed::Stream,
            IPPROTO_UDP => Feed::Datagram,
            _ => return self.stop(cx),
        };
        if !cx.registry.wants(feed) {
            return self.stop(cx);
        }
        if self.inspection.is_none() {
            if feed == Feed::Stream && pkt.payload.is_empty() {
                self.note_syn_ack(meta, side, pkt);
                return;
            }
            if *cx.inspecting >= cx.max_inspected {
                cx.counts.drops.bump("inspection_capacity");
                return self.stop(cx);
            }
            *cx.inspecting += 1;
            self.inspection = Some(self.new_inspection(meta));
        }
        match feed {
            Feed::Stream => self.on_segment(slot, meta, side, pkt, cx),
            Feed::Datagram => self.on_datagram(slot, meta, side, pkt, cx),
        }
    }

    /// Remembers where the SYN-ACK's peer starts sending when its SYN was not seen (the
    /// sides' own SYNs are in `meta.syn_seq`).
    fn note_syn_ack(&mut self, meta: &FlowMeta, side: Side, pkt: &Packet<'_>) {
        let Some(tcp) = pkt.tcp else { return };
        let syn_ack = TcpInfo::SYN | TcpInfo::ACK;
        if tcp.flags & syn_ack == syn_ack && meta.syn_seq[side.other().index()].is_none() {
            self.syn_ack = Some((side.other(), tcp.ack));
        }
    }

    /// An inspection whose streams start where the SYNs seen so far say.
    fn new_inspection(&self, meta: &FlowMeta) -> Box<Inspection> {
        let mut insp = Box::<Inspection>::default();
        for d in [Side::Lo, Side::Hi] {
            let base = match (meta.syn_seq[d.index()], self.syn_ack) {
                // The SYN occupies one sequence number (RFC 9293 §3.4).
                (Some(isn), _) => Some(isn.wrapping_add(1)),
                (None, Some((peer, ack))) if peer == d => Some(ack),
                _ => None,
            };
            if let Some(b) = base {
                insp.streams[d.index()].set_base(b);
            }
        }
        insp
    }

    fn on_segment(
        &mut self,
        slot: u32,
        meta: &mut FlowMeta,
        side: Side,
        pkt: &Packet<'_>,
        cx: &mut InspectContext<'_>,
    ) {
        let Some(tcp) = pkt.tcp else { return };
        let Some(insp) = self.inspection.as_deref_mut() else {
            return;
        };
        let s = side.index();
        if tcp.flags & TcpInfo::SYN != 0 {
            // The SYN occupies one sequence number (RFC 9293 §3.4).
            insp.streams[s].set_base(tcp.seq.wrapping_add(1));
            if tcp.flags & TcpInfo::ACK != 0 && !insp.streams[1 - s].has_base() {
                // SYN-ACK without the SYN: the client's data starts at what it acks.
                insp.streams[1 - s].set_base(tcp.ack);
            }
        }
        if pkt.payload.is_empty() {
            return;
        }
        if pkt.payload.len() < pkt.payload_len as usize {
            // Cut by the capture's snaplen: the missing bytes stay a hole.
            cx.counts.drops.bump("truncated_segment");
        }
        if self.session.is_some() && !insp.wants[s] {
            // The worker is done with this direction: its bytes are only counted.
            return;
        }
        let payload_seq = if tcp.flags & TcpInfo::SYN != 0 {
            tcp.seq.wrapping_add(1)
        } else {
            tcp.seq
        };
        match insp.streams[s].insert(
            payload_seq,
            pkt.payload,
            cx.reassembly,
            cx.budget,
            cx.reassembly_stats,
        ) {
            InsertOutcome::MemCap => return self.give_up(cx, "reassembly_memcap", false),
            InsertOutcome::TooFragmented => {
                return self.give_up(cx, "reassembly_too_fragmented", false)
            }
            InsertOutcome::BeyondDepth | InsertOutcome::Stored | InsertOutcome::Nothing => {}
        }
        if self.session.is_none() {
            let (probe, proto) = cx.registry.probe(Feed::Stream, insp.streams[s].pending());
            match (probe, proto) {
                (Probe::Match { sender_is_client }, Some((index, proto))) => {
                    if let Some(is_client) = sender_is_client {
                        correct_orientation(meta, side, is_client);
                    }
                    self.l7 = Some(proto.l7());
                    self.session = start_session(slot, index, meta, cx);
                }
                (Probe::NeedMore, _) if !at_depth(&insp.streams[s], cx.reassembly) => return,
                _ => return self.stop(cx),
            }
        }
        // Hand every direction's new contiguous bytes over (the other side may have been
        // buffered before the session existed).
        let Some(session) = self.session else { return };
        for d in [side, side.other()] {
            let stream = &mut insp.streams[d.index()];
            let new = stream.take_new();
            if let Some(batch) = cx.batch(session.worker) {
                batch.push_data(session.serial, meta.is_from_client(d), new, meta.last_seen);
            }
            stream.compact(cx.budget);
        }
        if insp.streams.iter().any(|st| at_depth(st, cx.reassembly)) {
            self.give_up(cx, "depth_exceeded", true);
        }
    }

    fn on_datagram(
        &mut self,
        slot: u32,
        meta: &mut FlowMeta,
        side: Side,
        pkt: &Packet<'_>,
        cx: &mut InspectContext<'_>,
    ) {
        if pkt.payload.is_empty() {
            return;
        }
        let Some(insp) = self.inspection.as_deref_mut() else {
            return;
        };
        if self.session.is_none() {
            match cx.registry.probe(Feed::Datagram, pkt.payload) {
                (Probe::Match { sender_is_client }, Some((index, proto))) => {
                    if let Some(is_client) = sender_is_client {
                        correct_orientation(meta, side, is_client);
                    }
                    self.l7 = Some(proto.l7());
                    self.session = start_session(slot, index, meta, cx);
                }
                _ => return self.stop(cx),
            }
        }
        let Some(session) = self.session else { return };
        let s = side.index();
        if !insp.wants[s] {
            return;
        }
        if let Some(batch) = cx.batch(session.worker) {
            batch.push_data(
                session.serial,
                meta.is_from_client(side),
                pkt.payload,
                meta.last_seen,
            );
        }
        insp.forwarded[s] = insp.forwarded[s].saturating_add(pkt.payload.len());
        if insp.forwarded[s] >= cx.reassembly.depth as usize {
            self.give_up(cx, "depth_exceeded", true);
        }
    }

    /// Applies a worker's update: drop the directions it no longer wants, or stop. Returns
    /// the session when the update says its handshakes were just answered.
    pub fn apply(
        &mut self,
        meta: &FlowMeta,
        update: &InspectionUpdate,
        cx: &mut InspectContext<'_>,
    ) -> Option<SessionRef> {
        let session = self.session.filter(|s| s.serial == update.session.serial)?;
        let answered = update.answered.then_some(session);
        if self.done {
            return answered;
        }
        if update.finished {
            self.stop(cx);
            return answered;
        }
        let Some(insp) = self.inspection.as_deref_mut() else {
            return answered;
        };
        let client = meta.client.index();
        insp.wants[client] = update.wants_client;
        insp.wants[1 - client] = update.wants_server;
        for (stream, wants) in insp.streams.iter_mut().zip(insp.wants) {
            if !wants {
                stream.abandon(cx.budget);
            }
        }
        answered
    }

    /// The flow ends: stops inspecting. Returns the flow's session and whether it was still
    /// being inspected (so the worker reports an unfinished handshake as incomplete).
    pub fn end(&mut self, cx: &mut InspectContext<'_>) -> (Option<SessionRef>, bool) {
        let inspecting = self.is_inspecting();
        self.stop(cx);
        (self.session, inspecting)
    }

    /// Gives up inspecting for `reason` (counted as incomplete unless the handshake finished
    /// meanwhile); with `abort`, the session also reports the hellos it left incomplete.
    fn give_up(&mut self, cx: &mut InspectContext<'_>, reason: &'static str, abort: bool) {
        match self.session {
            Some(session) => {
                if let Some(batch) = cx.batch(session.worker) {
                    batch.ops.push(HandshakeOp::Stop {
                        serial: session.serial,
                        incomplete: Some(reason),
                        abort,
                    });
                }
            }
            None => cx.counts.incomplete.bump(reason),
        }
        self.stop(cx);
    }

    /// Ends inspection: frees buffers.
    fn stop(&mut self, cx: &mut InspectContext<'_>) {
        if let Some(mut insp) = self.inspection.take() {
            for s in &mut insp.streams {
                s.release(cx.budget);
            }
            *cx.inspecting = cx.inspecting.saturating_sub(1);
        }
        self.done = true;
    }
}

/// Starts a session on one of the shard's workers, chosen by serial.
fn start_session(
    slot: u32,
    protocol: u8,
    meta: &FlowMeta,
    cx: &mut InspectContext<'_>,
) -> Option<SessionRef> {
    let serial = *cx.next_serial;
    *cx.next_serial += 1;
    let n = cx.workers.len() as u64;
    let worker = *cx.workers.get(usize::try_from(serial % n.max(1)).ok()?)?;
    let (client, server) = match meta.client {
        Side::Lo => (meta.key.lo, meta.key.hi),
        Side::Hi => (meta.key.hi, meta.key.lo),
    };
    cx.batch(worker)?.ops.push(HandshakeOp::Start {
        serial,
        slot,
        protocol,
        flow: FlowIdent {
            transport: Transport::from_proto(meta.key.proto),
            client,
            server,
            vlan: meta.key.vlan,
            first_seen: meta.first_seen,
        },
    });
    Some(SessionRef { serial, worker })
}

fn at_depth(stream: &StreamReassembler, cfg: &ReassemblyConfig) -> bool {
    stream.contiguous_end() >= cfg.depth
}

/// Midstream pickup: trust the handshake over the port guess. A flow whose orientation
/// came from its SYN keeps it.
fn correct_orientation(meta: &mut FlowMeta, side: Side, sender_is_client: bool) {
    if meta.midstream && meta.is_from_client(side) != sender_is_client {
        meta.client = meta.client.other();
    }
}
