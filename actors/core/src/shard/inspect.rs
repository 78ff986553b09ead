//! Per-flow inspection: reassembly of the first bytes, protocol probing and the
//! handshake session. A flow leaves inspection as soon as its handshake is parsed, no
//! protocol claims it, its depth is exhausted or a memory cap is hit; from then on it
//! costs only counters, and its buffers are freed.

use crate::decode::Packet;
use crate::decode::TcpInfo;
use crate::flow::{FlowMeta, Side};
use crate::handshake::{
    Feed, FingerprintSet, HandshakeLog, HandshakeSession, Probe, Registry, SessionCounts,
};
use crate::reassembly::{
    InsertOutcome, ReassemblyBudget, ReassemblyConfig, ReassemblyStats, StreamReassembler,
};
use flowmesh_schemas::flow::{IPPROTO_TCP, IPPROTO_UDP};
use flowmesh_schemas::L7;

/// What a shard keeps per flow beyond the table's metadata.
#[derive(Debug, Default)]
pub struct FlowState {
    /// Application protocol recognised.
    pub l7: Option<L7>,
    /// Handshakes seen.
    pub log: HandshakeLog,
    /// Live inspection; `None` before the first packet and after inspection ended.
    inspection: Option<Box<Inspection>>,
    /// Inspection is over for this flow (finished or given up).
    done: bool,
}

#[derive(Debug, Default)]
struct Inspection {
    /// Per physical side (index [`Side::index`]).
    streams: [StreamReassembler; 2],
    session: Option<Box<dyn HandshakeSession>>,
}

/// Shared, per-shard context for inspection.
#[derive(Debug)]
pub struct InspectContext<'a> {
    /// Protocols to probe.
    pub registry: &'a Registry,
    /// Fingerprints to compute.
    pub fingerprints: FingerprintSet,
    /// Reassembly limits.
    pub reassembly: &'a ReassemblyConfig,
    /// Shard-wide reassembly memory.
    pub budget: &'a mut ReassemblyBudget,
    /// Reassembly counters.
    pub reassembly_stats: &'a mut ReassemblyStats,
    /// Handshake counters.
    pub counts: &'a mut SessionCounts,
    /// Flows currently under inspection, against `max_inspected`.
    pub inspecting: &'a mut usize,
    /// Cap on flows under inspection at once.
    pub max_inspected: usize,
}

impl FlowState {
    /// Whether the flow is still being inspected.
    pub fn is_inspecting(&self) -> bool {
        !self.done
    }

    /// Runs inspection for one packet of the flow.
    pub fn inspect(
        &mut self,
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
            if *cx.inspecting >= cx.max_inspected {
                cx.counts.drops.bump("inspection_capacity");
                return self.stop(cx);
            }
            *cx.inspecting += 1;
            self.inspection = Some(Box::default());
        }
        match feed {
            Feed::Stream => self.on_segment(meta, side, pkt, cx),
            Feed::Datagram => self.on_datagram(meta, side, pkt, cx),
        }
    }

    fn on_segment(
        &mut self,
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
        if let Some(session) = insp.session.as_deref() {
            if !session.wants(meta.is_from_client(side)) {
                // This direction's parser is done: its bytes are only counted.
                insp.streams[s].abandon(cx.budget);
                return;
            }
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
            InsertOutcome::MemCap => {
                cx.counts.incomplete.bump("reassembly_memcap");
                return self.stop(cx);
            }
            InsertOutcome::TooFragmented => {
                cx.counts.incomplete.bump("reassembly_too_fragmented");
                return self.stop(cx);
            }
            InsertOutcome::BeyondDepth | InsertOutcome::Stored | InsertOutcome::Nothing => {}
        }
        if insp.session.is_none() {
            let (probe, proto) = cx.registry.probe(Feed::Stream, insp.streams[s].pending());
            match (probe, proto) {
                (Probe::Match { sender_is_client }, Some(proto)) => {
                    if let Some(is_client) = sender_is_client {
                        correct_orientation(meta, side, is_client);
                    }
                    self.l7 = Some(proto.l7());
                    insp.session = Some(proto.start(cx.fingerprints));
                }
                (Probe::NeedMore, _) if !at_depth(&insp.streams[s], cx.reassembly) => return,
                _ => return self.stop(cx),
            }
        }
        // Feed every direction's new contiguous bytes (the other side may have been
        // buffered before the session existed).
        if let Some(session) = insp.session.as_deref_mut() {
            for d in [side, side.other()] {
                let stream = &mut insp.streams[d.index()];
                session.feed(
                    meta.is_from_client(d),
                    stream.take_new(),
                    &mut self.log,
                    cx.counts,
                );
                stream.compact(cx.budget);
            }
        }
        let finished = insp.session.as_deref().is_some_and(|s| s.is_finished());
        let stuck = insp.streams.iter().any(|st| at_depth(st, cx.reassembly));
        if finished {
            self.stop(cx);
        } else if stuck {
            cx.counts.incomplete.bump("depth_exceeded");
            self.abort(cx);
        }
    }

    fn on_datagram(
        &mut self,
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
        if insp.session.is_none() {
            match cx.registry.probe(Feed::Datagram, pkt.payload) {
                (Probe::Match { sender_is_client }, Some(proto)) => {
                    if let Some(is_client) = sender_is_client {
                        correct_orientation(meta, side, is_client);
                    }
                    self.l7 = Some(proto.l7());
                    insp.session = Some(proto.start(cx.fingerprints));
                }
                _ => return self.stop(cx),
            }
        }
        if let Some(session) = insp.session.as_deref_mut() {
            session.feed(
                meta.is_from_client(side),
                pkt.payload,
                &mut self.log,
                cx.counts,
            );
            if session.is_finished() {
                self.stop(cx);
            }
        }
    }

    /// Ends inspection: frees buffers, counts what a session left incomplete.
    pub fn abort(&mut self, cx: &mut InspectContext<'_>) {
        if let Some(session) = self
            .inspection
            .as_deref_mut()
            .and_then(|i| i.session.as_deref_mut())
        {
            session.abort(&mut self.log, cx.counts);
        }
        self.stop(cx);
    }

    /// Ends inspection without counting anything incomplete.
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
