//! Decrypting one client Initial (RFC 9001 Appendix A.2: 1200 bytes, one CRYPTO frame
//! with a 245-byte ClientHello, PADDING).
//!
//! - `fresh_tracker`: `QuicInitialTracker::new()` + `on_datagram`: Initial-key
//!   derivation (HKDF, AES key schedules) + header protection + AEAD open + frame walk.
//! - `cached_keys`: the next client datagram (pn 3, same payload) on a tracker that
//!   already holds the keys: no derivation.
//! - `derive_keys`: `InitialKeys::derive` alone.
#![allow(clippy::unwrap_used)]

mod common;

use common::hex;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use flowmesh_core::quic::packet::{open_long_packet, parse_layout, protect_initial};
use flowmesh_core::quic::{InitialKeys, QuicInitialTracker, QuicVersion};

/// RFC 9001 §A.2 client Initial (the vector the unit tests use).
const DCID: &str = "8394c8f03e515708";
const CLIENT_INITIAL_V1: &str = include_str!("../src/quic/testdata/rfc9001_a2_client_initial.hex");

fn bench(c: &mut Criterion) {
    let dcid = hex(DCID);
    let first = hex(CLIENT_INITIAL_V1);
    assert_eq!(first.len(), 1200);
    // The second datagram: same plaintext (a retransmission of the CRYPTO data) under
    // packet number 3, protected with the same keys.
    let keys = InitialKeys::derive(QuicVersion::V1, &dcid);
    let layout = parse_layout(&first).unwrap();
    let plain = open_long_packet(&first, layout.pn_offset, keys.client(), None)
        .unwrap()
        .payload;
    let second = protect_initial(
        QuicVersion::V1,
        keys.client(),
        &dcid,
        &[],
        &[],
        3,
        4,
        &plain,
    )
    .unwrap();
    assert_eq!(second.len(), 1200);

    let mut g = c.benchmark_group("quic_initial");
    g.throughput(Throughput::Elements(1));
    g.bench_function("fresh_tracker", |b| {
        b.iter(|| {
            let mut t = QuicInitialTracker::new();
            let o = t.on_datagram(true, black_box(&first));
            debug_assert_eq!(o.initials_decrypted, 1);
            black_box(t.crypto_stream(true).len())
        })
    });
    let mut t = QuicInitialTracker::new();
    assert_eq!(t.on_datagram(true, &first).initials_decrypted, 1);
    g.bench_function("cached_keys", |b| {
        b.iter(|| {
            let o = t.on_datagram(true, black_box(&second));
            debug_assert_eq!(o.initials_decrypted, 1);
            o.crypto_frames
        })
    });
    let o = t.on_datagram(true, &second);
    assert_eq!((o.initials_decrypted, o.drops.total()), (1, 0), "{o:?}");
    g.bench_function("derive_keys", |b| {
        b.iter(|| InitialKeys::derive(QuicVersion::V1, black_box(&dcid)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
