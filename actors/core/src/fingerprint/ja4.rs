//! JA4 and JA4S fingerprints (FoxIO-LLC/ja4, `technical_details/JA4.md` and `JA4S.md`).
//!
//! JA4 = `{t|q|d}{version}{d|i}{ciphers:02}{extensions:02}{alpn}_{b}_{c}` where
//! - version is the highest non-GREASE supported_versions value, else the hello's
//!   legacy_version, as `13`,`12`,`11`,`10`,`s3`,`s2`,`d1`,`d2`,`d3`, `00` if unknown;
//! - `d` when the server_name extension is present, `i` otherwise;
//! - counts ignore GREASE (RFC 8701) and are capped at 99; the extension count includes
//!   SNI and ALPN;
//! - alpn is the first and last character of the first ALPN value (`00` when absent or
//!   empty; a single character is used twice; when either end byte is not ASCII
//!   alphanumeric, the first and last characters of its hex representation, e.g.
//!   `0xAB 0xCD` → `ad`);
//! - `b` = first 12 hex chars of SHA-256 of the sorted 4-digit lowercase hex ciphers,
//!   comma-joined; `c` = same over the sorted extensions without SNI (0000) and ALPN
//!   (0010), followed by `_` and the signature algorithms in wire order when there are
//!   any; an empty list hashes to `000000000000`.
//!
//! JA4S = `{t|q|d}{version}{extensions:02}{alpn}_{cipher:04x}_{hash}` with version from
//! supported_versions' selected_version else legacy_version, and the hash over the
//! extensions in wire order, comma-joined.

use super::ja3::{push_hex, HEX_DIGITS, HEX_PAIRS};
use super::tls::{is_grease, ClientHello, ServerHello};
use sha2::{Digest, Sha256};

/// Transport the hello was carried over: the first character of JA4/JA4S.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JaTransport {
    /// TLS over TCP: `t`.
    Tcp,
    /// QUIC (RFC 9001): `q`.
    Quic,
    /// DTLS: `d`.
    Dtls,
}

impl JaTransport {
    fn prefix(self) -> char {
        match self {
            Self::Tcp => 't',
            Self::Quic => 'q',
            Self::Dtls => 'd',
        }
    }
}

/// The value JA4 prints for an empty list.
const EMPTY_HASH: &str = "000000000000";

/// Two-character JA4 version code.
fn version_code(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// The version JA4 reports for a ClientHello: the highest non-GREASE supported_versions
/// entry (for DTLS, whose code points count down, the newest), else legacy_version.
fn client_version(ch: &ClientHello, t: JaTransport) -> u16 {
    let offered = ch
        .supported_versions
        .iter()
        .copied()
        .filter(|&v| !is_grease(v));
    let best = if t == JaTransport::Dtls {
        offered.min()
    } else {
        offered.max()
    };
    best.unwrap_or(ch.legacy_version)
}

/// The two ALPN characters for a first ALPN value (`None` = no ALPN).
fn alpn_chars(first: Option<&[u8]>) -> [char; 2] {
    let Some(v) = first else {
        return ['0', '0'];
    };
    let (Some(&a), Some(&z)) = (v.first(), v.last()) else {
        return ['0', '0'];
    };
    if v.len() == 2 && is_grease(u16::from_be_bytes([a, z])) {
        return ['0', '0']; // a GREASE ALPN value is ignored like every GREASE value
    }
    if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric() {
        return [char::from(a), char::from(z)];
    }
    // First hex digit of the first byte, last hex digit of the last byte.
    [
        char::from(HEX_DIGITS[usize::from(a >> 4)]),
        char::from(HEX_DIGITS[usize::from(z & 0x0f)]),
    ]
}

/// The two ALPN characters as a string (tests).
#[cfg(test)]
fn alpn_code(first: Option<&[u8]>) -> String {
    alpn_chars(first).iter().collect()
}

/// `v` as 4 lowercase hex digits (`{v:04x}`).
fn hex4(v: u16) -> [u8; 4] {
    let [hi, lo] = v.to_be_bytes();
    let ([a, b], [c, d]) = (HEX_PAIRS[usize::from(hi)], HEX_PAIRS[usize::from(lo)]);
    [a, b, c, d]
}

/// Appends two decimal digits of `n` (≤ 99; `{n:02}`).
fn push_dec2(s: &mut String, n: usize) {
    let n = n.min(99) as u8;
    s.push(char::from(b'0' + n / 10));
    s.push(char::from(b'0' + n % 10));
}

/// Comma-joined 4-digit lowercase hex (tests).
#[cfg(test)]
fn hex_list(items: &[u16]) -> String {
    let mut s = String::with_capacity(items.len() * 5);
    for (i, &v) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.extend(hex4(v).map(char::from));
    }
    s
}

/// SHA-256 of a text made of separated 4-digit hex values (`,` within a list, `_`
/// between the lists of JA4's `c`), staged in a stack buffer so that no `String` is
/// built and the hasher sees few large updates. Every value is written as 5 bytes,
/// separator first; the very first byte of the text (a separator) is not hashed.
struct HashText {
    sha: Sha256,
    buf: [u8; 320],
    /// Where the hashed part of `buf` starts: 1 until the first flush, then 0.
    start: usize,
    len: usize,
}

impl HashText {
    fn new() -> Self {
        Self {
            sha: Sha256::new(),
            buf: [0; 320],
            start: 1,
            len: 0,
        }
    }

    fn flush(&mut self) {
        self.sha
            .update(self.buf.get(self.start..self.len).unwrap_or_default());
        self.start = 0;
        self.len = 0;
    }

    /// Appends `items`, the first preceded by `first_sep` and the others by `,`.
    fn push_list(&mut self, first_sep: u8, items: impl IntoIterator<Item = u16>) {
        let mut sep = first_sep;
        for v in items {
            if self.len + 5 > self.buf.len() {
                self.flush();
            }
            let [a, b, c, d] = hex4(v);
            if let Some(dst) = self.buf.get_mut(self.len..self.len + 5) {
                dst.copy_from_slice(&[sep, a, b, c, d]);
                self.len += 5;
            }
            sep = b',';
        }
    }

    /// Appends the first 12 hex characters of the digest to `out`.
    fn finish_12(mut self, out: &mut String) {
        self.flush();
        let digest = self.sha.finalize();
        push_hex(out, digest.get(..6).unwrap_or_default());
    }
}

/// Appends the first 12 hex characters of SHA-256 of the comma-joined 4-digit hex list
/// `items` (`000000000000` when empty).
fn push_list_hash(out: &mut String, items: impl IntoIterator<Item = u16>) {
    let mut items = items.into_iter().peekable();
    if items.peek().is_none() {
        out.push_str(EMPTY_HASH);
        return;
    }
    let mut h = HashText::new();
    h.push_list(b',', items);
    h.finish_12(out);
}

/// First 12 hex characters of SHA-256 (tests).
#[cfg(test)]
fn sha256_12(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    let mut out = String::with_capacity(12);
    push_hex(&mut out, digest.get(..6).unwrap_or_default());
    out
}

/// Lists up to this long are filtered and sorted in a stack array; longer ones (not
/// seen in real hellos) in a `Vec`.
const STACK_LIST: usize = 128;

/// Calls `f` with the values of `items` for which `keep` holds, sorted ascending,
/// without allocating when there are at most [`STACK_LIST`] items.
fn with_sorted<R>(items: &[u16], keep: impl Fn(u16) -> bool, f: impl FnOnce(&[u16]) -> R) -> R {
    let kept = items.iter().copied().filter(|&v| keep(v));
    if items.len() <= STACK_LIST {
        let mut buf = [0u16; STACK_LIST];
        let mut n = 0;
        for (slot, v) in buf.iter_mut().zip(kept) {
            *slot = v;
            n += 1;
        }
        let sorted = buf.get_mut(..n).unwrap_or_default();
        sorted.sort_unstable();
        f(sorted)
    } else {
        let mut sorted: Vec<u16> = kept.collect();
        sorted.sort_unstable();
        f(&sorted)
    }
}

/// The JA4 fingerprint of a ClientHello.
pub fn ja4(ch: &ClientHello, t: JaTransport) -> String {
    let n_ciphers = ch.cipher_suites.iter().filter(|&&v| !is_grease(v)).count();
    let mut n_exts = 0;
    let mut has_sni = false;
    for &e in &ch.extensions {
        if !is_grease(e) {
            n_exts += 1;
            has_sni |= e == 0x0000;
        }
    }
    // 10 + 2 (a) + 1 + 12 (b) + 1 + 12 (c).
    let mut out = String::with_capacity(38);
    out.push(t.prefix());
    out.push_str(version_code(client_version(ch, t)));
    out.push(if has_sni { 'd' } else { 'i' });
    push_dec2(&mut out, n_ciphers);
    push_dec2(&mut out, n_exts);
    let [a, z] = alpn_chars(ch.alpn_raw.first().map(Vec::as_slice));
    out.push(a);
    out.push(z);
    out.push('_');
    // Sorting 4-digit hex strings is sorting the numbers.
    with_sorted(
        &ch.cipher_suites,
        |v| !is_grease(v),
        |ciphers| push_list_hash(&mut out, ciphers.iter().copied()),
    );
    out.push('_');
    with_sorted(
        &ch.extensions,
        |e| !is_grease(e) && e != 0x0000 && e != 0x0010,
        |exts| {
            if exts.is_empty() {
                out.push_str(EMPTY_HASH);
                return;
            }
            let mut h = HashText::new();
            h.push_list(b',', exts.iter().copied());
            let sigs = ch
                .signature_algorithms
                .iter()
                .copied()
                .filter(|&v| !is_grease(v));
            h.push_list(b'_', sigs);
            h.finish_12(&mut out);
        },
    );
    out
}

/// The JA4S fingerprint of a ServerHello (or HelloRetryRequest).
pub fn ja4s(sh: &ServerHello, t: JaTransport) -> String {
    let exts = sh.extensions.iter().copied().filter(|&v| !is_grease(v));
    let mut out = String::with_capacity(25);
    out.push(t.prefix());
    out.push_str(version_code(sh.negotiated_version()));
    push_dec2(&mut out, exts.clone().count());
    out.extend(alpn_chars(sh.alpn_raw.as_deref()));
    out.push('_');
    out.extend(hex4(sh.cipher_suite).map(char::from));
    out.push('_');
    push_list_hash(&mut out, exts);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_rules() {
        assert_eq!(alpn_code(None), "00");
        assert_eq!(alpn_code(Some(b"")), "00");
        assert_eq!(alpn_code(Some(b"h2")), "h2");
        assert_eq!(alpn_code(Some(b"http/1.1")), "h1");
        assert_eq!(alpn_code(Some(b"h")), "hh");
        // Spec examples (JA4.md "ALPN Extension Value").
        assert_eq!(alpn_code(Some(&[0xab])), "ab");
        assert_eq!(alpn_code(Some(&[0xab, 0xcd])), "ad");
        assert_eq!(alpn_code(Some(&[0x30, 0xab])), "3b");
        assert_eq!(alpn_code(Some(&[0x30, 0x31, 0xab, 0xcd])), "3d");
        assert_eq!(alpn_code(Some(&[0x30, 0xab, 0xcd, 0x31])), "01");
        assert_eq!(alpn_code(Some(&[0x3a, 0x3a])), "00");
    }

    /// The worked example of JA4.md: Chrome's cipher list hashes to `8daaf6152771`.
    #[test]
    fn spec_cipher_hash() {
        let ciphers = [
            0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
            0x009c, 0x009d, 0x002f, 0x0035,
        ];
        let mut sorted = ciphers.to_vec();
        sorted.sort_unstable();
        assert_eq!(sha256_12(&hex_list(&sorted)), "8daaf6152771");
    }

    #[test]
    fn grease_counts_and_caps() {
        let ch = ClientHello {
            legacy_version: 0x0303,
            cipher_suites: (0..200u16).chain([0x0a0a]).collect(),
            extensions: vec![0x0a0a, 0x0000, 0x0010, 0x002b],
            supported_versions: vec![0x3a3a, 0x0304, 0x0303],
            alpn_raw: vec![b"h2".to_vec()],
            ..ClientHello::default()
        };
        let fp = ja4(&ch, JaTransport::Quic);
        assert!(fp.starts_with("q13d9903h2_"), "{fp}");
        let empty = ClientHello::default();
        assert_eq!(
            ja4(&empty, JaTransport::Tcp),
            "t00i000000_000000000000_000000000000"
        );
        // Only SNI + ALPN: the extension hash list is empty.
        let ch = ClientHello {
            legacy_version: 0x0301,
            cipher_suites: vec![0x002f],
            extensions: vec![0x0000, 0x0010],
            ..ClientHello::default()
        };
        assert!(ja4(&ch, JaTransport::Tcp).starts_with("t10d0102"));
        assert!(ja4(&ch, JaTransport::Tcp).ends_with("_000000000000"));
    }

    /// Long lists (sorted in a `Vec`, hashed over several buffer flushes) hash like the
    /// plain comma-joined text.
    #[test]
    fn long_lists_hash_like_the_text() {
        let ciphers: Vec<u16> = (0..300u16).rev().map(|v| v * 7).collect();
        let exts: Vec<u16> = (1..150u16).filter(|&e| e != 0x0010).collect();
        let sigs: Vec<u16> = (0..90u16).map(|v| 0x0400 + v).collect();
        let ch = ClientHello {
            legacy_version: 0x0303,
            cipher_suites: ciphers.clone(),
            extensions: exts.clone(),
            signature_algorithms: sigs.clone(),
            ..ClientHello::default()
        };
        let mut sorted = ciphers;
        sorted.sort_unstable();
        let mut sorted_exts = exts;
        sorted_exts.sort_unstable();
        let c = format!("{}_{}", hex_list(&sorted_exts), hex_list(&sigs));
        let want = format!(
            "t12i9999h2_{}_{}",
            sha256_12(&hex_list(&sorted)),
            sha256_12(&c)
        );
        let got = ja4(&ch, JaTransport::Tcp);
        assert_eq!(got.get(..4), want.get(..4));
        assert_eq!(got.get(10..), want.get(10..));
    }

    #[test]
    fn ja4s_format() {
        let sh = ServerHello {
            legacy_version: 0x0303,
            cipher_suite: 0xc030,
            extensions: vec![],
            ..ServerHello::default()
        };
        assert_eq!(ja4s(&sh, JaTransport::Tcp), "t120000_c030_000000000000");
        let sh = ServerHello {
            legacy_version: 0x0303,
            cipher_suite: 0x1301,
            extensions: vec![0x002b, 0x0033],
            selected_version: Some(0x0304),
            ..ServerHello::default()
        };
        // Corpus value (pub_chromium_tcp.pcap).
        assert_eq!(ja4s(&sh, JaTransport::Tcp), "t130200_1301_a56c5b993250");
    }
}
