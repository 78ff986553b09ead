//! ClientHello builder: writes the handshake message of a [`StackProfile`] and returns
//! the fields it chose, from which the manifest's expected fingerprints are computed.

use super::fields::{is_grease, ClientHelloFields};
use super::profile::{Order, StackProfile, GREASE, GREASE2};
use crate::rng::Rng;

/// Per-connection inputs of a ClientHello.
#[derive(Debug, Clone, Copy, Default)]
pub struct HelloOptions<'a> {
    /// server_name; `None` omits the extension (as clients do for IP literals).
    pub sni: Option<&'a str>,
    /// QUIC transport parameters (extension 57) for QUIC stacks.
    pub quic_params: &'a [u8],
    /// A fixed extension order (tests): replaces the permutation of a permuting stack.
    pub order: Option<&'a [u16]>,
}

/// Key share length for a named group (RFC 8446 §4.2.8, draft-kwiatkowski-tls-ecdhe-mlkem):
/// the client sends an ML-KEM-768 encapsulation key, the server a ciphertext.
pub(crate) fn key_share_len(group: u16, server: bool) -> usize {
    match group {
        4588 if server => 1088 + 32, // X25519MLKEM768: ML-KEM ciphertext then X25519
        4588 => 1184 + 32,           // ML-KEM-768 encapsulation key then X25519
        29 => 32,
        30 => 56,
        23 => 65,
        24 => 97,
        25 => 133,
        g if is_grease(g) => 1,
        _ => 32,
    }
}

/// Writes the 24-bit length of the handshake message that starts at `start`.
pub(crate) fn patch_handshake_len(out: &mut [u8], start: usize) {
    let len = (out.len() - start - 4) as u32;
    out[start + 1..start + 4].copy_from_slice(&len.to_be_bytes()[1..]);
}

fn u16s(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Writes `f` as a `u16`-length-prefixed vector.
fn vec16(out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    f(out);
    let len = (out.len() - at - 2) as u16;
    out[at..at + 2].copy_from_slice(&len.to_be_bytes());
}

/// Writes `f` as a `u8`-length-prefixed vector.
fn vec8(out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.push(0);
    f(out);
    out[at] = (out.len() - at - 1) as u8;
}

/// GREASE values of one connection (BoringSSL draws them per connection; the two extensions differ).
#[derive(Debug)]
struct Grease {
    cipher: u16,
    group: u16,
    ext1: u16,
    ext2: u16,
    version: u16,
    sig: u16,
}

impl Grease {
    fn draw(rng: &mut Rng) -> Self {
        let mut g = || {
            let i = rng.below(16) as u16;
            (i << 12) | 0x0a00 | (i << 4) | 0x0a
        };
        let ext1 = g();
        let mut ext2 = g();
        if ext2 == ext1 {
            ext2 ^= 0x1010;
        }
        Self {
            cipher: g(),
            group: g(),
            ext1,
            ext2,
            version: g(),
            sig: g(),
        }
    }
}

fn sub(list: &[u16], grease: u16) -> Vec<u16> {
    list.iter()
        .map(|&v| if v == GREASE { grease } else { v })
        .collect()
}

/// Writes a ClientHello handshake message (type, length, body) for `p` into `out`.
pub fn build_client_hello(
    p: &StackProfile,
    opt: &HelloOptions<'_>,
    rng: &mut Rng,
    out: &mut Vec<u8>,
) -> ClientHelloFields {
    let gr = Grease::draw(rng);
    let ciphers = sub(p.ciphers, gr.cipher);
    let groups = sub(p.groups, gr.group);
    let sig_algs = sub(p.sig_algs, gr.sig);
    let versions = sub(p.versions, gr.version);
    let mut exts: Vec<u16> = p
        .extensions
        .iter()
        .filter(|&&e| e != 0 || opt.sni.is_some())
        .map(|&e| match e {
            GREASE => gr.ext1,
            GREASE2 => gr.ext2,
            e => e,
        })
        .collect();
    if let Some(fixed) = opt.order {
        exts = fixed.to_vec();
    } else if p.order == Order::Permuted {
        // Chromium: GREASE stays first and last, pre_shared_key last; the rest is shuffled.
        let lo = usize::from(exts.first().is_some_and(|e| is_grease(*e)));
        let hi = exts.len() - usize::from(exts.last().is_some_and(|e| is_grease(*e)));
        rng.shuffle(&mut exts[lo..hi]);
    }

    let start = out.len();
    out.extend_from_slice(&[1, 0, 0, 0]); // handshake type ClientHello, length patched below
    u16s(out, 0x0303);
    let mut random = [0u8; 32];
    rng.fill(&mut random);
    out.extend_from_slice(&random);
    if p.session_id {
        let mut sid = [0u8; 32];
        rng.fill(&mut sid);
        out.push(32);
        out.extend_from_slice(&sid);
    } else {
        out.push(0);
    }
    vec16(out, |o| ciphers.iter().for_each(|&c| u16s(o, c)));
    out.extend_from_slice(&[1, 0]); // compression: null
    let mut written: Vec<u16> = Vec::with_capacity(exts.len());
    vec16(out, |o| {
        for (i, &e) in exts.iter().enumerate() {
            if e == 21 {
                // OpenSSL/BoringSSL padding (RFC 7685): only when the hello would be 256..511 bytes.
                let hlen = o.len() - start;
                if hlen > 0xff && hlen < 0x200 {
                    let pad = (0x200 - hlen).saturating_sub(4);
                    u16s(o, 21);
                    vec16(o, |b| b.resize(b.len() + pad, 0));
                    written.push(21);
                }
                continue;
            }
            u16s(o, e);
            let last = i + 1 == exts.len();
            vec16(o, |b| {
                ext_body(e, last, p, opt, &groups, &sig_algs, &versions, &gr, rng, b)
            });
            written.push(e);
        }
    });
    patch_handshake_len(out, start);

    ClientHelloFields {
        legacy_version: 0x0303,
        ciphers,
        extensions: written,
        groups,
        point_formats: p.point_formats.to_vec(),
        sig_algs,
        versions,
        sni: opt.sni.map(str::to_string),
        alpn: p.alpn.iter().map(|s| s.to_string()).collect(),
    }
}

#[allow(clippy::too_many_arguments)]
fn ext_body(
    e: u16,
    last: bool,
    p: &StackProfile,
    opt: &HelloOptions<'_>,
    groups: &[u16],
    sig_algs: &[u16],
    versions: &[u16],
    gr: &Grease,
    rng: &mut Rng,
    b: &mut Vec<u8>,
) {
    match e {
        0 => {
            let host = opt.sni.unwrap_or_default().as_bytes();
            vec16(b, |b| {
                b.push(0); // host_name
                vec16(b, |b| b.extend_from_slice(host));
            });
        }
        5 => b.extend_from_slice(&[1, 0, 0, 0, 0]), // status_request: OCSP, no responders
        10 => vec16(b, |b| groups.iter().for_each(|&g| u16s(b, g))),
        11 => vec8(b, |b| b.extend_from_slice(p.point_formats)),
        13 => vec16(b, |b| sig_algs.iter().for_each(|&s| u16s(b, s))),
        50 => vec16(b, |b| p.sig_algs_cert.iter().for_each(|&s| u16s(b, s))),
        16 => vec16(b, |b| {
            for a in p.alpn {
                vec8(b, |b| b.extend_from_slice(a.as_bytes()));
            }
        }),
        17 => b.extend_from_slice(&[0, 7, 2, 0, 4, 0, 0, 0, 0]), // status_request_v2: ocsp_multi
        27 => vec8(b, |b| p.cert_compression.iter().for_each(|&a| u16s(b, a))),
        28 => u16s(b, 0x4001), // record_size_limit
        34 => vec16(b, |b| {
            [0x0403, 0x0503, 0x0603, 0x0203]
                .iter()
                .for_each(|&s| u16s(b, s))
        }),
        43 => vec8(b, |b| versions.iter().for_each(|&v| u16s(b, v))),
        45 => b.extend_from_slice(&[1, 1]), // psk_dhe_ke
        51 => vec16(b, |b| {
            for &g in p.key_shares {
                let g = if g == GREASE { gr.group } else { g };
                u16s(b, g);
                let n = key_share_len(g, false);
                vec16(b, |b| {
                    let at = b.len();
                    b.resize(at + n, 0);
                    if !is_grease(g) {
                        rng.fill(&mut b[at..]);
                    }
                });
            }
        }),
        57 => b.extend_from_slice(opt.quic_params),
        65281 => b.push(0), // renegotiation_info, empty
        17613 => vec16(b, |b| {
            // application_settings (ALPS): the protocols it applies to
            for a in p.alpn.iter().take(1) {
                vec8(b, |b| b.extend_from_slice(a.as_bytes()));
            }
        }),
        65037 => {
            // GREASE ECH (draft-ietf-tls-esni §6.2): outer, HKDF-SHA256, AES-128-GCM, random config, enc, payload
            b.extend_from_slice(&[0, 0, 1, 0, 1]);
            b.push(rng.below(256) as u8);
            vec16(b, |b| {
                let at = b.len();
                b.resize(at + 32, 0);
                rng.fill(&mut b[at..]);
            });
            let n = 144 + 32 * rng.below(4) as usize;
            vec16(b, |b| {
                let at = b.len();
                b.resize(at + n, 0);
                rng.fill(&mut b[at..]);
            });
        }
        51764 => u16s(b, 0),                    // trust_anchors: empty list
        g if is_grease(g) && last => b.push(0), // BoringSSL's final GREASE extension carries one zero byte
        _ => {} // 18 SCT, 22 encrypt_then_mac, 23 extended_master_secret, 35 session_ticket, 49 post_handshake_auth: empty
    }
}

/// Wraps handshake bytes into TLS records of at most 16384 bytes (record version 0x0301 for a first flight).
pub fn wrap_records(content_type: u8, version: u16, msg: &[u8], out: &mut Vec<u8>) {
    for chunk in msg.chunks(16384) {
        out.push(content_type);
        u16s(out, version);
        u16s(out, chunk.len() as u16);
        out.extend_from_slice(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::{ja3, ja4, md5_hex, Transport};
    use crate::tls::profile::*;

    fn hello(
        p: &StackProfile,
        sni: Option<&str>,
        order: Option<&[u16]>,
    ) -> (Vec<u8>, ClientHelloFields) {
        let mut out = Vec::new();
        let opt = HelloOptions {
            sni,
            quic_params: &[1, 2, 0x44, 0xb0],
            order,
        };
        let f = build_client_hello(p, &opt, &mut Rng::new(1), &mut out);
        (out, f)
    }

    /// (profile, client port in the corpus file, its ja3 hash, its ja4), from the corpus' expected.jsonl.
    const CORPUS: &[(&StackProfile, &str, &str, &str)] = &[
        (
            &CURL,
            "curl_vs_openssl_server:44216",
            "0149f47eabf9a20d0893e2a44e5a6323",
            "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6",
        ),
        (
            &PYTHON,
            "nginx_many_clients:42256",
            "93c7d42c0df602fb91589311534831f5",
            "t13d181100_85036bcba153_d41ae481755e",
        ),
        (
            &PYTHON_REQUESTS,
            "nginx_many_clients:42268",
            "a48c0d5f95b1ef98f560f324fd275da1",
            "t13d1812h1_85036bcba153_b26ce05bbdd6",
        ),
        (
            &JAVA,
            "nginx_many_clients:42278",
            "0a0d72200639a7a39887b9d81a247310",
            "t13d371200_db35923f8641_7c76daad20ec",
        ),
        (
            &GO,
            "nginx_many_clients:42294",
            "3fed133de60c35724739b913924b6c24",
            "t13d1910h2_9dc949149365_97f8aa674fd9",
        ),
    ];

    #[test]
    fn fixed_order_stacks_match_corpus_fingerprints() {
        for (p, row, hash, want_ja4) in CORPUS {
            let (_, f) = hello(p, Some("www.pub.test"), None);
            assert_eq!(
                md5_hex(&ja3(&f)),
                *hash,
                "{} vs corpus {row}: {}",
                p.name,
                ja3(&f)
            );
            assert_eq!(
                ja4(&f, Transport::Tcp),
                *want_ja4,
                "{} vs corpus {row}",
                p.name
            );
        }
    }

    #[test]
    fn chromium_matches_corpus_for_its_captured_order() {
        // pub_chromium_tcp.pcap, client port 59832: the permutation Chromium chose there.
        let order = [
            0x0a0a, 23, 13, 65281, 17613, 51, 11, 35, 16, 27, 45, 10, 43, 51764, 5, 65037, 18, 0,
            0x1a1a,
        ];
        let (bytes, f) = hello(&CHROMIUM, Some("www.pub.test"), Some(&order));
        assert_eq!(md5_hex(&ja3(&f)), "871005a25d4ea0cd0507e878808346f2");
        assert_eq!(
            ja4(&f, Transport::Tcp),
            "t13d1517h2_8daaf6152771_cb7bf5808d99"
        );
        assert!(
            bytes.len() > 1460,
            "post-quantum hello spans two segments: {}",
            bytes.len()
        );
    }

    #[test]
    fn chromium_permutes_but_ja4_is_stable() {
        let mut ja3s = std::collections::BTreeSet::new();
        let mut rng = Rng::new(9);
        for _ in 0..20 {
            let mut out = Vec::new();
            let opt = HelloOptions {
                sni: Some("www.pub.test"),
                ..Default::default()
            };
            let f = build_client_hello(&CHROMIUM, &opt, &mut rng, &mut out);
            assert_eq!(
                ja4(&f, Transport::Tcp),
                "t13d1517h2_8daaf6152771_cb7bf5808d99"
            );
            assert!(is_grease(f.extensions[0]) && is_grease(*f.extensions.last().expect("exts")));
            ja3s.insert(ja3(&f));
        }
        assert!(ja3s.len() > 15, "extension order varies per connection");
    }

    #[test]
    fn quic_stacks_match_corpus() {
        // pub_quic_chromium.pcap port 36751 and pub_quic_aioquic.pcap port 51646.
        let order = [65037, 16, 51, 51764, 43, 13, 45, 27, 17613, 57, 10, 0];
        let (_, f) = hello(&CHROMIUM_QUIC, Some("www.pub.test"), Some(&order));
        assert_eq!(md5_hex(&ja3(&f)), "df19471ffa77f909f3fbf15afaf388b6");
        assert_eq!(
            ja4(&f, Transport::Quic),
            "q13d0312h3_55b375c5d22e_178839b6cec1"
        );
        let (_, f) = hello(&AIOQUIC, Some("www.pub.test"), None);
        assert_eq!(md5_hex(&ja3(&f)), "121f6e4f22ee3205214b0676ed64b9e2");
        assert_eq!(
            ja4(&f, Transport::Quic),
            "q13d0307h3_55b375c5d22e_1cecd519fee8"
        );
    }

    #[test]
    fn no_sni_drops_extension_and_flips_ja4() {
        let (_, f) = hello(&CURL, None, None);
        assert!(!f.extensions.contains(&0));
        assert!(ja4(&f, Transport::Tcp).starts_with("t13i31"));
    }

    #[test]
    fn lengths_are_consistent() {
        for p in TCP_STACKS.iter().chain(QUIC_STACKS) {
            let (b, _) = hello(p, Some("example.org"), None);
            let len = u32::from_be_bytes([0, b[1], b[2], b[3]]) as usize;
            assert_eq!(len + 4, b.len(), "{}", p.name);
            // extensions block length matches what follows it
            let sid = b[38] as usize;
            let mut i = 39 + sid;
            let nc = u16::from_be_bytes([b[i], b[i + 1]]) as usize;
            i += 2 + nc;
            i += 1 + b[i] as usize;
            let ne = u16::from_be_bytes([b[i], b[i + 1]]) as usize;
            assert_eq!(i + 2 + ne, b.len(), "{}", p.name);
        }
    }
}
