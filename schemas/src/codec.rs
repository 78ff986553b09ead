//! Cap'n Proto encoding of [`FlowRecord`]: the form records take on disk and on the wire.

use crate::flow::{EndReason, Transport, L7};
use crate::flow_capnp::{flow_record, handshake as hs_capnp};
use crate::handshake::{CertificateInfo, Handshake};
use crate::record::FlowRecord;
use crate::time::Timestamp;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a stored record could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a valid Cap'n Proto message of the expected shape.
    #[error("malformed flow record: {0}")]
    Capnp(#[from] capnp::Error),
    /// A text field is not UTF-8.
    #[error("flow record text is not UTF-8: {0}")]
    Utf8(#[from] std::str::Utf8Error),
    /// An enum holds a value this build does not know.
    #[error("flow record has an unknown enum value: {0}")]
    NotInSchema(#[from] capnp::NotInSchema),
    /// An address field is neither 4 nor 16 bytes.
    #[error("flow record has an IP address of {0} bytes")]
    BadAddress(usize),
}

/// Words of a record's first message segment: a record with a handshake or two is about
/// 1 KiB, and the allocator's default (8 KiB, zeroed per record) cost more than the
/// encoding. A larger record takes a second segment.
const FIRST_SEGMENT_WORDS: u32 = 256;

/// Encodes a record as a Cap'n Proto message (unpacked words).
pub fn encode(record: &FlowRecord) -> Vec<u8> {
    let mut message = capnp::message::Builder::new(
        capnp::message::HeapAllocator::new().first_segment_words(FIRST_SEGMENT_WORDS),
    );
    let mut r = message.init_root::<flow_record::Builder>();
    r.set_transport(record.transport.proto());
    r.set_l7(match record.l7 {
        None => flow_record::L7::None,
        Some(L7::Tls) => flow_record::L7::Tls,
        Some(L7::Quic) => flow_record::L7::Quic,
    });
    r.set_client_ip(&ip_bytes(record.client_ip));
    r.set_client_port(record.client_port);
    r.set_server_ip(&ip_bytes(record.server_ip));
    r.set_server_port(record.server_port);
    r.set_vlan(record.vlan.map_or(-1, i32::from));
    r.set_first_seen_ns(record.first_seen.as_nanos());
    r.set_last_seen_ns(record.last_seen.as_nanos());
    r.set_packets_c2s(record.packets_c2s);
    r.set_packets_s2c(record.packets_s2c);
    r.set_bytes_c2s(record.bytes_c2s);
    r.set_bytes_s2c(record.bytes_s2c);
    r.set_tcp_flags_c2s(record.tcp_flags_c2s);
    r.set_tcp_flags_s2c(record.tcp_flags_s2c);
    r.set_end_reason(match record.end_reason {
        EndReason::Fin => flow_record::EndReason::Fin,
        EndReason::Rst => flow_record::EndReason::Rst,
        EndReason::Idle => flow_record::EndReason::Idle,
        EndReason::Evicted => flow_record::EndReason::Evicted,
        EndReason::EndOfInput => flow_record::EndReason::EndOfInput,
        EndReason::Open => flow_record::EndReason::Open,
        EndReason::Interrupted => flow_record::EndReason::Interrupted,
    });
    r.set_community_id(record.community_id.as_str());
    r.set_conn_state(record.conn_state.as_str());
    r.set_midstream(record.midstream);
    let len = u32::try_from(record.handshakes.len()).unwrap_or(u32::MAX);
    let mut list = r.init_handshakes(len);
    for (i, h) in record.handshakes.iter().enumerate().take(len as usize) {
        encode_handshake(h, list.reborrow().get(i as u32));
    }
    capnp::serialize::write_message_to_words(&message)
}

fn encode_handshake(h: &Handshake, mut b: hs_capnp::Builder<'_>) {
    if let Some(v) = &h.sni {
        b.set_sni(v.as_str());
    }
    let mut alpn = b.reborrow().init_alpn(h.alpn.len() as u32);
    for (i, a) in h.alpn.iter().enumerate() {
        alpn.set(i as u32, a.as_str());
    }
    type SetText = fn(&mut hs_capnp::Builder<'_>, &str);
    let opt_texts: [(&Option<String>, SetText); 9] = [
        (&h.alpn_selected, |b, v| b.set_alpn_selected(v)),
        (&h.tls_version, |b, v| b.set_tls_version(v)),
        (&h.ja3, |b, v| b.set_ja3(v)),
        (&h.ja3_hash, |b, v| b.set_ja3_hash(v)),
        (&h.ja3s, |b, v| b.set_ja3s(v)),
        (&h.ja3s_hash, |b, v| b.set_ja3s_hash(v)),
        (&h.ja4, |b, v| b.set_ja4(v)),
        (&h.ja4s, |b, v| b.set_ja4s(v)),
        (&h.client_hello_error, |b, v| b.set_client_hello_error(v)),
    ];
    for (value, set) in opt_texts {
        if let Some(v) = value {
            set(&mut b, v);
        }
    }
    b.set_server_hello_is_hrr(h.server_hello_is_hrr);
    set_u16s(
        b.reborrow()
            .init_cipher_suites(h.cipher_suites.len() as u32),
        &h.cipher_suites,
    );
    set_u16s(
        b.reborrow().init_extensions(h.extensions.len() as u32),
        &h.extensions,
    );
    set_u16s(
        b.reborrow()
            .init_supported_groups(h.supported_groups.len() as u32),
        &h.supported_groups,
    );
    b.set_ec_point_formats(&h.ec_point_formats);
    set_u16s(
        b.reborrow()
            .init_signature_algorithms(h.signature_algorithms.len() as u32),
        &h.signature_algorithms,
    );
    set_u16s(
        b.reborrow()
            .init_supported_versions(h.supported_versions.len() as u32),
        &h.supported_versions,
    );
    b.set_server_cipher_suite(h.server_cipher_suite.map_or(-1, i32::from));
    b.set_ts(h.ts.map_or(i64::MIN, Timestamp::as_nanos));
    set_u16s(
        b.reborrow()
            .init_server_extensions(h.server_extensions.len() as u32),
        &h.server_extensions,
    );
    let mut certs = b.init_certificates(h.certificates.len() as u32);
    for (i, c) in h.certificates.iter().enumerate() {
        let mut cb = certs.reborrow().get(i as u32);
        cb.set_subject(c.subject.as_str());
        cb.set_issuer(c.issuer.as_str());
        cb.set_not_before(c.not_before.as_str());
        cb.set_not_after(c.not_after.as_str());
        cb.set_sha256(c.sha256.as_str());
    }
}

fn set_u16s(mut list: capnp::primitive_list::Builder<'_, u16>, values: &[u16]) {
    for (i, v) in values.iter().enumerate() {
        list.set(i as u32, *v);
    }
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn ip_from(bytes: &[u8]) -> Result<IpAddr, CodecError> {
    if let Ok(b) = <[u8; 4]>::try_from(bytes) {
        Ok(IpAddr::V4(Ipv4Addr::from(b)))
    } else if let Ok(b) = <[u8; 16]>::try_from(bytes) {
        Ok(IpAddr::V6(Ipv6Addr::from(b)))
    } else {
        Err(CodecError::BadAddress(bytes.len()))
    }
}

/// Decodes a record written by [`encode`]. `bytes` may sit at any address (a database
/// hands out unaligned slices): Cap'n Proto reads whole words, so a slice that is not
/// 8-byte aligned is first copied into an aligned buffer.
pub fn decode(bytes: &[u8]) -> Result<FlowRecord, CodecError> {
    if bytes.as_ptr().cast::<u64>().is_aligned() {
        return decode_aligned(bytes);
    }
    let mut words = capnp::Word::allocate_zeroed_vec(bytes.len().div_ceil(8));
    capnp::Word::words_to_bytes_mut(&mut words)[..bytes.len()].copy_from_slice(bytes);
    decode_aligned(&capnp::Word::words_to_bytes(&words)[..bytes.len()])
}

fn decode_aligned(mut bytes: &[u8]) -> Result<FlowRecord, CodecError> {
    let message = capnp::serialize::read_message_from_flat_slice(
        &mut bytes,
        capnp::message::ReaderOptions::new(),
    )?;
    let r = message.get_root::<flow_record::Reader>()?;
    let mut handshakes = Vec::new();
    for h in r.get_handshakes()? {
        handshakes.push(decode_handshake(h)?);
    }
    Ok(FlowRecord {
        transport: Transport::from_proto(r.get_transport()),
        l7: match r.get_l7()? {
            flow_record::L7::None => None,
            flow_record::L7::Tls => Some(L7::Tls),
            flow_record::L7::Quic => Some(L7::Quic),
        },
        client_ip: ip_from(r.get_client_ip()?)?,
        client_port: r.get_client_port(),
        server_ip: ip_from(r.get_server_ip()?)?,
        server_port: r.get_server_port(),
        vlan: u16::try_from(r.get_vlan()).ok(),
        first_seen: Timestamp(r.get_first_seen_ns()),
        last_seen: Timestamp(r.get_last_seen_ns()),
        packets_c2s: r.get_packets_c2s(),
        packets_s2c: r.get_packets_s2c(),
        bytes_c2s: r.get_bytes_c2s(),
        bytes_s2c: r.get_bytes_s2c(),
        tcp_flags_c2s: r.get_tcp_flags_c2s(),
        tcp_flags_s2c: r.get_tcp_flags_s2c(),
        end_reason: match r.get_end_reason()? {
            flow_record::EndReason::Fin => EndReason::Fin,
            flow_record::EndReason::Rst => EndReason::Rst,
            flow_record::EndReason::Idle => EndReason::Idle,
            flow_record::EndReason::Evicted => EndReason::Evicted,
            flow_record::EndReason::EndOfInput => EndReason::EndOfInput,
            flow_record::EndReason::Open => EndReason::Open,
            flow_record::EndReason::Interrupted => EndReason::Interrupted,
        },
        community_id: r.get_community_id()?.to_str()?.to_owned(),
        conn_state: r.get_conn_state()?.to_str()?.to_owned(),
        midstream: r.get_midstream(),
        handshakes,
    })
}

fn opt_text<'a>(
    has: bool,
    get: impl FnOnce() -> capnp::Result<capnp::text::Reader<'a>>,
) -> Result<Option<String>, CodecError> {
    if has {
        Ok(Some(get()?.to_str()?.to_owned()))
    } else {
        Ok(None)
    }
}

fn u16s(list: capnp::primitive_list::Reader<'_, u16>) -> Vec<u16> {
    list.iter().collect()
}

fn decode_handshake(h: hs_capnp::Reader<'_>) -> Result<Handshake, CodecError> {
    let mut alpn = Vec::new();
    for a in h.get_alpn()? {
        alpn.push(a?.to_str()?.to_owned());
    }
    let mut certificates = Vec::new();
    for c in h.get_certificates()? {
        certificates.push(CertificateInfo {
            subject: c.get_subject()?.to_str()?.to_owned(),
            issuer: c.get_issuer()?.to_str()?.to_owned(),
            not_before: c.get_not_before()?.to_str()?.to_owned(),
            not_after: c.get_not_after()?.to_str()?.to_owned(),
            sha256: c.get_sha256()?.to_str()?.to_owned(),
        });
    }
    Ok(Handshake {
        ts: Some(h.get_ts()).filter(|&t| t != i64::MIN).map(Timestamp),
        sni: opt_text(h.has_sni(), || h.get_sni())?,
        alpn,
        alpn_selected: opt_text(h.has_alpn_selected(), || h.get_alpn_selected())?,
        tls_version: opt_text(h.has_tls_version(), || h.get_tls_version())?,
        server_hello_is_hrr: h.get_server_hello_is_hrr(),
        ja3: opt_text(h.has_ja3(), || h.get_ja3())?,
        ja3_hash: opt_text(h.has_ja3_hash(), || h.get_ja3_hash())?,
        ja3s: opt_text(h.has_ja3s(), || h.get_ja3s())?,
        ja3s_hash: opt_text(h.has_ja3s_hash(), || h.get_ja3s_hash())?,
        ja4: opt_text(h.has_ja4(), || h.get_ja4())?,
        ja4s: opt_text(h.has_ja4s(), || h.get_ja4s())?,
        cipher_suites: u16s(h.get_cipher_suites()?),
        extensions: u16s(h.get_extensions()?),
        supported_groups: u16s(h.get_supported_groups()?),
        ec_point_formats: h.get_ec_point_formats()?.to_vec(),
        signature_algorithms: u16s(h.get_signature_algorithms()?),
        supported_versions: u16s(h.get_supported_versions()?),
        server_cipher_suite: u16::try_from(h.get_server_cipher_suite()).ok(),
        server_extensions: u16s(h.get_server_extensions()?),
        certificates,
        client_hello_error: opt_text(h.has_client_hello_error(), || h.get_client_hello_error())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_opt_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(".{0,40}")
    }

    prop_compose! {
        fn arb_handshake()(
            sni in arb_opt_text(), alpn in proptest::collection::vec(".{0,10}", 0..4),
            alpn_selected in arb_opt_text(), tls_version in arb_opt_text(), hrr: bool,
            ja3 in arb_opt_text(), ja3_hash in arb_opt_text(), ja4 in arb_opt_text(), ja4s in arb_opt_text(),
            ciphers in proptest::collection::vec(any::<u16>(), 0..20),
            pf in proptest::collection::vec(any::<u8>(), 0..4),
            scs in proptest::option::of(any::<u16>()),
            cert_subject in ".{0,30}", ncerts in 0usize..3, err in arb_opt_text(),
            ts in proptest::option::of(any::<i64>().prop_filter("absent", |&t| t != i64::MIN)),
        ) -> Handshake {
            Handshake {
                ts: ts.map(Timestamp), sni, alpn, alpn_selected, tls_version, server_hello_is_hrr: hrr,
                ja3: ja3.clone(), ja3_hash, ja3s: ja3, ja3s_hash: None, ja4, ja4s,
                cipher_suites: ciphers.clone(), extensions: ciphers.iter().rev().copied().collect(),
                supported_groups: ciphers.iter().take(3).copied().collect(), ec_point_formats: pf,
                signature_algorithms: ciphers.iter().skip(1).copied().collect(), supported_versions: vec![0x0304],
                server_cipher_suite: scs, server_extensions: ciphers.iter().take(2).copied().collect(),
                certificates: (0..ncerts).map(|i| CertificateInfo {
                    subject: cert_subject.clone(), issuer: format!("CN=ca{i}"), not_before: "a".into(),
                    not_after: "b".into(), sha256: "00".repeat(32) }).collect(),
                client_hello_error: err,
            }
        }
    }

    prop_compose! {
        fn arb_record()(
            proto: u8, l7 in prop_oneof![Just(None), Just(Some(L7::Tls)), Just(Some(L7::Quic))],
            v6: bool, a: [u8; 16], b: [u8; 16], cp: u16, sp: u16, vlan in proptest::option::of(0u16..4096),
            first: i64, last: i64, counts: [u64; 4], flags: [u8; 2],
            reason in prop_oneof![Just(EndReason::Fin), Just(EndReason::Rst), Just(EndReason::Idle), Just(EndReason::Evicted), Just(EndReason::EndOfInput), Just(EndReason::Open), Just(EndReason::Interrupted)],
            cid in ".{0,40}", midstream: bool,
            // Up to ten: records past the first segment (FIRST_SEGMENT_WORDS) take two.
            handshakes in proptest::collection::vec(arb_handshake(), 0..10),
        ) -> FlowRecord {
            let ip = |x: [u8; 16]| if v6 { IpAddr::V6(Ipv6Addr::from(x)) } else { IpAddr::V4(Ipv4Addr::new(x[0], x[1], x[2], x[3])) };
            FlowRecord {
                transport: Transport::from_proto(proto), l7, client_ip: ip(a), client_port: cp,
                server_ip: ip(b), server_port: sp, vlan, first_seen: Timestamp(first), last_seen: Timestamp(last),
                packets_c2s: counts[0], packets_s2c: counts[1], bytes_c2s: counts[2], bytes_s2c: counts[3],
                tcp_flags_c2s: flags[0], tcp_flags_s2c: flags[1], end_reason: reason, community_id: cid.clone(), conn_state: cid,
                midstream, handshakes,
            }
        }
    }

    proptest! {
        #[test]
        fn capnp_round_trip(record in arb_record()) {
            let bytes = encode(&record);
            prop_assert_eq!(decode(&bytes).expect("decodes"), record.clone());
            // At every misalignment, as a database returns values.
            for shift in 1..8 {
                let mut buf = vec![0u8; shift];
                buf.extend_from_slice(&bytes);
                prop_assert_eq!(decode(&buf[shift..]).expect("decodes unaligned"), record.clone());
            }
        }

        #[test]
        fn json_round_trip(record in arb_record()) {
            let json = serde_json::to_string(&record).expect("serializes");
            let back: FlowRecord = serde_json::from_str(&json).expect("parses");
            prop_assert_eq!(back, record);
        }

        #[test]
        fn decode_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn truncated_message_is_an_error() {
        let record = FlowRecord {
            transport: Transport::Tcp,
            l7: Some(L7::Tls),
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            client_port: 1,
            server_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            server_port: 443,
            vlan: None,
            first_seen: Timestamp(1),
            last_seen: Timestamp(2),
            packets_c2s: 1,
            packets_s2c: 0,
            bytes_c2s: 60,
            bytes_s2c: 0,
            tcp_flags_c2s: 2,
            tcp_flags_s2c: 0,
            end_reason: EndReason::Idle,
            community_id: "1:x".into(),
            conn_state: "S1".into(),
            midstream: false,
            handshakes: vec![Handshake {
                sni: Some("a.test".into()),
                ..Default::default()
            }],
        };
        let bytes = encode(&record);
        assert!(decode(&bytes[..bytes.len() - 8]).is_err());
        assert_eq!(decode(&bytes).expect("decodes"), record);
    }
}
