//! The flow table of one shard.
//!
//! Entries live in a slab (`Vec`) indexed by `u32`, found through a hash map keyed by the
//! symmetric [`FlowKey`], and threaded on an intrusive least-recently-active list. The
//! list gives O(1) eviction of the least recently active flow when the table is full, and
//! lets idle expiry stop at the first flow that is too recent to have timed out under any
//! timeout. The table never grows past its capacity: a new flow evicts (and ends) the
//! least recently active one, and every eviction is counted.
//!
//! Per-direction state is stored by *physical side* (`Side::Lo` sent by the key's lower
//! endpoint); which side is the client is a flag, so orientation can be corrected later
//! (midstream pickup) without moving counters.

use crate::decode::TcpInfo;
use flowmesh_schemas::flow::{IPPROTO_TCP, IPPROTO_UDP};
use flowmesh_schemas::{EndReason, FlowKey, Timestamp};
use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use std::hash::BuildHasher;

/// The physical sender of a packet: the key's lower or higher endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Sent by `key.lo`.
    Lo,
    /// Sent by `key.hi`.
    Hi,
}

impl Side {
    /// 0 for `Lo`, 1 for `Hi`.
    pub fn index(self) -> usize {
        match self {
            Side::Lo => 0,
            Side::Hi => 1,
        }
    }

    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Lo => Side::Hi,
            Side::Hi => Side::Lo,
        }
    }
}

/// What a table tells its owner about flows: a flow ends (always), and a flow that looks
/// timed out may be revived first (its packets were counted elsewhere, e.g. in the kernel).
pub trait FlowEvents<X> {
    /// A flow ended, for `reason`.
    fn end(&mut self, entry: FlowEntry<X>, reason: EndReason);

    /// A flow looks timed out; move its `last_seen` forward if it was active after all.
    fn refresh(&mut self, _entry: &mut FlowEntry<X>) {}
}

impl<X, F: FnMut(FlowEntry<X>, EndReason)> FlowEvents<X> for F {
    fn end(&mut self, entry: FlowEntry<X>, reason: EndReason) {
        self(entry, reason);
    }
}

/// Timeouts and capacity of a flow table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTableConfig {
    /// Maximum number of flows; a new flow past it evicts the least recently active one.
    pub capacity: usize,
    /// TCP flow that has seen packets from one side only (e.g. a lone SYN).
    pub tcp_new_timeout_ns: i64,
    /// TCP flow with traffic both ways.
    pub tcp_established_timeout_ns: i64,
    /// TCP flow after RST or FIN from both sides: late ACKs still count to it.
    pub tcp_closed_timeout_ns: i64,
    /// UDP flow seen one way only.
    pub udp_new_timeout_ns: i64,
    /// UDP flow with traffic both ways.
    pub udp_established_timeout_ns: i64,
    /// Any other protocol.
    pub other_timeout_ns: i64,
}

const SEC: i64 = 1_000_000_000;

impl Default for FlowTableConfig {
    fn default() -> Self {
        FlowTableConfig {
            capacity: 1 << 20,
            tcp_new_timeout_ns: 60 * SEC,
            tcp_established_timeout_ns: 300 * SEC,
            tcp_closed_timeout_ns: 10 * SEC,
            udp_new_timeout_ns: 30 * SEC,
            udp_established_timeout_ns: 120 * SEC,
            other_timeout_ns: 60 * SEC,
        }
    }
}

impl FlowTableConfig {
    fn min_timeout(&self) -> i64 {
        [
            self.tcp_new_timeout_ns,
            self.tcp_established_timeout_ns,
            self.tcp_closed_timeout_ns,
            self.udp_new_timeout_ns,
            self.udp_established_timeout_ns,
            self.other_timeout_ns,
        ]
        .into_iter()
        .min()
        .unwrap_or(0)
    }
}

/// What the table needs to know of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketView {
    /// Packet timestamp.
    pub now: Timestamp,
    /// Which endpoint of the key sent it.
    pub side: Side,
    /// TCP flags (0 for other protocols).
    pub tcp_flags: u8,
    /// TCP sequence number (0 for other protocols).
    pub tcp_seq: u32,
    /// Length on the wire.
    pub wire_len: u32,
}

/// Everything the table tracks of a flow, apart from the caller's per-flow state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowMeta {
    /// The flow's symmetric key.
    pub key: FlowKey,
    /// Which side is the client (initiator).
    pub client: Side,
    /// Orientation was guessed: no SYN or SYN-ACK told who initiated.
    pub midstream: bool,
    /// First packet.
    pub first_seen: Timestamp,
    /// Last packet.
    pub last_seen: Timestamp,
    /// Packets per physical side.
    pub packets: [u64; 2],
    /// Wire bytes per physical side.
    pub bytes: [u64; 2],
    /// OR of TCP flags per physical side.
    pub tcp_flags: [u8; 2],
    /// A FIN was sent by this physical side.
    pub fin: [bool; 2],
    /// A RST was seen.
    pub rst: bool,
    /// Sequence number of the SYN each physical side sent, if seen.
    pub syn_seq: [Option<u32>; 2],
}

impl FlowMeta {
    /// The side a packet direction maps to, given the orientation.
    pub fn is_from_client(&self, side: Side) -> bool {
        side == self.client
    }

    /// TCP connection is over: RST, or FIN from both sides.
    pub fn is_closed(&self) -> bool {
        self.rst || (self.fin[0] && self.fin[1])
    }

    /// The reason to report when the flow ends for `trigger`: a closed TCP connection
    /// reports how it closed, whatever flushed it.
    pub fn end_reason(&self, trigger: EndReason) -> EndReason {
        if self.rst {
            EndReason::Rst
        } else if self.fin[0] && self.fin[1] {
            EndReason::Fin
        } else {
            trigger
        }
    }

    fn timeout_ns(&self, cfg: &FlowTableConfig) -> i64 {
        let both_ways = self.packets[0] > 0 && self.packets[1] > 0;
        match self.key.proto {
            IPPROTO_TCP if self.is_closed() => cfg.tcp_closed_timeout_ns,
            IPPROTO_TCP if both_ways => cfg.tcp_established_timeout_ns,
            IPPROTO_TCP => cfg.tcp_new_timeout_ns,
            IPPROTO_UDP if both_ways => cfg.udp_established_timeout_ns,
            IPPROTO_UDP => cfg.udp_new_timeout_ns,
            _ => cfg.other_timeout_ns,
        }
    }

    fn is_expired(&self, now: Timestamp, cfg: &FlowTableConfig) -> bool {
        now.nanos_since(self.last_seen) >= self.timeout_ns(cfg)
    }
}

/// A flow: the table's metadata and the caller's per-flow state.
#[derive(Debug)]
pub struct FlowEntry<X> {
    /// Table-maintained metadata.
    pub meta: FlowMeta,
    /// Caller state (inspection, handshakes).
    pub ext: X,
}

/// Counters of the flow table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowTableStats {
    /// Flows created.
    pub created: u64,
    /// Flows ended because the table was full.
    pub evicted: u64,
    /// Flows ended by idle timeout (whatever reason they report).
    pub expired: u64,
    /// Flows ended because a new SYN reused the 5-tuple of a closed connection.
    pub reused: u64,
}

const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Slot<X> {
    entry: Option<FlowEntry<X>>,
    prev: u32,
    next: u32,
}

/// The flow table of one shard. See the module docs.
#[derive(Debug)]
pub struct FlowTable<X> {
    cfg: FlowTableConfig,
    /// Slot of each live flow, found by its key's hash. The key itself lives only in the
    /// slot: an index entry is 4 bytes, not a copy of the 48-byte key (at a million
    /// flows, about 100 MB less, and less to move when the index grows).
    index: HashTable<u32>,
    slots: Slots<X>,
    free: Vec<u32>,
    /// Most recently active.
    head: u32,
    /// Least recently active.
    tail: u32,
    stats: FlowTableStats,
}

impl<X: Default> FlowTable<X> {
    /// An empty table.
    pub fn new(cfg: FlowTableConfig) -> Self {
        FlowTable {
            cfg,
            index: HashTable::new(),
            slots: Slots::default(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            stats: FlowTableStats::default(),
        }
    }

    /// Number of live flows.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// No live flows.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Counters.
    pub fn stats(&self) -> &FlowTableStats {
        &self.stats
    }

    /// Configuration.
    pub fn config(&self) -> &FlowTableConfig {
        &self.cfg
    }

    /// Finds or creates the flow of a packet and accounts the packet to it. Flows that
    /// end on the way (timed out, closed and reused, evicted for room) are passed to
    /// `on_end` with their reason. A flow that looks timed out is first passed to
    /// `on_end.refresh`, which may move its `last_seen` forward (packets counted elsewhere, e.g.
    /// by the kernel for a bypassed flow). Returns the flow's handle for
    /// [`FlowTable::get_mut`].
    pub fn update(
        &mut self,
        key: FlowKey,
        pkt: PacketView,
        on_end: &mut impl FlowEvents<X>,
    ) -> u32 {
        let mut found = self.find(&key);
        if let Some(idx) = found {
            // Checked once per packet; only a flow that looks timed out is refreshed and
            // checked again.
            let mut expired = self.slot_entry(idx).meta.is_expired(pkt.now, &self.cfg);
            if expired {
                on_end.refresh(self.slot_entry_mut(idx));
                expired = self.slot_entry(idx).meta.is_expired(pkt.now, &self.cfg);
            }
            let meta = &self.slot_entry(idx).meta;
            let syn_only = pkt.tcp_flags & (TcpInfo::SYN | TcpInfo::ACK) == TcpInfo::SYN;
            if expired {
                self.stats.expired += 1;
                self.end(idx, EndReason::Idle, on_end);
                found = None;
            } else if syn_only
                && (meta.is_closed()
                    || meta.syn_seq[pkt.side.index()].is_some_and(|isn| isn != pkt.tcp_seq))
            {
                // Port reuse: a SYN after the connection closed (RFC 9293 §3.6.1
                // TIME-WAIT reuse), or a SYN with a new initial sequence number on a
                // connection whose end the capture missed: a new connection.
                self.stats.reused += 1;
                self.end(idx, EndReason::Idle, on_end);
                found = None;
            }
        }
        let idx = match found {
            // Already the most recently active: nothing to relink (the common case of a
            // busy flow's packets in a row).
            Some(idx) if idx == self.head => idx,
            Some(idx) => {
                self.unlink(idx);
                self.push_front(idx);
                idx
            }
            None => {
                let idx = self.create(key, &pkt, on_end);
                self.push_front(idx);
                idx
            }
        };
        let meta = &mut self.slot_entry_mut(idx).meta;
        let s = pkt.side.index();
        meta.last_seen = meta.last_seen.max(pkt.now);
        meta.packets[s] += 1;
        meta.bytes[s] += u64::from(pkt.wire_len);
        meta.tcp_flags[s] |= pkt.tcp_flags;
        if pkt.tcp_flags & TcpInfo::FIN != 0 {
            meta.fin[s] = true;
        }
        if pkt.tcp_flags & TcpInfo::RST != 0 {
            meta.rst = true;
        }
        if pkt.tcp_flags & TcpInfo::SYN != 0 && meta.syn_seq[s].is_none() {
            meta.syn_seq[s] = Some(pkt.tcp_seq);
        }
        idx
    }

    fn create(&mut self, key: FlowKey, pkt: &PacketView, on_end: &mut impl FlowEvents<X>) -> u32 {
        if self.index.len() >= self.cfg.capacity.max(1) && self.tail != NIL {
            self.stats.evicted += 1;
            let victim = self.tail;
            self.end(victim, EndReason::Evicted, on_end);
        }
        let (client, midstream) = orientation(&key, pkt);
        let entry = FlowEntry {
            meta: FlowMeta {
                key,
                client,
                midstream,
                first_seen: pkt.now,
                last_seen: pkt.now,
                packets: [0; 2],
                bytes: [0; 2],
                tcp_flags: [0; 2],
                fin: [false; 2],
                rst: false,
                syn_seq: [None; 2],
            },
            ext: X::default(),
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].entry = Some(entry);
                i
            }
            None => {
                self.slots.push(Slot {
                    entry: Some(entry),
                    prev: NIL,
                    next: NIL,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        self.index
            .insert_unique(key_hash(&key), idx, |&i| key_hash(slot_key(slots, i)));
        self.stats.created += 1;
        idx
    }

    /// The flow behind a handle returned by [`FlowTable::update`] in this same step.
    pub fn get_mut(&mut self, idx: u32) -> Option<&mut FlowEntry<X>> {
        self.slots
            .get_mut(idx as usize)
            .and_then(|s| s.entry.as_mut())
    }

    /// Ends flows idle past their timeout, least recently active first, examining at most
    /// `budget` flows. A flow about to time out is first passed to `on_end.refresh` (see
    /// [`FlowTable::update`]); one it revived becomes the most recently active. Returns how
    /// many ended.
    pub fn expire(
        &mut self,
        now: Timestamp,
        budget: usize,
        on_end: &mut impl FlowEvents<X>,
    ) -> usize {
        let min_timeout = self.cfg.min_timeout();
        let mut cur = self.tail;
        let mut ended = 0;
        for _ in 0..budget {
            if cur == NIL {
                break;
            }
            let slot = &self.slots[cur as usize];
            let prev = slot.prev;
            let Some(entry) = slot.entry.as_ref() else {
                break;
            };
            // Everything more recent than this cannot have timed out under any timeout.
            if now.nanos_since(entry.meta.last_seen) < min_timeout {
                break;
            }
            if entry.meta.is_expired(now, &self.cfg) {
                on_end.refresh(self.slot_entry_mut(cur));
                if self.slot_entry(cur).meta.is_expired(now, &self.cfg) {
                    self.stats.expired += 1;
                    self.end(cur, EndReason::Idle, on_end);
                    ended += 1;
                } else {
                    self.unlink(cur);
                    self.push_front(cur);
                }
            }
            cur = prev;
        }
        ended
    }

    /// Ends every flow (end of input or shutdown), least recently active first.
    pub fn drain(&mut self, on_end: &mut impl FlowEvents<X>) {
        self.drain_some(usize::MAX, on_end);
    }

    /// Like [`FlowTable::drain`], but ends at most `max` flows (least recently active
    /// first); returns whether the table is now empty.
    pub fn drain_some(&mut self, max: usize, on_end: &mut impl FlowEvents<X>) -> bool {
        for _ in 0..max {
            if self.tail == NIL {
                break;
            }
            let idx = self.tail;
            self.end(idx, EndReason::EndOfInput, on_end);
        }
        self.tail == NIL
    }

    fn end(&mut self, idx: u32, trigger: EndReason, on_end: &mut impl FlowEvents<X>) {
        self.unlink(idx);
        if let Some(entry) = self.slots[idx as usize].entry.take() {
            if let Ok(found) = self
                .index
                .find_entry(key_hash(&entry.meta.key), |&i| i == idx)
            {
                found.remove();
            }
            self.free.push(idx);
            let reason = entry.meta.end_reason(trigger);
            on_end.end(entry, reason);
        }
    }

    /// The slot of the live flow with `key`.
    fn find(&self, key: &FlowKey) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(key_hash(key), |&i| slot_key(slots, i) == key)
            .copied()
    }

    fn slot_entry(&self, idx: u32) -> &FlowEntry<X> {
        self.slots[idx as usize]
            .entry
            .as_ref()
            .expect("indexed slot holds a flow")
    }

    fn slot_entry_mut(&mut self, idx: u32) -> &mut FlowEntry<X> {
        self.slots[idx as usize]
            .entry
            .as_mut()
            .expect("indexed slot holds a flow")
    }

    fn unlink(&mut self, idx: u32) {
        let (prev, next) = {
            let s = &self.slots[idx as usize];
            (s.prev, s.next)
        };
        if prev != NIL {
            self.slots[prev as usize].next = next;
        } else if self.head == idx {
            self.head = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        } else if self.tail == idx {
            self.tail = prev;
        }
        let s = &mut self.slots[idx as usize];
        s.prev = NIL;
        s.next = NIL;
    }

    fn push_front(&mut self, idx: u32) {
        let old = self.head;
        {
            let s = &mut self.slots[idx as usize];
            s.prev = NIL;
            s.next = old;
        }
        if old != NIL {
            self.slots[old as usize].prev = idx;
        }
        self.head = idx;
        if self.tail == NIL {
            self.tail = idx;
        }
    }
}

/// Who initiated a new flow. TCP: the SYN's sender, or the SYN-ACK's receiver. Without
/// either (midstream pickup) the endpoint with the lower port is taken as the server, the
/// common case for services; a handshake parser may correct this later. Other protocols:
/// the sender of the first packet.
fn orientation(key: &FlowKey, pkt: &PacketView) -> (Side, bool) {
    if key.proto == IPPROTO_TCP {
        let syn = pkt.tcp_flags & TcpInfo::SYN != 0;
        let ack = pkt.tcp_flags & TcpInfo::ACK != 0;
        if syn && !ack {
            return (pkt.side, false);
        }
        if syn && ack {
            return (pkt.side.other(), false);
        }
        let server = if key.lo.port < key.hi.port {
            Side::Lo
        } else {
            Side::Hi
        };
        return (server.other(), true);
    }
    (pkt.side, false)
}

/// Slots per [`Slots`] chunk.
const SLOT_CHUNK: usize = 1 << 14;

/// The table's slots, in chunks of [`SLOT_CHUNK`] that never move: growing the table adds
/// a chunk instead of copying every flow into an array twice the size (which would hold
/// both copies at the peak).
#[derive(Debug)]
struct Slots<X> {
    chunks: Vec<Vec<Slot<X>>>,
    len: usize,
}

impl<X> Default for Slots<X> {
    fn default() -> Self {
        Slots {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<X> Slots<X> {
    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, slot: Slot<X>) {
        if self.len.is_multiple_of(SLOT_CHUNK) {
            self.chunks.push(Vec::with_capacity(SLOT_CHUNK));
        }
        self.chunks[self.len / SLOT_CHUNK].push(slot);
        self.len += 1;
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Slot<X>> {
        self.chunks.get_mut(i / SLOT_CHUNK)?.get_mut(i % SLOT_CHUNK)
    }
}

impl<X> std::ops::Index<usize> for Slots<X> {
    type Output = Slot<X>;

    fn index(&self, i: usize) -> &Slot<X> {
        &self.chunks[i / SLOT_CHUNK][i % SLOT_CHUNK]
    }
}

impl<X> std::ops::IndexMut<usize> for Slots<X> {
    fn index_mut(&mut self, i: usize) -> &mut Slot<X> {
        &mut self.chunks[i / SLOT_CHUNK][i % SLOT_CHUNK]
    }
}

/// The index's hash of a flow key.
fn key_hash(key: &FlowKey) -> u64 {
    FxBuildHasher.hash_one(key)
}

/// The key of the flow in an indexed slot (every indexed slot holds a flow).
fn slot_key<X>(slots: &Slots<X>, idx: u32) -> &FlowKey {
    &slots[idx as usize]
        .entry
        .as_ref()
        .expect("indexed slot holds a flow")
        .meta
        .key
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowmesh_schemas::flow::Endpoint;
    use std::net::{IpAddr, Ipv4Addr};

    fn key(port: u16, proto: u8) -> (FlowKey, Side) {
        let c = Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            port,
        };
        let s = Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            port: 443,
        };
        let (k, fwd) = FlowKey::from_packet(c, s, proto, None);
        (k, if fwd { Side::Lo } else { Side::Hi })
    }

    fn pkt(t: i64, side: Side, flags: u8) -> PacketView {
        PacketView {
            now: Timestamp(t * SEC),
            side,
            tcp_flags: flags,
            tcp_seq: 1000,
            wire_len: 100,
        }
    }

    type Ended = Vec<(FlowMeta, EndReason)>;

    fn run(table: &mut FlowTable<()>, ended: &mut Ended, k: FlowKey, p: PacketView) -> u32 {
        table.update(k, p, &mut |e: FlowEntry<()>, r| ended.push((e.meta, r)))
    }

    #[test]
    fn syn_orients_and_fin_closes() {
        let mut t = FlowTable::<()>::new(FlowTableConfig::default());
        let mut ended = Ended::new();
        let (k, c) = key(40000, IPPROTO_TCP);
        run(&mut t, &mut ended, k, pkt(1, c, TcpInfo::SYN));
        run(
            &mut t,
            &mut ended,
            k,
            pkt(1, c.other(), TcpInfo::SYN | TcpInfo::ACK),
        );
        run(
            &mut t,
            &mut ended,
            k,
            pkt(2, c, TcpInfo::FIN | TcpInfo::ACK),
        );
        run(
            &mut t,
            &mut ended,
            k,
            pkt(2, c.other(), TcpInfo::FIN | TcpInfo::ACK),
        );
        let idx = run(&mut t, &mut ended, k, pkt(2, c, TcpInfo::ACK));
        let m = &t.get_mut(idx).expect("flow").meta;
        assert_eq!(m.client, c);
        assert!(!m.midstream);
        assert_eq!(m.packets[c.index()], 3);
        assert!(m.is_closed());
        t.expire(Timestamp(100 * SEC), 10, &mut |e: FlowEntry<()>, r| {
            ended.push((e.meta, r))
        });
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].1, EndReason::Fin);
    }

    #[test]
    fn syn_ack_first_orients_to_receiver() {
        let mut t = FlowTable::<()>::new(FlowTableConfig::default());
        let mut ended = Ended::new();
        let (k, c) = key(40000, IPPROTO_TCP);
        let idx = run(
            &mut t,
            &mut ended,
            k,
            pkt(1, c.other(), TcpInfo::SYN | TcpInfo::ACK),
        );
        assert_eq!(t.get_mut(idx).expect("flow").meta.client, c);
    }

    #[test]
    fn midstream_guesses_lower_port_is_server() {
        let mut t = FlowTable::<()>::new(FlowTableConfig::default());
        let mut ended = Ended::new();
        let (k, c) = key(40000, IPPROTO_TCP);
        let idx = run(&mut t, &mut ended, k, pkt(1, c.other(), TcpInfo::ACK));
        let m = &t.get_mut(idx).expect("flow").meta;
        assert_eq!(m.client, c);
        assert!(m.midstream);
    }

    #[test]
    fn idle_flow_ends_and_a_new_one_starts() {
        let mut t = FlowTable::<()>::new(FlowTableConfig::default());
        let mut ended = Ended::new();
        let (k, c) = key(5353, IPPROTO_UDP);
        run(&mut t, &mut ended, k, pkt(0, c, 0));
        run(&mut t, &mut ended, k, pkt(1000, c, 0));
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].1, EndReason::Idle);
        assert_eq!(t.len(), 1);
        assert_eq!(t.stats().created, 2);
    }

    #[test]
    fn rst_then_new_syn_is_a_new_flow() {
        let mut t = FlowTable::<()>::new(FlowTableConfig::default());
        let mut ended = Ended::new();
        let (k, c) = key(40000, IPPROTO_TCP);
        run(&mut t, &mut ended, k, pkt(1, c, TcpInfo::SYN));
        run(
            &mut t,
            &mut ended,
            k,
            pkt(1, c.other(), TcpInfo::RST | TcpInfo::ACK),
        );
        run(&mut t, &mut ended, k, pkt(2, c, TcpInfo::SYN));
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].1, EndReason::Rst);
        assert_eq!(t.stats().reused, 1);
    }

    #[test]
    fn syn_with_a_new_isn_starts_a_new_flow_but_a_retransmitted_syn_does_not() {
        let mut t = FlowTable::<()>::new(FlowTableConfig::default());
        let mut ended = Ended::new();
        let (k, c) = key(40000, IPPROTO_TCP);
        run(&mut t, &mut ended, k, pkt(1, c, TcpInfo::SYN));
        run(&mut t, &mut ended, k, pkt(2, c, TcpInfo::SYN));
        run(
            &mut t,
            &mut ended,
            k,
            pkt(2, c.other(), TcpInfo::SYN | TcpInfo::ACK),
        );
        assert!(
            ended.is_empty(),
            "a retransmitted SYN is the same connection"
        );
        let mut p = pkt(3, c, TcpInfo::SYN);
        p.tcp_seq = 99;
        run(&mut t, &mut ended, k, p);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].0.packets[c.index()], 2);
        assert_eq!(t.stats().reused, 1);
    }

    #[test]
    fn capacity_evicts_least_recently_active() {
        let cfg = FlowTableConfig {
            capacity: 3,
            ..FlowTableConfig::default()
        };
        let mut t = FlowTable::<()>::new(cfg);
        let mut ended = Ended::new();
        for p in 0..3u16 {
            let (k, c) = key(1000 + p, IPPROTO_UDP);
            run(&mut t, &mut ended, k, pkt(i64::from(p), c, 0));
        }
        // Touch the oldest so the second becomes least recently active.
        let (k0, c0) = key(1000, IPPROTO_UDP);
        run(&mut t, &mut ended, k0, pkt(3, c0, 0));
        let (k3, c3) = key(2000, IPPROTO_UDP);
        run(&mut t, &mut ended, k3, pkt(4, c3, 0));
        assert_eq!(t.len(), 3);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].1, EndReason::Evicted);
        assert_eq!(ended[0].0.key, key(1001, IPPROTO_UDP).0);
    }

    #[test]
    fn flows_across_slot_chunks_are_found_and_their_slots_reused() {
        let mut t = FlowTable::<()>::new(FlowTableConfig::default());
        let mut ended = Ended::new();
        let n = 3 * SLOT_CHUNK as u16 + 7;
        for round in 0..2 {
            for p in 1..=n {
                let (k, c) = key(p, IPPROTO_UDP);
                run(&mut t, &mut ended, k, pkt(round, c, 0));
            }
        }
        assert_eq!(t.stats().created, u64::from(n));
        assert!(ended.is_empty());
        // The least recently active half ends; new flows take their slots.
        let half = usize::from(n / 2);
        assert!(!t.drain_some(half, &mut |e: FlowEntry<()>, r| ended.push((e.meta, r))));
        assert_eq!(ended.len(), half);
        for p in 1..=n / 2 {
            let (k, c) = key(p, IPPROTO_TCP);
            run(&mut t, &mut ended, k, pkt(2, c, 0));
        }
        assert_eq!(t.len(), usize::from(n));
        assert_eq!(
            t.slots.len(),
            usize::from(n),
            "ended flows' slots were reused"
        );
        // Every live flow is still found, with its own counts.
        ended.clear();
        t.drain(&mut |e: FlowEntry<()>, r| ended.push((e.meta, r)));
        let udp: Vec<_> = ended
            .iter()
            .filter(|(m, _)| m.key.proto == IPPROTO_UDP)
            .collect();
        let tcp: Vec<_> = ended
            .iter()
            .filter(|(m, _)| m.key.proto == IPPROTO_TCP)
            .collect();
        assert_eq!(udp.len(), usize::from(n) - half);
        assert!(udp.iter().all(|(m, _)| m.packets.iter().sum::<u64>() == 2));
        assert_eq!(tcp.len(), half);
        assert!(tcp.iter().all(|(m, _)| m.packets.iter().sum::<u64>() == 1));
        assert!(t.is_empty());
    }

    #[test]
    fn drain_ends_everything_with_end_of_input() {
        let mut t = FlowTable::<()>::new(FlowTableConfig::default());
        let mut ended = Ended::new();
        for p in 0..5u16 {
            let (k, c) = key(1000 + p, IPPROTO_UDP);
            run(&mut t, &mut ended, k, pkt(1, c, 0));
        }
        t.drain(&mut |e: FlowEntry<()>, r| ended.push((e.meta, r)));
        assert_eq!(ended.len(), 5);
        assert!(ended.iter().all(|(_, r)| *r == EndReason::EndOfInput));
        assert!(t.is_empty());
    }

    #[test]
    fn expire_respects_budget_and_recency() {
        let mut t = FlowTable::<()>::new(FlowTableConfig::default());
        let mut ended = Ended::new();
        for p in 0..10u16 {
            let (k, c) = key(1000 + p, IPPROTO_UDP);
            run(&mut t, &mut ended, k, pkt(i64::from(p), c, 0));
        }
        // At t=35 s flows seen at t<=5 have passed the 30 s one-way UDP timeout.
        assert_eq!(
            t.expire(Timestamp(35 * SEC), 3, &mut |e: FlowEntry<()>, r| ended
                .push((e.meta, r))),
            3
        );
        assert_eq!(
            t.expire(Timestamp(35 * SEC), 100, &mut |e: FlowEntry<()>, r| ended
                .push((e.meta, r))),
            3
        );
        assert_eq!(t.len(), 4);
    }

    /// Packets counted elsewhere (a bypassed flow) revive a flow that looks idle, on the
    /// expiry walk and when its next packet arrives.
    struct Revive {
        seen: Timestamp,
        ended: Ended,
    }

    impl FlowEvents<()> for Revive {
        fn end(&mut self, e: FlowEntry<()>, r: EndReason) {
            self.ended.push((e.meta, r));
        }
        fn refresh(&mut self, e: &mut FlowEntry<()>) {
            e.meta.last_seen = e.meta.last_seen.max(self.seen);
        }
    }

    #[test]
    fn a_flow_seen_elsewhere_is_revived_not_expired() {
        let mut t = FlowTable::<()>::new(FlowTableConfig::default());
        let (k, c) = key(40000, IPPROTO_UDP);
        let mut ev = Revive {
            seen: Timestamp(250 * SEC),
            ended: Ended::new(),
        };
        t.update(k, pkt(0, c, 0), &mut ev);
        // Long past the UDP timeout, but seen elsewhere at 250 s.
        assert_eq!(t.expire(Timestamp(260 * SEC), 10, &mut ev), 0);
        assert!(ev.ended.is_empty());
        assert_eq!(t.len(), 1);
        // The next packet finds the same flow, revived.
        t.update(k, pkt(270, c, 0), &mut ev);
        assert!(ev.ended.is_empty());
        assert_eq!(t.len(), 1);
        // Nothing elsewhere any more: it expires.
        assert_eq!(t.expire(Timestamp(2000 * SEC), 10, &mut ev), 1);
        assert_eq!(ev.ended.len(), 1);
        assert_eq!(ev.ended[0].1, EndReason::Idle);
        assert_eq!(ev.ended[0].0.last_seen, Timestamp(270 * SEC));
    }
}
