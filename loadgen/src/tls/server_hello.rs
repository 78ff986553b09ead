//! ServerHello builder (TLS 1.3 per RFC 8446 §4.1.3, TLS 1.2 per RFC 5246 §7.4.1.3) and the
//! opaque rest of a server's first flight.

use super::client_hello::{key_share_len, patch_handshake_len, wrap_records};
use super::fields::{is_grease, ClientHelloFields, ServerHelloFields};
use crate::rng::Rng;

/// Server implementations differ in extension order; loadgen picks one per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// OpenSSL / Go / nginx: supported_versions then key_share; TLS 1.2: renegotiation_info, ec_point_formats, ...
    OpenSsl,
    /// GnuTLS: key_share then supported_versions.
    GnuTls,
}

/// The version a server negotiates for `ch`: TLS 1.3 when offered and allowed.
pub fn negotiate_version(ch: &ClientHelloFields, allow13: bool) -> u16 {
    if allow13 && ch.versions.contains(&0x0304) {
        0x0304
    } else {
        0x0303
    }
}

fn pick_cipher(ch: &ClientHelloFields, v13: bool) -> u16 {
    let ok = |c: &&u16| !is_grease(**c) && (((**c) >> 8 == 0x13) == v13) && **c != 0x00ff;
    ch.ciphers
        .iter()
        .find(ok)
        .copied()
        .unwrap_or(if v13 { 0x1301 } else { 0xc02f })
}

/// Writes a ServerHello handshake message answering `ch` at `version`; returns its fields.
pub fn build_server_hello(
    ch: &ClientHelloFields,
    session_id: &[u8],
    version: u16,
    kind: ServerKind,
    rng: &mut Rng,
    out: &mut Vec<u8>,
) -> ServerHelloFields {
    let v13 = version == 0x0304;
    let cipher = pick_cipher(ch, v13);
    let start = out.len();
    out.extend_from_slice(&[2, 0, 0, 0]);
    out.extend_from_slice(&0x0303u16.to_be_bytes());
    let mut random = [0u8; 32];
    rng.fill(&mut random);
    out.extend_from_slice(&random);
    out.push(session_id.len() as u8);
    out.extend_from_slice(session_id);
    out.extend_from_slice(&cipher.to_be_bytes());
    out.push(0);
    let mut exts: Vec<u16> = Vec::new();
    let mut alpn = None;
    if v13 {
        exts = match kind {
            ServerKind::OpenSsl => vec![43, 51],
            ServerKind::GnuTls => vec![51, 43],
        };
    } else {
        exts.push(65281);
        if ch.point_formats.contains(&0) && !ch.point_formats.is_empty() {
            exts.push(11);
        }
        if ch.extensions.contains(&35) {
            exts.push(35);
        }
        if ch.extensions.contains(&23) {
            exts.push(23);
        }
        if let Some(a) = ch.alpn.first() {
            exts.push(16);
            alpn = Some(a.clone());
        }
    }
    let group = ch
        .groups
        .iter()
        .copied()
        .find(|g| !is_grease(*g))
        .unwrap_or(29);
    let ext_at = out.len();
    out.extend_from_slice(&[0, 0]);
    for &e in &exts {
        out.extend_from_slice(&e.to_be_bytes());
        let body: Vec<u8> = match e {
            43 => vec![0x03, 0x04],
            51 => {
                let n = key_share_len(group, true);
                let mut b = Vec::with_capacity(4 + n);
                b.extend_from_slice(&group.to_be_bytes());
                b.extend_from_slice(&(n as u16).to_be_bytes());
                let at = b.len();
                b.resize(at + n, 0);
                rng.fill(&mut b[at..]);
                b
            }
            65281 => vec![0],
            11 => vec![1, 0],
            16 => {
                let a = alpn.as_deref().unwrap_or_default().as_bytes();
                let mut b = Vec::with_capacity(3 + a.len());
                b.extend_from_slice(&((a.len() + 1) as u16).to_be_bytes());
                b.push(a.len() as u8);
                b.extend_from_slice(a);
                b
            }
            _ => Vec::new(),
        };
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&body);
    }
    let elen = (out.len() - ext_at - 2) as u16;
    out[ext_at..ext_at + 2].copy_from_slice(&elen.to_be_bytes());
    patch_handshake_len(out, start);
    ServerHelloFields {
        legacy_version: 0x0303,
        cipher,
        extensions: exts,
        selected_version: v13.then_some(0x0304),
        alpn,
    }
}

/// The server's first flight over TCP as TLS records: ServerHello then, for TLS 1.3,
/// ChangeCipherSpec and `encrypted_len` bytes of encrypted handshake; for TLS 1.2 an
/// empty Certificate, a ServerKeyExchange and ServerHelloDone.
pub fn server_flight(
    server_hello: &[u8],
    v13: bool,
    encrypted_len: usize,
    rng: &mut Rng,
    out: &mut Vec<u8>,
) {
    if v13 {
        wrap_records(0x16, 0x0303, server_hello, out);
        out.extend_from_slice(&[0x14, 0x03, 0x03, 0, 1, 1]);
        app_data_record(encrypted_len, rng, out);
    } else {
        let mut msgs = server_hello.to_vec();
        msgs.extend_from_slice(&[0x0b, 0, 0, 3, 0, 0, 0]); // Certificate, empty list
        let ske = 300usize;
        msgs.extend_from_slice(&[0x0c, 0, (ske >> 8) as u8, ske as u8]);
        let at = msgs.len();
        msgs.resize(at + ske, 0);
        rng.fill(&mut msgs[at..]);
        msgs.extend_from_slice(&[0x0e, 0, 0, 0]); // ServerHelloDone
        wrap_records(0x16, 0x0303, &msgs, out);
    }
}

/// An application_data record (TLS 1.3 encrypted content, random) of `len` payload bytes.
pub fn app_data_record(len: usize, rng: &mut Rng, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x17, 0x03, 0x03]);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    let at = out.len();
    out.resize(at + len, 0);
    rng.fill(&mut out[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::{ja3s, ja4s, md5_hex, Transport};
    use crate::tls::{build_client_hello, profile, HelloOptions};

    #[test]
    fn tls13_and_tls12_server_hellos_match_corpus_shapes() {
        let mut rng = Rng::new(5);
        let mut b = Vec::new();
        let opt = HelloOptions {
            sni: Some("a.pub.test"),
            ..Default::default()
        };
        let ch = build_client_hello(&profile::CURL, &opt, &mut rng, &mut b);
        let mut out = Vec::new();
        let sh = build_server_hello(
            &ch,
            &[0; 32],
            0x0304,
            ServerKind::OpenSsl,
            &mut rng,
            &mut out,
        );
        // corpus pub_curl_vs_openssl_server.pcap port 44216: 771,4866,43-51 / t130200_1302_a56c5b993250
        assert_eq!(ja3s(&sh), "771,4866,43-51");
        assert_eq!(md5_hex(&ja3s(&sh)), "15af977ce25de452b96affa2addb1036");
        assert_eq!(ja4s(&sh, Transport::Tcp), "t130200_1302_a56c5b993250");
        assert_eq!(
            u32::from_be_bytes([0, out[1], out[2], out[3]]) as usize + 4,
            out.len()
        );
        let mut out = Vec::new();
        let sh = build_server_hello(&ch, &[], 0x0303, ServerKind::OpenSsl, &mut rng, &mut out);
        assert_eq!(sh.cipher, 49196);
        assert_eq!(ja3s(&sh), "771,49196,65281-11-23-16");
        assert!(ja4s(&sh, Transport::Tcp).starts_with("t1204h2_c02c_"));
    }
}
