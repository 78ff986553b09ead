//! Bounded offset-based reassembly of one direction's CRYPTO stream (RFC 9000 §19.6).
//!
//! CRYPTO frames carry an explicit stream offset; they may arrive out of order,
//! overlap, or repeat (retransmissions, Chromium's "chaos protection" which splits and
//! shuffles the ClientHello across frames and packets). The receiver must deliver the
//! bytes in order (RFC 9000 §7.5). Here the data goes into a buffer capped at
//! [`CRYPTO_BUFFER_CAP`] bytes with a sorted set of received ranges (at most
//! [`MAX_CRYPTO_RANGES`] disjoint ones); bytes already received are never overwritten
//! (first copy wins), and [`CryptoStream::contiguous`] returns the in-order prefix.

use super::QuicDrop;

/// Maximum CRYPTO-stream offset kept per direction. A ClientHello, even with
/// post-quantum key shares, is a few KiB; the Initial space of the server carries only
/// the ServerHello.
pub const CRYPTO_BUFFER_CAP: usize = 64 * 1024;

/// Maximum number of disjoint received ranges (gaps in out-of-order delivery).
pub const MAX_CRYPTO_RANGES: usize = 32;

/// One direction's CRYPTO stream of the Initial packet-number space.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CryptoStream {
    buf: Vec<u8>,
    /// Sorted, disjoint, non-adjacent half-open ranges `[start, end)` received.
    ranges: Vec<(usize, usize)>,
}

impl CryptoStream {
    /// An empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `data` at stream `offset`. Bytes past [`CRYPTO_BUFFER_CAP`] are dropped
    /// (`Err(CryptoBufferFull)`, the part below the cap is kept); a fragment that would
    /// leave more than [`MAX_CRYPTO_RANGES`] disjoint ranges is dropped entirely
    /// (`Err(TooManyFragments)`).
    pub fn insert(&mut self, offset: u64, data: &[u8]) -> Result<(), QuicDrop> {
        if data.is_empty() {
            return Ok(());
        }
        let start = match usize::try_from(offset) {
            Ok(s) if s < CRYPTO_BUFFER_CAP => s,
            _ => return Err(QuicDrop::CryptoBufferFull),
        };
        let end = start.saturating_add(data.len());
        let clip_end = end.min(CRYPTO_BUFFER_CAP);
        let merged = merge_range(&self.ranges, start, clip_end);
        if merged.len() > MAX_CRYPTO_RANGES {
            return Err(QuicDrop::TooManyFragments);
        }
        if self.buf.len() < clip_end {
            self.buf.resize(clip_end, 0);
        }
        // Copy only the parts of [start, clip_end) not yet received.
        let mut cur = start;
        let buf = &mut self.buf;
        for &(a, b) in &self.ranges {
            if b <= cur {
                continue;
            }
            if a >= clip_end {
                break;
            }
            if a > cur {
                copy_part(buf, start, data, cur, a);
            }
            cur = cur.max(b);
        }
        if cur < clip_end {
            copy_part(buf, start, data, cur, clip_end);
        }
        self.ranges = merged;
        if end > clip_end {
            Err(QuicDrop::CryptoBufferFull)
        } else {
            Ok(())
        }
    }

    /// The in-order bytes from offset 0 up to the first gap.
    pub fn contiguous(&self) -> &[u8] {
        match self.ranges.first() {
            Some(&(0, end)) => self.buf.get(..end).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Total number of distinct bytes received (including beyond gaps).
    pub fn received_len(&self) -> usize {
        self.ranges.iter().map(|(a, b)| b - a).sum()
    }

    /// Number of disjoint received ranges.
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }
}

/// Copies stream bytes `[from, to)` out of `data` (which starts at stream offset
/// `data_start`) into `buf`.
fn copy_part(buf: &mut [u8], data_start: usize, data: &[u8], from: usize, to: usize) {
    let src = data.get(from.saturating_sub(data_start)..to.saturating_sub(data_start));
    let dst = buf.get_mut(from..to);
    if let (Some(src), Some(dst)) = (src, dst) {
        dst.copy_from_slice(src);
    }
}

/// `ranges` with `[start, end)` added, merging overlapping and adjacent ranges.
fn merge_range(ranges: &[(usize, usize)], start: usize, end: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    let (mut s, mut e) = (start, end);
    let mut placed = false;
    for &(a, b) in ranges {
        if b < s {
            out.push((a, b));
        } else if a > e {
            if !placed {
                out.push((s, e));
                placed = true;
            }
            out.push((a, b));
        } else {
            s = s.min(a);
            e = e.max(b);
        }
    }
    if !placed {
        out.push((s, e));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_overlap_duplicate() {
        let mut c = CryptoStream::new();
        assert_eq!(c.insert(5, b"fgh"), Ok(()));
        assert_eq!(c.contiguous(), b"");
        assert_eq!(c.insert(2, b"cdeXY"), Ok(())); // overlaps "fg": first copy wins
        assert_eq!(c.insert(0, b"ab"), Ok(()));
        assert_eq!(c.contiguous(), b"abcdefgh");
        assert_eq!(c.insert(0, b"abcdefgh"), Ok(()));
        assert_eq!(c.range_count(), 1);
        assert_eq!(c.received_len(), 8);
        assert_eq!(c.insert(10, b"k"), Ok(()));
        assert_eq!(c.contiguous(), b"abcdefgh");
        assert_eq!(c.range_count(), 2);
        assert_eq!(c.insert(8, b"ij"), Ok(()));
        assert_eq!(c.contiguous(), b"abcdefghijk");
    }

    #[test]
    fn bounded() {
        let mut c = CryptoStream::new();
        assert_eq!(
            c.insert(CRYPTO_BUFFER_CAP as u64, b"x"),
            Err(QuicDrop::CryptoBufferFull)
        );
        assert_eq!(c.insert(u64::MAX, b"x"), Err(QuicDrop::CryptoBufferFull));
        assert_eq!(
            c.insert(CRYPTO_BUFFER_CAP as u64 - 1, b"xy"),
            Err(QuicDrop::CryptoBufferFull)
        );
        assert_eq!(c.received_len(), 1);
        let mut c = CryptoStream::new();
        for i in 0..MAX_CRYPTO_RANGES {
            assert_eq!(c.insert((i * 2 + 1) as u64, b"z"), Ok(()));
        }
        assert_eq!(c.insert(1000, b"z"), Err(QuicDrop::TooManyFragments));
        // Filling a gap still works.
        assert_eq!(c.insert(0, b"a"), Ok(()));
        assert_eq!(c.contiguous(), b"az");
    }
}
