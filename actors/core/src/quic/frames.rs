//! The frame walk of a decrypted Initial payload (RFC 9000 §12.4, §19).
//!
//! Only PADDING, PING, ACK, CRYPTO and CONNECTION_CLOSE (0x1c) may appear in Initial
//! packets (RFC 9000 §12.4, Table 3); any other type is a protocol violation and stops
//! the walk.

use super::varint::{Reader, VARINT_MAX};

/// One CRYPTO frame's payload (RFC 9000 §19.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoFragment<'a> {
    /// Byte offset in the CRYPTO stream.
    pub offset: u64,
    /// The stream data.
    pub data: &'a [u8],
}

/// Why a frame walk stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame ran past the end of the payload.
    #[error("truncated frame")]
    Truncated,
    /// A frame type not permitted in Initial packets.
    #[error("frame type {0:#x} not allowed in Initial packets")]
    NotAllowed(u64),
    /// CRYPTO offset + length exceeds 2^62 − 1 (RFC 9000 §19.6).
    #[error("CRYPTO frame beyond maximum stream offset")]
    OffsetOverflow,
}

/// What a frame walk found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameSummary<'a> {
    /// CRYPTO fragments in packet order.
    pub crypto: Vec<CryptoFragment<'a>>,
    /// Number of ACK frames.
    pub acks: u32,
    /// Number of PING frames.
    pub pings: u32,
    /// Number of PADDING bytes.
    pub padding: usize,
    /// Error code of a CONNECTION_CLOSE frame, if one was present.
    pub connection_close: Option<u64>,
    /// Set when the walk stopped at a malformed or forbidden frame; the fragments found
    /// before it are still listed.
    pub error: Option<FrameError>,
}

/// Walks the frames of a decrypted Initial payload.
pub fn walk_initial_frames(payload: &[u8]) -> FrameSummary<'_> {
    let mut s = FrameSummary::default();
    let mut r = Reader::new(payload);
    while r.remaining() > 0 {
        if let Err(e) = next_frame(&mut r, &mut s) {
            s.error = Some(e);
            break;
        }
    }
    s
}

fn next_frame<'a>(r: &mut Reader<'a>, s: &mut FrameSummary<'a>) -> Result<(), FrameError> {
    let ty = r.varint().ok_or(FrameError::Truncated)?;
    match ty {
        // PADDING (§19.1): consume the whole run at once.
        0x00 => {
            s.padding += 1;
            let run = r.rest().iter().take_while(|&&b| b == 0).count();
            r.bytes(run).ok_or(FrameError::Truncated)?;
            s.padding += run;
        }
        // PING (§19.2).
        0x01 => s.pings += 1,
        // ACK (§19.3): Largest Acknowledged, ACK Delay, ACK Range Count, First ACK Range,
        // ranges (Gap, ACK Range Length), and for 0x03 the three ECN counts (§19.3.2).
        0x02 | 0x03 => {
            for _ in 0..2 {
                r.varint().ok_or(FrameError::Truncated)?;
            }
            let count = r.varint().ok_or(FrameError::Truncated)?;
            r.varint().ok_or(FrameError::Truncated)?;
            // Each range takes ≥ 2 bytes, so the loop is bounded by the payload size.
            let mut i = 0u64;
            while i < count {
                r.varint().ok_or(FrameError::Truncated)?;
                r.varint().ok_or(FrameError::Truncated)?;
                i += 1;
            }
            if ty == 0x03 {
                for _ in 0..3 {
                    r.varint().ok_or(FrameError::Truncated)?;
                }
            }
            s.acks += 1;
        }
        // CRYPTO (§19.6): Offset, Length, Crypto Data.
        0x06 => {
            let offset = r.varint().ok_or(FrameError::Truncated)?;
            let len = r.varint().ok_or(FrameError::Truncated)?;
            if offset.checked_add(len).is_none_or(|e| e > VARINT_MAX) {
                return Err(FrameError::OffsetOverflow);
            }
            let data = r.bytes_u64(len).ok_or(FrameError::Truncated)?;
            s.crypto.push(CryptoFragment { offset, data });
        }
        // CONNECTION_CLOSE, transport variant (§19.19): Error Code, Frame Type,
        // Reason Phrase Length, Reason Phrase.
        0x1c => {
            let code = r.varint().ok_or(FrameError::Truncated)?;
            r.varint().ok_or(FrameError::Truncated)?;
            let len = r.varint().ok_or(FrameError::Truncated)?;
            r.bytes_u64(len).ok_or(FrameError::Truncated)?;
            s.connection_close = Some(code);
        }
        other => return Err(FrameError::NotAllowed(other)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_mixed_frames() {
        let p = [
            0x01, // PING
            0x02, 0x05, 0x00, 0x01, 0x00, 0x01, 0x02, // ACK with one extra range
            0x03, 0x01, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, // ACK_ECN
            0x06, 0x00, 0x03, b'a', b'b', b'c', // CRYPTO off 0 len 3
            0x00, 0x00, 0x00, // PADDING
            0x06, 0x40, 0x03, 0x01, b'd', // CRYPTO off 3 (2-byte varint) len 1
            0x1c, 0x0a, 0x00, 0x02, b'h', b'i', // CONNECTION_CLOSE
        ];
        let s = walk_initial_frames(&p);
        assert_eq!(s.error, None);
        assert_eq!(s.pings, 1);
        assert_eq!(s.acks, 2);
        assert_eq!(s.padding, 3);
        assert_eq!(s.connection_close, Some(10));
        assert_eq!(
            s.crypto,
            vec![
                CryptoFragment {
                    offset: 0,
                    data: b"abc"
                },
                CryptoFragment {
                    offset: 3,
                    data: b"d"
                }
            ]
        );
    }

    #[test]
    fn rejects_forbidden_and_truncated() {
        let s = walk_initial_frames(&[0x06, 0x00, 0x01, b'x', 0x08, 0x00]);
        assert_eq!(s.error, Some(FrameError::NotAllowed(0x08)));
        assert_eq!(s.crypto.len(), 1);
        let s = walk_initial_frames(&[0x06, 0x00, 0x05, b'x']);
        assert_eq!(s.error, Some(FrameError::Truncated));
        let s = walk_initial_frames(&[0x02, 0x00, 0x00, 0x3f, 0x00]);
        assert_eq!(s.error, Some(FrameError::Truncated));
        let s = walk_initial_frames(&[
            0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00,
        ]);
        assert_eq!(s.error, Some(FrameError::OffsetOverflow));
    }
}
