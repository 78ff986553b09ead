//! The per-direction state machine: record layer (RFC 8446 §5.1, RFC 5246 §6.2.1),
//! handshake-message reassembly across records and `feed` calls (RFC 8446 §4), and the
//! decision of when nothing more of interest can come.
//!
//! Role is decided by the first handshake message: ClientHello (type 1) makes this the
//! client direction, ServerHello (type 2) the server direction.
//!
//! Client direction: every ClientHello is emitted (at most two, RFC 8446 §4.1.4: a
//! second one follows a HelloRetryRequest). A ChangeCipherSpec ends it unless the
//! ClientHello offered TLS 1.3, in which case it may be the middlebox-compatibility CCS
//! sent before the second ClientHello (RFC 8446 §D.4); after such a CCS only a plaintext
//! record that starts like a ClientHello is parsed, anything else (an encrypted TLS 1.2
//! Finished after resumption) ends the direction silently. Application data (type 23) or
//! any other handshake message ends it.
//!
//! Server direction: ServerHello (or HelloRetryRequest), then for TLS ≤ 1.2 the
//! Certificate message; it ends at Certificate, ServerHelloDone, ChangeCipherSpec,
//! application data, or right after a TLS 1.3 ServerHello (the rest is encrypted). After
//! a HelloRetryRequest a CCS does not end it: the real ServerHello follows.
//!
//! Memory: the partial record buffer and the partial handshake buffer are bounded by
//! [`MAX_RECORD_LEN`] and [`MAX_HANDSHAKE_LEN`] (checked as soon as a header is seen),
//! and the direction as a whole by [`MAX_DIRECTION_BYTES`].

use super::certificate::parse_certificate_chain;
use super::hello::{parse_client_hello, parse_server_hello};
use super::{
    HelloKind, MalformedReason, TlsEvent, MAX_DIRECTION_BYTES, MAX_HANDSHAKE_LEN, MAX_RECORD_LEN,
};

/// Record content types (RFC 8446 §5.1, RFC 6520 for heartbeat).
const CT_CHANGE_CIPHER_SPEC: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPLICATION_DATA: u8 = 23;
const CT_HEARTBEAT: u8 = 24;

/// Handshake message types (RFC 8446 §4, RFC 5246 §7.4).
const HT_CLIENT_HELLO: u8 = 1;
const HT_SERVER_HELLO: u8 = 2;
const HT_CERTIFICATE: u8 = 11;
const HT_SERVER_HELLO_DONE: u8 = 14;

/// TLS 1.3 code point (RFC 8446 §4.2.1).
const TLS13: u16 = 0x0304;

/// Smallest possible hello body: version (2) + random (32) + session id length (1) +
/// cipher suite (2) + compression (1) — the ServerHello minimum (RFC 5246 §7.4.1.3).
const MIN_HELLO_LEN: usize = 38;

/// How the bytes of a direction are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// TLS over TCP: TLSPlaintext records (RFC 8446 §5.1).
    Records,
    /// QUIC CRYPTO stream: bare handshake messages, no record layer (RFC 9001 §4).
    HandshakeMessages,
}

/// Answer of [`probe_tls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Looks like a TLS handshake record carrying a ClientHello or ServerHello.
    Yes,
    /// Not TLS (or SSLv2-compatible framing, which this module does not parse).
    No,
    /// Everything seen so far is consistent; more bytes are needed to decide.
    NeedMore,
}

/// Cheap content check on the first bytes of a direction, so TLS is recognised on any
/// port and, say, plain HTTP on 443 is rejected: record type 22 (handshake), record
/// version major 3, record length 1..=2^14 (RFC 8446 §5.1), handshake type 1 or 2,
/// handshake length in 38..=[`MAX_HANDSHAKE_LEN`], hello version major 3.
/// Decides with at most 10 bytes.
pub fn probe_tls(first_bytes: &[u8]) -> Probe {
    let d = first_bytes;
    // Each check needs the first `n` bytes; the first failing check answers No.
    let checks = [
        (1, d.first() == Some(&CT_HANDSHAKE)),
        (2, d.get(1) == Some(&3)),
        (5, (1..=1 << 14).contains(&be(d, 3, 2))),
        (
            6,
            matches!(d.get(5), Some(&HT_CLIENT_HELLO | &HT_SERVER_HELLO)),
        ),
        (
            9,
            (MIN_HELLO_LEN..=MAX_HANDSHAKE_LEN).contains(&be(d, 6, 3)),
        ),
        (10, d.get(9) == Some(&3)),
    ];
    for (need, ok) in checks {
        if d.len() < need {
            return Probe::NeedMore;
        }
        if !ok {
            return Probe::No;
        }
    }
    Probe::Yes
}

/// Big-endian integer of `n` (≤ 3) bytes at `at`; 0 when out of range.
fn be(d: &[u8], at: usize, n: usize) -> usize {
    d.get(at..at.saturating_add(n))
        .map(|s| s.iter().fold(0usize, |acc, &x| (acc << 8) | usize::from(x)))
        .unwrap_or(0)
}

/// Which side this direction turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Unknown,
    Client,
    Server,
}

/// Parser for one direction of a TLS (or QUIC CRYPTO) byte stream. See the module docs
/// for the state machine.
#[derive(Debug, Clone)]
pub struct TlsDirectionParser {
    framing: Framing,
    /// Unconsumed bytes, starting at a record boundary (records framing only).
    rbuf: Vec<u8>,
    /// Unconsumed handshake bytes, starting at a message boundary.
    hs: Vec<u8>,
    /// The first bytes passed the start check.
    started: bool,
    role: Role,
    /// Hellos (ClientHello or ServerHello) seen in this direction.
    hellos: u8,
    /// Client: the last ClientHello offered TLS 1.3 in supported_versions.
    offered_tls13: bool,
    /// Client: a ChangeCipherSpec was seen (only a second ClientHello may follow).
    after_ccs: bool,
    /// Server: the last ServerHello was a HelloRetryRequest.
    after_hrr: bool,
    finished: bool,
    /// Bytes accepted so far (capped by [`MAX_DIRECTION_BYTES`]).
    total: usize,
}

impl TlsDirectionParser {
    /// A parser for one direction with the given framing.
    pub fn new(framing: Framing) -> Self {
        Self {
            framing,
            rbuf: Vec::new(),
            hs: Vec::new(),
            started: false,
            role: Role::Unknown,
            hellos: 0,
            offered_tls13: false,
            after_ccs: false,
            after_hrr: false,
            finished: false,
            total: 0,
        }
    }

    /// Feed the next bytes of this direction; `data` directly follows what was fed
    /// before (the caller reassembles). Events are appended to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<TlsEvent>) {
        if self.finished {
            return;
        }
        let allowed = MAX_DIRECTION_BYTES.saturating_sub(self.total);
        let data = data.get(..allowed.min(data.len())).unwrap_or_default();
        self.total = self.total.saturating_add(data.len());
        match self.framing {
            Framing::Records => self.feed_records(data, out),
            Framing::HandshakeMessages => {
                self.hs.extend_from_slice(data);
                if !self.started {
                    match start_check(&self.hs, 0) {
                        Probe::NeedMore => return,
                        Probe::No => return self.not_tls(out),
                        Probe::Yes => self.started = true,
                    }
                }
                self.process_messages(out);
            }
        }
        if !self.finished && self.total >= MAX_DIRECTION_BYTES {
            self.finish_quietly();
        }
    }

    /// True once nothing more of interest can come: the caller stops copying bytes.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Tell the parser the direction ended (FIN/RST/timeout). A hello still being
    /// buffered is reported as `Malformed { reason: TruncatedHello }`; the parser is
    /// finished afterwards.
    pub fn end_of_stream(&mut self, out: &mut Vec<TlsEvent>) {
        if self.finished {
            return;
        }
        let first = match self.hs.first() {
            Some(&t) => Some(t),
            None if self.rbuf.first() == Some(&CT_HANDSHAKE) => self.rbuf.get(5).copied(),
            None => None,
        };
        let kind = first.map_or(HelloKind::Other, kind_of);
        if kind != HelloKind::Other && !(self.after_ccs && self.hs.is_empty()) {
            out.push(TlsEvent::Malformed {
                hello: kind,
                reason: MalformedReason::TruncatedHello,
            });
        }
        self.finish_quietly();
    }

    fn feed_records(&mut self, data: &[u8], out: &mut Vec<TlsEvent>) {
        let mut buf = std::mem::take(&mut self.rbuf);
        buf.extend_from_slice(data);
        let mut pos = 0usize;
        while !self.finished {
            let rest = buf.get(pos..).unwrap_or_default();
            if !self.started {
                match start_check(rest, 5) {
                    Probe::NeedMore => break,
                    Probe::No => {
                        self.not_tls(out);
                        break;
                    }
                    Probe::Yes => self.started = true,
                }
            }
            let [ctype, major, _minor, l0, l1, ..] = *rest else {
                break;
            };
            let len = usize::from(u16::from_be_bytes([l0, l1]));
            let kind = self.pending_kind(rest.get(5).copied().filter(|_| ctype == CT_HANDSHAKE));
            if !(CT_CHANGE_CIPHER_SPEC..=CT_HEARTBEAT).contains(&ctype) {
                self.malformed(kind, MalformedReason::RecordType, out);
                break;
            }
            if major != 3 {
                self.malformed(kind, MalformedReason::RecordVersion, out);
                break;
            }
            if len > MAX_RECORD_LEN {
                self.malformed(kind, MalformedReason::RecordTooLarge, out);
                break;
            }
            let Some(frag) = rest.get(5..5 + len) else {
                break; // need more bytes
            };
            pos += 5 + len;
            self.on_record(ctype, frag, out);
        }
        if !self.finished {
            self.rbuf = unconsumed(buf, pos);
        }
    }

    fn on_record(&mut self, ctype: u8, frag: &[u8], out: &mut Vec<TlsEvent>) {
        if ctype != CT_HANDSHAKE && !self.hs.is_empty() {
            // RFC 8446 §5.1: a fragmented handshake message must not be interleaved
            // with other record types.
            let kind = self.pending_kind(None);
            return self.malformed(kind, MalformedReason::InterleavedRecord, out);
        }
        match ctype {
            CT_HANDSHAKE => {
                if frag.is_empty() {
                    return; // zero-length fragment: nothing to reassemble
                }
                if self.after_ccs && self.hs.is_empty() && !looks_like_client_hello(frag) {
                    // After the client's CCS only a second ClientHello is plaintext; this
                    // is an encrypted Finished (TLS 1.2 resumption).
                    return self.finish_quietly();
                }
                self.hs.extend_from_slice(frag);
                self.process_messages(out);
            }
            CT_CHANGE_CIPHER_SPEC => match self.role {
                // RFC 8446 §D.4: compat CCS before the second ClientHello.
                Role::Client if self.offered_tls13 && self.hellos < 2 => self.after_ccs = true,
                // CCS after a HelloRetryRequest: the real ServerHello still follows.
                Role::Server if self.after_hrr => {}
                _ => self.finish_quietly(),
            },
            CT_APPLICATION_DATA => self.finish_quietly(),
            // Alerts and heartbeats carry nothing we fingerprint.
            CT_ALERT | CT_HEARTBEAT => {}
            _ => {}
        }
    }

    /// Consumes every complete handshake message in `self.hs`.
    fn process_messages(&mut self, out: &mut Vec<TlsEvent>) {
        let buf = std::mem::take(&mut self.hs);
        let mut pos = 0usize;
        while !self.finished {
            let rest = buf.get(pos..).unwrap_or_default();
            let [ty, a, b, c, ..] = *rest else {
                break;
            };
            let len = (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c);
            if len > MAX_HANDSHAKE_LEN {
                self.malformed(kind_of(ty), MalformedReason::RecordTooLarge, out);
                break;
            }
            let Some(body) = rest.get(4..4 + len) else {
                break; // need more bytes
            };
            pos += 4 + len;
            self.on_message(ty, body, out);
        }
        if !self.finished {
            self.hs = unconsumed(buf, pos);
        }
    }

    fn on_message(&mut self, ty: u8, body: &[u8], out: &mut Vec<TlsEvent>) {
        if self.role == Role::Unknown {
            self.role = match ty {
                HT_CLIENT_HELLO => Role::Client,
                HT_SERVER_HELLO => Role::Server,
                _ => return self.not_tls(out),
            };
        }
        match (self.role, ty) {
            (Role::Client, HT_CLIENT_HELLO) => {
                if self.hellos >= 2 {
                    return self.malformed(
                        HelloKind::Client,
                        MalformedReason::UnexpectedHello,
                        out,
                    );
                }
                match parse_client_hello(body) {
                    Ok(ch) => {
                        self.hellos += 1;
                        self.after_ccs = false;
                        self.offered_tls13 = ch.supported_versions.contains(&TLS13);
                        out.push(TlsEvent::ClientHello(ch));
                        if self.hellos >= 2 {
                            self.finish_quietly();
                        }
                    }
                    Err(reason) => self.malformed(HelloKind::Client, reason, out),
                }
            }
            (Role::Server, HT_SERVER_HELLO) => {
                if self.hellos >= 2 || (self.hellos == 1 && !self.after_hrr) {
                    return self.malformed(
                        HelloKind::Server,
                        MalformedReason::UnexpectedHello,
                        out,
                    );
                }
                match parse_server_hello(body) {
                    Ok(sh) if sh.is_hello_retry_request && self.hellos == 1 => {
                        // RFC 8446 §4.1.4: a second HelloRetryRequest is an error.
                        self.malformed(HelloKind::Server, MalformedReason::UnexpectedHello, out);
                    }
                    Ok(sh) => {
                        self.hellos += 1;
                        let first = self.hellos == 1;
                        let hrr = sh.is_hello_retry_request;
                        let tls13 = sh.negotiated_version() == TLS13;
                        out.push(TlsEvent::ServerHello(sh));
                        self.after_hrr = hrr && first;
                        if !self.after_hrr && (tls13 || hrr || !first) {
                            // TLS 1.3: everything after the ServerHello is encrypted.
                            self.finish_quietly();
                        }
                    }
                    Err(reason) => self.malformed(HelloKind::Server, reason, out),
                }
            }
            (Role::Server, HT_CERTIFICATE) => {
                match parse_certificate_chain(body) {
                    Ok(chain) => out.push(TlsEvent::Certificates(chain)),
                    Err(reason) => return self.malformed(HelloKind::Other, reason, out),
                }
                self.finish_quietly();
            }
            (Role::Server, HT_SERVER_HELLO_DONE) => self.finish_quietly(),
            // Server: NewSessionTicket, ServerKeyExchange, CertificateStatus… skipped.
            (Role::Server, _) => {}
            // Client: its next flight (Certificate, ClientKeyExchange…) is of no interest.
            _ => self.finish_quietly(),
        }
    }

    /// Kind of the hello being assembled: from the buffered handshake header, else from
    /// `first` (the first byte of a handshake fragment about to be rejected).
    fn pending_kind(&self, first: Option<u8>) -> HelloKind {
        self.hs
            .first()
            .copied()
            .or(first)
            .map_or(HelloKind::Other, kind_of)
    }

    fn malformed(&mut self, hello: HelloKind, reason: MalformedReason, out: &mut Vec<TlsEvent>) {
        out.push(TlsEvent::Malformed { hello, reason });
        self.finish_quietly();
    }

    fn not_tls(&mut self, out: &mut Vec<TlsEvent>) {
        out.push(TlsEvent::NotTls);
        self.finish_quietly();
    }

    fn finish_quietly(&mut self) {
        self.finished = true;
        self.rbuf = Vec::new();
        self.hs = Vec::new();
    }
}

/// The [`HelloKind`] of a handshake message type.
fn kind_of(ty: u8) -> HelloKind {
    match ty {
        HT_CLIENT_HELLO => HelloKind::Client,
        HT_SERVER_HELLO => HelloKind::Server,
        _ => HelloKind::Other,
    }
}

/// Start check for the first bytes of a direction: `offset` is 5 with a record header
/// (type 22, major version 3), 0 for bare handshake messages. The first handshake
/// message must be a ClientHello or a ServerHello.
fn start_check(d: &[u8], offset: usize) -> Probe {
    if offset > 0 {
        match d.first() {
            None => return Probe::NeedMore,
            Some(&CT_HANDSHAKE) => {}
            Some(_) => return Probe::No,
        }
        match d.get(1) {
            None => return Probe::NeedMore,
            Some(&3) => {}
            Some(_) => return Probe::No,
        }
    }
    match d.get(offset) {
        None => Probe::NeedMore,
        Some(&HT_CLIENT_HELLO | &HT_SERVER_HELLO) => Probe::Yes,
        Some(_) => Probe::No,
    }
}

/// A plaintext handshake fragment that starts like a ClientHello: type 1, a length
/// within bounds, and a hello version with major 3.
fn looks_like_client_hello(frag: &[u8]) -> bool {
    // Fragments may be tiny (RFC 8446 §5.1 allows 1-byte records): judge what is there.
    frag.first() == Some(&HT_CLIENT_HELLO)
        && (frag.len() < 4 || (MIN_HELLO_LEN..=MAX_HANDSHAKE_LEN).contains(&be(frag, 1, 3)))
        && frag.get(4).is_none_or(|&v| v == 3)
}

/// What is left of `buf` after its first `pos` bytes were consumed. An emptied buffer
/// is freed, so a flow waiting between handshake messages holds no memory.
fn unconsumed(mut buf: Vec<u8>, pos: usize) -> Vec<u8> {
    if pos >= buf.len() {
        return Vec::new();
    }
    buf.drain(..pos);
    buf
}
