//! Shared harness code of the flowmesh fuzz targets: the input formats each target
//! decodes (and the encoders the seed generator uses, so seeds always match the format),
//! and one `run_*` function per target holding the body and its invariants. The
//! `fuzz_targets/*.rs` files only forward to these, so `tests/seeds.rs` can replay any
//! input without libFuzzer.

use flowmesh_core::capture::{CaptureReader, Frame, LinkType};
use flowmesh_core::decode::{DecodeConfig, Decoder, Packet, MAX_DATAGRAM};
use flowmesh_core::fingerprint::ja4::JaTransport;
use flowmesh_core::fingerprint::tls::{
    parse_certificate_chain, parse_client_hello, parse_server_hello, Framing, TlsDirectionParser,
    TlsEvent,
};
use flowmesh_core::fingerprint::{ja3, ja4};
use flowmesh_core::quic::packet::protect_initial;
use flowmesh_core::quic::varint::encode_varint;
use flowmesh_core::quic::{InitialKeys, QuicInitialTracker, QuicVersion};
use flowmesh_core::reassembly::{
    ReassemblyBudget, ReassemblyConfig, ReassemblyStats, StreamReassembler,
};
use flowmesh_core::handshake::WorkerConfig;
use flowmesh_core::shard::{Inline, Route, Router, ShardConfig};
use flowmesh_schemas::Timestamp;

/// A cursor that reads fields from the front of the fuzz input; running out yields zeros
/// / empty slices, so every input is valid.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Wraps the fuzz input.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// One byte (0 when exhausted).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Big-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// Big-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(usize::MAX)
    }
}

/// Every link type the decoder knows, plus one it does not.
pub const LINKS: [LinkType; 10] = [
    LinkType::Ethernet,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Null,
    LinkType::Loop,
    LinkType::Unsupported(147),
    LinkType::UNKNOWN_INTERFACE,
];

/// The selector byte of `link` in [`LINKS`].
pub fn link_index(link: LinkType) -> u8 {
    LINKS.iter().position(|&l| l == link).unwrap_or(8) as u8
}

fn link_of(b: u8) -> LinkType {
    LINKS[usize::from(b) % LINKS.len()]
}

fn check_decode_stats(d: &Decoder) {
    let s = d.stats();
    assert_eq!(
        s.frames,
        s.packets + s.fragments_held + s.dropped_total(),
        "every frame is counted exactly once"
    );
}

// ---------------------------------------------------------------------------------------
// decode_frame: `[link selector][extra wire bytes][frame...]`, decoded twice (the second
// time with the decoder's state from the first, so a fragment can meet itself).

/// Encodes a frame for `decode_frame`.
pub fn encode_decode_frame(link: LinkType, data: &[u8]) -> Vec<u8> {
    let mut v = vec![link_index(link), 0];
    v.extend_from_slice(data);
    v
}

/// Body of `decode_frame`.
pub fn run_decode_frame(data: &[u8]) {
    let mut inp = Input::new(data);
    let link = link_of(inp.u8());
    let extra = u32::from(inp.u8());
    let frame = inp.rest();
    let wire = (frame.len() as u32).saturating_add(extra);
    let mut d = Decoder::new(DecodeConfig::default());
    for i in 0..2 {
        if let Ok(Some(p)) = d.decode(Timestamp(i), link, frame, wire) {
            assert!(p.payload.len() <= frame.len().max(MAX_DATAGRAM as usize));
            let _ = p.is_truncated();
        }
        check_decode_stats(&d);
    }
}

// ---------------------------------------------------------------------------------------
// capture_file: the raw bytes of a pcap/pcapng file; each frame is also decoded.

/// Body of `capture_file`.
pub fn run_capture_file(data: &[u8]) {
    let Ok(mut r) = CaptureReader::new(data) else {
        return;
    };
    let _ = r.format();
    let mut d = Decoder::new(DecodeConfig::default());
    let mut n = 0usize;
    while let Some(item) = r.next_frame() {
        match item {
            Ok(f) => {
                assert!(f.data.len() <= flowmesh_core::capture::MAX_RECORD_LEN);
                assert!(r.offset() <= data.len());
                let _ = d.decode(f.ts, f.link, f.data, f.orig_len);
            }
            Err(e) => {
                let _ = e.is_fatal();
                let _ = e.to_string();
            }
        }
        n += 1;
        assert!(n <= data.len(), "more records than bytes");
    }
    assert!(r.next_frame().is_none(), "reader is fused");
    check_decode_stats(&d);
}

// ---------------------------------------------------------------------------------------
// defrag: IPv4/IPv6 fragment sequences built around fuzzer-chosen fields.
//
// `[mode]`: bit0 = tight defragmenter limits (evictions), bit1 = "cut" mode.
// Free mode, repeated: `[flags][offset u16][dt][len][data len]` with flags bit0 = IPv6,
//   bit1 = more fragments, bits2-3 = id, bit4 = TCP (else UDP), bit5 = Ethernet framing,
//   bit6 = raw link (else Ipv4/Ipv6 link type); offset in 8-byte units.
// Cut mode: `[flags][sport u16][dport u16][plen u16][payload plen][cut sizes...]`: a
//   valid UDP (or TCP, flags bit4: the payload then starts with the TCP header) datagram
//   cut into pieces of 8 × size bytes, each piece sent in an order driven by the
//   following bytes (`[size][swap]` pairs), plus an optional duplicate.

fn ipv4_frag(proto: u8, id: u16, off8: u16, more: bool, data: &[u8]) -> Vec<u8> {
    let total = (20 + data.len()).min(0xffff) as u16;
    let frag = (off8 & 0x1fff) | if more { 0x2000 } else { 0 };
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    let mut sum = 0u32;
    for c in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let ck = !(sum as u16);
    h[10..12].copy_from_slice(&ck.to_be_bytes());
    h.extend_from_slice(data);
    h
}

fn ipv6_frag(proto: u8, id: u32, off8: u16, more: bool, data: &[u8]) -> Vec<u8> {
    let plen = (8 + data.len()).min(0xffff) as u16;
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&plen.to_be_bytes());
    h.extend_from_slice(&[44, 64]);
    h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    let om = ((off8 & 0x1fff) << 3) | u16::from(more);
    h.extend_from_slice(&[proto, 0]);
    h.extend_from_slice(&om.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(data);
    h
}

fn frame_for(v6: bool, ether: bool, raw: bool, ip: Vec<u8>) -> (LinkType, Vec<u8>) {
    if ether {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
        f.extend_from_slice(&ip);
        (LinkType::Ethernet, f)
    } else if raw {
        (LinkType::Raw, ip)
    } else if v6 {
        (LinkType::Ipv6, ip)
    } else {
        (LinkType::Ipv4, ip)
    }
}

/// Encodes a cut-mode `defrag` input around a UDP payload.
pub fn encode_defrag_cut(v6: bool, sport: u16, dport: u16, payload: &[u8], cuts: &[u8]) -> Vec<u8> {
    let mut v = vec![2u8, u8::from(v6)];
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    let payload = &payload[..payload.len().min(0xffff - 16)];
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(payload);
    v.extend_from_slice(cuts);
    v
}

/// Body of `defrag`.
pub fn run_defrag(data: &[u8]) {
    let mut inp = Input::new(data);
    let mode = inp.u8();
    let cfg = if mode & 1 != 0 {
        DecodeConfig {
            defrag_max_datagrams: 3,
            defrag_max_bytes: 2048,
            defrag_max_fragments: 6,
            defrag_timeout_ns: 1_000_000_000,
            ..DecodeConfig::default()
        }
    } else {
        DecodeConfig::default()
    };
    let mut d = Decoder::new(cfg);
    let mut now = 0i64;
    let mut frames: Vec<(LinkType, Vec<u8>, i64)> = Vec::new();
    let mut expect: Option<Vec<u8>> = None;
    if mode & 2 == 0 {
        while !inp.is_empty() && frames.len() < 64 {
            let flags = inp.u8();
            let off = inp.u16();
            now += i64::from(inp.u8()) * 100_000_000;
            let len = usize::from(inp.u8());
            let payload = inp.take(len);
            let v6 = flags & 1 != 0;
            let more = flags & 2 != 0;
            let id = u16::from((flags >> 2) & 3);
            let proto = if flags & 0x10 != 0 { 6 } else { 17 };
            let ip = if v6 {
                ipv6_frag(proto, u32::from(id), off, more, payload)
            } else {
                ipv4_frag(proto, id, off, more, payload)
            };
            let (link, f) = frame_for(v6, flags & 0x20 != 0, flags & 0x40 != 0, ip);
            frames.push((link, f, now));
        }
    } else {
        let flags = inp.u8();
        let v6 = flags & 1 != 0;
        let tcp = flags & 0x10 != 0;
        let sport = inp.u16();
        let dport = inp.u16();
        let plen = usize::from(inp.u16());
        let payload = inp.take(plen);
        let mut dg = Vec::new();
        if !tcp {
            dg.extend_from_slice(&sport.to_be_bytes());
            dg.extend_from_slice(&dport.to_be_bytes());
            dg.extend_from_slice(&((8 + payload.len()).min(0xffff) as u16).to_be_bytes());
            dg.extend_from_slice(&[0, 0]);
        }
        dg.extend_from_slice(payload);
        // Cut into pieces of 8 × size bytes.
        let mut pieces: Vec<(u16, bool, Vec<u8>)> = Vec::new();
        let mut pos = 0usize;
        while pos < dg.len() && pieces.len() < 48 {
            let size = (usize::from(inp.u8() % 32) + 1) * 8;
            let end = (pos + size).min(dg.len());
            pieces.push(((pos / 8) as u16, true, dg[pos..end].to_vec()));
            pos = end;
        }
        if let Some(last) = pieces.last_mut() {
            last.1 = pos < dg.len();
        }
        let n = pieces.len();
        for i in 0..n {
            let j = usize::from(inp.u8()) % n;
            pieces.swap(i, j);
        }
        let dup = inp.u8();
        if n > 0 && dup & 0x80 != 0 {
            let p = pieces[usize::from(dup) % n].clone();
            pieces.push(p);
        }
        let id = inp.u16();
        // Oracle: with default limits a complete UDP train must come out byte-exact.
        if mode & 1 == 0 && !tcp && pos == dg.len() && dg.len() <= 60_000 {
            expect = Some(payload.to_vec());
        }
        for (off, more, piece) in pieces {
            let proto = if tcp { 6 } else { 17 };
            let ip = if v6 {
                ipv6_frag(proto, u32::from(id), off, more, &piece)
            } else {
                ipv4_frag(proto, id, off, more, &piece)
            };
            let (link, f) = frame_for(v6, flags & 0x20 != 0, flags & 0x40 != 0, ip);
            now += 1000;
            frames.push((link, f, now));
        }
    }
    let mut got: Option<Vec<u8>> = None;
    for (link, f, ts) in &frames {
        let wire = f.len() as u32;
        if let Ok(Some(p)) = d.decode(Timestamp(*ts), *link, f, wire) {
            if p.fragmented {
                assert!(p.payload.len() <= MAX_DATAGRAM as usize);
            }
            if got.is_none() && p.proto == 17 {
                got = Some(p.payload.to_vec());
            }
        }
        check_decode_stats(&d);
        assert!(d.fragments_in_progress() <= cfg.defrag_max_datagrams);
        assert!(d.fragment_bytes_buffered() <= cfg.defrag_max_bytes);
    }
    if let Some(e) = expect {
        assert_eq!(
            got.as_deref(),
            Some(&e[..]),
            "cut datagram not reassembled exactly"
        );
    }
    d.expire(Timestamp(now + cfg.defrag_timeout_ns + 1));
    assert_eq!(d.fragments_in_progress(), 0, "expiry drops every train");
    assert_eq!(d.fragment_bytes_buffered(), 0, "expiry frees every byte");
}

// ---------------------------------------------------------------------------------------
// reassembly: `[mode][depth u16][max_ranges][cap u16][isn u32][set_base]`, then
// mode bit0 = 0 ("free"): repeated `[offset u32][flags][len][data len]`, the segment's
//   sequence number is isn + offset; flags bit0 = call take_new after it.
// mode bit0 = 1 ("cut"): `[blen u16][buffer blen]` then repeated `[start u16][len]`:
//   segments are slices of the buffer at stream offsets start % (blen + 17) - 16 (bytes
//   before offset 0 are filler), so every delivered byte must equal the buffer's.

/// Encodes a free-mode `reassembly` input from (offset, data) segments.
pub fn encode_reassembly_free(isn: u32, segs: &[(u32, &[u8])]) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(&(32 * 1024u16 - 1).to_be_bytes());
    v.push(64);
    v.extend_from_slice(&0xffffu16.to_be_bytes());
    v.extend_from_slice(&isn.to_be_bytes());
    v.push(1);
    for (off, d) in segs {
        for chunk in d.chunks(255) {
            v.extend_from_slice(&off.to_be_bytes());
            v.push(1);
            v.push(chunk.len() as u8);
            v.extend_from_slice(chunk);
        }
    }
    v
}

/// Body of `reassembly`.
pub fn run_reassembly(data: &[u8]) {
    let mut inp = Input::new(data);
    let mode = inp.u8();
    let cfg = ReassemblyConfig {
        depth: u32::from(inp.u16()),
        max_ranges: usize::from(inp.u8()),
    };
    let mut budget = ReassemblyBudget::new(usize::from(inp.u16()) * 16);
    let isn = inp.u32();
    let set_base = inp.u8() & 1 != 0;
    let mut stats = ReassemblyStats::default();
    let mut r = StreamReassembler::new();
    let mut delivered: Vec<u8> = Vec::new();
    let mut abandoned = false;

    let check = |r: &mut StreamReassembler, budget: &mut ReassemblyBudget, delivered: &mut Vec<u8>| {
        delivered.extend_from_slice(r.take_new());
        // Consumed bytes are dropped, as the shard does after feeding a parser.
        r.compact(budget);
        assert!(
            delivered.len() <= cfg.depth as usize,
            "delivered past depth"
        );
        assert!(budget.used <= budget.cap, "budget over cap");
        assert!(r.contiguous_end() <= cfg.depth);
    };

    if mode & 1 == 0 {
        if set_base {
            r.set_base(isn);
        }
        let mut n = 0;
        while !inp.is_empty() && n < 256 {
            let off = inp.u32();
            let flags = inp.u8();
            let len = usize::from(inp.u8());
            let seg = inp.take(len);
            let out = r.insert(isn.wrapping_add(off), seg, &cfg, &mut budget, &mut stats);
            assert!(budget.used <= budget.cap, "budget over cap after {out:?}");
            if flags & 1 != 0 {
                check(&mut r, &mut budget, &mut delivered);
            }
            n += 1;
        }
        check(&mut r, &mut budget, &mut delivered);
        // Everything contiguous was handed out, exactly once.
        assert!(r.contiguous_end() as usize == delivered.len() || r.is_abandoned());
    } else {
        r.set_base(isn);
        let blen = usize::from(inp.u16());
        let buf = inp.take(blen);
        let span = buf.len() + 17;
        // covered[i]: stream offset i was sent (only while nothing was abandoned).
        let mut covered = vec![false; buf.len()];
        let mut max_end = 0usize;
        let mut n = 0;
        while !inp.is_empty() && n < 256 {
            let start = (usize::from(inp.u16()) % span) as i64 - 16;
            let len = usize::from(inp.u8());
            let mut seg = Vec::with_capacity(len);
            for k in 0..len as i64 {
                let o = start + k;
                if o < 0 {
                    seg.push(0xee);
                } else if let Some(&b) = buf.get(o as usize) {
                    seg.push(b);
                    covered[o as usize] = true;
                }
            }
            let seg_end = (start + seg.len() as i64).clamp(0, i64::from(cfg.depth)) as usize;
            max_end = max_end.max(seg_end);
            let seq = isn.wrapping_add(start as u32);
            let out = r.insert(seq, &seg, &cfg, &mut budget, &mut stats);
            assert!(budget.used <= budget.cap);
            use flowmesh_core::reassembly::InsertOutcome;
            if matches!(out, InsertOutcome::MemCap | InsertOutcome::TooFragmented) {
                abandoned = true;
            }
            assert_eq!(r.is_abandoned(), abandoned);
            if !abandoned {
                // Geometric growth: never more than twice the furthest byte stored.
                assert!(
                    budget.used <= 2 * max_end,
                    "{} reserved for {max_end} bytes",
                    budget.used
                );
            }
            check(&mut r, &mut budget, &mut delivered);
            assert_eq!(
                &buf[..delivered.len()],
                &delivered[..],
                "delivered != buffer prefix"
            );
            n += 1;
        }
        if !abandoned {
            let contiguous = covered.iter().position(|c| !c).unwrap_or(covered.len());
            assert_eq!(
                delivered.len(),
                contiguous.min(cfg.depth as usize),
                "contiguous data was not delivered"
            );
        }
    }
    r.release(&mut budget);
    assert_eq!(budget.used, 0, "release returns every reserved byte");
}

// ---------------------------------------------------------------------------------------
// tls_hello: `[mode][chunk]` then the bytes. mode % 5: 0 Records parser, 1 handshake-
// message parser, 2 parse_client_hello, 3 parse_server_hello, 4 parse_certificate_chain.
// chunk: feed size pattern (0 = everything at once).

/// Encodes a `tls_hello` input.
pub fn encode_tls(mode: u8, chunk: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![mode, chunk];
    v.extend_from_slice(bytes);
    v
}

fn use_events(events: &[TlsEvent], t: JaTransport) {
    for e in events {
        match e {
            TlsEvent::ClientHello(ch) => {
                let s = ja3::ja3(ch);
                let _ = ja3::md5_hex(&s);
                let j = ja4::ja4(ch, t);
                assert!(j.is_ascii());
                let _ = ja4::ja4(ch, JaTransport::Dtls);
            }
            TlsEvent::ServerHello(sh) => {
                let _ = ja3::md5_hex(&ja3::ja3s(sh));
                let _ = ja4::ja4s(sh, t);
                let _ = sh.negotiated_version();
            }
            TlsEvent::Malformed { reason, .. } => {
                let _ = reason.as_str();
            }
            TlsEvent::Certificates(_) | TlsEvent::NotTls => {}
        }
    }
}

/// Feeds `bytes` to a direction parser in chunks and checks the event contract.
pub fn feed_tls(framing: Framing, chunk: u8, bytes: &[u8], t: JaTransport) {
    let mut p = TlsDirectionParser::new(framing);
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut i = 0usize;
    while !rest.is_empty() {
        let size = if chunk == 0 {
            rest.len()
        } else {
            // Alternate chunk sizes so boundaries move around headers.
            usize::from(chunk) + (i % 3) * usize::from(chunk / 2) + 1
        };
        let (a, b) = rest.split_at(size.min(rest.len()));
        let before = out.len();
        let was_finished = p.is_finished();
        p.feed(a, &mut out);
        if was_finished {
            assert_eq!(out.len(), before, "events after the direction finished");
        }
        rest = b;
        i += 1;
    }
    p.end_of_stream(&mut out);
    if out
        .iter()
        .any(|e| matches!(e, TlsEvent::Malformed { .. } | TlsEvent::NotTls))
    {
        assert!(p.is_finished(), "Malformed/NotTls finishes the direction");
    }
    let hellos = out
        .iter()
        .filter(|e| matches!(e, TlsEvent::ClientHello(_)))
        .count();
    assert!(hellos <= 2, "at most two ClientHellos per direction");
    use_events(&out, t);
}

/// Body of `tls_hello`.
pub fn run_tls_hello(data: &[u8]) {
    let mut inp = Input::new(data);
    let mode = inp.u8() % 5;
    let chunk = inp.u8();
    let bytes = inp.rest();
    match mode {
        0 => feed_tls(Framing::Records, chunk, bytes, JaTransport::Tcp),
        1 => feed_tls(Framing::HandshakeMessages, chunk, bytes, JaTransport::Quic),
        2 => {
            if let Ok(ch) = parse_client_hello(bytes) {
                use_events(&[TlsEvent::ClientHello(ch)], JaTransport::Tcp);
            }
        }
        3 => {
            if let Ok(sh) = parse_server_hello(bytes) {
                use_events(&[TlsEvent::ServerHello(sh)], JaTransport::Tcp);
            }
        }
        _ => {
            if let Ok(certs) = parse_certificate_chain(bytes) {
                let _ = format!("{certs:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// quic_initial: `[mode]`; mode bit0 = 0 ("raw"): repeated `[flags][len u16][datagram]`
// (flags bit0 = from client). mode bit0 = 1 ("protected"): `[version][dcid_len][dcid]
// [scid_len][scid]` then repeated packets `[flags][pn u32][pn_len][token_len][token]
// [nframes] frames...` where flags bit0 = from client, bit1 = coalesce with the next
// packet; a frame is `[kind]` + kind 0: CRYPTO `[offset u16][len u16][data]`, 1: raw
// `[len][bytes]`, 2: PADDING `[n]`, 3: PING. Each packet is sealed with the real Initial
// keys (both sides' keys derive from the client's first DCID), so the frame walker and the
// CRYPTO reassembly behind the AEAD are reached. Afterwards the CRYPTO streams go through
// the TLS handshake-message parser and JA4 like the shard does.

/// A frame of a protected-mode `quic_initial` input.
#[derive(Debug, Clone)]
pub enum QFrame {
    /// CRYPTO frame at an offset.
    Crypto(u16, Vec<u8>),
    /// Raw frame bytes.
    Raw(Vec<u8>),
    /// `n` PADDING bytes.
    Padding(u8),
    /// A PING frame.
    Ping,
}

/// A packet of a protected-mode `quic_initial` input.
#[derive(Debug, Clone)]
pub struct QPacket {
    /// Sent by the client.
    pub from_client: bool,
    /// Coalesce with the next packet into one datagram.
    pub coalesce: bool,
    /// Packet number.
    pub pn: u32,
    /// Frames.
    pub frames: Vec<QFrame>,
}

/// Encodes a protected-mode `quic_initial` input.
pub fn encode_quic_protected(v2: bool, dcid: &[u8], scid: &[u8], pkts: &[QPacket]) -> Vec<u8> {
    let mut v = vec![1u8, u8::from(v2), dcid.len() as u8];
    v.extend_from_slice(dcid);
    v.push(scid.len() as u8);
    v.extend_from_slice(scid);
    for p in pkts {
        v.push(u8::from(p.from_client) | (u8::from(p.coalesce) << 1));
        v.extend_from_slice(&p.pn.to_be_bytes());
        v.push(4);
        v.push(0);
        v.push(p.frames.len() as u8);
        for f in &p.frames {
            match f {
                QFrame::Crypto(off, d) => {
                    v.push(0);
                    v.extend_from_slice(&off.to_be_bytes());
                    v.extend_from_slice(&(d.len() as u16).to_be_bytes());
                    v.extend_from_slice(d);
                }
                QFrame::Raw(d) => {
                    v.push(1);
                    v.push(d.len() as u8);
                    v.extend_from_slice(d);
                }
                QFrame::Padding(n) => {
                    v.push(2);
                    v.push(*n);
                }
                QFrame::Ping => v.push(3),
            }
        }
    }
    v
}

/// Encodes a raw-mode `quic_initial` input.
pub fn encode_quic_raw(dgrams: &[(bool, &[u8])]) -> Vec<u8> {
    let mut v = vec![0u8];
    for (c, d) in dgrams {
        let d = &d[..d.len().min(0xffff)];
        v.push(u8::from(*c));
        v.extend_from_slice(&(d.len() as u16).to_be_bytes());
        v.extend_from_slice(d);
    }
    v
}

/// Body of `quic_initial`.
pub fn run_quic_initial(data: &[u8]) {
    let t = quic_tracker_from(data);
    let _ = t.stats();
    let _ = t.version();
    let _ = t.key_dcid();
    for c in [true, false] {
        let s = t.crypto_stream(c).to_vec();
        feed_tls(Framing::HandshakeMessages, 0, &s, JaTransport::Quic);
    }
}

/// Feeds the datagrams a `quic_initial` input describes to a fresh tracker.
pub fn quic_tracker_from(data: &[u8]) -> QuicInitialTracker {
    let mut inp = Input::new(data);
    let mode = inp.u8();
    let mut t = QuicInitialTracker::new();
    if mode & 1 == 0 {
        let mut n = 0;
        while !inp.is_empty() && n < 64 {
            let c = inp.u8() & 1 != 0;
            let len = usize::from(inp.u16());
            let _ = t.on_datagram(c, inp.take(len));
            n += 1;
        }
    } else {
        let version = if inp.u8() & 1 != 0 {
            QuicVersion::V2
        } else {
            QuicVersion::V1
        };
        let dl = usize::from(inp.u8() % 21);
        let dcid = inp.take(dl).to_vec();
        let sl = usize::from(inp.u8() % 21);
        let scid = inp.take(sl).to_vec();
        let keys = InitialKeys::derive(version, &dcid);
        let mut dgram: Vec<u8> = Vec::new();
        let mut n = 0;
        while !inp.is_empty() && n < 32 {
            let flags = inp.u8();
            let from_client = flags & 1 != 0;
            let pn = u64::from(inp.u32());
            let pn_len = usize::from(inp.u8() % 4) + 1;
            let tl = usize::from(inp.u8());
            let token = inp.take(tl).to_vec();
            let nf = inp.u8();
            let mut payload = Vec::new();
            for _ in 0..nf {
                match inp.u8() % 4 {
                    0 => {
                        let off = u64::from(inp.u16());
                        let len = usize::from(inp.u16());
                        let d = inp.take(len);
                        payload.push(0x06);
                        let _ = encode_varint(off, &mut payload);
                        let _ = encode_varint(d.len() as u64, &mut payload);
                        payload.extend_from_slice(d);
                    }
                    1 => {
                        let len = usize::from(inp.u8());
                        payload.extend_from_slice(inp.take(len));
                    }
                    2 => payload.extend(std::iter::repeat(0).take(usize::from(inp.u8()))),
                    _ => payload.push(0x01),
                }
            }
            // The header-protection sample needs 4 bytes after the packet number.
            while payload.len() < 4 {
                payload.push(0);
            }
            // Server packets carry the client's SCID as DCID; keys are the client DCID's.
            let (d, s) = if from_client {
                (&dcid, &scid)
            } else {
                (&scid, &dcid)
            };
            let tok: &[u8] = if from_client { &token } else { &[] };
            if let Some(pkt) = protect_initial(
                version,
                keys.side(from_client),
                d,
                s,
                tok,
                pn,
                pn_len,
                &payload,
            ) {
                dgram.extend_from_slice(&pkt);
            }
            if flags & 2 == 0 || inp.is_empty() {
                let _ = t.on_datagram(from_client, &dgram);
                dgram.clear();
            }
            n += 1;
        }
    }
    t
}

// ---------------------------------------------------------------------------------------
// shard: frames `[link][dt][len u16][data len]`: link selector bit7 = the frame was cut
// (orig_len = len + 1000); the clock advances by dt³ milliseconds, so idle timeouts and
// defragmentation timeouts are reached. Then `finish`.

/// Encodes one `shard` frame record.
pub fn encode_shard_frame(out: &mut Vec<u8>, link: LinkType, dt: u8, data: &[u8]) {
    let data = &data[..data.len().min(0xffff)];
    out.push(link_index(link));
    out.push(dt);
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// The frames of a `shard` or `route` input (at most 512).
fn frame_records(data: &[u8]) -> Vec<Frame<'_>> {
    let mut inp = Input::new(data);
    let mut now = 1_600_000_000 * Timestamp::NANOS_PER_SEC;
    let mut frames = Vec::new();
    while !inp.is_empty() && frames.len() < 512 {
        let l = inp.u8();
        let dt = i64::from(inp.u8());
        now = now.saturating_add(dt * dt * dt * 1_000_000);
        let len = usize::from(inp.u16());
        let bytes = inp.take(len);
        let orig_len = bytes.len() as u32 + if l & 0x80 != 0 { 1000 } else { 0 };
        frames.push(Frame {
            ts: Timestamp(now),
            link: link_of(l & 0x7f),
            data: bytes,
            orig_len,
            interface: 0,
        });
    }
    frames
}

/// Body of `shard`.
pub fn run_shard(data: &[u8]) {
    let mut shard = Inline::new(ShardConfig::default(), WorkerConfig::default());
    let mut out = Vec::new();
    for frame in frame_records(data) {
        shard.process_frame(&frame, &mut out);
    }
    shard.finish(&mut out);
    assert_eq!(shard.flow_count(), 0, "finish ends every flow");
    assert_eq!(
        shard.reassembly_bytes(),
        0,
        "finish returns all reassembly memory"
    );
    for r in &out {
        let _ = format!("{r:?}");
    }
    let _ = shard.shard_stats().records_total();
}

// ---------------------------------------------------------------------------------------
// route: the `shard` input format, through a `Router` next to a plain `Decoder` fed the
// same frames. Invariants: the router's outcome is the decoder's (whole packet /
// reassembled packet / held / dropped with the same reason); a whole frame's hash is its
// flow key's; a synthetic frame decodes, in a fresh decoder, to the decoder's packet
// (with `fragmented` false) and carries its key's hash; every frame is counted once;
// fragment state stays within the limits and expiry frees it.

/// Encodes a `route` input: `l4` (IP protocol `proto`) as one datagram cut into IPv4
/// or IPv6 fragments of `size` bytes (a multiple of 8), Ethernet framed, last first.
pub fn encode_route_train(v6: bool, proto: u8, l4: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let size = size.max(8) & !7;
    let n = l4.chunks(size).count();
    for (i, c) in l4.chunks(size).enumerate().rev() {
        let (off8, more) = ((i * size / 8) as u16, i + 1 < n);
        let ip = if v6 {
            ipv6_frag(proto, 7, off8, more, c)
        } else {
            ipv4_frag(proto, 7, off8, more, c)
        };
        let (link, f) = frame_for(v6, true, false, ip);
        encode_shard_frame(&mut out, link, 0, &f);
    }
    out
}

fn key_hash(p: &Packet<'_>) -> u64 {
    p.flow_key().0.symmetric_hash()
}

/// Body of `route`.
pub fn run_route(data: &[u8]) {
    let cfg = DecodeConfig::default();
    let mut router = Router::new(cfg);
    let mut direct = Decoder::new(cfg);
    let mut last = Timestamp(0);
    for f in frame_records(data) {
        last = f.ts;
        let want = direct.decode(f.ts, f.link, f.data, f.orig_len);
        let mut fresh = Decoder::new(cfg);
        match (router.route(&f), want) {
            (Route::Whole { hash }, Ok(Some(p))) => {
                assert!(!p.fragmented, "a whole frame is no fragment");
                assert_eq!(hash, key_hash(&p), "whole frame hash");
            }
            (Route::Reassembled { hash, frame }, Ok(Some(p))) => {
                assert!(p.fragmented, "the decoder reassembled too");
                assert_eq!(hash, key_hash(&p), "reassembled hash");
                let q = fresh.decode(frame.ts, frame.link, frame.data, frame.orig_len);
                let want = Packet {
                    fragmented: false,
                    ..p
                };
                assert_eq!(q, Ok(Some(want)), "synthetic frame decodes to the packet");
                assert_eq!(fresh.stats().ipv4_bad_checksum, 0);
            }
            (Route::Held, Ok(None)) => {}
            (Route::Dropped(r), Err(e)) => assert_eq!(r, e, "same drop reason"),
            (route, want) => panic!("router {route:?}, decoder {want:?}"),
        }
        assert!(router.fragments_in_progress() <= cfg.defrag_max_datagrams);
    }
    let (r, d) = (router.stats(), direct.stats());
    assert_eq!(
        (r.frames, r.packets, r.fragments_held, r.dropped_total()),
        (d.frames, d.packets, d.fragments_held, d.dropped_total()),
        "every frame counted once, as the decoder counts it"
    );
    router.expire(last.add_nanos(cfg.defrag_timeout_ns));
    assert_eq!(
        router.fragments_in_progress(),
        0,
        "expiry drops every train"
    );
}
