//! A shard: one flow table and everything it needs, run as plain function calls.
//!
//! `frame → decode (+ defragmentation) → flow table → inspection (reassembly, probing) →
//! handshake work for the workers, flow records`. A shard owns its flows completely; the
//! caller routes both directions of a flow to the same shard (see
//! [`FlowKey::symmetric_hash`]).
//!
//! Handshake parsing runs in [`HandshakeWorker`](crate::handshake::HandshakeWorker)s: a
//! shard emits [`HandshakeBatch`]es and applies the workers' [`InspectionUpdate`]s. The
//! record of a flow with a session goes through its worker (which adds the handshakes);
//! other records come straight out of the shard. [`Inline`] runs a shard and a worker as
//! plain calls, for tests, benchmarks and tools.

pub mod bypass;
mod clock;
mod inline;
mod inspect;
pub mod route;

pub use bypass::{KernelBypass, KernelCounts};
pub use clock::ExpiryClock;
pub use inline::Inline;
pub use inspect::{FlowState, SessionRef};
pub use route::{Route, Router};

use crate::capture::Frame;
use crate::decode::{DecodeConfig, Decoder};
use crate::flow::community_id::community_id_v1;
use crate::flow::conn_state;
use crate::flow::{
    FlowEntry, FlowEvents, FlowMeta, FlowTable, FlowTableConfig, FlowTableStats, PacketView, Side,
};
use crate::handshake::{HandshakeBatch, HandshakeOp, InspectionUpdate, Registry, SessionCounts};
use crate::reassembly::{ReassemblyBudget, ReassemblyConfig, ReassemblyStats};
use crate::stats::ReasonCounts;
use flowmesh_schemas::{EndReason, FlowRecord, Timestamp, Transport, L7};
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
    /// How often (in packet time) idle flows are looked for (see [`ExpiryClock`]).
    pub expire_interval_ns: i64,
    /// Community ID seed.
    pub community_id_seed: u16,
    /// This shard's index (names its sessions).
    pub index: u16,
    /// This shard's life: bump it when restarting a shard with fresh state.
    pub epoch: u32,
    /// Handshake workers in the pipeline (at least 1).
    pub workers: u16,
    /// Shards in the pipeline (at least 1); with `workers`, decides which workers this
    /// shard hands sessions to.
    pub shards: u16,
    /// Each time a flow's ClientHellos are all answered, emit an interim record of it (end
    /// reason [`EndReason::Open`]) through its worker, before the final one (live capture:
    /// the handshakes can be stored while the flow lasts).
    pub interim_records: bool,
}

impl ShardConfig {
    /// The workers this shard hands sessions to: every worker whose index is congruent to
    /// the shard's (when workers outnumber shards), else the one worker `index % workers`.
    pub fn own_workers(&self) -> Vec<u16> {
        let (w, n) = (self.workers.max(1), self.shards.max(1));
        if w > n {
            (0..w).filter(|j| j % n == self.index % n).collect()
        } else {
            vec![self.index % w]
        }
    }
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            decode: DecodeConfig::default(),
            flows: FlowTableConfig::default(),
            reassembly: ReassemblyConfig::default(),
            reassembly_memcap: 256 << 20,
            max_inspected_flows: 200_000,
            expire_interval_ns: 1_000_000_000,
            community_id_seed: 0,
            index: 0,
            epoch: 0,
            workers: 1,
            shards: 1,
            interim_records: false,
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
    /// Flow records emitted, by end reason (indexed like [`EndReason::ENDED`]).
    pub records: [u64; 5],
    /// Shard-side inspection counters (capacity, truncated segments, caps hit before a
    /// protocol was recognised); the workers count the rest.
    pub sessions: SessionCounts,
    /// Reassembly counters.
    pub reassembly: ReassemblyStats,
    /// Flow table counters.
    pub flows: FlowTableStats,
    /// In-kernel bypass counters.
    pub bypass: BypassStats,
}

/// What the shard asked of the kernel's bypass, and what it got back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BypassStats {
    /// Flows handed to the kernel for counting.
    pub flows: u64,
    /// Flows the kernel could not take (map full or error): their packets keep coming.
    pub refused: u64,
    /// Bypassed flows that ended with the kernel's counts added to their record.
    pub counted: u64,
    /// Bypassed flows the kernel no longer held when they ended (evicted).
    pub lost: u64,
    /// Packets the kernel counted for flows that ended.
    pub packets: u64,
    /// Bytes the kernel counted for flows that ended.
    pub bytes: u64,
    /// Flows that looked idle but the kernel had seen recently.
    pub revived: u64,
}

impl BypassStats {
    fn merge(&mut self, o: &BypassStats) {
        self.flows += o.flows;
        self.refused += o.refused;
        self.counted += o.counted;
        self.lost += o.lost;
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.revived += o.revived;
    }
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
        self.sessions.merge(&o.sessions);
        self.reassembly.add(&o.reassembly);
        self.flows.created += o.flows.created;
        self.flows.evicted += o.flows.evicted;
        self.flows.expired += o.flows.expired;
        self.flows.reused += o.flows.reused;
        self.bypass.merge(&o.bypass);
    }
}

/// What a shard produced: records of flows without a session, and handshake work per
/// worker (records of flows with a session travel inside it, as `End` ops).
#[derive(Debug, Default)]
pub struct ShardOutput {
    /// Flow records ready to go on.
    pub records: Vec<FlowRecord>,
    /// Handshake work, indexed by worker.
    pub work: Vec<HandshakeBatch>,
}

impl ShardOutput {
    /// Empty output for a shard of `cfg`.
    pub fn new(cfg: &ShardConfig) -> Self {
        ShardOutput {
            records: Vec::new(),
            work: (0..cfg.workers.max(1))
                .map(|_| HandshakeBatch::new(cfg.index, cfg.epoch))
                .collect(),
        }
    }

    /// Nothing produced.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.work.iter().all(HandshakeBatch::is_empty)
    }
}

/// One shard of the packet pipeline. See the module docs.
#[derive(Debug)]
pub struct Shard {
    decoder: Decoder,
    table: FlowTable<FlowState>,
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
    workers: Vec<u16>,
    next_serial: u64,
    stats: ShardStats,
    /// Where inspected flows are counted in the kernel, when capture supports it.
    bypass: Option<Box<dyn KernelBypass>>,
}

impl Shard {
    /// A shard probing the protocols of [`Registry::with_defaults`] (TLS, QUIC).
    pub fn new(cfg: ShardConfig) -> Self {
        Shard {
            decoder: Decoder::new(cfg.decode),
            table: FlowTable::new(cfg.flows),
            parts: Parts {
                budget: ReassemblyBudget::new(cfg.reassembly_memcap),
                registry: Registry::with_defaults(),
                inspecting: 0,
                workers: cfg.own_workers(),
                next_serial: 0,
                stats: ShardStats::default(),
                bypass: None,
                cfg,
            },
        }
    }

    /// Hands flows whose inspection is over to `bypass` from now on.
    pub fn set_bypass(&mut self, bypass: Box<dyn KernelBypass>) {
        self.parts.bypass = Some(bypass);
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

    /// The configuration.
    pub fn config(&self) -> &ShardConfig {
        &self.parts.cfg
    }

    /// Processes one frame; what it produces is appended to `out`.
    pub fn process_frame(&mut self, frame: &Frame<'_>, out: &mut ShardOutput) {
        let now = frame.ts;
        self.parts.stats.frames += 1;
        self.parts.stats.bytes += u64::from(frame.orig_len);
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
        let (key, from_lo) = pkt.flow_key();
        let side = if from_lo { Side::Lo } else { Side::Hi };
        let view = PacketView {
            now,
            side,
            tcp_flags: pkt.tcp.map_or(0, |t| t.flags),
            tcp_seq: pkt.tcp.map_or(0, |t| t.seq),
            wire_len: pkt.wire_len,
        };
        let parts = &mut self.parts;
        let idx = self.table.update(key, view, &mut Ending { parts, out });
        if let Some(entry) = self.table.get_mut(idx) {
            entry.ext.inspect(
                idx,
                &mut entry.meta,
                side,
                &pkt,
                &mut self.parts.context(&mut out.work),
            );
            self.parts.maybe_bypass(entry);
        }
    }

    /// Applies a worker's update about one of this shard's flows. Updates for other shards or
    /// epochs, or for flows that have ended since, are ignored. With
    /// [`ShardConfig::interim_records`], an update saying a flow's handshakes were just
    /// answered asks its worker for an interim record.
    pub fn apply_update(&mut self, update: &InspectionUpdate, out: &mut ShardOutput) {
        let cfg = &self.parts.cfg;
        if update.session.shard != cfg.index || update.session.epoch != cfg.epoch {
            return;
        }
        if let Some(entry) = self.table.get_mut(update.slot) {
            let answered =
                entry
                    .ext
                    .apply(&entry.meta, update, &mut self.parts.context(&mut out.work));
            if let Some(session) = answered.filter(|_| self.parts.cfg.interim_records) {
                let record = self
                    .parts
                    .record(&entry.meta, entry.ext.l7, EndReason::Open);
                if let Some(batch) = out.work.get_mut(usize::from(session.worker)) {
                    batch.ops.push(HandshakeOp::Snapshot {
                        serial: session.serial,
                        record: Box::new(record),
                    });
                }
            }
            self.parts.maybe_bypass(entry);
        }
    }

    /// Ends every flow idle at `now` (a tick of the [`ExpiryClock`]) and drops timed-out
    /// fragment trains.
    pub fn expire(&mut self, now: Timestamp, out: &mut ShardOutput) {
        self.decoder.expire(now);
        let parts = &mut self.parts;
        self.table
            .expire(now, usize::MAX, &mut Ending { parts, out });
    }

    /// Ends every flow with `end_of_input` (or how it closed) and emits its record.
    pub fn finish(&mut self, out: &mut ShardOutput) {
        self.finish_some(usize::MAX, out);
    }

    /// Like [`Shard::finish`], but ends at most `max` flows, so a caller can pass the
    /// records on before it makes more; returns whether every flow has ended.
    pub fn finish_some(&mut self, max: usize, out: &mut ShardOutput) -> bool {
        let parts = &mut self.parts;
        self.table.drain_some(max, &mut Ending { parts, out })
    }
}

/// The table's events, applied to the shard's parts, records going to `out`.
struct Ending<'a> {
    parts: &'a mut Parts,
    out: &'a mut ShardOutput,
}

impl FlowEvents<FlowState> for Ending<'_> {
    fn end(&mut self, entry: FlowEntry<FlowState>, reason: EndReason) {
        self.parts.end_flow(entry, reason, self.out);
    }

    fn refresh(&mut self, entry: &mut FlowEntry<FlowState>) {
        self.parts.refresh(entry);
    }
}

impl Parts {
    fn context<'a>(&'a mut self, work: &'a mut [HandshakeBatch]) -> InspectContext<'a> {
        InspectContext {
            registry: &self.registry,
            reassembly: &self.cfg.reassembly,
            budget: &mut self.budget,
            reassembly_stats: &mut self.stats.reassembly,
            counts: &mut self.stats.sessions,
            inspecting: &mut self.inspecting,
            max_inspected: self.cfg.max_inspected_flows,
            work,
            workers: &self.workers,
            next_serial: &mut self.next_serial,
        }
    }

    /// Hands a flow whose inspection is over to the kernel's bypass (TCP and UDP only:
    /// what the XDP program can key).
    fn maybe_bypass(&mut self, entry: &mut FlowEntry<FlowState>) {
        let Some(bypass) = self.bypass.as_mut() else {
            return;
        };
        if entry.ext.is_inspecting()
            || entry.ext.bypassed
            || entry.ext.bypass_refused
            || !matches!(entry.meta.key.proto, 6 | 17)
        {
            return;
        }
        // Asked once: a refused flow simply stays in user space.
        if bypass.insert(&entry.meta.key) {
            entry.ext.bypassed = true;
            self.stats.bypass.flows += 1;
        } else {
            entry.ext.bypass_refused = true;
            self.stats.bypass.refused += 1;
        }
    }

    /// A bypassed flow that looks idle: the kernel may have seen it since.
    fn refresh(&mut self, entry: &mut FlowEntry<FlowState>) {
        if !entry.ext.bypassed {
            return;
        }
        let Some(bypass) = self.bypass.as_mut() else {
            return;
        };
        if let Some(seen) = bypass.last_seen(&entry.meta.key) {
            if seen > entry.meta.last_seen {
                entry.meta.last_seen = seen;
                self.stats.bypass.revived += 1;
            }
        }
    }

    /// Adds what the kernel counted for a bypassed flow that ends.
    fn take_kernel_counts(&mut self, meta: &mut FlowMeta) {
        let Some(bypass) = self.bypass.as_mut() else {
            return;
        };
        let Some(k) = bypass.take(&meta.key) else {
            self.stats.bypass.lost += 1;
            return;
        };
        self.stats.bypass.counted += 1;
        for i in 0..2 {
            meta.packets[i] += k.packets[i];
            meta.bytes[i] += k.bytes[i];
            meta.tcp_flags[i] |= k.tcp_flags[i];
            self.stats.bypass.packets += k.packets[i];
            self.stats.bypass.bytes += k.bytes[i];
        }
        if let Some(seen) = k.last_seen {
            meta.last_seen = meta.last_seen.max(seen);
        }
    }

    /// The record of a flow as it stands, without handshakes (a worker adds them).
    fn record(&self, meta: &FlowMeta, l7: Option<L7>, reason: EndReason) -> FlowRecord {
        let (c, s) = (meta.client.index(), meta.client.other().index());
        let (client, server) = match meta.client {
            Side::Lo => (meta.key.lo, meta.key.hi),
            Side::Hi => (meta.key.hi, meta.key.lo),
        };
        FlowRecord {
            transport: Transport::from_proto(meta.key.proto),
            l7,
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
            conn_state: conn_state(meta).to_owned(),
            community_id: community_id_v1(
                self.cfg.community_id_seed,
                client.ip,
                client.port,
                server.ip,
                server.port,
                meta.key.proto,
            ),
            midstream: meta.midstream,
            handshakes: Vec::new(),
        }
    }

    /// Ends a flow: stops its inspection and emits its record, through the flow's worker
    /// when it has a session (the worker adds the handshakes and counts what was left
    /// incomplete).
    fn end_flow(&mut self, entry: FlowEntry<FlowState>, reason: EndReason, out: &mut ShardOutput) {
        let FlowEntry { mut meta, mut ext } = entry;
        if ext.bypassed {
            self.take_kernel_counts(&mut meta);
        }
        let (session, inspecting) = ext.end(&mut self.context(&mut out.work));
        if let Some(i) = EndReason::ENDED.iter().position(|r| *r == reason) {
            self.stats.records[i] += 1;
        }
        let record = self.record(&meta, ext.l7, reason);
        match session.and_then(|s| out.work.get_mut(usize::from(s.worker)).map(|b| (s, b))) {
            Some((s, batch)) => batch.ops.push(HandshakeOp::End {
                serial: s.serial,
                abort: inspecting,
                record: Box::new(record),
            }),
            None => out.records.push(record),
        }
    }
}
