//! Hand-built Ethernet frames for the XDP tests: Ethernet with VLAN tags, IPv4 (with
//! options and fragments), IPv6 (with extension headers), TCP, UDP, ARP. Checksums are
//! left zero: nothing on the path verifies them, and GRO then never merges segments.
#![allow(
    dead_code,
    reason = "shared by a test and an example that each use part of it"
)]

/// Destination and source MAC of every frame.
pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

/// An Ethernet frame: `tags` are (TPID, VID) outermost first.
pub fn eth(ethertype: u16, tags: &[(u16, u16)], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * tags.len() + payload.len());
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    for &(tpid, vid) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet; `frag` is the flags+offset field, `options` are padded to 4 bytes.
pub fn ipv4(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    frag: u16,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let opt_len = options.len().div_ceil(4) * 4;
    let hlen = 20 + opt_len;
    let total = (hlen + payload.len()) as u16;
    let mut p = vec![0x40 | (hlen / 4) as u8, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34]);
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(options);
    p.resize(hlen, 0);
    p.extend_from_slice(payload);
    p
}

/// An IPv6 packet whose first next header is `next`.
pub fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

/// An IPv6 extension header in the RFC 8200 format: `units` 8-octet units past the first 8.
pub fn ext(next: u8, units: u8, rest: &[u8]) -> Vec<u8> {
    let mut h = vec![next, units];
    h.resize(8 * (usize::from(units) + 1), 0);
    h.extend_from_slice(rest);
    h
}

/// An IPv6 Fragment header (offset in 8-octet units, M flag).
pub fn frag6(next: u8, offset: u16, more: bool, rest: &[u8]) -> Vec<u8> {
    let mut h = vec![next, 0];
    h.extend_from_slice(&((offset << 3) | u16::from(more)).to_be_bytes());
    h.extend_from_slice(&0xabcd_0001u32.to_be_bytes());
    h.extend_from_slice(rest);
    h
}

/// A TCP segment (20-byte header) with `flags` and a sequence number.
pub fn tcp(sport: u16, dport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(20 + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s.extend_from_slice(&0u32.to_be_bytes());
    s.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    s.extend_from_slice(payload);
    s
}

/// A UDP datagram.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(8 + payload.len());
    d.extend_from_slice(&sport.to_be_bytes());
    d.extend_from_slice(&dport.to_be_bytes());
    d.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    d
}

/// An ARP who-has frame.
pub fn arp() -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
    a.extend_from_slice(&SRC_MAC);
    a.extend_from_slice(&[10, 0, 0, 2]);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&[10, 0, 0, 1]);
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&a);
    f
}

/// The frame as the kernel stack shows it to AF_PACKET: the outermost VLAN tag moved
/// into metadata (skb_vlan_untag), so removed from the bytes.
pub fn without_outer_tag(frame: &[u8]) -> Vec<u8> {
    let tpid = u16::from_be_bytes([frame[12], frame[13]]);
    if tpid == ETH_P_8021Q || tpid == ETH_P_8021AD {
        [&frame[..12], &frame[16..]].concat()
    } else {
        frame.to_vec()
    }
}

/// A payload of `n` bytes (distinct per `seed`).
pub fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}
