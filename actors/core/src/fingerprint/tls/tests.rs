//! Unit tests for the TLS parser with hand-built hellos: every length check, record and
//! handshake fragmentation (byte-at-a-time feeding), GREASE, HelloRetryRequest flows,
//! (property tests are in `proptests.rs`).

use super::*;

pub(super) fn v8(d: &[u8]) -> Vec<u8> {
    let mut v = vec![u8::try_from(d.len()).expect("short")];
    v.extend_from_slice(d);
    v
}

pub(super) fn v16(d: &[u8]) -> Vec<u8> {
    let mut v = u16::try_from(d.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    v.extend_from_slice(d);
    v
}

pub(super) fn ext(ty: u16, data: &[u8]) -> Vec<u8> {
    let mut v = ty.to_be_bytes().to_vec();
    v.extend(v16(data));
    v
}

pub(super) fn u16s(vals: &[u16]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// The extensions of a typical TLS 1.3 ClientHello, GREASE included.
pub(super) fn client_exts() -> Vec<Vec<u8>> {
    vec![
        ext(0x0a0a, &[]),
        ext(
            0x0000,
            &v16(&[&[0u8][..], &v16(b"www.example.com")].concat()),
        ),
        ext(0x000a, &v16(&u16s(&[0x2a2a, 0x001d, 0x0017]))),
        ext(0x000b, &v8(&[0])),
        ext(0x000d, &v16(&u16s(&[0x0403, 0x0804]))),
        ext(0x0010, &v16(&[v8(b"h2"), v8(b"http/1.1")].concat())),
        ext(0x002b, &v8(&u16s(&[0x3a3a, 0x0304, 0x0303]))),
        ext(0xfe0d, &[1, 2, 3]),
    ]
}

pub(super) fn client_body(exts: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![0x03, 0x03];
    b.extend([7u8; 32]);
    b.extend(v8(&[9u8; 32]));
    b.extend(v16(&u16s(&[0x1a1a, 0x1301, 0x1302, 0xc02b])));
    b.extend(v8(&[0]));
    b.extend(v16(&exts.concat()));
    b
}

pub(super) fn server_body(random: [u8; 32], version: Option<u16>, alpn: Option<&[u8]>) -> Vec<u8> {
    let mut b = vec![0x03, 0x03];
    b.extend(random);
    b.extend(v8(&[]));
    b.extend(0x1301u16.to_be_bytes());
    b.push(0);
    let mut exts = vec![ext(0xff01, &[0])];
    if let Some(v) = version {
        exts.push(ext(0x002b, &v.to_be_bytes()));
    }
    if let Some(a) = alpn {
        exts.push(ext(0x0010, &v16(&v8(a))));
    }
    b.extend(v16(&exts.concat()));
    b
}

pub(super) fn handshake(ty: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("short").to_be_bytes();
    let mut v = vec![ty, len[1], len[2], len[3]];
    v.extend_from_slice(body);
    v
}

pub(super) fn record(ctype: u8, frag: &[u8]) -> Vec<u8> {
    let mut v = vec![ctype, 3, 1];
    v.extend(v16(frag));
    v
}

pub(super) fn run(framing: Framing, bytes: &[u8]) -> (Vec<TlsEvent>, bool) {
    let mut p = TlsDirectionParser::new(framing);
    let mut out = Vec::new();
    p.feed(bytes, &mut out);
    (out, p.is_finished())
}

fn run_bytewise(bytes: &[u8]) -> (Vec<TlsEvent>, bool) {
    let mut p = TlsDirectionParser::new(Framing::Records);
    let mut out = Vec::new();
    for b in bytes {
        p.feed(std::slice::from_ref(b), &mut out);
    }
    (out, p.is_finished())
}

fn malformed(hello: HelloKind, reason: MalformedReason) -> TlsEvent {
    TlsEvent::Malformed { hello, reason }
}

#[test]
fn client_hello_fields() {
    let ch = parse_client_hello(&client_body(&client_exts())).expect("valid");
    assert_eq!(ch.legacy_version, 0x0303);
    assert_eq!(ch.cipher_suites, vec![0x1a1a, 0x1301, 0x1302, 0xc02b]);
    assert_eq!(
        ch.extensions,
        vec![0x0a0a, 0x0000, 0x000a, 0x000b, 0x000d, 0x0010, 0x002b, 0xfe0d]
    );
    assert_eq!(ch.sni.as_deref(), Some("www.example.com"));
    assert_eq!(ch.alpn, vec!["h2", "http/1.1"]);
    assert_eq!(ch.supported_groups, vec![0x2a2a, 0x001d, 0x0017]);
    assert_eq!(ch.ec_point_formats, vec![0]);
    assert_eq!(ch.signature_algorithms, vec![0x0403, 0x0804]);
    assert_eq!(ch.supported_versions, vec![0x3a3a, 0x0304, 0x0303]);
    assert_eq!(
        crate::fingerprint::ja3::ja3(&ch),
        "771,4865-4866-49195,0-10-11-13-16-43-65037,29-23,0"
    );
    let ja4 = crate::fingerprint::ja4::ja4(&ch, crate::fingerprint::ja4::JaTransport::Tcp);
    assert!(ja4.starts_with("t13d0307h2_"), "{ja4}");
}

#[test]
fn hello_without_extensions_and_lossy_text() {
    let mut body = client_body(&[]);
    body.truncate(body.len() - 2); // no extension block at all (RFC 5246 §7.4.1.2)
    let ch = parse_client_hello(&body).expect("valid");
    assert!(ch.extensions.is_empty());
    let exts = vec![
        ext(0x0000, &v16(&[&[0u8][..], &v16(&[0x66, 0xff])].concat())),
        ext(0x0010, &v16(&v8(&[0xab, 0xcd]))),
    ];
    let ch = parse_client_hello(&client_body(&exts)).expect("valid");
    assert_eq!(ch.sni.as_deref(), Some("f\u{fffd}"));
    assert_eq!(ch.alpn_raw, vec![vec![0xab, 0xcd]]);
    let ja4 = crate::fingerprint::ja4::ja4(&ch, crate::fingerprint::ja4::JaTransport::Tcp);
    assert!(
        ja4.starts_with("t13d0302ad_") || ja4.starts_with("t12d0302ad_"),
        "{ja4}"
    );
}

/// Each corruption of a length field yields its reason and no ClientHello.
#[test]
fn malformed_client_hellos() {
    use MalformedReason as R;
    let good = client_body(&client_exts());
    let ext_block_at = 2 + 32 + 33 + 10 + 2; // version, random, sid, suites, compression
    let mut cases: Vec<(Vec<u8>, R)> = Vec::new();
    // Extensions length +100, record/handshake lengths untouched (the corpus case).
    let mut b = good.clone();
    let n = u16::from_be_bytes([b[ext_block_at], b[ext_block_at + 1]]) + 100;
    b[ext_block_at..ext_block_at + 2].copy_from_slice(&n.to_be_bytes());
    cases.push((b, R::ExtensionsLength));
    // Extensions length −1: one byte left over after the block.
    let mut b = good.clone();
    b[ext_block_at + 1] -= 1;
    cases.push((b, R::ExtensionsLength));
    let mut b = good.clone();
    b.push(0);
    cases.push((b, R::ExtensionsLength));
    // A lone byte where the extension block should be.
    let mut b = client_body(&[]);
    b.truncate(b.len() - 1);
    cases.push((b, R::ExtensionsLength));
    // Session id longer than 32.
    let mut b = good.clone();
    b[34] = 33;
    cases.push((b, R::SessionIdLength));
    // Cipher suites: odd, zero.
    let mut b = good.clone();
    b[68] = 7;
    cases.push((b, R::CipherSuitesLength));
    let mut b = good[..67].to_vec();
    b.extend([0, 0, 1, 0]);
    cases.push((b, R::CipherSuitesLength));
    // Compression methods: zero.
    let mut b = good[..77].to_vec();
    b.push(0);
    cases.push((b, R::CompressionLength));
    // Truncated inside the random.
    cases.push((good[..20].to_vec(), R::TruncatedHello));
    let inner = |e: Vec<u8>| client_body(&[e]);
    cases.push((
        inner(ext(0x0000, &[0, 9, 0, 0, 3, b'a', b'b', b'c'])),
        R::ServerNameLength,
    ));
    cases.push((
        inner(ext(0x0000, &[0, 6, 0, 0, 4, b'a', b'b', b'c'])),
        R::ServerNameLength,
    ));
    cases.push((inner(ext(0x0000, &[])), R::ServerNameLength));
    cases.push((inner(ext(0x0010, &[0, 3, 3, b'h', b'2'])), R::AlpnLength));
    cases.push((inner(ext(0x0010, &[0, 4, 2, b'h', b'2'])), R::AlpnLength));
    cases.push((
        inner(ext(0x000a, &[0, 3, 0, 0x1d, 0])),
        R::SupportedGroupsLength,
    ));
    cases.push((
        inner(ext(0x000a, &[0, 2, 0, 0x1d, 0, 0x17])),
        R::SupportedGroupsLength,
    ));
    cases.push((inner(ext(0x000b, &[2, 0])), R::EcPointFormatsLength));
    cases.push((
        inner(ext(0x000d, &[0, 4, 4, 3])),
        R::SignatureAlgorithmsLength,
    ));
    cases.push((
        inner(ext(0x002b, &[3, 3, 4, 3])),
        R::SupportedVersionsLength,
    ));
    cases.push((
        inner(ext(0x002b, &[2, 3, 4, 3, 3])),
        R::SupportedVersionsLength,
    ));
    // One extension claiming more bytes than the block holds.
    let mut b = client_body(&[ext(0x0017, &[])]);
    let l = b.len();
    b[l - 1] = 1;
    cases.push((b, R::ExtensionLength));

    for (i, (body, reason)) in cases.into_iter().enumerate() {
        assert_eq!(parse_client_hello(&body), Err(reason), "case {i}");
        let bytes = record(22, &handshake(1, &body));
        let (ev, finished) = run(Framing::Records, &bytes);
        assert_eq!(ev, vec![malformed(HelloKind::Client, reason)], "case {i}");
        assert!(finished);
        assert_eq!(run_bytewise(&bytes).0, ev, "case {i} bytewise");
    }
}

#[test]
fn malformed_server_hellos() {
    use MalformedReason as R;
    let good = server_body([1; 32], Some(0x0304), None);
    assert!(parse_server_hello(&good).is_ok());
    let mut b = good.clone();
    b.push(0);
    assert_eq!(parse_server_hello(&b), Err(R::ExtensionsLength));
    let mut b = server_body([1; 32], None, None);
    b.extend(ext(0x002b, &[3, 4, 0]));
    assert!(parse_server_hello(&b).is_err());
    let b = [&good[..good.len() - 2], &[0, 4, 0, 0x2b, 0, 1][..]].concat();
    assert!(parse_server_hello(&b).is_err());
    // ALPN with two names in a ServerHello (RFC 7301 §3.1: exactly one).
    let mut b = vec![3, 3];
    b.extend([1u8; 32]);
    b.extend([0, 0x13, 0x01, 0]);
    b.extend(v16(&ext(0x0010, &v16(&[v8(b"h2"), v8(b"h3")].concat()))));
    assert_eq!(parse_server_hello(&b), Err(R::AlpnLength));
    assert_eq!(parse_server_hello(&good[..37]), Err(R::CompressionLength));
    let (ev, _) = run(Framing::Records, &record(22, &handshake(2, &good[..37])));
    assert_eq!(ev, vec![malformed(HelloKind::Server, R::CompressionLength)]);
}

#[test]
fn size_caps() {
    // Handshake message claiming more than 64 KiB.
    let mut frag = vec![1, 0x01, 0x00, 0x01];
    frag.extend([3, 3]);
    frag.extend([0u8; 40]);
    let (ev, finished) = run(Framing::Records, &record(22, &frag));
    assert_eq!(
        ev,
        vec![malformed(
            HelloKind::Client,
            MalformedReason::RecordTooLarge
        )]
    );
    assert!(finished);
    // Record longer than 2^14 + 2048.
    let hdr = [22, 3, 1, 0x48, 0x01, 1, 0, 0, 100];
    let (ev, _) = run(Framing::Records, &hdr);
    assert_eq!(
        ev,
        vec![malformed(
            HelloKind::Client,
            MalformedReason::RecordTooLarge
        )]
    );
    // Bare handshake framing (QUIC) has the same cap.
    let (ev, _) = run(Framing::HandshakeMessages, &[1, 0x02, 0, 0]);
    assert_eq!(
        ev,
        vec![malformed(
            HelloKind::Client,
            MalformedReason::RecordTooLarge
        )]
    );
    // A direction that never finishes is cut at MAX_DIRECTION_BYTES.
    let mut p = TlsDirectionParser::new(Framing::Records);
    let mut out = Vec::new();
    p.feed(
        &record(22, &handshake(2, &server_body([1; 32], None, None))),
        &mut out,
    );
    let ticket = record(22, &handshake(4, &[0u8; 1000]));
    while !p.is_finished() {
        p.feed(&ticket, &mut out);
    }
    assert_eq!(out.len(), 1);
}

#[test]
fn record_layer_errors() {
    let ch = handshake(1, &client_body(&client_exts()));
    let (a, b) = ch.split_at(50);
    // Alert between two fragments of one handshake message.
    let bytes = [record(22, a), record(21, &[1, 0]), record(22, b)].concat();
    let (ev, _) = run(Framing::Records, &bytes);
    assert_eq!(
        ev,
        vec![malformed(
            HelloKind::Client,
            MalformedReason::InterleavedRecord
        )]
    );
    // Unknown content type and bad version after a valid hello.
    let bytes = [record(22, &ch), vec![99, 3, 3, 0, 0]].concat();
    let (ev, _) = run(Framing::Records, &bytes);
    assert_eq!(ev.len(), 2);
    assert_eq!(
        ev[1],
        malformed(HelloKind::Other, MalformedReason::RecordType)
    );
    let bytes = [record(22, &ch), vec![22, 4, 3, 0, 0]].concat();
    let (ev, _) = run(Framing::Records, &bytes);
    assert_eq!(
        ev[1],
        malformed(HelloKind::Other, MalformedReason::RecordVersion)
    );
}

#[test]
fn not_tls_and_probe() {
    for junk in [
        &b"GET / HTTP/1.1\r\n"[..],
        &[0x80, 0x2e, 0x01, 0x03, 0x01][..],
        &[22, 2][..],
    ] {
        let (ev, finished) = run(Framing::Records, junk);
        assert_eq!(ev, vec![TlsEvent::NotTls]);
        assert!(finished);
        assert_eq!(probe_tls(junk), Probe::No);
    }
    let (ev, _) = run(Framing::HandshakeMessages, &[11, 0, 0, 0]);
    assert_eq!(ev, vec![TlsEvent::NotTls]);
    let ch = record(22, &handshake(1, &client_body(&client_exts())));
    assert_eq!(probe_tls(&ch), Probe::Yes);
    for n in 0..10 {
        assert_eq!(probe_tls(&ch[..n]), Probe::NeedMore, "{n}");
    }
    assert_eq!(probe_tls(&[22, 3, 1, 0, 0, 1]), Probe::No); // empty record
    assert_eq!(probe_tls(&[22, 3, 1, 0, 5, 1, 0, 0, 1, 3]), Probe::No); // tiny hello
    assert_eq!(probe_tls(&[22, 3, 1, 0, 5, 11]), Probe::No);
    // A partial record stays silent until complete.
    let (ev, finished) = run(Framing::Records, &ch[..ch.len() - 1]);
    assert!(ev.is_empty() && !finished);
}

#[test]
fn end_of_stream_reports_truncated_hello() {
    let ch = record(22, &handshake(1, &client_body(&client_exts())));
    for cut in [3, 6, 40, ch.len() - 1] {
        let mut p = TlsDirectionParser::new(Framing::Records);
        let mut out = Vec::new();
        p.feed(&ch[..cut], &mut out);
        p.end_of_stream(&mut out);
        let expect = if cut >= 6 {
            vec![malformed(
                HelloKind::Client,
                MalformedReason::TruncatedHello,
            )]
        } else {
            vec![]
        };
        assert_eq!(out, expect, "cut {cut}");
        assert!(p.is_finished());
    }
}

/// Client direction of a TLS 1.3 HelloRetryRequest flow with the middlebox-compat CCS
/// (RFC 8446 §D.4) before the second ClientHello; split over records and messages.
#[test]
fn client_second_hello_after_ccs() {
    let ch = handshake(1, &client_body(&client_exts()));
    let (a, b) = ch.split_at(100);
    let bytes = [
        record(22, a),
        record(22, b),
        record(20, &[1]),
        record(22, &ch),
        record(23, &[0; 30]),
    ]
    .concat();
    let (ev, finished) = run(Framing::Records, &bytes);
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|e| matches!(e, TlsEvent::ClientHello(_))));
    assert!(finished);
    assert_eq!(run_bytewise(&bytes), (ev, finished));
    // A 1.3-capable client resuming TLS 1.2: CCS then an encrypted Finished (type 22).
    let bytes = [record(22, &ch), record(20, &[1]), record(22, &[0x8f; 40])].concat();
    let (ev, finished) = run(Framing::Records, &bytes);
    assert_eq!(ev.len(), 1);
    assert!(finished);
    // A TLS 1.2-only client ends at its CCS.
    let exts: Vec<_> = client_exts()
        .into_iter()
        .filter(|e| e[..2] != [0, 0x2b])
        .collect();
    let bytes = [
        record(22, &handshake(1, &client_body(&exts))),
        record(20, &[1]),
    ]
    .concat();
    assert!(run(Framing::Records, &bytes).1);
    // The client's next flight (ClientKeyExchange) ends it too.
    let bytes = [record(22, &ch), record(22, &handshake(16, &[0; 33]))].concat();
    let (ev, finished) = run(Framing::Records, &bytes);
    assert_eq!(ev.len(), 1);
    assert!(finished);
}

#[test]
fn server_hrr_then_server_hello() {
    let hrr = handshake(
        2,
        &server_body(HELLO_RETRY_REQUEST_RANDOM, Some(0x0304), None),
    );
    let sh = handshake(2, &server_body([5; 32], Some(0x0304), None));
    let bytes = [
        record(22, &hrr),
        record(20, &[1]),
        record(22, &sh),
        record(23, &[0; 9]),
    ]
    .concat();
    let (ev, finished) = run(Framing::Records, &bytes);
    let shs: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            TlsEvent::ServerHello(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(shs.len(), 2);
    assert!(shs[0].is_hello_retry_request && !shs[1].is_hello_retry_request);
    assert_eq!(shs[1].negotiated_version(), 0x0304);
    assert!(finished);
    assert_eq!(run_bytewise(&bytes), (ev, finished));
    // TLS 1.3 ServerHello alone finishes the direction.
    assert!(run(Framing::Records, &record(22, &sh)).1);
    // HRR alone does not.
    assert!(!run(Framing::Records, &record(22, &hrr)).1);
    // A second HRR is a protocol error.
    let (ev, _) = run(
        Framing::Records,
        &[record(22, &hrr), record(22, &hrr)].concat(),
    );
    assert_eq!(
        ev[1],
        malformed(HelloKind::Server, MalformedReason::UnexpectedHello)
    );
}

/// TLS 1.2 server flight in one record: ServerHello, Certificate, ServerHelloDone.
#[test]
fn server_tls12_flight_in_one_record() {
    let sh = handshake(2, &server_body([5; 32], None, Some(b"http/1.1")));
    let cert = handshake(11, &[0, 0, 7, 0, 0, 4, 0x30, 0x02, 0x05, 0x00]);
    let done = handshake(14, &[]);
    let bytes = record(22, &[sh, cert, done].concat());
    let (ev, finished) = run(Framing::Records, &bytes);
    assert_eq!(ev.len(), 2);
    match &ev[0] {
        TlsEvent::ServerHello(s) => {
            assert_eq!(s.alpn.as_deref(), Some("http/1.1"));
            assert_eq!(s.negotiated_version(), 0x0303);
            assert_eq!(version_name(s.negotiated_version()), Some("TLS 1.2"));
        }
        e => panic!("{e:?}"),
    }
    match &ev[1] {
        TlsEvent::Certificates(c) => {
            assert_eq!(c.len(), 1);
            assert!(c[0].subject.is_empty() && c[0].sha256.len() == 64);
        }
        e => panic!("{e:?}"),
    }
    assert!(finished);
    assert_eq!(run_bytewise(&bytes), (ev, finished));
    // Abbreviated handshake: ServerHello, NewSessionTicket, CCS.
    let sh = handshake(2, &server_body([5; 32], None, None));
    let bytes = [
        record(22, &sh),
        record(22, &handshake(4, &[0; 10])),
        record(20, &[1]),
    ]
    .concat();
    let (ev, finished) = run(Framing::Records, &bytes);
    assert_eq!(ev.len(), 1);
    assert!(finished);
}

#[test]
fn quic_bare_handshake_messages() {
    let ch = handshake(1, &client_body(&client_exts()));
    let mut p = TlsDirectionParser::new(Framing::HandshakeMessages);
    let mut out = Vec::new();
    for chunk in ch.chunks(7) {
        p.feed(chunk, &mut out);
    }
    assert!(matches!(out.as_slice(), [TlsEvent::ClientHello(c)] if c.sni.is_some()));
    let (ev, finished) = run(
        Framing::HandshakeMessages,
        &handshake(2, &server_body([5; 32], Some(0x0304), None)),
    );
    assert_eq!(ev.len(), 1);
    assert!(finished);
}

#[test]
fn helpers() {
    assert!(is_grease(0x0a0a) && is_grease(0xfafa) && is_grease(0x3a3a));
    assert!(!is_grease(0x0a1a) && !is_grease(0x0b0b) && !is_grease(0xca34));
    assert_eq!(version_name(0x0300), Some("SSL 3.0"));
    assert_eq!(version_name(0x0301), Some("TLS 1.0"));
    assert_eq!(version_name(0x0304), Some("TLS 1.3"));
    assert_eq!(version_name(0x0305), None);
    let sh = ServerHello {
        legacy_version: 0x0303,
        selected_version: Some(0x0304),
        ..ServerHello::default()
    };
    assert_eq!(sh.negotiated_version(), 0x0304);
    assert_eq!(
        MalformedReason::ExtensionsLength.as_str(),
        "extensions_length"
    );
    assert_eq!(MalformedReason::RecordTooLarge.as_str(), "record_too_large");
    assert_eq!(MalformedReason::TruncatedHello.as_str(), "truncated_hello");
}
