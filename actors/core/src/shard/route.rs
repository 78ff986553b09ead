//! Choosing the shard of a frame: the capture side of a multi-shard pipeline.
//!
//! A capture stage owns one [`Router`] and asks it, frame by frame, where the frame goes:
//! to shard `hash % n` ([`Route::Whole`], [`Route::Reassembled`]) or nowhere
//! ([`Route::Held`], [`Route::Dropped`]). Non-first IP fragments carry no ports, so they
//! cannot be hashed by their 5-tuple: the router defragments (with the same [`Decoder`] a
//! shard runs) and passes each completed datagram on as one synthetic, unfragmented
//! frame. Shards therefore never see a fragment.
//!
//! Owns: a decoder (its defragmenter holds the fragment trains, its [`DecodeStats`] count
//! every frame) and the buffer of the last synthetic frame. Undecodable frames and
//! fragments are counted here only: the shards' decode counters see routed frames.
//!
//! Invariants:
//! - a routed frame's `hash` is [`flowmesh_schemas::FlowKey::symmetric_hash`] of the key that a shard's
//!   decoder, configured with the same [`DecodeConfig`], computes from the frame it is
//!   sent (one rule, `packet_key`, serves both); so both directions of a flow meet in one
//!   shard, and the flows a shard sees do not depend on how many shards there are;
//! - every frame is counted exactly once in [`Router::stats`]: `Whole` and `Reassembled`
//!   as `packets`, `Held` as `fragments_held`, `Dropped` by its reason;
//! - an unfragmented frame is routed without heap allocation.
//!
//! Fragment timeouts: [`Router::route`] calls [`Router::expire`] every
//! [`EXPIRE_INTERVAL_NS`] of packet time, as a shard does; a caller whose input can go
//! quiet calls it too (on a timer, with the capture clock).

use crate::capture::{Frame, LinkType};
use crate::decode::{DecodeConfig, DecodeStats, Decoder, DropReason};
use flowmesh_schemas::Timestamp;
use std::net::{IpAddr, Ipv6Addr};

/// Packet time between two fragment-expiry passes made by [`Router::route`].
pub const EXPIRE_INTERVAL_NS: i64 = Timestamp::NANOS_PER_SEC;

/// EtherType of IPv4.
const ETH_P_IP: u16 = 0x0800;
/// EtherType of IPv6.
const ETH_P_IPV6: u16 = 0x86DD;
/// IEEE 802.1Q VLAN tag.
const ETH_P_8021Q: u16 = 0x8100;
/// TTL / hop limit of synthetic headers (not decoded; any value would do).
const TTL: u8 = 64;

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// An unfragmented packet: send the original frame to shard `hash % n`.
    Whole {
        /// Symmetric hash of the packet's flow key.
        hash: u64,
    },
    /// This fragment completed a datagram: send `frame` (a copy of it: it borrows the
    /// router) to shard `hash % n` instead of the fragment.
    Reassembled {
        /// Symmetric hash of the datagram's flow key.
        hash: u64,
        /// The datagram as one unfragmented Ethernet frame (zero MACs, an 802.1Q tag if
        /// it had a VLAN), which a [`Decoder`] decodes into the packet the fragments
        /// gave, except that `fragmented` is false. Its `orig_len` is the sum of the
        /// fragments' wire lengths (the packet's `wire_len`); `ts` and `interface` are
        /// those of the last fragment.
        frame: Frame<'a>,
    },
    /// A fragment was stored; nothing to send.
    Held,
    /// Undecodable (counted in [`Router::stats`]); nothing to send.
    Dropped(DropReason),
}

/// Routes frames to shards by flow, defragmenting on the way. See the module docs.
#[derive(Debug)]
pub struct Router {
    decoder: Decoder,
    /// The last synthetic frame; reused, so it allocates only until it reached the
    /// largest datagram size seen.
    frame: Vec<u8>,
    next_expire: Option<Timestamp>,
}

impl Router {
    /// A router decoding with `cfg`, which must be the shards' decode configuration.
    pub fn new(cfg: DecodeConfig) -> Self {
        Router {
            decoder: Decoder::new(cfg),
            frame: Vec::new(),
            next_expire: None,
        }
    }

    /// Decides where `frame` goes. Time is the frame's timestamp.
    pub fn route(&mut self, frame: &Frame<'_>) -> Route<'_> {
        let now = frame.ts;
        let due = self
            .next_expire
            .get_or_insert(now.add_nanos(EXPIRE_INTERVAL_NS));
        if now >= *due {
            *due = now.add_nanos(EXPIRE_INTERVAL_NS);
            self.decoder.expire(now);
        }
        let pkt = match self
            .decoder
            .decode(now, frame.link, frame.data, frame.orig_len)
        {
            Ok(Some(pkt)) => pkt,
            Ok(None) => return Route::Held,
            Err(reason) => return Route::Dropped(reason),
        };
        let hash = pkt.flow_key().0.symmetric_hash();
        if !pkt.fragmented {
            return Route::Whole { hash };
        }
        let (src, dst, vlan, wire_len) = (pkt.src, pkt.dst, pkt.vlan, pkt.wire_len);
        let (next_header, data) = self.decoder.last_reassembled();
        write_frame(&mut self.frame, src, dst, vlan, next_header, data);
        Route::Reassembled {
            hash,
            frame: Frame {
                ts: now,
                link: LinkType::Ethernet,
                data: &self.frame,
                orig_len: wire_len,
                interface: frame.interface,
            },
        }
    }

    /// Drops fragment trains whose timeout has passed at `now`.
    pub fn expire(&mut self, now: Timestamp) {
        self.decoder.expire(now);
    }

    /// Frames, packets, held fragments, drops by reason and defragmentation counters.
    pub fn stats(&self) -> &DecodeStats {
        self.decoder.stats()
    }

    /// Datagrams being reassembled.
    pub fn fragments_in_progress(&self) -> usize {
        self.decoder.fragments_in_progress()
    }
}

/// Writes into `out` an Ethernet frame carrying `data` as one unfragmented IP datagram
/// from `src` to `dst` whose payload starts with protocol `next_header`.
fn write_frame(
    out: &mut Vec<u8>,
    src: IpAddr,
    dst: IpAddr,
    vlan: Option<u16>,
    next_header: u8,
    data: &[u8],
) {
    out.clear();
    out.extend_from_slice(&[0; 12]);
    if let Some(vid) = vlan {
        out.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
        out.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    }
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend_from_slice(&ETH_P_IP.to_be_bytes());
            // A datagram of more than 65515 data bytes (the defragmenter accepts up to
            // 65535) does not fit the Total Length field: 0 there makes the decoder take
            // the captured length, which is exact here (see `ip::parse_ipv4`).
            let total = u16::try_from(20 + data.len()).unwrap_or(0);
            let mut h = [0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[8] = TTL;
            h[9] = next_header;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            // A valid checksum keeps the shard's `ipv4_bad_checksum` counter meaningful.
            let sum = !checksum(&h);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            out.extend_from_slice(&h);
        }
        // One IP header gave both addresses, so this is IPv6 (a mixed pair cannot occur;
        // it would be written as IPv4-mapped addresses).
        (s, d) => {
            out.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
            // Cannot saturate: the defragmenter caps data at 65535 bytes.
            let plen = u16::try_from(data.len()).unwrap_or(u16::MAX);
            let mut h = [0u8; 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&plen.to_be_bytes());
            h[6] = next_header;
            h[7] = TTL;
            h[8..24].copy_from_slice(&v6(s).octets());
            h[24..40].copy_from_slice(&v6(d).octets());
            out.extend_from_slice(&h);
        }
    }
    out.extend_from_slice(data);
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// RFC 1071 one's-complement sum of a 20-byte header (checksum field zero).
fn checksum(h: &[u8; 20]) -> u16 {
    let mut sum: u32 = h
        .chunks_exact(2)
        .map(|c| match *c {
            [a, b] => u32::from(u16::from_be_bytes([a, b])),
            _ => 0,
        })
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
