//! JA4 and JA4S (FoxIO JA4+ specification).
//!
//! JA4 = `{t|q}{version}{d|i}{ciphers:02}{extensions:02}{alpn}_{sha256_12(sorted ciphers)}_{sha256_12(sorted extensions without SNI/ALPN "_" signature algorithms)}`.
//! GREASE values are ignored everywhere, signature algorithms included (checked
//! against the corpus' Chromium hellos, which carry a GREASE signature algorithm).

use crate::tls::fields::{is_grease, ClientHelloFields, ServerHelloFields};
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// The transport a hello travelled over: the first JA4 character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TLS over TCP: `t`.
    Tcp,
    /// TLS inside QUIC: `q`.
    Quic,
}

impl Transport {
    fn letter(self) -> char {
        match self {
            Transport::Tcp => 't',
            Transport::Quic => 'q',
        }
    }
}

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

/// First 12 hex characters of SHA-256 of `s`, or twelve zeros for an empty list.
fn hash12(s: &str) -> String {
    if s.is_empty() {
        return "000000000000".to_string();
    }
    let d = Sha256::digest(s.as_bytes());
    let mut out = String::with_capacity(12);
    for b in &d[..6] {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn hex_list(items: impl Iterator<Item = u16>) -> String {
    let mut s = String::new();
    for (i, v) in items.enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{v:04x}");
    }
    s
}

/// The two ALPN characters: first and last character of the first protocol, hex when either is not alphanumeric.
fn alpn_code(first: Option<&str>) -> String {
    let Some(p) = first.map(str::as_bytes).filter(|p| !p.is_empty()) else {
        return "00".to_string();
    };
    let (a, z) = (p[0], p[p.len() - 1]);
    if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric() {
        format!("{}{}", a as char, z as char)
    } else {
        let ha = format!("{a:02x}");
        let hz = format!("{z:02x}");
        format!("{}{}", &ha[..1], &hz[1..])
    }
}

fn count(n: usize) -> String {
    format!("{:02}", n.min(99))
}

/// JA4 of a ClientHello.
pub fn ja4(ch: &ClientHelloFields, transport: Transport) -> String {
    let version = ch
        .versions
        .iter()
        .copied()
        .filter(|v| !is_grease(*v))
        .max()
        .unwrap_or(ch.legacy_version);
    let ciphers: Vec<u16> = ch
        .ciphers
        .iter()
        .copied()
        .filter(|v| !is_grease(*v))
        .collect();
    let exts: Vec<u16> = ch
        .extensions
        .iter()
        .copied()
        .filter(|v| !is_grease(*v))
        .collect();
    let sni = if ch.extensions.contains(&0) { 'd' } else { 'i' };
    let a = format!(
        "{}{}{}{}{}{}",
        transport.letter(),
        version_code(version),
        sni,
        count(ciphers.len()),
        count(exts.len()),
        alpn_code(ch.alpn.first().map(String::as_str)),
    );
    let mut sc = ciphers.clone();
    sc.sort_unstable();
    let b = hash12(&hex_list(sc.into_iter()));
    let mut se: Vec<u16> = exts.into_iter().filter(|&e| e != 0 && e != 16).collect();
    se.sort_unstable();
    let sigs: Vec<u16> = ch
        .sig_algs
        .iter()
        .copied()
        .filter(|v| !is_grease(*v))
        .collect();
    let mut c_in = hex_list(se.into_iter());
    if !sigs.is_empty() {
        c_in.push('_');
        c_in.push_str(&hex_list(sigs.into_iter()));
    }
    let c = hash12(&c_in);
    format!("{a}_{b}_{c}")
}

/// JA4S of a ServerHello.
pub fn ja4s(sh: &ServerHelloFields, transport: Transport) -> String {
    let version = sh.selected_version.unwrap_or(sh.legacy_version);
    let a = format!(
        "{}{}{}{}",
        transport.letter(),
        version_code(version),
        count(sh.extensions.len()),
        alpn_code(sh.alpn.as_deref()),
    );
    let c = hash12(&hex_list(sh.extensions.iter().copied()));
    format!("{a}_{:04x}_{c}", sh.cipher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_codes() {
        assert_eq!(alpn_code(None), "00");
        assert_eq!(alpn_code(Some("h2")), "h2");
        assert_eq!(alpn_code(Some("http/1.1")), "h1");
        assert_eq!(alpn_code(Some("h3")), "h3");
        // 0xab ... 0xcd: first hex char of the first byte, last hex char of the last byte.
        assert_eq!(alpn_code(Some("\u{1}x\u{2}")), "02");
    }

    #[test]
    fn ja4s_of_corpus_server_hellos() {
        // pub_chromium_tcp.pcap, client port 59824: Go server, TLS 1.3, extensions 43, 51.
        let sh = ServerHelloFields {
            legacy_version: 0x0303,
            cipher: 0x1301,
            extensions: vec![43, 51],
            selected_version: Some(0x0304),
            alpn: None,
        };
        assert_eq!(ja4s(&sh, Transport::Tcp), "t130200_1301_a56c5b993250");
        // pub_curl_vs_openssl_server.pcap, client port 44224: OpenSSL server, TLS 1.2.
        let sh = ServerHelloFields {
            legacy_version: 0x0303,
            cipher: 0xc030,
            extensions: vec![65281, 11, 23],
            selected_version: None,
            alpn: None,
        };
        assert_eq!(ja4s(&sh, Transport::Tcp), "t120300_c030_460f64128655");
    }
}
