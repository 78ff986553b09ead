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
use std::fmt::Write as _;

/// Joins values as decimal with `-`, skipping GREASE when `skip_grease`.
fn join<T: Copy + Into<u16>>(items: &[T], skip_grease: bool) -> String {
    let mut s = String::new();
    for v in items.iter().map(|&v| v.into()) {
        if skip_grease && is_grease(v) {
            continue;
        }
        if !s.is_empty() {
            s.push('-');
        }
        let _ = write!(s, "{v}");
    }
    s
}

/// The JA3 string of a ClientHello, e.g. `771,4865-4866,0-23-65281,29-23,0`.
pub fn ja3(ch: &ClientHello) -> String {
    format!(
        "{},{},{},{},{}",
        ch.legacy_version,
        join(&ch.cipher_suites, true),
        join(&ch.extensions, true),
        join(&ch.supported_groups, true),
        join(&ch.ec_point_formats, false),
    )
}

/// The JA3S string of a ServerHello (or HelloRetryRequest), e.g. `771,4865,43-51`.
pub fn ja3s(sh: &ServerHello) -> String {
    format!(
        "{},{},{}",
        sh.legacy_version,
        sh.cipher_suite,
        join(&sh.extensions, true)
    )
}

/// Lowercase hex MD5 of a string (the JA3/JA3S hash).
pub fn md5_hex(s: &str) -> String {
    let digest = Md5::digest(s.as_bytes());
    let mut out = String::with_capacity(32);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
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
}
