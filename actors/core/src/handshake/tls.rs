//! TLS over TCP: probes the record layer and drives one [`TlsDirectionParser`] per
//! direction. [`TlsSession`] is also the TLS half of QUIC, fed CRYPTO-stream bytes.

use super::{
    Feed, FingerprintSet, HandshakeLog, HandshakeProtocol, HandshakeSession, Probe, SessionCounts,
};
use crate::fingerprint::ja4::JaTransport;
use crate::fingerprint::tls::{
    self, Framing, HelloKind, MalformedReason, TlsDirectionParser, TlsEvent,
};
use flowmesh_schemas::L7;

/// TLS on any TCP port, recognised by content (so TLS on 14433 is found and cleartext
/// HTTP on 443 is not).
#[derive(Debug, Clone, Copy, Default)]
pub struct TlsProtocol;

impl HandshakeProtocol for TlsProtocol {
    fn name(&self) -> &'static str {
        "tls"
    }

    fn l7(&self) -> L7 {
        L7::Tls
    }

    fn feed(&self) -> Feed {
        Feed::Stream
    }

    fn probe(&self, first: &[u8]) -> Probe {
        match tls::probe_tls(first) {
            tls::Probe::Yes => Probe::Match {
                sender_is_client: hello_sender_is_client(first.get(5).copied()),
            },
            tls::Probe::No => Probe::No,
            tls::Probe::NeedMore => Probe::NeedMore,
        }
    }

    fn start(&self, fingerprints: FingerprintSet) -> Box<dyn HandshakeSession> {
        Box::new(TlsSession::new(
            Framing::Records,
            JaTransport::Tcp,
            fingerprints,
        ))
    }
}

/// A ClientHello (type 1) is sent by the client, a ServerHello (type 2) by the server.
fn hello_sender_is_client(handshake_type: Option<u8>) -> Option<bool> {
    match handshake_type {
        Some(1) => Some(true),
        Some(2) => Some(false),
        _ => None,
    }
}

/// The TLS handshake of one flow: a parser per direction and the fingerprint settings.
#[derive(Debug)]
pub struct TlsSession {
    client: TlsDirectionParser,
    server: TlsDirectionParser,
    transport: JaTransport,
    fingerprints: FingerprintSet,
    events: Vec<TlsEvent>,
    client_bytes: u64,
    client_hellos: u32,
}

impl TlsSession {
    /// A session reading `framing` bytes; fingerprints are tagged with `transport`.
    pub fn new(framing: Framing, transport: JaTransport, fingerprints: FingerprintSet) -> Self {
        TlsSession {
            client: TlsDirectionParser::new(framing),
            server: TlsDirectionParser::new(framing),
            transport,
            fingerprints,
            events: Vec::new(),
            client_bytes: 0,
            client_hellos: 0,
        }
    }

    /// Feeds the next bytes of one direction and records what they revealed.
    pub fn feed_direction(
        &mut self,
        from_client: bool,
        data: &[u8],
        log: &mut HandshakeLog,
        counts: &mut SessionCounts,
    ) {
        if data.is_empty() {
            return;
        }
        if from_client {
            self.client_bytes += data.len() as u64;
            self.client.feed(data, &mut self.events);
        } else {
            self.server.feed(data, &mut self.events);
        }
        self.record_events(log, counts);
    }

    fn record_events(&mut self, log: &mut HandshakeLog, counts: &mut SessionCounts) {
        for event in self.events.drain(..) {
            match event {
                TlsEvent::ClientHello(ch) => {
                    self.client_hellos += 1;
                    log.client_hello(&ch, self.transport, self.fingerprints);
                }
                TlsEvent::ServerHello(sh) => {
                    log.server_hello(&sh, self.transport, self.fingerprints)
                }
                TlsEvent::Certificates(certs) => log.certificates(certs),
                // A hello cut off by the end of the flow is incomplete, not malformed.
                TlsEvent::Malformed {
                    hello,
                    reason: MalformedReason::TruncatedHello,
                } => {
                    counts
                        .incomplete
                        .bump(MalformedReason::TruncatedHello.as_str());
                    if hello == HelloKind::Client {
                        self.client_hellos += 1;
                    }
                }
                TlsEvent::Malformed { hello, reason } => {
                    counts.malformed.bump(reason.as_str());
                    if hello == HelloKind::Client {
                        self.client_hellos += 1;
                        log.malformed_client_hello(reason.as_str());
                    }
                }
                TlsEvent::NotTls => counts.drops.bump("tls_not_tls"),
            }
        }
    }

    /// Both directions are done.
    pub fn both_finished(&self) -> bool {
        self.client.is_finished() && self.server.is_finished()
    }

    /// The flow ended before the handshake did: reports hellos cut off mid-message and
    /// a ClientHello left without an answer.
    pub fn end_of_streams(&mut self, log: &mut HandshakeLog, counts: &mut SessionCounts) {
        self.client.end_of_stream(&mut self.events);
        self.server.end_of_stream(&mut self.events);
        self.record_events(log, counts);
        if self.client_bytes > 0 && self.client_hellos == 0 {
            counts.incomplete.bump("client_hello_incomplete");
        }
        if log.awaiting_server() {
            counts.incomplete.bump("no_server_hello");
        }
    }
}

impl HandshakeSession for TlsSession {
    fn feed(
        &mut self,
        from_client: bool,
        data: &[u8],
        log: &mut HandshakeLog,
        counts: &mut SessionCounts,
    ) {
        self.feed_direction(from_client, data, log, counts);
    }

    fn is_finished(&self) -> bool {
        self.both_finished()
    }

    fn wants(&self, from_client: bool) -> bool {
        if from_client {
            !self.client.is_finished()
        } else {
            !self.server.is_finished()
        }
    }

    fn abort(&mut self, log: &mut HandshakeLog, counts: &mut SessionCounts) {
        self.end_of_streams(log, counts);
    }
}
