//! Ethernet / 802.1Q / IPv4 / IPv6 / TCP / UDP frame builder.
//!
//! A frame is built in place in a caller-owned `Vec<u8>` that is cleared, not freed,
//! between frames: the steady state allocates nothing. The caller writes the payload
//! through a closure, then the builder fills lengths and checksums.

use super::checksum;
use std::net::IpAddr;

/// Ethernet addressing and an optional 802.1Q tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2 {
    /// Source MAC.
    pub src: [u8; 6],
    /// Destination MAC.
    pub dst: [u8; 6],
    /// 802.1Q VLAN id (12 bits), if tagged.
    pub vlan: Option<u16>,
}

impl L2 {
    /// The same link with source and destination swapped (the reply direction).
    pub fn reversed(&self) -> Self {
        Self {
            src: self.dst,
            dst: self.src,
            vlan: self.vlan,
        }
    }
}

/// Source and destination IP address of one direction (both of one family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addrs {
    /// IPv4 source, destination.
    V4([u8; 4], [u8; 4]),
    /// IPv6 source, destination.
    V6([u8; 16], [u8; 16]),
}

impl Addrs {
    /// The reply direction.
    pub fn reversed(&self) -> Self {
        match *self {
            Addrs::V4(s, d) => Addrs::V4(d, s),
            Addrs::V6(s, d) => Addrs::V6(d, s),
        }
    }

    /// Source address.
    pub fn src(&self) -> IpAddr {
        match *self {
            Addrs::V4(s, _) => IpAddr::from(s),
            Addrs::V6(s, _) => IpAddr::from(s),
        }
    }

    /// Destination address.
    pub fn dst(&self) -> IpAddr {
        match *self {
            Addrs::V4(_, d) => IpAddr::from(d),
            Addrs::V6(_, d) => IpAddr::from(d),
        }
    }

    fn pseudo_sum(&self, proto: u8, len: usize) -> u64 {
        // RFC 793 §3.1 / RFC 768 (IPv4) and RFC 8200 §8.1 (IPv6) pseudo-headers.
        let mut acc = match self {
            Addrs::V4(s, d) => checksum::sum(d, checksum::sum(s, 0)),
            Addrs::V6(s, d) => checksum::sum(d, checksum::sum(s, 0)),
        };
        acc += u64::from(proto) + len as u64;
        acc
    }
}

/// TCP flag bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// The per-segment TCP fields.
#[derive(Debug, Clone, Copy)]
pub struct TcpMeta<'a> {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (sent only with ACK set).
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Receive window (unscaled field value).
    pub window: u16,
    /// Options, already padded to a multiple of 4 bytes.
    pub options: &'a [u8],
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// Builds frames into one reusable buffer.
#[derive(Debug, Default)]
pub struct FrameBuilder {
    buf: Vec<u8>,
    ip_id: u16,
}

impl FrameBuilder {
    /// A builder with room for jumbo-free frames.
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(2048),
            ip_id: 1,
        }
    }

    /// The frame built last.
    pub fn frame(&self) -> &[u8] {
        &self.buf
    }

    /// Builds an Ethernet/IP/TCP frame with a `payload_len`-byte payload filled by `fill`.
    pub fn tcp(
        &mut self,
        l2: &L2,
        ip: &Addrs,
        t: &TcpMeta<'_>,
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> &[u8] {
        let l4_hdr = 20 + t.options.len();
        let l4_len = l4_hdr + payload_len;
        let l4 = self.begin(l2, ip, PROTO_TCP, l4_len);
        let b = &mut self.buf;
        b.resize(l4 + l4_len, 0);
        let h = &mut b[l4..l4 + l4_hdr];
        h[0..2].copy_from_slice(&t.sport.to_be_bytes());
        h[2..4].copy_from_slice(&t.dport.to_be_bytes());
        h[4..8].copy_from_slice(&t.seq.to_be_bytes());
        let ack = if t.flags.0 & TcpFlags::ACK != 0 {
            t.ack
        } else {
            0
        };
        h[8..12].copy_from_slice(&ack.to_be_bytes());
        h[12] = ((l4_hdr / 4) as u8) << 4;
        h[13] = t.flags.0;
        h[14..16].copy_from_slice(&t.window.to_be_bytes());
        h[16..20].fill(0); // checksum, urgent pointer
        h[20..].copy_from_slice(t.options);
        fill(&mut b[l4 + l4_hdr..]);
        let ck = checksum::finish(checksum::sum(&b[l4..], ip.pseudo_sum(PROTO_TCP, l4_len)));
        b[l4 + 16..l4 + 18].copy_from_slice(&ck.to_be_bytes());
        &self.buf
    }

    /// Builds an Ethernet/IP/UDP frame with a `payload_len`-byte payload filled by `fill`.
    pub fn udp(
        &mut self,
        l2: &L2,
        ip: &Addrs,
        sport: u16,
        dport: u16,
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> &[u8] {
        let l4_len = 8 + payload_len;
        let l4 = self.begin(l2, ip, PROTO_UDP, l4_len);
        let b = &mut self.buf;
        b.resize(l4 + l4_len, 0);
        b[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
        b[l4 + 2..l4 + 4].copy_from_slice(&dport.to_be_bytes());
        b[l4 + 4..l4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        b[l4 + 6..l4 + 8].fill(0);
        fill(&mut b[l4 + 8..]);
        let mut ck = checksum::finish(checksum::sum(&b[l4..], ip.pseudo_sum(PROTO_UDP, l4_len)));
        if ck == 0 {
            ck = 0xffff; // RFC 768: a computed zero is sent as all ones
        }
        b[l4 + 6..l4 + 8].copy_from_slice(&ck.to_be_bytes());
        &self.buf
    }

    /// Writes L2 and L3 headers for an `l4_len`-byte transport segment; returns the L4 offset.
    fn begin(&mut self, l2: &L2, ip: &Addrs, proto: u8, l4_len: usize) -> usize {
        let b = &mut self.buf;
        b.clear();
        b.extend_from_slice(&l2.dst);
        b.extend_from_slice(&l2.src);
        if let Some(vid) = l2.vlan {
            b.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            b.extend_from_slice(&(vid & 0x0fff).to_be_bytes()); // PCP 0, DEI 0
        }
        match ip {
            Addrs::V4(s, d) => {
                b.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
                let start = b.len();
                let total = (20 + l4_len) as u16;
                self.ip_id = self.ip_id.wrapping_add(1);
                b.extend_from_slice(&[0x45, 0x00]);
                b.extend_from_slice(&total.to_be_bytes());
                b.extend_from_slice(&self.ip_id.to_be_bytes());
                b.extend_from_slice(&[0x40, 0x00, 64, proto, 0, 0]); // DF, TTL 64
                b.extend_from_slice(s);
                b.extend_from_slice(d);
                let ck = checksum::checksum(&b[start..start + 20]);
                b[start + 10..start + 12].copy_from_slice(&ck.to_be_bytes());
            }
            Addrs::V6(s, d) => {
                b.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
                b.extend_from_slice(&[0x60, 0, 0, 0]);
                b.extend_from_slice(&(l4_len as u16).to_be_bytes());
                b.extend_from_slice(&[proto, 64]);
                b.extend_from_slice(s);
                b.extend_from_slice(d);
            }
        }
        b.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L2A: L2 = L2 {
        src: [2, 0, 0, 0, 0, 1],
        dst: [2, 0, 0, 0, 0, 2],
        vlan: None,
    };

    #[test]
    fn ipv4_tcp_checksums_verify() {
        let mut fb = FrameBuilder::new();
        let ip = Addrs::V4([10, 0, 0, 1], [10, 0, 0, 2]);
        let t = TcpMeta {
            sport: 40000,
            dport: 443,
            seq: 1,
            ack: 2,
            flags: TcpFlags(TcpFlags::ACK | TcpFlags::PSH),
            window: 502,
            options: &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
        };
        let f = fb
            .tcp(&L2A, &ip, &t, 5, |p| p.copy_from_slice(b"hello"))
            .to_vec();
        assert_eq!(f.len(), 14 + 20 + 32 + 5);
        assert_eq!(checksum::checksum(&f[14..34]), 0, "IPv4 header checksum");
        let tcp = &f[34..];
        let acc = ip.pseudo_sum(PROTO_TCP, tcp.len());
        assert_eq!(checksum::finish(checksum::sum(tcp, acc)), 0, "TCP checksum");
    }

    #[test]
    fn ipv6_udp_vlan_checksum_verifies() {
        let mut fb = FrameBuilder::new();
        let mut s = [0u8; 16];
        s[0] = 0xfd;
        s[15] = 1;
        let mut d = s;
        d[15] = 2;
        let ip = Addrs::V6(s, d);
        let l2 = L2 {
            vlan: Some(100),
            ..L2A
        };
        let f = fb
            .udp(&l2, &ip, 5353, 53, 3, |p| p.copy_from_slice(b"abc"))
            .to_vec();
        assert_eq!(&f[12..16], &[0x81, 0x00, 0x00, 100]);
        assert_eq!(&f[16..18], &[0x86, 0xdd]);
        let udp = &f[18 + 40..];
        assert_eq!(udp.len(), 11);
        let acc = ip.pseudo_sum(PROTO_UDP, udp.len());
        assert_eq!(checksum::finish(checksum::sum(udp, acc)), 0);
    }
}
