//! Community ID v1 (<https://github.com/corelight/community-id-spec>): a hash of the
//! 5-tuple that Zeek, Suricata and many other tools print, so records can be joined
//! across tools.

use flowmesh_schemas::flow::{IPPROTO_ICMP, IPPROTO_ICMPV6};
use std::net::IpAddr;

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Community ID v1 of a flow, e.g. `1:LQU9qZlK+B5F3KDmev6m5PMibrg=`.
///
/// Ports are the transport ports; for ICMP/ICMPv6 the caller passes type and code as the
/// "ports" (the spec maps them to a symmetric pair; flowmesh records ICMP with ports 0,
/// which hashes consistently but differs from Zeek for ICMP).
pub fn community_id_v1(
    seed: u16,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    proto: u8,
) -> String {
    // Order the endpoints so both directions hash alike (spec §"Ordering"): by address,
    // then by port; ICMP has no ports in this ordering.
    let icmp = proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6;
    let swap = match ip_cmp(src, dst) {
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => !icmp && sport > dport,
    };
    let (a, ap, b, bp) = if swap {
        (dst, dport, src, sport)
    } else {
        (src, sport, dst, dport)
    };
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&seed.to_be_bytes());
    match (a, b) {
        (IpAddr::V4(x), IpAddr::V4(y)) => {
            ctx.update(&x.octets());
            ctx.update(&y.octets());
        }
        _ => {
            ctx.update(&v6_bytes(a));
            ctx.update(&v6_bytes(b));
        }
    }
    ctx.update(&[proto, 0]);
    ctx.update(&ap.to_be_bytes());
    ctx.update(&bp.to_be_bytes());
    let digest = ctx.finish();
    let mut out = String::with_capacity(30);
    out.push_str("1:");
    base64_into(digest.as_ref(), &mut out);
    out
}

fn v6_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

fn ip_cmp(a: IpAddr, b: IpAddr) -> std::cmp::Ordering {
    match (a, b) {
        (IpAddr::V4(x), IpAddr::V4(y)) => x.octets().cmp(&y.octets()),
        _ => v6_bytes(a).cmp(&v6_bytes(b)),
    }
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64_into(bytes: &[u8], out: &mut String) {
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from the Community ID spec's baseline (community-id-spec/baseline).
    #[test]
    fn matches_spec_vectors() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(
            community_id_v1(0, ip("128.232.110.120"), 34855, ip("66.35.250.204"), 80, 6),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        // Reverse direction gives the same id.
        assert_eq!(
            community_id_v1(0, ip("66.35.250.204"), 80, ip("128.232.110.120"), 34855, 6),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        assert_eq!(
            community_id_v1(1, ip("128.232.110.120"), 34855, ip("66.35.250.204"), 80, 6),
            "1:3V71V58M3Ksw/yuFALMcW0LAHvc="
        );
        assert_eq!(
            community_id_v1(0, ip("192.168.1.52"), 54585, ip("8.8.8.8"), 53, 17),
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ="
        );
        // IPv6 (computed with Python's hashlib from the spec's byte layout).
        assert_eq!(
            community_id_v1(0, ip("fd77:1::2"), 60598, ip("fd77:1::1"), 14433, 6),
            "1:5pSrGYyaBMV1g3zZ+sqM4x04vrw="
        );
    }

    #[test]
    fn base64_padding() {
        let mut s = String::new();
        base64_into(b"f", &mut s);
        assert_eq!(s, "Zg==");
        s.clear();
        base64_into(b"foobar", &mut s);
        assert_eq!(s, "Zm9vYmFy");
        s.clear();
        base64_into(b"fooba", &mut s);
        assert_eq!(s, "Zm9vYmE=");
    }
}
