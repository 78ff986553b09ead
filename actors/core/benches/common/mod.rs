//! Shared input builders for the flowmesh-core benches: hand-built Ethernet/IPv4/TCP
//! frames, a TLS 1.3 handshake driven through a [`Shard`], and embedded ClientHellos.
//! Nothing here reads a file: every input is built in memory.
#![allow(dead_code, clippy::unwrap_used)]

pub mod hellos;

use flowmesh_core::capture::{Frame, LinkType};
use flowmesh_core::shard::Inline;
use flowmesh_schemas::{FlowRecord, Timestamp};

/// Decodes a hex string, ignoring whitespace.
pub fn hex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// Offsets into a frame built by [`tcp_frame`] (Ethernet 14 + IPv4 20 + TCP 20).
pub const OFF_SRC_PORT: usize = 34;
pub const OFF_DST_PORT: usize = 36;
pub const OFF_SEQ: usize = 38;
pub const OFF_ACK: usize = 42;
pub const HEADERS: usize = 54;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// One TCP endpoint pair, client first.
#[derive(Debug, Clone, Copy)]
pub struct Tuple {
    pub client: [u8; 4],
    pub cport: u16,
    pub server: [u8; 4],
    pub sport: u16,
}

impl Tuple {
    /// The `i`-th of many distinct client endpoints talking to one server on 443.
    pub fn nth(i: u32) -> Tuple {
        let [_, b, c, d] = i.to_be_bytes();
        Tuple {
            client: [10, b, c, d.max(1)],
            cport: 20_000 + (i % 40_000) as u16,
            server: [192, 0, 2, 10],
            sport: 443,
        }
    }
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(c[1]))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet II / IPv4 / TCP frame (no TCP options; valid IPv4 header checksum; the
/// TCP checksum is left 0, the decoder does not verify it).
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADERS + payload.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
    let total = (20 + 20 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&ack.to_be_bytes());
    f.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Client-to-server data frame of `t` carrying `payload`.
pub fn c2s(t: &Tuple, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    tcp_frame(
        t.client, t.cport, t.server, t.sport, seq, ack, flags, payload,
    )
}

/// Server-to-client data frame of `t` carrying `payload`.
pub fn s2c(t: &Tuple, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    tcp_frame(
        t.server, t.sport, t.client, t.cport, seq, ack, flags, payload,
    )
}

/// A frame record at `ts` over `data`.
pub fn frame(ts: Timestamp, data: &[u8]) -> Frame<'_> {
    Frame {
        ts,
        link: LinkType::Ethernet,
        data,
        orig_len: data.len() as u32,
        interface: 0,
    }
}

/// A minimal TLS 1.3 ServerHello record (TLS_AES_128_GCM_SHA256, supported_versions
/// 0x0304, an X25519 key share), as a server sends it in clear.
pub fn server_hello_record() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0x0303u16.to_be_bytes());
    body.extend_from_slice(&[0x5a; 32]); // random
    body.push(32);
    body.extend_from_slice(&[0x11; 32]); // legacy_session_id echo
    body.extend_from_slice(&0x1301u16.to_be_bytes());
    body.push(0);
    let mut exts = Vec::new();
    exts.extend_from_slice(&[0x00, 0x2b, 0x00, 0x02, 0x03, 0x04]);
    exts.extend_from_slice(&[0x00, 0x33, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20]);
    exts.extend_from_slice(&[0x77; 32]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![2u8];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 3];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    // Middlebox-compat CCS and the encrypted rest of the server flight.
    rec.extend_from_slice(&[20, 3, 3, 0, 1, 1]);
    rec.extend_from_slice(&[23, 3, 3, 0, 64]);
    rec.extend_from_slice(&[0xee; 64]);
    rec
}

/// Client records after the ClientHello: compat CCS, then encrypted Finished (type 23).
pub fn client_after_hello() -> Vec<u8> {
    let mut rec = vec![20, 3, 3, 0, 1, 1, 23, 3, 3, 0, 53];
    rec.extend_from_slice(&[0xcc; 53]);
    rec
}

/// Sequence numbers of a flow whose handshake [`establish`] played.
#[derive(Debug, Clone, Copy)]
pub struct Established {
    /// Next client sequence number.
    pub cseq: u32,
    /// Next server sequence number (what the client acks).
    pub sseq: u32,
}

/// Plays SYN, SYN-ACK, ACK, the ClientHello record, a TLS 1.3 server flight and the
/// client's CCS + Finished on `t` through `shard`, starting at `ts`; afterwards the
/// flow's inspection is over (both TLS directions finished).
pub fn establish(
    shard: &mut Inline,
    t: &Tuple,
    client_hello_record: &[u8],
    ts: &mut Timestamp,
    out: &mut Vec<FlowRecord>,
) -> Established {
    let cisn: u32 = 0x1000_0000 ^ u32::from(t.cport);
    let sisn: u32 = 0x7000_0000;
    let sh = server_hello_record();
    let fin = client_after_hello();
    let (c1, s1) = (cisn.wrapping_add(1), sisn.wrapping_add(1));
    let c2 = c1.wrapping_add(client_hello_record.len() as u32);
    let s2 = s1.wrapping_add(sh.len() as u32);
    let c3 = c2.wrapping_add(fin.len() as u32);
    let frames = [
        c2s(t, cisn, 0, SYN, &[]),
        s2c(t, sisn, c1, SYN | ACK, &[]),
        c2s(t, c1, s1, ACK, &[]),
        c2s(t, c1, s1, PSH | ACK, client_hello_record),
        s2c(t, s1, c2, ACK, &[]),
        s2c(t, s1, c2, PSH | ACK, &sh),
        c2s(t, c2, s2, PSH | ACK, &fin),
    ];
    for f in &frames {
        *ts = ts.add_nanos(10_000);
        shard.process_frame(&frame(*ts, f), out);
    }
    Established { cseq: c3, sseq: s2 }
}
