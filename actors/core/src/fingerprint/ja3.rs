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

/// Appends `v` in decimal (what `write!(s, "{v}")` prints, without the fmt machinery).
fn push_dec(s: &mut String, v: u16) {
    let mut buf = [0u8; 5];
    let mut i = buf.len();
    let mut n = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &buf[i..] {
        s.push(char::from(d));
    }
}

/// Appends values as decimal joined with `-`, skipping GREASE when `skip_grease`.
fn push_join<T: Copy + Into<u16>>(s: &mut String, items: &[T], skip_grease: bool) {
    let mut first = true;
    for v in items.iter().map(|&v| v.into()) {
        if skip_grease && is_grease(v) {
            continue;
        }
        if !first {
            s.push('-');
        }
        first = false;
        push_dec(s, v);
    }
}

/// The JA3 string of a ClientHello, e.g. `771,4865-4866,0-23-65281,29-23,0`.
pub fn ja3(ch: &ClientHello) -> String {
    // At most 5 digits and a separator per value.
    let cap = 6
        * (1 + ch.cipher_suites.len()
            + ch.extensions.len()
            + ch.supported_groups.len()
            + ch.ec_point_formats.len());
    let mut s = String::with_capacity(cap);
    push_dec(&mut s, ch.legacy_version);
    s.push(',');
    push_join(&mut s, &ch.cipher_suites, true);
    s.push(',');
    push_join(&mut s, &ch.extensions, true);
    s.push(',');
    push_join(&mut s, &ch.supported_groups, true);
    s.push(',');
    push_join(&mut s, &ch.ec_point_formats, false);
    s
}

/// The JA3S string of a ServerHello (or HelloRetryRequest), e.g. `771,4865,43-51`.
pub fn ja3s(sh: &ServerHello) -> String {
    let mut s = String::with_capacity(6 * (2 + sh.extensions.len()));
    push_dec(&mut s, sh.legacy_version);
    s.push(',');
    push_dec(&mut s, sh.cipher_suite);
    s.push(',');
    push_join(&mut s, &sh.extensions, true);
    s
}

/// Appends the lowercase hex of `bytes`.
pub(crate) fn push_hex(s: &mut String, bytes: &[u8]) {
    for &b in bytes {
        s.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
        s.push(char::from(HEX_DIGITS[usize::from(b & 0x0f)]));
    }
}

/// Lowercase hex MD5 of a string (the JA3/JA3S hash).
pub fn md5_hex(s: &str) -> String {
    let digest = Md5::digest(s.as_bytes());
    let mut out = String::with_capacity(32);
    push_hex(&mut out, &digest);
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
            let mut s = String::new();
            push_dec(&mut s, v);
            assert_eq!(s, v.to_string());
        }
        let mut s = String::new();
        push_hex(&mut s, &[0x00, 0x0f, 0xa5, 0xff]);
        assert_eq!(s, "000fa5ff");
    }
}
