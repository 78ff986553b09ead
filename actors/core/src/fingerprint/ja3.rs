//! JA3 and JA3S fingerprints (salesforce/ja3, README "How it works").
//!
//! JA3 = `SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats` of the
//! ClientHello; JA3S = `SSLVersion,Cipher,Extensions` of the ServerHello. Values are
//! decimal, list items joined with `-`, empty lists leave an empty field. SSLVersion is
//! the hello's `legacy_version` (not supported_versions). GREASE values (RFC 8701) are
//! removed from ciphers, extensions and groups (as the reference implementations do).
//! The published hash is the lowercase hex MD5 of the string ([`md5_hex`]).

use super::tls::{is_grease, ClientHello, ServerHello};
use md5::{Digest, Md5};

/// Lowercase hex digits, for formatting without `core::fmt`.
pub(crate) const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of every byte value: `HEX_PAIRS[b] == [hi digit, lo digit]`.
pub(crate) const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX_DIGITS[i >> 4], HEX_DIGITS[i & 0x0f]];
        i += 1;
    }
    t
};

/// A short ASCII piece: its bytes packed little-endian into a `u64` (first byte in the
/// lowest byte) and its length (≤ 8).
type Piece = (u64, usize);

/// `DEC_PAIRS[n]` = the two decimal digits of `n` (< 100), tens first.
const DEC_PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

/// The decimal digits of `v` (what `write!(s, "{v}")` prints) as a [`Piece`].
fn dec(v: u16) -> Piece {
    let pair = |n: u16| u64::from(u16::from_le_bytes(DEC_PAIRS[usize::from(n % 100)]));
    let hi = v / 100;
    // All five digits, most significant first (lowest byte), as ASCII.
    let digits = u64::from(b'0' + (hi / 100) as u8) | (pair(hi) << 8) | (pair(v) << 24);
    // Branch-free digit count: neighbouring values often differ in length.
    let n = 1
        + usize::from(v >= 10)
        + usize::from(v >= 100)
        + usize::from(v >= 1000)
        + usize::from(v >= 10000);
    // Drop the leading zeros.
    (digits >> (8 * (5 - n)), n)
}

/// `sep` followed by the decimal digits of `v`, as a [`Piece`].
fn sep_dec(sep: u8, v: u16) -> Piece {
    let (digits, n) = dec(v);
    ((digits << 8) | u64::from(sep), n + 1)
}

/// ASCII text of bounded length built in one allocation: each [`Piece`] is stored as one
/// 8-byte write (the buffer has 8 bytes of slack), then the length advances by the
/// piece's length. No formatting machinery, no per-byte capacity checks.
struct Text {
    buf: Vec<u8>,
    len: usize,
}

impl Text {
    /// Room for `max_len` bytes of text.
    fn with_max_len(max_len: usize) -> Self {
        Self {
            buf: vec![0; max_len + 8],
            len: 0,
        }
    }

    /// Appends a piece (dropped if it would exceed the `max_len` given at creation,
    /// which callers size so that it cannot happen).
    fn put(&mut self, (word, n): Piece) {
        if let Some(dst) = self.buf.get_mut(self.len..self.len + 8) {
            dst.copy_from_slice(&word.to_le_bytes());
            self.len += n;
        }
    }

    /// Appends one ASCII byte.
    fn put_byte(&mut self, b: u8) {
        self.put((u64::from(b), 1));
    }

    /// Appends `items` in decimal, the first preceded by `,` and the others by `-`; a
    /// lone `,` when the list is empty or all GREASE (skipped when `skip_grease`).
    fn put_list<T: Copy + Into<u16>>(&mut self, items: &[T], skip_grease: bool) {
        let mut sep = b',';
        for v in items.iter().map(|&v| v.into()) {
            if skip_grease && is_grease(v) {
                continue;
            }
            self.put(sep_dec(sep, v));
            sep = b'-';
        }
        if sep == b',' {
            self.put_byte(b',');
        }
    }

    fn into_string(mut self) -> String {
        self.buf.truncate(self.len);
        // Only ASCII was written: this never fails.
        String::from_utf8(self.buf).unwrap_or_default()
    }
}

/// The JA3 string of a ClientHello, e.g. `771,4865-4866,0-23-65281,29-23,0`.
pub fn ja3(ch: &ClientHello) -> String {
    // At most a separator and 5 digits per value, and a lone `,` per empty list.
    let max_len = 4 + 6
        * (1 + ch.cipher_suites.len()
            + ch.extensions.len()
            + ch.supported_groups.len()
            + ch.ec_point_formats.len());
    let mut t = Text::with_max_len(max_len);
    t.put(dec(ch.legacy_version));
    t.put_list(&ch.cipher_suites, true);
    t.put_list(&ch.extensions, true);
    t.put_list(&ch.supported_groups, true);
    t.put_list(&ch.ec_point_formats, false);
    t.into_string()
}

/// The JA3S string of a ServerHello (or HelloRetryRequest), e.g. `771,4865,43-51`.
pub fn ja3s(sh: &ServerHello) -> String {
    let mut t = Text::with_max_len(1 + 6 * (2 + sh.extensions.len()));
    t.put(dec(sh.legacy_version));
    t.put(sep_dec(b',', sh.cipher_suite));
    t.put_list(&sh.extensions, true);
    t.into_string()
}

/// Appends the lowercase hex of `bytes`.
pub(crate) fn push_hex(s: &mut String, bytes: &[u8]) {
    for &b in bytes {
        let [hi, lo] = HEX_PAIRS[usize::from(b)];
        s.push(char::from(hi));
        s.push(char::from(lo));
    }
}

/// Lowercase hex MD5 of a string (the JA3/JA3S hash).
pub fn md5_hex(s: &str) -> String {
    let digest = Md5::digest(s.as_bytes());
    let mut out = [0u8; 32];
    for (pair, b) in out.chunks_exact_mut(2).zip(digest) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
    }
    String::from_utf8(out.to_vec()).unwrap_or_default() // ASCII: never fails
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ja3_removes_grease_and_formats_decimal() {
        let ch = ClientHello {
            legacy_version: 0x0303,
            cipher_suites: vec![0x0a0a, 0x1301, 0xc02b],
            extensions: vec![0x1a1a, 0x0000, 0x0017, 0xfafa, 0xff01],
            supported_groups: vec![0x2a2a, 0x001d, 0x0017],
            ec_point_formats: vec![0],
            ..ClientHello::default()
        };
        assert_eq!(ja3(&ch), "771,4865-49195,0-23-65281,29-23,0");
    }

    #[test]
    fn ja3_empty_lists() {
        let ch = ClientHello {
            legacy_version: 0x0301,
            cipher_suites: vec![0x002f],
            ..ClientHello::default()
        };
        assert_eq!(ja3(&ch), "769,47,,,");
    }

    #[test]
    fn ja3s_and_md5() {
        let sh = ServerHello {
            legacy_version: 0x0303,
            cipher_suite: 0x1301,
            extensions: vec![0x002b, 0x0033],
            ..ServerHello::default()
        };
        assert_eq!(ja3s(&sh), "771,4865,43-51");
        // Values from the corpus (pub_chromium_tcp.pcap).
        assert_eq!(
            md5_hex("771,4865,43-51"),
            "f4febc55ea12b31ae17cfb7e614afda8"
        );
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn decimal_matches_fmt() {
        for v in [
            0u16,
            1,
            9,
            10,
            99,
            100,
            771,
            4865,
            9999,
            10000,
            65281,
            u16::MAX,
        ] {
            let mut t = Text::with_max_len(5);
            t.put(dec(v));
            assert_eq!(t.into_string(), v.to_string());
        }
        let mut s = String::new();
        push_hex(&mut s, &[0x00, 0x0f, 0xa5, 0xff]);
        assert_eq!(s, "000fa5ff");
    }
}
