//! QUIC v1 long-header packets (RFC 9000 §17.2): client Initials carrying the ClientHello
//! in CRYPTO frames, padded to 1200 bytes; the server's Initial with its ServerHello,
//! coalesced with an opaque Handshake packet.

use super::initial::{DirectionKeys, ProtectError};
use crate::rng::Rng;

/// Appends a QUIC variable-length integer (RFC 9000 §16).
pub fn varint(out: &mut Vec<u8>, v: u64) {
    if v < 1 << 6 {
        out.push(v as u8);
    } else if v < 1 << 14 {
        out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes());
    } else if v < 1 << 30 {
        out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes());
    } else {
        out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes());
    }
}

/// Minimum size of a datagram carrying a client Initial (RFC 9000 §14.1).
pub const MIN_CLIENT_DATAGRAM: usize = 1200;

/// Largest datagram the server sends: what a 1500-byte MTU carries over IPv6
/// (1500 - 40 - 8).
pub const MAX_SERVER_DATAGRAM: usize = 1452;

/// Bytes of a Handshake packet's long header with 8-byte connection IDs and a 2-byte
/// length: flags, version, two IDs with their lengths, length.
const HANDSHAKE_HEADER_LEN: usize = 1 + 4 + 1 + 8 + 1 + 8 + 2;

/// Smallest Handshake packet body: packet number, some payload and the 16-byte tag.
const MIN_HANDSHAKE_PACKET: usize = 20;

/// Transport parameters (RFC 9000 §18) of a browser-like client.
pub fn transport_params(scid: &[u8], out: &mut Vec<u8>) {
    let mut p = |id: u64, v: u64| {
        varint(out, id);
        let mut tmp = Vec::with_capacity(8);
        varint(&mut tmp, v);
        varint(out, tmp.len() as u64);
        out.extend_from_slice(&tmp);
    };
    p(0x01, 30_000); // max_idle_timeout
    p(0x03, 1472); // max_udp_payload_size
    p(0x04, 15_728_640); // initial_max_data
    p(0x05, 6_291_456); // initial_max_stream_data_bidi_local
    p(0x06, 6_291_456);
    p(0x07, 6_291_456);
    p(0x08, 100); // initial_max_streams_bidi
    p(0x09, 103);
    varint(out, 0x0f); // initial_source_connection_id
    varint(out, scid.len() as u64);
    out.extend_from_slice(scid);
}

/// Connection IDs of one QUIC connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnIds {
    /// The client's original Destination Connection ID (keys derive from it).
    pub dcid: [u8; 8],
    /// The client's Source Connection ID.
    pub client_scid: [u8; 8],
    /// The server's Source Connection ID.
    pub server_scid: [u8; 8],
}

fn long_header(
    out: &mut Vec<u8>,
    ty: u8,
    dcid: &[u8],
    scid: &[u8],
    token: bool,
    pn_len: usize,
) -> usize {
    out.push(0xc0 | (ty << 4) | (pn_len as u8 - 1));
    out.extend_from_slice(&1u32.to_be_bytes());
    out.push(dcid.len() as u8);
    out.extend_from_slice(dcid);
    out.push(scid.len() as u8);
    out.extend_from_slice(scid);
    if token {
        varint(out, 0); // Initial: empty token
    }
    let at = out.len();
    out.extend_from_slice(&[0x40, 0]); // 2-byte length, patched
    at
}

/// Builds one protected Initial packet into `out` (appended): `frames` is the plaintext
/// payload, padded with PADDING frames so that the packet reaches `min_len`.
#[allow(clippy::too_many_arguments)]
pub fn initial_packet(
    keys: &DirectionKeys,
    dcid: &[u8],
    scid: &[u8],
    pn: u64,
    frames: &[u8],
    min_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), ProtectError> {
    let pn_len = 2;
    let start = out.len();
    let len_at = long_header(out, 0, dcid, scid, true, pn_len);
    out.extend_from_slice(&(pn as u16).to_be_bytes());
    let header_len = out.len() - start;
    out.extend_from_slice(frames);
    let with_tag = out.len() - start + 16;
    if with_tag < min_len {
        out.resize(out.len() + (min_len - with_tag), 0);
    }
    let length = out.len() - len_at - 2 + 16;
    out[len_at..len_at + 2].copy_from_slice(&((length as u16) | 0x4000).to_be_bytes());
    keys.seal(out, start, header_len, pn, pn_len)
}

/// A CRYPTO frame (RFC 9000 §19.6) carrying `data` at `offset`.
pub fn crypto_frame(offset: u64, data: &[u8], out: &mut Vec<u8>) {
    out.push(0x06);
    varint(out, offset);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// The client's first flight: one datagram per element of `out`, each an Initial of at
/// least 1200 bytes. A ClientHello too large for one packet is split across two, and
/// (like Chromium's "chaos protection") the second part may be sent first.
pub fn client_initials(
    keys: &DirectionKeys,
    ids: &ConnIds,
    client_hello: &[u8],
    rng: &mut Rng,
    out: &mut Vec<Vec<u8>>,
) -> Result<(), ProtectError> {
    out.clear();
    // 1200 - long header (1+4+1+8+1+8+1+2+2 = 28) - tag 16 - frame header (~5)
    let room = MIN_CLIENT_DATAGRAM - 28 - 16 - 6;
    let parts: Vec<(u64, &[u8])> = if client_hello.len() <= room {
        vec![(0, client_hello)]
    } else {
        let cut = room.min(client_hello.len() - 1);
        let mut v = vec![
            (0u64, &client_hello[..cut]),
            (cut as u64, &client_hello[cut..]),
        ];
        if rng.chance(0.5) {
            v.swap(0, 1);
        }
        v
    };
    let mut frames = Vec::with_capacity(1200);
    for (pn, (off, data)) in parts.into_iter().enumerate() {
        frames.clear();
        if rng.chance(0.3) {
            frames.push(0x01); // PING
        }
        crypto_frame(off, data, &mut frames);
        let mut pkt = Vec::with_capacity(MIN_CLIENT_DATAGRAM);
        initial_packet(
            keys,
            &ids.dcid,
            &ids.client_scid,
            pn as u64,
            &frames,
            MIN_CLIENT_DATAGRAM,
            &mut pkt,
        )?;
        out.push(pkt);
    }
    Ok(())
}

/// The server's first flight, one datagram per element of `out`: its Initial (an ACK of
/// `largest_acked` and the ServerHello in a CRYPTO frame) coalesced with the start of a
/// Handshake flight of `handshake_len` opaque bytes (EncryptedExtensions, Certificate, ...:
/// its keys come from the TLS exchange), whose rest follows in Handshake packets. No
/// datagram exceeds [`MAX_SERVER_DATAGRAM`], so every frame fits a 1500-byte MTU, as
/// servers send before path MTU discovery. A ServerHello with a post-quantum key share
/// (about 1.2 KB) leaves room for little else in the first datagram.
pub fn server_initial(
    keys: &DirectionKeys,
    ids: &ConnIds,
    largest_acked: u64,
    server_hello: &[u8],
    handshake_len: usize,
    rng: &mut Rng,
    out: &mut Vec<Vec<u8>>,
) -> Result<(), ProtectError> {
    out.clear();
    let mut frames = Vec::with_capacity(server_hello.len() + 16);
    frames.push(0x02); // ACK
    varint(&mut frames, largest_acked);
    varint(&mut frames, 0); // ack delay
    varint(&mut frames, 0); // range count
    varint(&mut frames, largest_acked); // first range
    crypto_frame(0, server_hello, &mut frames);
    let mut dgram = Vec::with_capacity(MAX_SERVER_DATAGRAM);
    initial_packet(
        keys,
        &ids.client_scid,
        &ids.server_scid,
        0,
        &frames,
        0,
        &mut dgram,
    )?;
    let mut left = handshake_len.max(MIN_HANDSHAKE_PACKET);
    while left > 0 {
        let room = MAX_SERVER_DATAGRAM.saturating_sub(dgram.len() + HANDSHAKE_HEADER_LEN);
        if room < MIN_HANDSHAKE_PACKET {
            out.push(std::mem::replace(
                &mut dgram,
                Vec::with_capacity(MAX_SERVER_DATAGRAM),
            ));
            continue;
        }
        let body = left.min(room);
        handshake_packet(ids, body, rng, &mut dgram);
        left -= body;
        if left > 0 {
            // The rest goes in a packet of its own, of at least the smallest size.
            left = left.max(MIN_HANDSHAKE_PACKET);
        }
    }
    out.push(dgram);
    Ok(())
}

/// Appends a Handshake packet (type 2) of `body` opaque bytes (packet number, payload
/// and tag: its keys come from the TLS exchange) to `out`.
fn handshake_packet(ids: &ConnIds, body: usize, rng: &mut Rng, out: &mut Vec<u8>) {
    let len_at = long_header(out, 2, &ids.client_scid, &ids.server_scid, false, 2);
    out[len_at..len_at + 2].copy_from_slice(&((body as u16) | 0x4000).to_be_bytes());
    let at = out.len();
    out.resize(at + body, 0);
    rng.fill(&mut out[at..]);
}

/// A 1-RTT (short header) packet of `len` opaque bytes to `dcid`.
pub fn short_packet(dcid: &[u8], len: usize, rng: &mut Rng, out: &mut Vec<u8>) {
    out.clear();
    out.push(0x40 | (rng.below(32) as u8 & 0x3f));
    out.extend_from_slice(dcid);
    let at = out.len();
    out.resize(at + len.max(20), 0);
    rng.fill(&mut out[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quic::InitialKeys;

    #[test]
    fn varints() {
        let mut v = Vec::new();
        varint(&mut v, 37);
        varint(&mut v, 15293);
        varint(&mut v, 494_878_333);
        assert_eq!(v, [0x25, 0x7b, 0xbd, 0x9d, 0x7f, 0x3e, 0x7d]);
    }

    #[test]
    fn large_hello_spans_two_padded_initials() {
        let ids = ConnIds {
            dcid: [1; 8],
            client_scid: [2; 8],
            server_scid: [3; 8],
        };
        let keys = InitialKeys::new(&ids.dcid).expect("keys");
        let mut out = Vec::new();
        let ch = vec![7u8; 1900];
        client_initials(&keys.client, &ids, &ch, &mut Rng::new(1), &mut out).expect("seal");
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|p| p.len() == MIN_CLIENT_DATAGRAM));
        client_initials(&keys.client, &ids, &ch[..400], &mut Rng::new(1), &mut out).expect("seal");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), MIN_CLIENT_DATAGRAM);
    }
}
