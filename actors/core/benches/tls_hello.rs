//! ClientHello parsing and fingerprinting, per handshake, for a Chromium hello (1.9 KB,
//! GREASE, X25519MLKEM768) and a curl/OpenSSL hello (517 B).
//!
//! - `parse/<hello>`: `parse_client_hello` on the handshake body.
//! - `feed/<hello>`: a fresh `TlsDirectionParser` fed the whole record (record layer,
//!   handshake reassembly, parse; the ClientHello event).
//! - `ja3/<hello>`: JA3 string + MD5 hex; `ja4/<hello>`: JA4.
//! - `parse_ja3_ja4/<hello>`: parse + JA3 (string + MD5) + JA4: the per-handshake target.
#![allow(clippy::unwrap_used)]

mod common;

use common::{hellos, hex};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use flowmesh_core::fingerprint::ja3::{ja3, md5_hex};
use flowmesh_core::fingerprint::ja4::{ja4, JaTransport};
use flowmesh_core::fingerprint::tls::{parse_client_hello, Framing, TlsDirectionParser, TlsEvent};

fn inputs() -> [(&'static str, Vec<u8>); 2] {
    [
        ("chromium", hex(hellos::CHROMIUM_CLIENT_HELLO_RECORD)),
        ("curl", hex(hellos::CURL_CLIENT_HELLO_RECORD)),
    ]
}

/// The handshake body inside a record holding exactly one ClientHello.
fn body(record: &[u8]) -> &[u8] {
    assert_eq!(record[0], 22);
    assert_eq!(record[5], 1);
    let len = usize::from(record[6]) << 16 | usize::from(record[7]) << 8 | usize::from(record[8]);
    assert_eq!(record.len(), 9 + len);
    &record[9..]
}

fn bench(c: &mut Criterion) {
    let inputs = inputs();
    // Sanity, and a record of what is being measured.
    for (name, rec) in &inputs {
        let ch = parse_client_hello(body(rec)).unwrap();
        let j3 = ja3(&ch);
        eprintln!(
            "{name}: {} B record, {} suites, {} extensions, ja3 {} ja4 {}",
            rec.len(),
            ch.cipher_suites.len(),
            ch.extensions.len(),
            md5_hex(&j3),
            ja4(&ch, JaTransport::Tcp)
        );
    }

    let mut g = c.benchmark_group("tls_hello");
    g.throughput(Throughput::Elements(1));
    for (name, rec) in &inputs {
        let b = body(rec);
        let ch = parse_client_hello(b).unwrap();
        g.bench_function(format!("parse/{name}"), |bn| {
            bn.iter(|| parse_client_hello(black_box(b)).unwrap())
        });
        g.bench_function(format!("feed/{name}"), |bn| {
            let mut events = Vec::with_capacity(2);
            bn.iter(|| {
                let mut p = TlsDirectionParser::new(Framing::Records);
                events.clear();
                p.feed(black_box(rec), &mut events);
                debug_assert!(matches!(events.first(), Some(TlsEvent::ClientHello(_))));
                black_box(events.len())
            })
        });
        g.bench_function(format!("ja3/{name}"), |bn| {
            bn.iter(|| {
                let s = ja3(black_box(&ch));
                let h = md5_hex(&s);
                (s, h)
            })
        });
        g.bench_function(format!("ja4/{name}"), |bn| {
            bn.iter(|| ja4(black_box(&ch), JaTransport::Tcp))
        });
        g.bench_function(format!("parse_ja3_ja4/{name}"), |bn| {
            bn.iter(|| {
                let ch = parse_client_hello(black_box(b)).unwrap();
                let s = ja3(&ch);
                let h = md5_hex(&s);
                let j4 = ja4(&ch, JaTransport::Tcp);
                (s, h, j4)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
