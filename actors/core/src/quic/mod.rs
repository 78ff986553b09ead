//! QUIC Initial-packet decryption and CRYPTO-stream extraction.
//!
//! QUIC (RFC 9000) carries the TLS 1.3 handshake inside CRYPTO frames. The Initial
//! packets that carry the ClientHello and ServerHello are encrypted with keys derived
//! only from public data: the Destination Connection ID of the client's first Initial
//! packet and a version-specific salt (RFC 9001 §5.2, RFC 9369 §3.3). A passive observer
//! can therefore remove header protection (RFC 9001 §5.4), decrypt the payload
//! (RFC 9001 §5.3), walk the frames (RFC 9000 §19) and reassemble the CRYPTO stream of
//! the Initial packet-number space for each direction. That stream is what the TLS
//! fingerprinting stages (JA3/JA4 over QUIC) consume.
//!
//! Layout:
//! - [`varint`]: variable-length integers (RFC 9000 §16).
//! - [`keys`]: Initial secrets and packet-protection keys ([`InitialKeys`]).
//! - [`packet`]: long-header parsing, header-protection removal, AEAD open.
//! - [`frames`]: the frame walk of a decrypted Initial payload.
//! - [`crypto_stream`]: bounded offset-based reassembly of CRYPTO data.
//! - [`tracker`]: [`QuicInitialTracker`], one per UDP flow believed to be QUIC.
//!
//! Everything is pure and panic-free on arbitrary input: all parsing is bounds-checked
//! and memory per tracker is bounded (see [`crypto_stream::CRYPTO_BUFFER_CAP`]).

pub mod crypto_stream;
pub mod frames;
pub mod keys;
pub mod packet;
pub mod tracker;
pub mod varint;

#[cfg(test)]
mod test_vectors;

pub use crypto_stream::{CryptoStream, CRYPTO_BUFFER_CAP, MAX_CRYPTO_RANGES};
pub use keys::{verify_retry_integrity, DirectionKeys, InitialKeys};
pub use packet::{LongHeader, LongPacketType};
pub use tracker::{DatagramOutcome, DropCounts, QuicInitialTracker, QuicStats};

/// Maximum connection-ID length for QUIC v1 and v2 (RFC 9000 §17.2).
pub const MAX_CID_LEN: usize = 20;

/// A QUIC version whose Initial packets this module can decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuicVersion {
    /// QUIC version 1, `0x00000001` (RFC 9000).
    V1,
    /// QUIC version 2, `0x6b3343cf` (RFC 9369).
    V2,
}

impl QuicVersion {
    /// The 32-bit wire value of QUIC v1 (RFC 9000 §15).
    pub const V1_WIRE: u32 = 0x0000_0001;
    /// The 32-bit wire value of QUIC v2 (RFC 9369 §3.1).
    pub const V2_WIRE: u32 = 0x6b33_43cf;

    /// Maps a wire version to a supported version, `None` for anything else
    /// (including 0 = Version Negotiation, RFC 9000 §17.2.1).
    pub fn from_wire(v: u32) -> Option<Self> {
        match v {
            Self::V1_WIRE => Some(Self::V1),
            Self::V2_WIRE => Some(Self::V2),
            _ => None,
        }
    }

    /// The 32-bit wire value of this version.
    pub fn to_wire(self) -> u32 {
        match self {
            Self::V1 => Self::V1_WIRE,
            Self::V2 => Self::V2_WIRE,
        }
    }

    /// Short label for logs and counters (`"v1"`, `"v2"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }
}

/// Why a packet (or a whole datagram) yielded no CRYPTO data. These are expected
/// outcomes on real traffic, not bugs; [`QuicDrop::as_str`] gives a stable counter name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum QuicDrop {
    /// The bytes do not look like a QUIC long-header packet at all.
    #[error("not a QUIC packet")]
    NotQuic,
    /// A long-header packet with a version other than v1/v2 (RFC 9000 §15).
    #[error("unsupported QUIC version")]
    UnsupportedVersion,
    /// The header or the Length field runs past the end of the datagram.
    #[error("packet truncated")]
    ShortPacket,
    /// A connection ID longer than 20 bytes (RFC 9000 §17.2).
    #[error("connection ID longer than 20 bytes")]
    InvalidConnectionId,
    /// Header protection could not be removed: not enough bytes for the 16-byte sample
    /// (RFC 9001 §5.4.2).
    #[error("header protection removal failed")]
    HeaderProtection,
    /// AEAD authentication failed with every candidate key (RFC 9001 §5.3).
    #[error("AEAD decryption failed")]
    DecryptFailed,
    /// A server Initial arrived before any client Initial, so no keys are known.
    #[error("no Initial keys known yet")]
    NoKeys,
    /// A malformed frame, or a frame type not allowed in Initial packets
    /// (RFC 9000 §12.4, Table 3).
    #[error("invalid frame in Initial packet")]
    FrameError,
    /// CRYPTO data beyond the per-direction buffer cap was discarded.
    #[error("CRYPTO buffer full")]
    CryptoBufferFull,
    /// A CRYPTO fragment was discarded because too many disjoint ranges are pending.
    #[error("too many out-of-order CRYPTO fragments")]
    TooManyFragments,
    /// A Retry from the client, or a second Retry (RFC 9000 §17.2.5.2).
    #[error("unexpected Retry packet")]
    UnexpectedRetry,
    /// A Retry whose integrity tag does not verify against the tracked original DCID
    /// (RFC 9001 §5.8).
    #[error("Retry integrity tag mismatch")]
    RetryIntegrity,
}

impl QuicDrop {
    /// Number of variants (size of per-reason counter arrays).
    pub const COUNT: usize = 12;
    /// All variants, in counter-index order.
    pub const ALL: [QuicDrop; Self::COUNT] = [
        QuicDrop::NotQuic,
        QuicDrop::UnsupportedVersion,
        QuicDrop::ShortPacket,
        QuicDrop::InvalidConnectionId,
        QuicDrop::HeaderProtection,
        QuicDrop::DecryptFailed,
        QuicDrop::NoKeys,
        QuicDrop::FrameError,
        QuicDrop::CryptoBufferFull,
        QuicDrop::TooManyFragments,
        QuicDrop::UnexpectedRetry,
        QuicDrop::RetryIntegrity,
    ];

    /// Stable snake_case name, for counters.
    pub fn as_str(self) -> &'static str {
        match self {
            QuicDrop::NotQuic => "not_quic",
            QuicDrop::UnsupportedVersion => "unsupported_version",
            QuicDrop::ShortPacket => "short_packet",
            QuicDrop::InvalidConnectionId => "invalid_connection_id",
            QuicDrop::HeaderProtection => "header_protection",
            QuicDrop::DecryptFailed => "decrypt_failed",
            QuicDrop::NoKeys => "no_keys",
            QuicDrop::FrameError => "frame_error",
            QuicDrop::CryptoBufferFull => "crypto_buffer_full",
            QuicDrop::TooManyFragments => "too_many_fragments",
            QuicDrop::UnexpectedRetry => "unexpected_retry",
            QuicDrop::RetryIntegrity => "retry_integrity",
        }
    }

    /// Index of this reason in [`QuicDrop::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Cheap test whether a UDP payload starts with a QUIC Initial packet this module can
/// decrypt: long header form and fixed bit set (RFC 9000 §17.2), version v1 or v2,
/// long-packet type Initial for that version (RFC 9369 §3.2), and connection-ID lengths
/// ≤ 20 that fit in the datagram. Does no cryptography.
pub fn probe_quic_initial(udp_payload: &[u8]) -> bool {
    let Some(&first) = udp_payload.first() else {
        return false;
    };
    if first & 0xc0 != 0xc0 {
        return false;
    }
    let Ok(h) = packet::parse_long_header(udp_payload) else {
        return false;
    };
    h.packet_type == LongPacketType::Initial && h.version.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_indices_match_all() {
        for (i, d) in QuicDrop::ALL.iter().enumerate() {
            assert_eq!(d.index(), i);
            assert!(!d.as_str().is_empty());
        }
    }

    #[test]
    fn probe_rejects_garbage() {
        assert!(!probe_quic_initial(&[]));
        assert!(!probe_quic_initial(&[0xc0]));
        assert!(!probe_quic_initial(&[0x40, 0, 0, 0, 1, 0, 0]));
        // v1 Initial, DCID len 21: invalid.
        let mut p = vec![0xc3, 0, 0, 0, 1, 21];
        p.extend_from_slice(&[0u8; 40]);
        assert!(!probe_quic_initial(&p));
        // v1 Handshake type.
        let p = [0xe3, 0, 0, 0, 1, 0, 0, 0, 0];
        assert!(!probe_quic_initial(&p));
        // v1 Initial minimal header.
        let p = [0xc3, 0, 0, 0, 1, 1, 0xaa, 0, 0, 0];
        assert!(probe_quic_initial(&p));
        // v2 Initial uses type bits 0b01.
        let p = [0xd3, 0x6b, 0x33, 0x43, 0xcf, 1, 0xaa, 0, 0, 0];
        assert!(probe_quic_initial(&p));
        let p = [0xc3, 0x6b, 0x33, 0x43, 0xcf, 1, 0xaa, 0, 0, 0];
        assert!(!probe_quic_initial(&p));
    }
}
