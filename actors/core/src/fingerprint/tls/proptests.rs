//! Property tests: `feed` never panics on random bytes or on random mutations of valid
//! hello flights, and any split of the input gives the same events as feeding it whole.

use super::tests::{client_body, client_exts, handshake, record, run, server_body};
use super::*;
use proptest::prelude::*;

/// A server flight and a client flight used as mutation seeds.
fn seeds() -> Vec<Vec<u8>> {
    let ch = handshake(1, &client_body(&client_exts()));
    let hrr = handshake(
        2,
        &server_body(HELLO_RETRY_REQUEST_RANDOM, Some(0x0304), None),
    );
    let sh = handshake(2, &server_body([5; 32], None, Some(b"h2")));
    let cert = handshake(11, &[0, 0, 7, 0, 0, 4, 0x30, 0x02, 0x05, 0x00]);
    vec![
        [record(22, &ch), record(20, &[1]), record(22, &ch)].concat(),
        [
            record(22, &hrr),
            record(20, &[1]),
            record(22, &[sh, cert].concat()),
        ]
        .concat(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn feed_never_panics_on_random_bytes(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        quic in any::<bool>(),
        split in 1usize..64,
    ) {
        let framing = if quic { Framing::HandshakeMessages } else { Framing::Records };
        let mut p = TlsDirectionParser::new(framing);
        let mut out = Vec::new();
        for c in data.chunks(split) {
            p.feed(c, &mut out);
        }
        p.end_of_stream(&mut out);
        prop_assert!(p.is_finished());
        let _ = probe_tls(&data);
    }

    #[test]
    fn feed_never_panics_on_mutated_hellos(
        seed in 0usize..2,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
        split in 1usize..300,
    ) {
        let mut data = seeds()[seed].clone();
        for (at, v) in flips {
            let i = at % data.len();
            data[i] = v;
        }
        data.truncate(cut % (data.len() + 1));
        let (whole, _) = run(Framing::Records, &data);
        // Any split gives the same events as feeding everything at once.
        let mut p = TlsDirectionParser::new(Framing::Records);
        let mut out = Vec::new();
        for c in data.chunks(split) {
            p.feed(c, &mut out);
        }
        prop_assert_eq!(&out, &whole);
        // The body decoders alone never panic either.
        let _ = parse_client_hello(data.get(9..).unwrap_or_default());
        let _ = parse_server_hello(data.get(9..).unwrap_or_default());
        let _ = parse_certificate_chain(&data);
    }
}
