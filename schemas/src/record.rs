//! The flow record: what flowmesh emits when a flow ends.

use crate::flow::{EndReason, Transport, L7};
use crate::handshake::Handshake;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A finished flow. Its JSON form is the line format of `flowmesh replay`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// Transport protocol.
    pub transport: Transport,
    /// Application protocol recognised (`tls`, `quic`), or `None`.
    pub l7: Option<L7>,
    /// Initiator address.
    pub client_ip: IpAddr,
    /// Initiator port.
    pub client_port: u16,
    /// Responder address.
    pub server_ip: IpAddr,
    /// Responder port.
    pub server_port: u16,
    /// Outermost VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// Timestamp of the first packet.
    pub first_seen: Timestamp,
    /// Timestamp of the last packet.
    pub last_seen: Timestamp,
    /// Packets from client to server.
    pub packets_c2s: u64,
    /// Packets from server to client.
    pub packets_s2c: u64,
    /// Bytes on the wire (original frame lengths) from client to server.
    pub bytes_c2s: u64,
    /// Bytes on the wire (original frame lengths) from server to client.
    pub bytes_s2c: u64,
    /// OR of the TCP flags the client sent.
    pub tcp_flags_c2s: u8,
    /// OR of the TCP flags the server sent.
    pub tcp_flags_s2c: u8,
    /// Why the record was emitted.
    pub end_reason: EndReason,
    /// Connection state summary with Zeek's `conn_state` codes (`S0`, `SF`, `REJ`, `RSTO`, …).
    pub conn_state: String,
    /// Community ID v1 (`1:…`, seed 0).
    pub community_id: String,
    /// Orientation was guessed (no SYN seen): from the handshake or the ports.
    pub midstream: bool,
    /// One entry per ClientHello, in order.
    pub handshakes: Vec<Handshake>,
}

impl FlowRecord {
    /// An interim record of a flow still open ([`EndReason::Open`]), to be replaced by
    /// the flow's final record.
    pub fn is_interim(&self) -> bool {
        self.end_reason == EndReason::Open
    }
}
