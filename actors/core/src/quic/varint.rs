//! QUIC variable-length integers (RFC 9000 §16) and a tiny bounds-checked reader.

/// Largest value a QUIC varint can hold, 2^62 − 1 (RFC 9000 §16).
pub const VARINT_MAX: u64 = (1 << 62) - 1;

/// A cursor over a byte slice; every read is bounds-checked and returns `None` on EOF.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Current offset from the start of the buffer.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The unconsumed bytes.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// Reads a big-endian u32.
    pub fn u32(&mut self) -> Option<u32> {
        let b = self.bytes(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// Reads `n` bytes where `n` came off the wire as a u64.
    pub fn bytes_u64(&mut self, n: u64) -> Option<&'a [u8]> {
        self.bytes(usize::try_from(n).ok()?)
    }

    /// Reads a variable-length integer: the two high bits of the first byte give the
    /// length 1, 2, 4 or 8 (RFC 9000 §16).
    pub fn varint(&mut self) -> Option<u64> {
        let first = *self.buf.get(self.pos)?;
        let len = 1usize << (first >> 6);
        let b = self.bytes(len)?;
        let mut v = u64::from(first & 0x3f);
        for &x in b.iter().skip(1) {
            v = (v << 8) | u64::from(x);
        }
        Some(v)
    }
}

/// Encodes `v` as a minimal-length varint, `None` if `v` > [`VARINT_MAX`].
pub fn encode_varint(v: u64, out: &mut Vec<u8>) -> Option<()> {
    if v < (1 << 6) {
        out.push(v as u8);
    } else if v < (1 << 14) {
        out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes());
    } else if v < (1 << 30) {
        out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes());
    } else if v <= VARINT_MAX {
        out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes());
    } else {
        return None;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9000_appendix_a1_examples() {
        // RFC 9000 §A.1 sample varints.
        let cases: [(&[u8], u64); 4] = [
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151_288_809_941_952_652,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
        ];
        for (bytes, want) in cases {
            let mut r = Reader::new(bytes);
            assert_eq!(r.varint(), Some(want));
            assert_eq!(r.remaining(), 0);
            let mut out = Vec::new();
            encode_varint(want, &mut out);
            assert_eq!(out, bytes);
        }
        // Non-minimal 2-byte encoding of 37.
        assert_eq!(Reader::new(&[0x40, 0x25]).varint(), Some(37));
        assert_eq!(Reader::new(&[0x40]).varint(), None);
        assert_eq!(Reader::new(&[]).varint(), None);
        assert!(encode_varint(VARINT_MAX + 1, &mut Vec::new()).is_none());
    }
}
