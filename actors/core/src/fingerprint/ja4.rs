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

use super::ja3::{push_hex, HEX_DIGITS};
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

/// Appends `v` as 4-digit lowercase hex (`{v:04x}`).
fn push_hex4(s: &mut String, v: u16) {
    push_hex(s, &v.to_be_bytes());
}

/// Appends two decimal digits of `n` (≤ 99; `{n:02}`).
fn push_dec2(s: &mut String, n: usize) {
    let n = n.min(99) as u8;
    s.push(char::from(b'0' + n / 10));
    s.push(char::from(b'0' + n % 10));
}

/// Appends comma-joined 4-digit lowercase hex.
fn push_hex_list(s: &mut String, items: &[u16]) {
    for (i, &v) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        push_hex4(s, v);
    }
}

/// Comma-joined 4-digit lowercase hex.
fn hex_list(items: &[u16]) -> String {
    let mut s = String::with_capacity(items.len() * 5);
    push_hex_list(&mut s, items);
    s
}

/// Appends the first 12 hex characters of SHA-256 of `s`.
fn push_sha256_12(out: &mut String, s: &str) {
    let digest = Sha256::digest(s.as_bytes());
    push_hex(out, digest.get(..6).unwrap_or_default());
}

/// First 12 hex characters of SHA-256.
#[cfg(test)]
fn sha256_12(s: &str) -> String {
    let mut out = String::with_capacity(12);
    push_sha256_12(&mut out, s);
    out
}

/// Non-GREASE values.
fn no_grease(items: &[u16]) -> Vec<u16> {
    items.iter().copied().filter(|&v| !is_grease(v)).collect()
}

/// The JA4 fingerprint of a ClientHello.
pub fn ja4(ch: &ClientHello, t: JaTransport) -> String {
    let mut ciphers = no_grease(&ch.cipher_suites);
    let exts = no_grease(&ch.extensions);
    let sni = if exts.contains(&0x0000) { 'd' } else { 'i' };
    // 10 + 2 (a) + 1 + 12 (b) + 1 + 12 (c).
    let mut out = String::with_capacity(38);
    out.push(t.prefix());
    out.push_str(version_code(client_version(ch, t)));
    out.push(sni);
    push_dec2(&mut out, ciphers.len());
    push_dec2(&mut out, exts.len());
    out.extend(alpn_chars(ch.alpn_raw.first().map(Vec::as_slice)));
    out.push('_');
    // One scratch buffer for the two hashed lists.
    let mut scratch =
        String::with_capacity(5 * (ciphers.len() + exts.len() + ch.signature_algorithms.len()) + 1);
    ciphers.sort_unstable();
    if ciphers.is_empty() {
        out.push_str(EMPTY_HASH);
    } else {
        push_hex_list(&mut scratch, &ciphers);
        push_sha256_12(&mut out, &scratch);
    }
    out.push('_');
    let mut sorted: Vec<u16> = exts
        .into_iter()
        .filter(|&e| e != 0x0000 && e != 0x0010)
        .collect();
    sorted.sort_unstable();
    if sorted.is_empty() {
        out.push_str(EMPTY_HASH);
    } else {
        scratch.clear();
        push_hex_list(&mut scratch, &sorted);
        let mut sigs = ch
            .signature_algorithms
            .iter()
            .copied()
            .filter(|&v| !is_grease(v));
        if let Some(first) = sigs.next() {
            scratch.push('_');
            push_hex4(&mut scratch, first);
            for v in sigs {
                scratch.push(',');
                push_hex4(&mut scratch, v);
            }
        }
        push_sha256_12(&mut out, &scratch);
    }
    out
}

/// The JA4S fingerprint of a ServerHello (or HelloRetryRequest).
pub fn ja4s(sh: &ServerHello, t: JaTransport) -> String {
    let exts = no_grease(&sh.extensions);
    let mut out = String::with_capacity(25);
    out.push(t.prefix());
    out.push_str(version_code(sh.negotiated_version()));
    push_dec2(&mut out, exts.len());
    out.extend(alpn_chars(sh.alpn_raw.as_deref()));
    out.push('_');
    push_hex4(&mut out, sh.cipher_suite);
    out.push('_');
    if exts.is_empty() {
        out.push_str(EMPTY_HASH);
    } else {
        push_sha256_12(&mut out, &hex_list(&exts));
    }
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
