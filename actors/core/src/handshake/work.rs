//! What crosses between a shard and a handshake worker.
//!
//! A shard reassembles the first bytes of each flow and probes them; once a protocol claims a
//! flow, the shard hands its handshake bytes to a worker as [`HandshakeOp`]s in a
//! [`HandshakeBatch`] (one per worker and shard turn, the bytes packed into one buffer). The
//! worker parses and fingerprints them and answers with [`InspectionUpdate`]s (which
//! directions still matter) and [`HandshakeEvent`]s (a hello as soon as it is parsed).
//!
//! Invariants:
//! - The ops of one flow reach its worker in the order the shard emitted them (one FIFO edge
//!   per shard and worker); `Start` comes first and `End` last, so a flow's interim record
//!   (from `Snapshot`) leaves the worker before its final one.
//! - A session is named by [`SessionId`]: shard, shard epoch (bumped when a shard restarts
//!   with fresh state) and a serial unique within the epoch, so a restarted shard never
//!   collides with sessions its previous life left behind.
//! - Updates are hints: losing one only delays early discard (the shard keeps forwarding up
//!   to its depth); they never change a record.

use flowmesh_schemas::flow::Endpoint;
use flowmesh_schemas::{FlowRecord, Handshake, Timestamp, Transport};

/// Names one handshake session across the shard/worker boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    /// Index of the owning shard.
    pub shard: u16,
    /// The shard's life: bumped each time the shard restarts with fresh state.
    pub epoch: u32,
    /// Unique within the shard's epoch.
    pub serial: u64,
}

/// Who talks to whom in a flow, as handshake events report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowIdent {
    /// Transport protocol.
    pub transport: Transport,
    /// The initiator.
    pub client: Endpoint,
    /// The responder.
    pub server: Endpoint,
    /// Outermost VLAN id.
    pub vlan: Option<u16>,
    /// The flow's first packet.
    pub first_seen: Timestamp,
}

/// One instruction from a shard to a worker about one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeOp {
    /// A protocol claimed the flow: start its session.
    Start {
        /// The session.
        serial: u64,
        /// The flow's slot in the shard's table, echoed in updates.
        slot: u32,
        /// Index of the protocol in the [`Registry`](super::Registry).
        protocol: u8,
        /// The flow, for handshake events.
        flow: FlowIdent,
    },
    /// The next bytes of one direction (stream bytes in order, or one datagram).
    Data {
        /// The session.
        serial: u64,
        /// Sent by the client.
        from_client: bool,
        /// Offset of the bytes in the batch's buffer.
        start: u32,
        /// Number of bytes.
        len: u32,
        /// Timestamp of the packet that made the bytes available.
        ts: Timestamp,
    },
    /// The shard stopped inspecting. If the session has not finished, `incomplete` (if any)
    /// is counted and, with `abort`, the session counts what it left incomplete.
    Stop {
        /// The session.
        serial: u64,
        /// Reason the shard gave up (memory cap, depth), counted as incomplete.
        incomplete: Option<&'static str>,
        /// Let the session report its incomplete hellos.
        abort: bool,
    },
    /// The flow's handshakes are answered and it goes on: the worker adds the handshakes to
    /// `record` (end reason [`EndReason::Open`](flowmesh_schemas::EndReason::Open)) and
    /// sends it on as an interim record, so the handshakes are stored before the flow ends.
    Snapshot {
        /// The session.
        serial: u64,
        /// The flow's record so far, without handshakes.
        record: Box<FlowRecord>,
    },
    /// The flow ended: the worker completes the record with the handshakes and sends it on.
    /// With `abort`, an unfinished session first reports what it left incomplete.
    End {
        /// The session.
        serial: u64,
        /// Report an unfinished session as incomplete.
        abort: bool,
        /// The flow's record, without handshakes.
        record: Box<FlowRecord>,
    },
}

/// The handshake work of one shard for one worker, gathered over one shard turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeBatch {
    /// Index of the sending shard.
    pub shard: u16,
    /// The sending shard's epoch.
    pub epoch: u32,
    /// Bytes that `Data` ops point into.
    pub bytes: Vec<u8>,
    /// The ops, in order.
    pub ops: Vec<HandshakeOp>,
}

impl HandshakeBatch {
    /// An empty batch from `shard` in `epoch`.
    pub fn new(shard: u16, epoch: u32) -> Self {
        HandshakeBatch {
            shard,
            epoch,
            bytes: Vec::new(),
            ops: Vec::new(),
        }
    }

    /// No ops.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Appends `data`, made available by a packet at `ts`, as the next bytes of one
    /// direction of session `serial`.
    pub fn push_data(&mut self, serial: u64, from_client: bool, data: &[u8], ts: Timestamp) {
        if data.is_empty() {
            return;
        }
        // Batches are flushed every shard turn; a turn cannot gather 4 GiB of handshake bytes
        // (each flow forwards at most its depth), but never wrap silently.
        let (Ok(start), Ok(len)) = (u32::try_from(self.bytes.len()), u32::try_from(data.len()))
        else {
            return;
        };
        self.bytes.extend_from_slice(data);
        self.ops.push(HandshakeOp::Data {
            serial,
            from_client,
            start,
            len,
            ts,
        });
    }
}

/// A worker's answer to a shard about one flow: which directions still matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InspectionUpdate {
    /// The flow's slot in the shard's table.
    pub slot: u32,
    /// The session (checked against the slot's current flow).
    pub session: SessionId,
    /// Client bytes can still matter.
    pub wants_client: bool,
    /// Server bytes can still matter.
    pub wants_server: bool,
    /// Nothing more can be learnt: stop inspecting.
    pub finished: bool,
    /// A ServerHello just answered the last ClientHello: the flow's handshakes are known
    /// as far as they go now (the shard may have an interim record stored).
    pub answered: bool,
}

/// Which hello a handshake event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloSeen {
    /// A ClientHello was parsed (or found malformed): client fields are known.
    Client,
    /// The server answered: the handshake entry is complete.
    Server,
}

/// A handshake learnt, sent on as soon as it is known (before the flow ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeEvent {
    /// The flow.
    pub flow: FlowIdent,
    /// What was just learnt.
    pub seen: HelloSeen,
    /// The handshake entry as known now.
    pub handshake: Handshake,
}
