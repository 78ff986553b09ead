//! Test vectors of RFC 9001 Appendix A and RFC 9369 Appendix A, plus property tests.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::packet::{open_long_packet, parse_layout, protect_initial};
use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const DCID: &str = "8394c8f03e515708";
const SERVER_SCID: &str = "f067a5502a4262b5";

/// RFC 9001 §A.2 (and RFC 9369 §A.2): the client's CRYPTO frame.
const CLIENT_CRYPTO_FRAME: &str = "
060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868
04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578
616d706c652e636f6dff01000100000a00080006001d00170018001000070005
04616c706e000500050100000000003300260024001d00209370b2c9caa47fba
baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400
0d0010000e0403050306030203080408050806002d00020101001c0002400100
3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000
75300901100f088394c8f03e51570806048000ffff";

/// RFC 9001 §A.2: the complete protected client Initial.
const CLIENT_INITIAL_V1: &str = include_str!("testdata/rfc9001_a2_client_initial.hex");

/// RFC 9369 §A.2: the first 64 bytes of the protected v2 client Initial.
const CLIENT_INITIAL_V2_PREFIX: &str = "
d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485
dd04de806071bf03dceebfa162e75d6c96058bdbfb127cdfcbf903388e99ad04";

/// RFC 9001 §A.3 / RFC 9369 §A.3: the server Initial's payload (ACK + CRYPTO).
const SERVER_PAYLOAD: &str = "
02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739
88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94
0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00
020304";

/// RFC 9001 §A.3: the protected server Initial.
const SERVER_INITIAL_V1: &str = "
cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a
5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3
dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84
022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4
2158407dd074ee";

/// RFC 9369 §A.3: the protected v2 server Initial.
const SERVER_INITIAL_V2: &str = "
dc6b3343cf0008f067a5502a4262b5004075d92faaf16f05d8a4398c47089698
baeea26b91eb761d9b89237bbf87263017915358230035f7fd3945d88965cf17
f9af6e16886c61bfc703106fbaf3cb4cfa52382dd16a393e42757507698075b2
c984c707f0a0812d8cd5a6881eaf21ceda98f4bd23f6fe1a3e2c43edd9ce7ca8
4bed8521e2e140";

/// RFC 9001 §A.4: a Retry with SCID f067a5502a4262b5 and token "token".
const RETRY_V1: &str = "ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba";

/// RFC 9369 §A.4: the v2 Retry.
const RETRY_V2: &str = "cf6b3343cf0008f067a5502a4262b5746f6b656ec8646ce8bfe33952d955543665dcc7b6";

#[test]
fn retry_integrity_tags() {
    assert!(verify_retry_integrity(
        QuicVersion::V1,
        &hex(DCID),
        &hex(RETRY_V1)
    ));
    assert!(verify_retry_integrity(
        QuicVersion::V2,
        &hex(DCID),
        &hex(RETRY_V2)
    ));
    assert!(!verify_retry_integrity(
        QuicVersion::V2,
        &hex(DCID),
        &hex(RETRY_V1)
    ));
    assert!(!verify_retry_integrity(
        QuicVersion::V1,
        &[1, 2, 3],
        &hex(RETRY_V1)
    ));
    let mut bad = hex(RETRY_V1);
    bad[17] ^= 1;
    assert!(!verify_retry_integrity(QuicVersion::V1, &hex(DCID), &bad));
    assert!(!verify_retry_integrity(
        QuicVersion::V1,
        &hex(DCID),
        &[0xff; 10]
    ));
    // A forged Retry does not switch keys.
    let mut t = QuicInitialTracker::new();
    t.on_datagram(true, &hex(CLIENT_INITIAL_V1));
    assert_eq!(
        t.on_datagram(false, &bad).first_drop(),
        Some(QuicDrop::RetryIntegrity)
    );
    assert_eq!(t.key_dcid(), Some(&hex(DCID)[..]));
}

fn client_payload() -> Vec<u8> {
    let mut p = hex(CLIENT_CRYPTO_FRAME);
    assert_eq!(p.len(), 245);
    p.resize(1162, 0);
    p
}

/// The ClientHello carried by the client CRYPTO frame (after type, offset, length).
fn client_hello() -> Vec<u8> {
    hex(CLIENT_CRYPTO_FRAME)[4..].to_vec()
}

/// The ServerHello carried by the server CRYPTO frame.
fn server_hello() -> Vec<u8> {
    hex(SERVER_PAYLOAD)[9..].to_vec()
}

#[test]
fn rfc9001_a1_keys() {
    let k = InitialKeys::derive(QuicVersion::V1, &hex(DCID));
    assert_eq!(
        k.client().key()[..],
        hex("1f369613dd76d5467730efcbe3b1a22d")
    );
    assert_eq!(k.client().iv()[..], hex("fa044b2f42a3fd3b46fb255c"));
    assert_eq!(k.client().hp()[..], hex("9f50449e04a0e810283a1e9933adedd2"));
    assert_eq!(
        k.server().key()[..],
        hex("cf3a5331653c364c88f0f379b6067e37")
    );
    assert_eq!(k.server().iv()[..], hex("0ac1493ca1905853b0bba03e"));
    assert_eq!(k.server().hp()[..], hex("c206b8d9b9f0f37644430b490eeaa314"));
}

#[test]
fn rfc9369_a1_keys() {
    let k = InitialKeys::derive(QuicVersion::V2, &hex(DCID));
    assert_eq!(
        k.client().key()[..],
        hex("8b1a0bc121284290a29e0971b5cd045d")
    );
    assert_eq!(k.client().iv()[..], hex("91f73e2351d8fa91660e909f"));
    assert_eq!(k.client().hp()[..], hex("45b95e15235d6f45a6b19cbcb0294ba9"));
    assert_eq!(
        k.server().key()[..],
        hex("82db637861d55e1d011f19ea71d5d2a7")
    );
    assert_eq!(k.server().iv()[..], hex("dd13c276499c0249d3310652"));
    assert_eq!(k.server().hp()[..], hex("edf6d05c83121201b436e16877593c3a"));
}

#[test]
fn rfc9001_a2_client_initial_protect_and_decrypt() {
    let k = InitialKeys::derive(QuicVersion::V1, &hex(DCID));
    let wire = hex(CLIENT_INITIAL_V1);
    assert_eq!(wire.len(), 1200);
    let built = protect_initial(
        QuicVersion::V1,
        k.client(),
        &hex(DCID),
        &[],
        &[],
        2,
        4,
        &client_payload(),
    )
    .unwrap();
    assert_eq!(built, wire);
    // Low-level open of the RFC bytes.
    let layout = parse_layout(&wire).unwrap();
    let opened = open_long_packet(&wire, layout.pn_offset, k.client(), None).unwrap();
    assert_eq!(opened.pn, 2);
    assert_eq!(opened.payload, client_payload());
    // Through the tracker.
    assert!(probe_quic_initial(&wire));
    let mut t = QuicInitialTracker::new();
    let o = t.on_datagram(true, &wire);
    assert_eq!(o.initials_decrypted, 1, "{o:?}");
    assert_eq!(o.crypto_frames, 1);
    assert_eq!(o.drops.total(), 0);
    assert_eq!(t.crypto_stream(true), &client_hello()[..]);
    assert_eq!(t.crypto_stream(false), b"");
    assert_eq!(t.version(), Some(QuicVersion::V1));
}

#[test]
fn rfc9001_a3_server_initial() {
    let k = InitialKeys::derive(QuicVersion::V1, &hex(DCID));
    let wire = hex(SERVER_INITIAL_V1);
    let built = protect_initial(
        QuicVersion::V1,
        k.server(),
        &[],
        &hex(SERVER_SCID),
        &[],
        1,
        2,
        &hex(SERVER_PAYLOAD),
    )
    .unwrap();
    assert_eq!(built, wire);
    let mut t = QuicInitialTracker::new();
    // A server Initial before any client Initial has no keys.
    assert_eq!(
        t.on_datagram(false, &wire).first_drop(),
        Some(QuicDrop::NoKeys)
    );
    t.on_datagram(true, &hex(CLIENT_INITIAL_V1));
    let o = t.on_datagram(false, &wire);
    assert_eq!(o.initials_decrypted, 1, "{o:?}");
    assert_eq!(t.crypto_stream(false), &server_hello()[..]);
    assert_eq!(t.crypto_stream(false)[0], 0x02);
}

#[test]
fn rfc9369_a2_a3_v2_packets() {
    let k = InitialKeys::derive(QuicVersion::V2, &hex(DCID));
    let client = protect_initial(
        QuicVersion::V2,
        k.client(),
        &hex(DCID),
        &[],
        &[],
        2,
        4,
        &client_payload(),
    )
    .unwrap();
    assert_eq!(client[..64], hex(CLIENT_INITIAL_V2_PREFIX)[..]);
    let server = hex(SERVER_INITIAL_V2);
    let built = protect_initial(
        QuicVersion::V2,
        k.server(),
        &[],
        &hex(SERVER_SCID),
        &[],
        1,
        2,
        &hex(SERVER_PAYLOAD),
    )
    .unwrap();
    assert_eq!(built, server);
    assert!(probe_quic_initial(&client));
    let mut t = QuicInitialTracker::new();
    assert_eq!(t.on_datagram(true, &client).initials_decrypted, 1);
    assert_eq!(t.on_datagram(false, &server).initials_decrypted, 1);
    assert_eq!(t.version(), Some(QuicVersion::V2));
    assert_eq!(t.crypto_stream(true), &client_hello()[..]);
    assert_eq!(t.crypto_stream(false), &server_hello()[..]);
}

#[test]
fn retry_rekeys_from_retry_scid() {
    let mut t = QuicInitialTracker::new();
    t.on_datagram(true, &hex(CLIENT_INITIAL_V1));
    // A client never sends Retry.
    let o = t.on_datagram(true, &hex(RETRY_V1));
    assert_eq!(o.first_drop(), Some(QuicDrop::UnexpectedRetry));
    let o = t.on_datagram(false, &hex(RETRY_V1));
    assert!(o.retry);
    assert_eq!(t.key_dcid(), Some(&hex(SERVER_SCID)[..]));
    // Second Retry is ignored.
    assert!(!t.on_datagram(false, &hex(RETRY_V1)).retry);
    // The client's next Initial: DCID = Retry SCID, token from the Retry, keys from the
    // new DCID; the server answers with keys from the same DCID.
    let k = InitialKeys::derive(QuicVersion::V1, &hex(SERVER_SCID));
    let mut p = vec![0x06, 0x00, 0x05];
    p.extend_from_slice(b"hello");
    p.resize(1100, 0);
    let c = protect_initial(
        QuicVersion::V1,
        k.client(),
        &hex(SERVER_SCID),
        &[1, 2],
        b"token",
        3,
        2,
        &p,
    )
    .unwrap();
    assert_eq!(t.on_datagram(true, &c).initials_decrypted, 1);
    let s = protect_initial(
        QuicVersion::V1,
        k.server(),
        &[1, 2],
        &[9; 8],
        &[],
        0,
        1,
        &hex(SERVER_PAYLOAD),
    )
    .unwrap();
    assert_eq!(t.on_datagram(false, &s).initials_decrypted, 1);
    assert_eq!(t.crypto_stream(false), &server_hello()[..]);
}

#[test]
fn pickup_after_lost_first_packet_and_coalescing() {
    // The tracker first sees an Initial whose keys do not match a later one (the
    // first packet of the real connection was lost): the later packet decrypts with
    // keys from its own DCID.
    let mut t = QuicInitialTracker::new();
    let other = InitialKeys::derive(QuicVersion::V1, &[7; 8]);
    let mut p = vec![0x01];
    p.resize(1100, 0);
    let junk =
        protect_initial(QuicVersion::V1, other.client(), &[7; 8], &[], &[], 0, 1, &p).unwrap();
    let mut bad = junk.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        t.on_datagram(true, &bad).first_drop(),
        Some(QuicDrop::DecryptFailed)
    );
    let o = t.on_datagram(true, &hex(CLIENT_INITIAL_V1));
    assert!(o.rekeyed);
    assert_eq!(t.crypto_stream(true), &client_hello()[..]);
    // Server datagram: Initial coalesced with a Handshake packet and trailing zeros.
    let mut d = hex(SERVER_INITIAL_V1);
    d.extend_from_slice(&[0xe0, 0, 0, 0, 1, 0, 8]);
    d.extend_from_slice(&hex(SERVER_SCID));
    d.extend_from_slice(&[0x05, 1, 2, 3, 4, 5]);
    d.extend_from_slice(&[0; 10]);
    let o = t.on_datagram(false, &d);
    assert_eq!(o.packets, 2);
    assert_eq!(o.initials_decrypted, 1);
    assert_eq!(o.not_initial, 1);
    assert_eq!(o.drops.total(), 0, "{o:?}");
    assert_eq!(t.crypto_stream(false), &server_hello()[..]);
}

#[test]
fn not_quic_and_version_negotiation() {
    let mut t = QuicInitialTracker::new();
    assert_eq!(
        t.on_datagram(true, &[0x00, 1, 2]).first_drop(),
        Some(QuicDrop::NotQuic)
    );
    let o = t.on_datagram(true, &[0x40, 1, 2]);
    assert_eq!(o.not_initial, 1);
    let o = t.on_datagram(false, &[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert!(o.version_negotiation);
    let o = t.on_datagram(true, &[0xc0, 0xff, 0, 0, 0x1d, 0, 0, 0]);
    assert_eq!(o.first_drop(), Some(QuicDrop::UnsupportedVersion));
    assert_eq!(t.stats().datagrams, 4);
}

/// Builds client Initials (v1, DCID 8394…) that carry `data` split at `cuts`, with
/// the fragments in the given order, spread round-robin over `n_packets` packets, each
/// with a PING and padding in between.
fn chaos_packets(data: &[u8], frags: &[(usize, usize)], n_packets: usize) -> Vec<Vec<u8>> {
    let k = InitialKeys::derive(QuicVersion::V1, &hex(DCID));
    let mut payloads = vec![Vec::new(); n_packets.max(1)];
    for (i, &(a, b)) in frags.iter().enumerate() {
        let p = &mut payloads[i % n_packets.max(1)];
        p.push(0x01);
        p.extend_from_slice(&[0, 0, 0]);
        p.push(0x06);
        varint::encode_varint(a as u64, p);
        varint::encode_varint((b - a) as u64, p);
        p.extend_from_slice(&data[a..b]);
    }
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, mut p)| {
            p.resize(p.len().max(1100), 0);
            protect_initial(
                QuicVersion::V1,
                k.client(),
                &hex(DCID),
                &[],
                &[],
                i as u64,
                1,
                &p,
            )
            .unwrap()
        })
        .collect()
}

fn fragments_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<(usize, usize)>)> {
    (1usize..3000)
        .prop_flat_map(|len| {
            (
                proptest::collection::vec(any::<u8>(), len),
                proptest::collection::vec(0..len, 0..12),
                proptest::collection::vec((0..len, 1usize..400), 0..6),
            )
        })
        .prop_flat_map(|(data, mut cuts, dups)| {
            let len = data.len();
            cuts.push(0);
            cuts.push(len);
            cuts.sort_unstable();
            cuts.dedup();
            let mut frags: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
            // Duplicated / overlapping retransmissions.
            for (a, l) in dups {
                frags.push((a, (a + l).min(len)));
            }
            (Just(data), Just(frags).prop_shuffle())
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn reassembly_any_order_split_duplication((data, frags) in fragments_strategy()) {
        let mut c = CryptoStream::new();
        for &(a, b) in &frags {
            prop_assert!(c.insert(a as u64, &data[a..b]).is_ok());
        }
        prop_assert_eq!(c.contiguous(), &data[..]);
    }

    #[test]
    fn tracker_chaos_split_across_packets(
        (data, frags) in fragments_strategy(),
        n in 1usize..4,
        reverse in any::<bool>(),
    ) {
        // Keep each packet within a sane datagram size.
        prop_assume!(frags.iter().map(|(a, b)| b - a).sum::<usize>() < 6000);
        let mut pkts = chaos_packets(&data, &frags, n);
        if reverse {
            pkts.reverse();
        }
        let mut t = QuicInitialTracker::new();
        for p in &pkts {
            let o = t.on_datagram(true, p);
            prop_assert_eq!(o.initials_decrypted, 1);
            prop_assert_eq!(o.drops.total(), 0);
        }
        prop_assert_eq!(t.crypto_stream(true), &data[..]);
    }

    #[test]
    fn never_panics_on_random_bytes(
        dgrams in proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..1500)), 1..6),
    ) {
        let mut t = QuicInitialTracker::new();
        for (c, d) in &dgrams {
            let _ = probe_quic_initial(d);
            let _ = t.on_datagram(*c, d);
        }
        let _ = t.crypto_stream(true);
        let _ = t.crypto_stream(false);
    }

    #[test]
    fn never_panics_on_long_header_noise(
        first in 0xc0u8..=0xff,
        v2 in any::<bool>(),
        rest in proptest::collection::vec(any::<u8>(), 0..1400),
    ) {
        let mut d = vec![first];
        d.extend_from_slice(if v2 { &[0x6b, 0x33, 0x43, 0xcf] } else { &[0, 0, 0, 1] });
        d.extend_from_slice(&rest);
        let mut t = QuicInitialTracker::new();
        let _ = t.on_datagram(true, &d);
        let _ = t.on_datagram(false, &d);
    }

    #[test]
    fn never_panics_on_mutated_initials(
        muts in proptest::collection::vec((0usize..1200, any::<u8>()), 1..8),
        cut in 0usize..1300,
        server in any::<bool>(),
    ) {
        let mut t = QuicInitialTracker::new();
        t.on_datagram(true, &hex(CLIENT_INITIAL_V1));
        let mut d = if server { hex(SERVER_INITIAL_V1) } else { hex(CLIENT_INITIAL_V1) };
        for &(i, x) in &muts {
            let n = d.len();
            d[i % n] ^= x;
        }
        d.truncate(cut.max(1));
        let _ = t.on_datagram(!server, &d);
        // The valid stream decrypted before is never corrupted by later garbage.
        prop_assert_eq!(t.crypto_stream(true), &client_hello()[..]);
    }
}
