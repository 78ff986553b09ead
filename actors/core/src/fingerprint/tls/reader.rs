//! A bounds-checked big-endian cursor over a byte slice, used by every TLS structure
//! parser in this module.
//!
//! Invariant: no method panics or reads past the end of the slice; every read either
//! returns the requested bytes and advances, or returns `None` and leaves the cursor
//! where it was. Callers map `None` to the [`MalformedReason`](super::MalformedReason)
//! that names the length field being validated.

/// Cursor over a byte slice. TLS integers are big-endian (RFC 8446 §3.3).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `data`.
    #[inline]
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Bytes not yet consumed.
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// True when every byte has been consumed.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Takes the next `n` bytes.
    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// Reads a `uint8`.
    #[inline]
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }

    /// Reads a `uint16`.
    #[inline]
    pub(crate) fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }

    /// Reads a `uint24` (RFC 8446 §3.3).
    #[inline]
    pub(crate) fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(
            (usize::from(*b.first()?) << 16)
                | (usize::from(*b.get(1)?) << 8)
                | usize::from(*b.get(2)?),
        )
    }

    /// Reads a vector with a one-byte length prefix (`<0..2^8-1>`, RFC 8446 §3.4).
    #[inline]
    pub(crate) fn vec8(&mut self) -> Option<&'a [u8]> {
        let save = self.pos;
        let n = self.u8()?;
        self.take(usize::from(n)).or_else(|| {
            self.pos = save;
            None
        })
    }

    /// Reads a vector with a two-byte length prefix (`<0..2^16-1>`).
    #[inline]
    pub(crate) fn vec16(&mut self) -> Option<&'a [u8]> {
        let save = self.pos;
        let n = self.u16()?;
        self.take(usize::from(n)).or_else(|| {
            self.pos = save;
            None
        })
    }

    /// Reads a vector with a three-byte length prefix (`<0..2^24-1>`).
    #[inline]
    pub(crate) fn vec24(&mut self) -> Option<&'a [u8]> {
        let save = self.pos;
        let n = self.u24()?;
        self.take(n).or_else(|| {
            self.pos = save;
            None
        })
    }
}

/// Decodes a byte string holding a whole number of big-endian `uint16`s; `None` when the
/// length is odd (a list of 2-byte code points cannot have an odd length).
pub(crate) fn u16_list(bytes: &[u8]) -> Option<Vec<u16>> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(2)
            .map(|c| match c {
                [a, b] => u16::from_be_bytes([*a, *b]),
                _ => 0, // unreachable: chunks_exact(2) yields 2-byte chunks
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded() {
        let mut r = Reader::new(&[0x01, 0x02, 0x03]);
        assert_eq!(r.u16(), Some(0x0102));
        assert_eq!(r.u16(), None);
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.u8(), Some(3));
        assert!(r.is_empty());
        assert_eq!(r.u24(), None);
    }

    #[test]
    fn vectors_restore_position_on_failure() {
        let mut r = Reader::new(&[0x00, 0x05, 0xaa]);
        assert_eq!(r.vec16(), None);
        assert_eq!(r.remaining(), 3);
        let mut r = Reader::new(&[0x02, 0xaa, 0xbb, 0xcc]);
        assert_eq!(r.vec8(), Some(&[0xaa, 0xbb][..]));
        assert_eq!(r.remaining(), 1);
        let mut r = Reader::new(&[0x00, 0x00, 0x01, 0x07]);
        assert_eq!(r.vec24(), Some(&[0x07][..]));
    }

    #[test]
    fn u16_lists() {
        assert_eq!(u16_list(&[0, 1, 0xca, 0xca]), Some(vec![1, 0xcaca]));
        assert_eq!(u16_list(&[0]), None);
        assert_eq!(u16_list(&[]), Some(vec![]));
    }
}
