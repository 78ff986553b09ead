//! [`QuicInitialTracker`]: per-flow state that turns UDP datagrams into the two
//! Initial-space CRYPTO streams.
//!
//! Key choice (RFC 9001 §5.2): both directions' Initial keys derive from the
//! Destination Connection ID of the client's first Initial packet. After a Retry the
//! client uses the Retry's Source Connection ID as its new DCID and both sides re-key
//! from it (RFC 9000 §17.2.5.2, RFC 9001 §5.2). Clients such as Chromium later switch the
//! DCID of their Initials to the server's SCID but keep the original keys, so the
//! tracked keys are always tried first; if they fail on a client Initial, keys derived
//! from that packet's own DCID are tried (pickup after the first packet was lost), and
//! on success they become the tracked keys.

use super::crypto_stream::CryptoStream;
use super::frames::walk_initial_frames;
use super::keys::{verify_retry_integrity, InitialKeys};
use super::packet::{open_long_packet, parse_layout, LongPacketType, OpenedPacket, PacketLayout};
use super::{QuicDrop, QuicVersion};

/// Per-reason drop counters, indexed by [`QuicDrop::index`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts {
    counts: [u64; QuicDrop::COUNT],
}

impl DropCounts {
    /// Counts one occurrence of `reason`.
    pub fn add(&mut self, reason: QuicDrop) {
        if let Some(c) = self.counts.get_mut(reason.index()) {
            *c = c.saturating_add(1);
        }
    }

    /// The count for `reason`.
    pub fn get(&self, reason: QuicDrop) -> u64 {
        self.counts.get(reason.index()).copied().unwrap_or(0)
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, &c| a.saturating_add(c))
    }

    /// Reasons with a non-zero count.
    pub fn iter(&self) -> impl Iterator<Item = (QuicDrop, u64)> + '_ {
        QuicDrop::ALL
            .iter()
            .map(|&d| (d, self.get(d)))
            .filter(|&(_, c)| c > 0)
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &DropCounts) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
    }
}

/// What one datagram gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatagramOutcome {
    /// Long-header packets parsed in the datagram (coalescing, RFC 9000 §12.2).
    pub packets: u32,
    /// Initial packets decrypted.
    pub initials_decrypted: u32,
    /// CRYPTO frames collected from decrypted Initials.
    pub crypto_frames: u32,
    /// Handshake, 0-RTT and short-header (1-RTT) packets skipped.
    pub not_initial: u32,
    /// A Retry was accepted and the keys were re-derived from its SCID.
    pub retry: bool,
    /// A Version Negotiation packet was seen (ignored).
    pub version_negotiation: bool,
    /// A client Initial only decrypted with keys from its own DCID; those keys are now
    /// tracked.
    pub rekeyed: bool,
    /// Why packets (or the datagram) gave nothing.
    pub drops: DropCounts,
}

impl DatagramOutcome {
    /// The first drop reason in [`QuicDrop::ALL`] order with a non-zero count.
    pub fn first_drop(&self) -> Option<QuicDrop> {
        self.drops.iter().next().map(|(d, _)| d)
    }
}

/// Cumulative counters over a tracker's life.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuicStats {
    /// Datagrams fed.
    pub datagrams: u64,
    /// Long-header packets parsed.
    pub packets: u64,
    /// Initial packets decrypted.
    pub initials_decrypted: u64,
    /// CRYPTO frames collected.
    pub crypto_frames: u64,
    /// Non-Initial packets skipped.
    pub not_initial: u64,
    /// Retry packets accepted.
    pub retries: u64,
    /// Version Negotiation packets seen.
    pub version_negotiations: u64,
    /// Key switches to a client Initial's own DCID.
    pub rekeys: u64,
    /// Drops by reason.
    pub drops: DropCounts,
}

impl QuicStats {
    fn absorb(&mut self, o: &DatagramOutcome) {
        self.datagrams = self.datagrams.saturating_add(1);
        self.packets = self.packets.saturating_add(u64::from(o.packets));
        self.initials_decrypted = self
            .initials_decrypted
            .saturating_add(u64::from(o.initials_decrypted));
        self.crypto_frames = self
            .crypto_frames
            .saturating_add(u64::from(o.crypto_frames));
        self.not_initial = self.not_initial.saturating_add(u64::from(o.not_initial));
        self.retries = self.retries.saturating_add(u64::from(o.retry));
        self.version_negotiations = self
            .version_negotiations
            .saturating_add(u64::from(o.version_negotiation));
        self.rekeys = self.rekeys.saturating_add(u64::from(o.rekeyed));
        self.drops.merge(&o.drops);
    }
}

/// One direction's Initial packet-number space state.
#[derive(Debug, Clone, Default)]
struct Side {
    stream: CryptoStream,
    /// Largest packet number decrypted, for RFC 9000 Appendix A.3 decoding.
    largest_pn: Option<u64>,
}

/// Tracks the Initial packets of one UDP flow believed to be QUIC and reassembles the
/// CRYPTO stream of each direction. Memory is bounded by two
/// [`CRYPTO_BUFFER_CAP`](super::CRYPTO_BUFFER_CAP) buffers plus two key sets.
#[derive(Debug, Default)]
pub struct QuicInitialTracker {
    keys: Option<InitialKeys>,
    /// The keys replaced by a Retry or a re-key, still tried as a fallback.
    prev_keys: Option<InitialKeys>,
    version: Option<QuicVersion>,
    retry_seen: bool,
    client: Side,
    server: Side,
    stats: QuicStats,
}

impl QuicInitialTracker {
    /// A tracker with no keys yet; the first client Initial sets them.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one UDP datagram. `from_client`: sent by the flow's client. Walks
    /// coalesced packets (RFC 9000 §12.2), decrypts Initial packets, collects CRYPTO
    /// frames; skips Handshake/0-RTT/short-header packets; handles Retry (the client's
    /// next Initials use keys from the Retry's SCID, RFC 9001 §5.2) and ignores
    /// Version Negotiation.
    pub fn on_datagram(&mut self, from_client: bool, payload: &[u8]) -> DatagramOutcome {
        let mut out = DatagramOutcome::default();
        let mut pos = 0usize;
        let mut first_dcid: Option<&[u8]> = None;
        while let Some(rest) = payload.get(pos..).filter(|r| !r.is_empty()) {
            let b0 = rest.first().copied().unwrap_or(0);
            if b0 & 0x80 == 0 {
                // Short header (RFC 9000 §17.3): 1-RTT, runs to the end of the datagram.
                // A zero byte after coalesced packets is padding, not a packet.
                if b0 & 0x40 != 0 {
                    out.not_initial += 1;
                } else if pos == 0 {
                    out.drops.add(QuicDrop::NotQuic);
                }
                break;
            }
            let layout = match parse_layout(rest) {
                Ok(l) => l,
                Err(d) => {
                    out.drops.add(d);
                    break;
                }
            };
            // Receivers SHOULD ignore coalesced packets with a different DCID (§12.2).
            match first_dcid {
                Some(d) if d != layout.header.dcid => break,
                Some(_) => {}
                None => first_dcid = Some(layout.header.dcid),
            }
            out.packets += 1;
            match layout.header.packet_type {
                LongPacketType::Initial => {
                    let pkt = rest.get(..layout.end).unwrap_or(rest);
                    self.on_initial(from_client, pkt, &layout, &mut out);
                }
                LongPacketType::ZeroRtt | LongPacketType::Handshake => out.not_initial += 1,
                LongPacketType::Retry => self.on_retry(from_client, rest, &layout, &mut out),
                LongPacketType::VersionNegotiation => out.version_negotiation = true,
                LongPacketType::Unknown => out.drops.add(QuicDrop::UnsupportedVersion),
            }
            if layout.end == 0 {
                break;
            }
            pos = pos.saturating_add(layout.end);
        }
        self.stats.absorb(&out);
        out
    }

    /// Contiguous CRYPTO-stream bytes of the Initial packet-number space for a side,
    /// from offset 0.
    pub fn crypto_stream(&self, from_client: bool) -> &[u8] {
        self.side(from_client).stream.contiguous()
    }

    /// The version of the most recently decrypted Initial packet, `None` before any.
    pub fn version(&self) -> Option<QuicVersion> {
        self.version
    }

    /// The connection ID the current Initial keys derive from.
    pub fn key_dcid(&self) -> Option<&[u8]> {
        self.keys.as_ref().map(InitialKeys::dcid)
    }

    /// Cumulative counters.
    pub fn stats(&self) -> &QuicStats {
        &self.stats
    }

    fn side(&self, from_client: bool) -> &Side {
        if from_client {
            &self.client
        } else {
            &self.server
        }
    }

    fn side_mut(&mut self, from_client: bool) -> &mut Side {
        if from_client {
            &mut self.client
        } else {
            &mut self.server
        }
    }

    fn on_initial(
        &mut self,
        from_client: bool,
        pkt: &[u8],
        layout: &PacketLayout<'_>,
        out: &mut DatagramOutcome,
    ) {
        let Some(version) = layout.header.version else {
            out.drops.add(QuicDrop::UnsupportedVersion);
            return;
        };
        let dcid = layout.header.dcid;
        if from_client && self.keys.is_none() {
            // RFC 9001 §5.2: keys from the DCID of the client's first Initial.
            self.keys = Some(InitialKeys::derive(version, dcid));
        }
        let largest = self.side(from_client).largest_pn;
        let open = |k: &InitialKeys| -> Result<OpenedPacket, QuicDrop> {
            if k.version() == version {
                open_long_packet(pkt, layout.pn_offset, k.side(from_client), largest)
            } else {
                // Compatible version negotiation (RFC 9368): same DCID, other version.
                let k = InitialKeys::derive(version, k.dcid());
                open_long_packet(pkt, layout.pn_offset, k.side(from_client), largest)
            }
        };
        let mut result = Err(QuicDrop::NoKeys);
        for k in [self.keys.as_ref(), self.prev_keys.as_ref()]
            .into_iter()
            .flatten()
        {
            result = open(k);
            if !matches!(result, Err(QuicDrop::DecryptFailed)) {
                break;
            }
        }
        if from_client
            && matches!(result, Err(QuicDrop::DecryptFailed))
            && self.keys.as_ref().is_some_and(|k| k.dcid() != dcid)
        {
            let k = InitialKeys::derive(version, dcid);
            let r = open(&k);
            if r.is_ok() {
                self.prev_keys = self.keys.replace(k);
                out.rekeyed = true;
                result = r;
            }
        }
        let opened = match result {
            Ok(o) => o,
            Err(d) => {
                out.drops.add(d);
                return;
            }
        };
        out.initials_decrypted += 1;
        self.version = Some(version);
        let side = self.side_mut(from_client);
        side.largest_pn = Some(side.largest_pn.map_or(opened.pn, |l| l.max(opened.pn)));
        let frames = walk_initial_frames(&opened.payload);
        for f in &frames.crypto {
            out.crypto_frames += 1;
            if let Err(d) = side.stream.insert(f.offset, f.data) {
                out.drops.add(d);
            }
        }
        if frames.error.is_some() {
            out.drops.add(QuicDrop::FrameError);
        }
    }

    fn on_retry(
        &mut self,
        from_client: bool,
        retry: &[u8],
        layout: &PacketLayout<'_>,
        out: &mut DatagramOutcome,
    ) {
        // Only servers send Retry, and a client accepts at most one (RFC 9000 §17.2.5.2).
        let Some(version) = layout.header.version else {
            return;
        };
        let Some(odcid) = self.keys.as_ref().map(InitialKeys::dcid) else {
            out.drops.add(QuicDrop::UnexpectedRetry);
            return;
        };
        if from_client || self.retry_seen {
            out.drops.add(QuicDrop::UnexpectedRetry);
            return;
        }
        // RFC 9001 §5.8: the tag binds the Retry to the client's original DCID.
        if !verify_retry_integrity(version, odcid, retry) {
            out.drops.add(QuicDrop::RetryIntegrity);
            return;
        }
        self.retry_seen = true;
        let new = InitialKeys::derive(version, layout.header.scid);
        self.prev_keys = self.keys.replace(new);
        out.retry = true;
    }
}
