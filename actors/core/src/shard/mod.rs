//! A shard: one flow table and everything it needs, run as plain function calls.
//!
//! `frame → decode (+ defragmentation) → flow table → inspection (reassembly, handshake
//! parsing) → flow records`. A shard owns its flows completely; the caller routes both
//! directions of a flow to the same shard with a [`Router`] (see [`route`]).

mod inspect;
pub mod route;

pub use inspect::FlowState;
pub use route::{Route, Router};

use crate::capture::Frame;
use crate::decode::{DecodeConfig, Decoder, Packet};
use crate::flow::community_id::community_id_v1;
use crate::flow::conn_state;
use crate::flow::{FlowEntry, FlowTable, FlowTableConfig, FlowTableStats, PacketView, Side};
use crate::handshake::{FingerprintSet, Registry, SessionCounts};
use crate::reassembly::{ReassemblyBudget, ReassemblyConfig, ReassemblyStats};
use crate::stats::ReasonCounts;
use flowmesh_schemas::flow::Endpoint;
use flowmesh_schemas::{EndReason, FlowKey, FlowRecord, Timestamp, Transport};
use inspect::InspectContext;

/// Everything that configures a shard.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// Frame decoding and defragmentation limits.
    pub decode: DecodeConfig,
    /// Flow table capacity and timeouts.
    pub flows: FlowTableConfig,
    /// Per-direction reassembly limits.
    pub reassembly: ReassemblyConfig,
    /// Reassembly memory across the shard, in bytes.
    pub reassembly_memcap: usize,
    /// Flows under inspection at once; more are only counted.
    pub max_inspected_flows: usize,
    /// Fingerprints to compute.
    pub fingerprints: FingerprintSet,
    /// How often (in packet time) idle flows are looked for.
    pub expire_interval_ns: i64,
    /// Flows examined per expiry pass at most.
    pub expire_budget: usize,
    /// Community ID seed.
    pub community_id_seed: u16,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            decode: DecodeConfig::default(),
            flows: FlowTableConfig::default(),
            reassembly: ReassemblyConfig::default(),
            reassembly_memcap: 256 << 20,
            max_inspected_flows: 200_000,
            fingerprints: FingerprintSet::default(),
            expire_interval_ns: 1_000_000_000,
            expire_budget: 10_000,
            community_id_seed: 0,
        }
    }
}

/// Counters of one shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Frames offered.
    pub frames: u64,
    /// Wire bytes of the frames offered.
    pub bytes: u64,
    /// Frames dropped by the decoder, by reason.
    pub decode_drops: ReasonCounts,
    /// Flow records emitted, by end reason (indexed like [`EndReason::ALL`]).
    pub records: [u64; 5],
    /// ClientHellos fingerprinted.
    pub handshakes: u64,
    /// Handshake parsing counters.
    pub sessions: SessionCounts,
    /// Reassembly counters.
    pub reassembly: ReassemblyStats,
    /// Flow table counters.
    pub flows: FlowTableStats,
}

impl ShardStats {
    /// Flow records emitted.
    pub fn records_total(&self) -> u64 {
        self.records.iter().sum()
    }

    /// Adds another shard's counters.
    pub fn merge(&mut self, o: &ShardStats) {
        self.frames += o.frames;
        self.bytes += o.bytes;
        self.decode_drops.merge(&o.decode_drops);
        for (a, b) in self.records.iter_mut().zip(o.records) {
            *a += b;
        }
        self.handshakes += o.handshakes;
        self.sessions.malformed.merge(&o.sessions.malformed);
        self.sessions.incomplete.merge(&o.sessions.incomplete);
        self.sessions.drops.merge(&o.sessions.drops);
        self.reassembly.add(&o.reassembly);
        self.flows.created += o.flows.created;
        self.flows.evicted += o.flows.evicted;
        self.flows.expired += o.flows.expired;
        self.flows.reused += o.flows.reused;
    }
}

/// One shard of the packet pipeline. See the module docs.
#[derive(Debug)]
pub struct Shard {
    decoder: Decoder,
    table: FlowTable<FlowState>,
    next_expire: Option<Timestamp>,
    parts: Parts,
}

/// Everything but the decoder and the table: what inspecting a packet and ending a flow
/// touch, kept apart so both can borrow it while the table is borrowed.
#[derive(Debug)]
struct Parts {
    cfg: ShardConfig,
    registry: Registry,
    budget: ReassemblyBudget,
    inspecting: usize,
    stats: ShardStats,
}

impl Shard {
    /// A shard probing the protocols of [`Registry::with_defaults`] (TLS, QUIC).
    pub fn new(cfg: ShardConfig) -> Self {
        Shard {
            decoder: Decoder::new(cfg.decode),
            table: FlowTable::new(cfg.flows),
            next_expire: None,
            parts: Parts {
                budget: ReassemblyBudget::new(cfg.reassembly_memcap),
                registry: Registry::with_defaults(),
                inspecting: 0,
                stats: ShardStats::default(),
                cfg,
            },
        }
    }

    /// Counters so far (the table's are copied in).
    pub fn stats(&self) -> ShardStats {
        let mut s = self.parts.stats.clone();
        s.flows = *self.table.stats();
        s
    }

    /// Live flows.
    pub fn flow_count(&self) -> usize {
        self.table.len()
    }

    /// Reassembly bytes in use.
    pub fn reassembly_bytes(&self) -> usize {
        self.parts.budget.used
    }

    /// Processes one frame; records of flows that ended are appended to `out`.
    pub fn process_frame(&mut self, frame: &Frame<'_>, out: &mut Vec<FlowRecord>) {
        let now = frame.ts;
        self.parts.stats.frames += 1;
        self.parts.stats.bytes += u64::from(frame.orig_len);
        self.maybe_expire(now, out);
        let pkt = match self
            .decoder
            .decode(now, frame.link, frame.data, frame.orig_len)
        {
            Ok(Some(pkt)) => pkt,
            Ok(None) => return,
            Err(reason) => {
                self.parts.stats.decode_drops.bump(reason.as_str());
                return;
            }
        };
        let (key, from_lo) = packet_key(&pkt);
        let side = if from_lo { Side::Lo } else { Side::Hi };
        let view = PacketView {
            now,
            side,
            tcp_flags: pkt.tcp.map_or(0, |t| t.flags),
            tcp_seq: pkt.tcp.map_or(0, |t| t.seq),
            wire_len: pkt.wire_len,
        };
        let parts = &mut self.parts;
        let idx = self.table.update(key, view, &mut |entry, reason| {
            parts.end_flow(entry, reason, out)
        });
        if let Some(FlowEntry { meta, ext }) = self.table.get_mut(idx) {
            ext.inspect(meta, side, &pkt, &mut self.parts.context());
        }
    }

    fn maybe_expire(&mut self, now: Timestamp, out: &mut Vec<FlowRecord>) {
        let interval = self.parts.cfg.expire_interval_ns;
        let due = self.next_expire.get_or_insert(now.add_nanos(interval));
        if now < *due {
            return;
        }
        *due = now.add_nanos(interval);
        self.decoder.expire(now);
        let parts = &mut self.parts;
        let budget = parts.cfg.expire_budget;
        self.table.expire(now, budget, &mut |entry, reason| {
            parts.end_flow(entry, reason, out)
        });
    }

    /// Ends every flow with `end_of_input` (or how it closed) and emits its record.
    pub fn finish(&mut self, out: &mut Vec<FlowRecord>) {
        let parts = &mut self.parts;
        self.table
            .drain(&mut |entry, reason| parts.end_flow(entry, reason, out));
    }
}

/// The flow key of a packet and whether it travels from `lo` to `hi`: the one rule by
/// which both a shard and the [`Router`] that picks the shard key a packet.
#[inline]
pub(crate) fn packet_key(pkt: &Packet<'_>) -> (FlowKey, bool) {
    let src = Endpoint {
        ip: pkt.src,
        port: pkt.src_port,
    };
    let dst = Endpoint {
        ip: pkt.dst,
        port: pkt.dst_port,
    };
    FlowKey::from_packet(src, dst, pkt.proto, pkt.vlan)
}

impl Parts {
    fn context(&mut self) -> InspectContext<'_> {
        InspectContext {
            registry: &self.registry,
            fingerprints: self.cfg.fingerprints,
            reassembly: &self.cfg.reassembly,
            budget: &mut self.budget,
            reassembly_stats: &mut self.stats.reassembly,
            counts: &mut self.stats.sessions,
            inspecting: &mut self.inspecting,
            max_inspected: self.cfg.max_inspected_flows,
        }
    }

    /// Ends a flow: stops its inspection (counting what was left incomplete) and emits
    /// its record.
    fn end_flow(
        &mut self,
        entry: FlowEntry<FlowState>,
        reason: EndReason,
        out: &mut Vec<FlowRecord>,
    ) {
        let FlowEntry { meta, mut ext } = entry;
        if ext.is_inspecting() {
            ext.abort(&mut self.context());
        }
        self.stats.handshakes += ext.log.client_hellos() as u64;
        if let Some(i) = EndReason::ALL.iter().position(|r| *r == reason) {
            self.stats.records[i] += 1;
        }
        let (c, s) = (meta.client.index(), meta.client.other().index());
        let (client, server) = match meta.client {
            Side::Lo => (meta.key.lo, meta.key.hi),
            Side::Hi => (meta.key.hi, meta.key.lo),
        };
        out.push(FlowRecord {
            transport: Transport::from_proto(meta.key.proto),
            l7: ext.l7,
            client_ip: client.ip,
            client_port: client.port,
            server_ip: server.ip,
            server_port: server.port,
            vlan: meta.key.vlan,
            first_seen: meta.first_seen,
            last_seen: meta.last_seen,
            packets_c2s: meta.packets[c],
            packets_s2c: meta.packets[s],
            bytes_c2s: meta.bytes[c],
            bytes_s2c: meta.bytes[s],
            tcp_flags_c2s: meta.tcp_flags[c],
            tcp_flags_s2c: meta.tcp_flags[s],
            end_reason: reason,
            conn_state: conn_state(&meta).to_owned(),
            community_id: community_id_v1(
                self.cfg.community_id_seed,
                client.ip,
                client.port,
                server.ip,
                server.port,
                meta.key.proto,
            ),
            midstream: meta.midstream,
            handshakes: ext.log.take(),
        });
    }
}
