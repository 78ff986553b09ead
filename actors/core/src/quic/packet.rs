//! Long-header parsing, header-protection removal and AEAD opening of Initial packets.
//!
//! Long header (RFC 9000 §17.2):
//! ```text
//! Header Form (1) = 1, Fixed Bit (1), Long Packet Type (2), Type-Specific Bits (4),
//! Version (32), DCID Len (8), DCID (0..160), SCID Len (8), SCID (0..160), ...
//! Initial (§17.2.2): Token Length (i), Token (..), Length (i), Packet Number (8..32), Payload
//! ```
//! QUIC v2 permutes the long-packet-type codes (RFC 9369 §3.2).

use super::keys::{DirectionKeys, TAG_LEN};
use super::varint::{encode_varint, Reader, VARINT_MAX};
use super::{QuicDrop, QuicVersion, MAX_CID_LEN};

/// Size of the header-protection sample (RFC 9001 §5.4.2).
pub const SAMPLE_LEN: usize = 16;

/// Long-header packet types, independent of the version's wire encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongPacketType {
    /// Initial (v1 type 0b00, v2 type 0b01).
    Initial,
    /// 0-RTT (v1 0b01, v2 0b10).
    ZeroRtt,
    /// Handshake (v1 0b10, v2 0b11).
    Handshake,
    /// Retry (v1 0b11, v2 0b00).
    Retry,
    /// Version Negotiation: version field 0 (RFC 9000 §17.2.1).
    VersionNegotiation,
    /// A version this module does not know; the type bits cannot be interpreted.
    Unknown,
}

impl LongPacketType {
    /// Decodes the two type bits of `first` for `version` (RFC 9000 §17.2, RFC 9369 §3.2).
    pub fn from_bits(version: QuicVersion, first: u8) -> Self {
        let bits = (first >> 4) & 0x03;
        match (version, bits) {
            (QuicVersion::V1, 0) | (QuicVersion::V2, 1) => Self::Initial,
            (QuicVersion::V1, 1) | (QuicVersion::V2, 2) => Self::ZeroRtt,
            (QuicVersion::V1, 2) | (QuicVersion::V2, 3) => Self::Handshake,
            _ => Self::Retry,
        }
    }

    /// The two type bits for `version`, shifted into place (bits 4–5 of the first byte).
    pub fn to_bits(self, version: QuicVersion) -> u8 {
        let bits = match (version, self) {
            (QuicVersion::V1, Self::Initial) | (QuicVersion::V2, Self::Retry) => 0,
            (QuicVersion::V1, Self::ZeroRtt) | (QuicVersion::V2, Self::Initial) => 1,
            (QuicVersion::V1, Self::Handshake) | (QuicVersion::V2, Self::ZeroRtt) => 2,
            _ => 3,
        };
        bits << 4
    }
}

/// The version-independent part of a long header plus the decoded packet type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongHeader<'a> {
    /// First byte as on the wire (still header-protected for Initial/Handshake/0-RTT).
    pub first: u8,
    /// The raw 32-bit version.
    pub version_wire: u32,
    /// The version, if supported.
    pub version: Option<QuicVersion>,
    /// Decoded long-packet type.
    pub packet_type: LongPacketType,
    /// Destination Connection ID.
    pub dcid: &'a [u8],
    /// Source Connection ID.
    pub scid: &'a [u8],
    /// Offset of the first byte after the SCID.
    pub after_cids: usize,
}

/// Parses the long header at the start of `buf` up to and including the SCID.
/// Connection IDs of supported versions must be ≤ 20 bytes (RFC 9000 §17.2); for other
/// versions the invariants (RFC 8999 §5.1) allow up to 255.
pub fn parse_long_header(buf: &[u8]) -> Result<LongHeader<'_>, QuicDrop> {
    let mut r = Reader::new(buf);
    let first = r.u8().ok_or(QuicDrop::NotQuic)?;
    if first & 0x80 == 0 {
        return Err(QuicDrop::NotQuic);
    }
    let version_wire = r.u32().ok_or(QuicDrop::ShortPacket)?;
    let version = QuicVersion::from_wire(version_wire);
    let dcid_len = usize::from(r.u8().ok_or(QuicDrop::ShortPacket)?);
    if version.is_some() && dcid_len > MAX_CID_LEN {
        return Err(QuicDrop::InvalidConnectionId);
    }
    let dcid = r.bytes(dcid_len).ok_or(QuicDrop::ShortPacket)?;
    let scid_len = usize::from(r.u8().ok_or(QuicDrop::ShortPacket)?);
    if version.is_some() && scid_len > MAX_CID_LEN {
        return Err(QuicDrop::InvalidConnectionId);
    }
    let scid = r.bytes(scid_len).ok_or(QuicDrop::ShortPacket)?;
    let packet_type = match version {
        Some(v) => LongPacketType::from_bits(v, first),
        None if version_wire == 0 => LongPacketType::VersionNegotiation,
        None => LongPacketType::Unknown,
    };
    Ok(LongHeader {
        first,
        version_wire,
        version,
        packet_type,
        dcid,
        scid,
        after_cids: r.pos(),
    })
}

/// Where the parts of one long-header packet lie inside the datagram slice it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketLayout<'a> {
    /// The parsed common header.
    pub header: LongHeader<'a>,
    /// Retry/Initial token (empty for other types).
    pub token: &'a [u8],
    /// Offset of the (protected) packet number; equals `end` for Retry/VN/unknown.
    pub pn_offset: usize,
    /// Offset one past the last byte of this packet (coalescing, RFC 9000 §12.2).
    pub end: usize,
}

/// Parses a long-header packet's framing: for Initial the token and Length
/// (RFC 9000 §17.2.2), for 0-RTT/Handshake the Length (§17.2.3, §17.2.4). Retry,
/// Version Negotiation and unknown versions extend to the end of the datagram.
pub fn parse_layout(buf: &[u8]) -> Result<PacketLayout<'_>, QuicDrop> {
    let header = parse_long_header(buf)?;
    let mut r = Reader::new(buf);
    r.bytes(header.after_cids).ok_or(QuicDrop::ShortPacket)?;
    let mut token: &[u8] = &[];
    match header.packet_type {
        LongPacketType::Initial | LongPacketType::ZeroRtt | LongPacketType::Handshake => {
            if header.packet_type == LongPacketType::Initial {
                let tlen = r.varint().ok_or(QuicDrop::ShortPacket)?;
                token = r.bytes_u64(tlen).ok_or(QuicDrop::ShortPacket)?;
            }
            let len = r.varint().ok_or(QuicDrop::ShortPacket)?;
            let pn_offset = r.pos();
            let len = usize::try_from(len).map_err(|_| QuicDrop::ShortPacket)?;
            let end = pn_offset.checked_add(len).ok_or(QuicDrop::ShortPacket)?;
            if end > buf.len() {
                return Err(QuicDrop::ShortPacket);
            }
            Ok(PacketLayout {
                header,
                token,
                pn_offset,
                end,
            })
        }
        LongPacketType::Retry => {
            // Retry Token is everything up to the 16-byte integrity tag (§17.2.5).
            let rest = r.rest();
            token = rest
                .get(..rest.len().saturating_sub(TAG_LEN))
                .unwrap_or(&[]);
            Ok(PacketLayout {
                header,
                token,
                pn_offset: buf.len(),
                end: buf.len(),
            })
        }
        LongPacketType::VersionNegotiation | LongPacketType::Unknown => Ok(PacketLayout {
            header,
            token,
            pn_offset: buf.len(),
            end: buf.len(),
        }),
    }
}

/// Reconstructs a full packet number from its truncated encoding
/// (RFC 9000 Appendix A.3). `largest` is the largest packet number successfully
/// processed in this packet-number space, `None` before the first one.
pub fn decode_packet_number(largest: Option<u64>, truncated: u64, pn_nbits: u32) -> u64 {
    let expected = largest.map_or(0, |l| l.saturating_add(1)).min(VARINT_MAX);
    let win: u64 = 1u64 << pn_nbits.min(32);
    let hwin = win / 2;
    let mask = win - 1;
    let candidate = (expected & !mask) | (truncated & mask);
    // candidate <= expected - hwin, written without underflow.
    if candidate.saturating_add(hwin) <= expected && candidate < (1u64 << 62) - win {
        return candidate + win;
    }
    if candidate > expected.saturating_add(hwin) && candidate >= win {
        return candidate - win;
    }
    candidate
}

/// A decrypted Initial packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedPacket {
    /// The reconstructed packet number.
    pub pn: u64,
    /// The plaintext frames.
    pub payload: Vec<u8>,
}

/// Removes header protection (RFC 9001 §5.4) and opens the AEAD (RFC 9001 §5.3) of a
/// long-header packet occupying `packet` (exactly one packet, from its first byte to
/// `end`), with the packet number at `pn_offset`.
pub fn open_long_packet(
    packet: &[u8],
    pn_offset: usize,
    keys: &DirectionKeys,
    largest_pn: Option<u64>,
) -> Result<OpenedPacket, QuicDrop> {
    // The sample starts 4 bytes after the packet-number offset (§5.4.2).
    let sample_start = pn_offset.checked_add(4).ok_or(QuicDrop::HeaderProtection)?;
    let sample_end = sample_start
        .checked_add(SAMPLE_LEN)
        .ok_or(QuicDrop::HeaderProtection)?;
    let sample = packet
        .get(sample_start..sample_end)
        .ok_or(QuicDrop::HeaderProtection)?;
    let mask = keys.hp_mask(sample).ok_or(QuicDrop::HeaderProtection)?;
    let mut buf = packet.to_vec();
    // Long header: the low 4 bits of the first byte are protected (§5.4.1).
    let first = buf.first_mut().ok_or(QuicDrop::ShortPacket)?;
    *first ^= mask[0] & 0x0f;
    let pn_len = usize::from(*first & 0x03) + 1;
    let mut truncated = 0u64;
    for i in 0..pn_len {
        let b = buf
            .get_mut(pn_offset + i)
            .ok_or(QuicDrop::HeaderProtection)?;
        *b ^= mask[1 + i];
        truncated = (truncated << 8) | u64::from(*b);
    }
    let pn = decode_packet_number(largest_pn, truncated, (pn_len * 8) as u32);
    let header_len = pn_offset + pn_len;
    if buf.len() < header_len + TAG_LEN {
        return Err(QuicDrop::DecryptFailed);
    }
    // AAD = the unprotected header up to and including the packet number (§5.3).
    let (aad, body) = buf.split_at_mut(header_len);
    let plain_len = keys.open(pn, aad, body).ok_or(QuicDrop::DecryptFailed)?;
    let payload = body.get(..plain_len).unwrap_or(&[]).to_vec();
    Ok(OpenedPacket { pn, payload })
}

/// Builds a protected Initial packet (RFC 9001 §5.3–5.4), for tests and corpus tools.
/// `pn_len` is clamped to 1..=4; the Length field is a 2-byte varint when it fits, as in
/// RFC 9001 Appendix A. Returns `None` if the payload is too short to sample or a
/// connection ID is longer than 20 bytes.
#[allow(clippy::too_many_arguments)]
pub fn protect_initial(
    version: QuicVersion,
    keys: &DirectionKeys,
    dcid: &[u8],
    scid: &[u8],
    token: &[u8],
    pn: u64,
    pn_len: usize,
    payload: &[u8],
) -> Option<Vec<u8>> {
    if dcid.len() > MAX_CID_LEN || scid.len() > MAX_CID_LEN {
        return None;
    }
    let pn_len = pn_len.clamp(1, 4);
    let mut out = Vec::with_capacity(payload.len() + 64);
    out.push(0xc0 | LongPacketType::Initial.to_bits(version) | (pn_len as u8 - 1));
    out.extend_from_slice(&version.to_wire().to_be_bytes());
    out.push(dcid.len() as u8);
    out.extend_from_slice(dcid);
    out.push(scid.len() as u8);
    out.extend_from_slice(scid);
    encode_varint(token.len() as u64, &mut out)?;
    out.extend_from_slice(token);
    let length = (pn_len + payload.len() + TAG_LEN) as u64;
    if length < (1 << 14) {
        out.extend_from_slice(&((length as u16) | 0x4000).to_be_bytes());
    } else {
        encode_varint(length, &mut out)?;
    }
    let pn_offset = out.len();
    let pn_bytes = pn.to_be_bytes();
    out.extend_from_slice(pn_bytes.get(8 - pn_len..)?);
    let mut body = payload.to_vec();
    keys.seal(pn, &out, &mut body)?;
    out.extend_from_slice(&body);
    let sample_start = pn_offset + 4;
    let mask = keys.hp_mask(out.get(sample_start..sample_start + SAMPLE_LEN)?)?;
    *out.first_mut()? ^= mask[0] & 0x0f;
    for i in 0..pn_len {
        *out.get_mut(pn_offset + i)? ^= mask[1 + i];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pn_decode_rfc9000_a3_example() {
        // RFC 9000 §A.3: largest 0xa82f30ea, truncated 0x9b32 (16 bits) → 0xa82f9b32.
        assert_eq!(
            decode_packet_number(Some(0xa82f_30ea), 0x9b32, 16),
            0xa82f_9b32
        );
        assert_eq!(decode_packet_number(None, 0, 8), 0);
        assert_eq!(decode_packet_number(None, 2, 32), 2);
        assert_eq!(decode_packet_number(Some(255), 1, 8), 257);
        assert!(decode_packet_number(Some(u64::MAX), 1, 8) <= VARINT_MAX);
    }

    #[test]
    fn type_bits_roundtrip() {
        for v in [QuicVersion::V1, QuicVersion::V2] {
            for t in [
                LongPacketType::Initial,
                LongPacketType::ZeroRtt,
                LongPacketType::Handshake,
                LongPacketType::Retry,
            ] {
                assert_eq!(LongPacketType::from_bits(v, 0xc0 | t.to_bits(v)), t);
            }
        }
    }
}
