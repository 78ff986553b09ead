//! Frame decoding: link layer → IP (with defragmentation) → TCP/UDP, producing a
//! [`Packet`] that borrows the frame (or the reassembled datagram).
//!
//! Owns: the [`Decoder`] (configuration, the shared IPv4/IPv6 defragmenter, the last
//! reassembled datagram) and its [`DecodeStats`].
//!
//! Invariants:
//! - every frame handed to [`Decoder::decode`] is counted exactly once: as a packet, as a
//!   held fragment, or as a drop with a [`DropReason`];
//! - expected conditions (truncation, unsupported protocols, malformed headers) are
//!   outcomes, never panics or errors of the decoder itself;
//! - an unfragmented packet is decoded without heap allocation; only fragment trains
//!   allocate, bounded by [`DecodeConfig`].

mod defrag;
mod ip;
mod link;
mod transport;

pub use defrag::{DefragStats, FragDropReason, FragKey, MAX_DATAGRAM};

use crate::capture::LinkType;
use defrag::{DefragLimits, Defragmenter, Fragment, Outcome};
use flowmesh_schemas::flow::Endpoint;
use flowmesh_schemas::{FlowKey, Timestamp};
use ip::V6Next;
use link::NetProto;
use std::net::IpAddr;

/// Decoder configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeConfig {
    /// Maximum datagrams being reassembled at once (oldest evicted beyond).
    pub defrag_max_datagrams: usize,
    /// Maximum bytes buffered for reassembly (oldest trains evicted beyond).
    pub defrag_max_bytes: usize,
    /// Maximum fragments of one datagram (bounds tiny-fragment floods).
    pub defrag_max_fragments: usize,
    /// Nanoseconds after its first fragment that an incomplete datagram is dropped.
    pub defrag_timeout_ns: i64,
    /// Maximum stacked VLAN tags.
    pub max_vlan_depth: usize,
    /// Maximum IPv6 extension headers walked.
    pub max_ipv6_ext_headers: usize,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            defrag_max_datagrams: 4096,
            defrag_max_bytes: 16 << 20,
            // A 64 KiB datagram over the IPv4 minimum MTU of 68 (RFC 791 §3.2) needs
            // ~1365 fragments; nobody sends that, while 1024 bounds the per-datagram
            // interval work an 8-byte-fragment flood can cause.
            defrag_max_fragments: 1024,
            // RFC 8200 §4.5 abandons reassembly after 60 s; 30 s as Linux's ipfrag_time.
            defrag_timeout_ns: 30 * Timestamp::NANOS_PER_SEC,
            max_vlan_depth: 4,
            max_ipv6_ext_headers: 16,
        }
    }
}

/// TCP header fields and the options we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpInfo {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags: FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10 URG=0x20 ECE=0x40 CWR=0x80.
    pub flags: u8,
    /// Raw (unscaled) window.
    pub window: u16,
    /// MSS option (kind 2).
    pub mss: Option<u16>,
    /// Window-scale option shift (kind 3).
    pub window_scale: Option<u8>,
    /// SACK-permitted option (kind 4) present.
    pub sack_permitted: bool,
    /// Timestamps option (kind 8): (TSval, TSecr).
    pub timestamp: Option<(u32, u32)>,
}

impl TcpInfo {
    /// FIN flag.
    pub const FIN: u8 = 0x01;
    /// SYN flag.
    pub const SYN: u8 = 0x02;
    /// RST flag.
    pub const RST: u8 = 0x04;
    /// PSH flag.
    pub const PSH: u8 = 0x08;
    /// ACK flag.
    pub const ACK: u8 = 0x10;
    /// URG flag.
    pub const URG: u8 = 0x20;
    /// ECE flag.
    pub const ECE: u8 = 0x40;
    /// CWR flag.
    pub const CWR: u8 = 0x80;
}

/// A decoded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol of the payload (for IPv6, after extension headers; 50 ESP, 59 none).
    pub proto: u8,
    /// Source port (0 for protocols without ports).
    pub src_port: u16,
    /// Destination port (0 for protocols without ports).
    pub dst_port: u16,
    /// Outermost non-zero VLAN id.
    pub vlan: Option<u16>,
    /// TCP header fields, for TCP.
    pub tcp: Option<TcpInfo>,
    /// L4 payload bytes actually captured (for port-less protocols: the whole IP payload).
    pub payload: &'a [u8],
    /// L4 payload length declared by the headers; > `payload.len()` if the capture cut it.
    pub payload_len: u32,
    /// Frame length on the wire (for a reassembled datagram: the sum over its fragments).
    pub wire_len: u32,
    /// Whether the packet was reassembled from fragments.
    pub fragmented: bool,
}

impl Packet<'_> {
    /// The packet's flow key and whether it travels from the key's `lo` to `hi`: the one
    /// rule by which both a shard and the router that picks the shard key a packet.
    #[inline]
    pub fn flow_key(&self) -> (FlowKey, bool) {
        let src = Endpoint {
            ip: self.src,
            port: self.src_port,
        };
        let dst = Endpoint {
            ip: self.dst,
            port: self.dst_port,
        };
        FlowKey::from_packet(src, dst, self.proto, self.vlan)
    }

    /// Whether the capture cut the L4 payload short.
    pub fn is_truncated(&self) -> bool {
        (self.payload.len() as u64) < u64::from(self.payload_len)
    }
}

/// Why a frame produced no packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Headers cut by the snaplen (or a fragment whose data was cut).
    Truncated,
    /// A link type we do not decode.
    UnsupportedLinkType,
    /// A non-IP EtherType, an 802.3 length-field frame, or a non-IP cooked protocol.
    UnsupportedEthertype,
    /// A Null/Loop address family that is not IPv4 or IPv6.
    UnsupportedAddressFamily,
    /// More stacked VLAN tags than configured.
    VlanTooDeep,
    /// IP version nibble not 4/6, or not the one the link layer announced.
    UnsupportedIpVersion,
    /// Inconsistent IP header lengths.
    BadIpHeader,
    /// More IPv6 extension headers than configured.
    TooManyExtensionHeaders,
    /// Inconsistent TCP/UDP header lengths.
    BadTransportHeader,
    /// The defragmenter refused the fragment.
    FragmentDropped(FragDropReason),
}

impl DropReason {
    /// Number of distinct reasons.
    pub const COUNT: usize = 14;

    /// Every reason, in [`DropReason::index`] order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Truncated,
        DropReason::UnsupportedLinkType,
        DropReason::UnsupportedEthertype,
        DropReason::UnsupportedAddressFamily,
        DropReason::VlanTooDeep,
        DropReason::UnsupportedIpVersion,
        DropReason::BadIpHeader,
        DropReason::TooManyExtensionHeaders,
        DropReason::BadTransportHeader,
        DropReason::FragmentDropped(FragDropReason::BadFragment),
        DropReason::FragmentDropped(FragDropReason::TooLarge),
        DropReason::FragmentDropped(FragDropReason::Inconsistent),
        DropReason::FragmentDropped(FragDropReason::TooManyFragments),
        DropReason::FragmentDropped(FragDropReason::MemoryLimit),
    ];

    /// Stable snake_case name, used in metrics and JSON summaries.
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::UnsupportedLinkType => "unsupported_link_type",
            DropReason::UnsupportedEthertype => "unsupported_ethertype",
            DropReason::UnsupportedAddressFamily => "unsupported_address_family",
            DropReason::VlanTooDeep => "vlan_too_deep",
            DropReason::UnsupportedIpVersion => "unsupported_ip_version",
            DropReason::BadIpHeader => "bad_ip_header",
            DropReason::TooManyExtensionHeaders => "too_many_extension_headers",
            DropReason::BadTransportHeader => "bad_transport_header",
            DropReason::FragmentDropped(FragDropReason::BadFragment) => "fragment_bad",
            DropReason::FragmentDropped(FragDropReason::TooLarge) => "fragment_too_large",
            DropReason::FragmentDropped(FragDropReason::Inconsistent) => "fragment_inconsistent",
            DropReason::FragmentDropped(FragDropReason::TooManyFragments) => "fragment_too_many",
            DropReason::FragmentDropped(FragDropReason::MemoryLimit) => "fragment_memory_limit",
        }
    }

    /// Position in [`DropReason::ALL`], for counter arrays.
    pub fn index(&self) -> usize {
        match self {
            DropReason::Truncated => 0,
            DropReason::UnsupportedLinkType => 1,
            DropReason::UnsupportedEthertype => 2,
            DropReason::UnsupportedAddressFamily => 3,
            DropReason::VlanTooDeep => 4,
            DropReason::UnsupportedIpVersion => 5,
            DropReason::BadIpHeader => 6,
            DropReason::TooManyExtensionHeaders => 7,
            DropReason::BadTransportHeader => 8,
            DropReason::FragmentDropped(FragDropReason::BadFragment) => 9,
            DropReason::FragmentDropped(FragDropReason::TooLarge) => 10,
            DropReason::FragmentDropped(FragDropReason::Inconsistent) => 11,
            DropReason::FragmentDropped(FragDropReason::TooManyFragments) => 12,
            DropReason::FragmentDropped(FragDropReason::MemoryLimit) => 13,
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decoder counters (plain u64s; `frames == packets + fragments_held + dropped_total()`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames handed to `decode`.
    pub frames: u64,
    /// Packets produced (including reassembled datagrams).
    pub packets: u64,
    /// Fragments stored for reassembly (no packet yet).
    pub fragments_held: u64,
    /// Packets whose L4 payload was cut by the snaplen.
    pub truncated_payloads: u64,
    /// IPv4 headers whose checksum did not verify (kept: offload makes this common).
    pub ipv4_bad_checksum: u64,
    /// TCP segments whose options were malformed (kept).
    pub tcp_bad_options: u64,
    /// Defragmenter counters.
    pub defrag: DefragStats,
    drops: [u64; DropReason::COUNT],
}

impl DecodeStats {
    /// Frames dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).copied().unwrap_or(0)
    }

    /// Frames dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// (reason, count) for every reason, including zero counts, in a stable order.
    pub fn drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|r| (*r, self.dropped(*r)))
    }

    /// Adds `o`'s counts (several decoders' counters, e.g. one per live capture reader).
    pub fn merge(&mut self, o: &DecodeStats) {
        self.frames += o.frames;
        self.packets += o.packets;
        self.fragments_held += o.fragments_held;
        self.truncated_payloads += o.truncated_payloads;
        self.ipv4_bad_checksum += o.ipv4_bad_checksum;
        self.tcp_bad_options += o.tcp_bad_options;
        self.defrag.merge(&o.defrag);
        for (mine, theirs) in self.drops.iter_mut().zip(o.drops) {
            *mine += theirs;
        }
    }
}

/// Decodes frames into packets; owns the defragmenter and the counters.
#[derive(Debug)]
pub struct Decoder {
    cfg: DecodeConfig,
    defrag: Defragmenter,
    /// The last reassembled datagram; a returned `Packet` may borrow it.
    reassembled: LastDatagram,
    stats: DecodeStats,
}

/// The fragmentable part of the last reassembled datagram and the protocol it starts with.
#[derive(Debug, Default)]
struct LastDatagram {
    next_header: u8,
    data: Vec<u8>,
}

/// The IP layer reduced to what the transport decoder needs.
struct Net<'a> {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    payload: &'a [u8],
    payload_len: u32,
    wire_len: u32,
    fragmented: bool,
}

impl Decoder {
    /// Creates a decoder.
    pub fn new(cfg: DecodeConfig) -> Self {
        let limits = DefragLimits {
            max_datagrams: cfg.defrag_max_datagrams,
            max_bytes: cfg.defrag_max_bytes,
            max_fragments: cfg.defrag_max_fragments,
            timeout_ns: cfg.defrag_timeout_ns,
        };
        Decoder {
            cfg,
            defrag: Defragmenter::new(limits),
            reassembled: LastDatagram::default(),
            stats: DecodeStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DecodeConfig {
        &self.cfg
    }

    /// Decodes one frame. `Ok(None)`: a fragment was stored for reassembly.
    ///
    /// Inlined into the caller so the returned `Packet` is built where it is used rather
    /// than stored and reloaded across the call (a measurable stall per packet).
    #[inline(always)]
    pub fn decode<'a>(
        &'a mut self,
        now: Timestamp,
        link: LinkType,
        data: &'a [u8],
        wire_len: u32,
    ) -> Result<Option<Packet<'a>>, DropReason> {
        let Decoder {
            cfg,
            defrag,
            reassembled,
            stats,
        } = self;
        stats.frames += 1;
        let out = decode_frame(cfg, defrag, reassembled, stats, now, link, data, wire_len);
        match &out {
            Ok(Some(p)) => {
                stats.packets += 1;
                if p.is_truncated() {
                    stats.truncated_payloads += 1;
                }
            }
            Ok(None) => stats.fragments_held += 1,
            Err(r) => {
                if let Some(c) = stats.drops.get_mut(r.index()) {
                    *c += 1;
                }
            }
        }
        out
    }

    /// Drops fragment trains whose timeout has passed (counted in `defrag.expired`).
    pub fn expire(&mut self, now: Timestamp) {
        self.defrag.expire(now, &mut self.stats.defrag);
    }

    /// Datagrams currently being reassembled.
    pub fn fragments_in_progress(&self) -> usize {
        self.defrag.in_progress()
    }

    /// Bytes buffered for reassembly.
    pub fn fragment_bytes_buffered(&self) -> usize {
        self.defrag.buffered_bytes()
    }

    /// The counters.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// The last datagram reassembled from fragments, as `(protocol, data)`: `data` is
    /// the fragmentable part (RFC 8200 §4.5; for IPv4 the whole IP payload) and
    /// `protocol` the IPv4 protocol or the IPv6 Fragment header's next header of its
    /// offset-0 fragment; `(0, [])` before any. Read it right after `decode` returned a
    /// packet with `fragmented` set: the next completed datagram replaces it.
    pub fn last_reassembled(&self) -> (u8, &[u8]) {
        (self.reassembled.next_header, &self.reassembled.data)
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn decode_frame<'a>(
    cfg: &DecodeConfig,
    defrag: &mut Defragmenter,
    reassembled: &'a mut LastDatagram,
    stats: &mut DecodeStats,
    now: Timestamp,
    link: LinkType,
    data: &'a [u8],
    wire_len: u32,
) -> Result<Option<Packet<'a>>, DropReason> {
    let l3 = link::decode_link(link, data, cfg.max_vlan_depth)?;
    let version = l3.data.first().ok_or(DropReason::Truncated)? >> 4;
    let is_v4 = match (l3.proto, version) {
        (NetProto::V4 | NetProto::ByVersion, 4) => true,
        (NetProto::V6 | NetProto::ByVersion, 6) => false,
        _ => return Err(DropReason::UnsupportedIpVersion),
    };
    let vlan = l3.vlan;
    let net = if is_v4 {
        let h = ip::parse_ipv4(l3.data)?;
        if !h.checksum_ok {
            stats.ipv4_bad_checksum += 1;
        }
        let (src, dst) = (IpAddr::V4(h.src), IpAddr::V4(h.dst));
        if h.is_fragment() {
            let key = FragKey::V4 {
                src: h.src,
                dst: h.dst,
                proto: h.proto,
                id: h.id,
                vlan,
            };
            let frag = fragment(
                h.frag_offset,
                h.more_fragments,
                h.payload,
                h.payload_len,
                h.proto,
                wire_len,
            )?;
            match defrag
                .insert(now, key, frag, &mut stats.defrag)
                .map_err(DropReason::FragmentDropped)?
            {
                Outcome::Held => return Ok(None),
                Outcome::Complete(r) => {
                    let (next_header, wire_len) = (r.next_header, r.wire_len);
                    let buf = store(reassembled, r);
                    let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
                    Net {
                        src,
                        dst,
                        proto: next_header,
                        payload: buf,
                        payload_len: len,
                        wire_len,
                        fragmented: true,
                    }
                }
            }
        } else {
            Net {
                src,
                dst,
                proto: h.proto,
                payload: h.payload,
                payload_len: h.payload_len,
                wire_len,
                fragmented: false,
            }
        }
    } else {
        let h = ip::parse_ipv6(l3.data, cfg.max_ipv6_ext_headers)?;
        let (src, dst) = (IpAddr::V6(h.src), IpAddr::V6(h.dst));
        match h.next {
            V6Next::Upper {
                proto,
                payload,
                payload_len,
            } => Net {
                src,
                dst,
                proto,
                payload,
                payload_len,
                wire_len,
                fragmented: false,
            },
            V6Next::Fragment {
                next_header,
                id,
                offset,
                more,
                data: fdata,
                data_len,
            } => {
                let key = FragKey::V6 {
                    src: h.src,
                    dst: h.dst,
                    id,
                    vlan,
                };
                let frag = fragment(offset, more, fdata, data_len, next_header, wire_len)?;
                match defrag
                    .insert(now, key, frag, &mut stats.defrag)
                    .map_err(DropReason::FragmentDropped)?
                {
                    Outcome::Held => return Ok(None),
                    Outcome::Complete(r) => {
                        let (next_header, wire_len) = (r.next_header, r.wire_len);
                        let buf = store(reassembled, r);
                        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
                        // The fragmentable part may start with more extension headers
                        // (RFC 8200 §4.5); a second Fragment header is not legitimate.
                        match ip::walk_ext(next_header, buf, len, cfg.max_ipv6_ext_headers)? {
                            V6Next::Upper {
                                proto,
                                payload,
                                payload_len,
                            } => Net {
                                src,
                                dst,
                                proto,
                                payload,
                                payload_len,
                                wire_len,
                                fragmented: true,
                            },
                            V6Next::Fragment { .. } => return Err(DropReason::BadIpHeader),
                        }
                    }
                }
            }
        }
    };
    let l4 = transport::parse_l4(net.proto, net.payload, net.payload_len)?;
    if l4.bad_options {
        stats.tcp_bad_options += 1;
    }
    Ok(Some(Packet {
        src: net.src,
        dst: net.dst,
        proto: net.proto,
        src_port: l4.src_port,
        dst_port: l4.dst_port,
        vlan,
        tcp: l4.tcp,
        payload: l4.payload,
        payload_len: l4.payload_len,
        wire_len: net.wire_len,
        fragmented: net.fragmented,
    }))
}

/// Keeps a reassembled datagram in the decoder so the returned packet can borrow it.
fn store(slot: &mut LastDatagram, r: defrag::Reassembled) -> &[u8] {
    slot.next_header = r.next_header;
    slot.data = r.data;
    &slot.data
}

/// A fragment for the defragmenter; its data must be fully captured.
fn fragment(
    offset: u32,
    more: bool,
    data: &[u8],
    declared: u32,
    next_header: u8,
    wire_len: u32,
) -> Result<Fragment<'_>, DropReason> {
    if (data.len() as u64) < u64::from(declared) {
        return Err(DropReason::Truncated);
    }
    Ok(Fragment {
        offset,
        more,
        data,
        next_header,
        wire_len,
    })
}

#[cfg(test)]
mod tests;

/// Segment builders for the tests of other modules.
#[cfg(test)]
pub(crate) mod test_util {
    pub(crate) use super::transport::tests::{tcp, udp};
}
