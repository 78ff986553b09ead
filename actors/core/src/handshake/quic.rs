//! QUIC: decrypts Initial packets (RFC 9001 §5) and feeds the reassembled CRYPTO
//! streams to a [`TlsSession`] reading bare handshake messages.

use super::tls::TlsSession;
use super::{
    Feed, FingerprintSet, HandshakeLog, HandshakeProtocol, HandshakeSession, Probe, SessionCounts,
};
use crate::fingerprint::ja4::JaTransport;
use crate::fingerprint::tls::Framing;
use crate::quic::{probe_quic_initial, QuicInitialTracker};
use flowmesh_schemas::L7;

/// QUIC v1/v2 on any UDP port, recognised by a protected Initial packet.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuicProtocol;

impl HandshakeProtocol for QuicProtocol {
    fn name(&self) -> &'static str {
        "quic"
    }

    fn l7(&self) -> L7 {
        L7::Quic
    }

    fn feed(&self) -> Feed {
        Feed::Datagram
    }

    fn probe(&self, first: &[u8]) -> Probe {
        if probe_quic_initial(first) {
            // Only clients send Initial packets first; a server Initial seen first
            // (midstream pickup) is corrected when its ServerHello is parsed... but the
            // orientation of a UDP flow is its first sender, which is right in practice.
            Probe::Match {
                sender_is_client: None,
            }
        } else {
            Probe::No
        }
    }

    fn start(&self, fingerprints: FingerprintSet) -> Box<dyn HandshakeSession> {
        Box::new(QuicSession {
            tracker: QuicInitialTracker::new(),
            tls: TlsSession::new(Framing::HandshakeMessages, JaTransport::Quic, fingerprints),
            fed: [0; 2],
        })
    }
}

/// One QUIC connection's Initial-level handshake.
#[derive(Debug)]
struct QuicSession {
    tracker: QuicInitialTracker,
    tls: TlsSession,
    /// CRYPTO bytes already handed to TLS, per direction (0 = client).
    fed: [usize; 2],
}

impl HandshakeSession for QuicSession {
    fn feed(
        &mut self,
        from_client: bool,
        data: &[u8],
        log: &mut HandshakeLog,
        counts: &mut SessionCounts,
    ) {
        let outcome = self.tracker.on_datagram(from_client, data);
        for (reason, n) in outcome.drops.iter() {
            counts.drops.add(reason.as_str(), n);
        }
        let d = usize::from(!from_client);
        let stream = self.tracker.crypto_stream(from_client);
        if stream.len() > self.fed[d] {
            let new = &stream[self.fed[d]..];
            self.fed[d] = stream.len();
            self.tls.feed_direction(from_client, new, log, counts);
        }
    }

    fn is_finished(&self) -> bool {
        self.tls.both_finished()
    }

    /// Datagrams are not buffered: every one may carry a retransmitted Initial.
    fn wants(&self, _from_client: bool) -> bool {
        true
    }

    fn abort(&mut self, log: &mut HandshakeLog, counts: &mut SessionCounts) {
        self.tls.end_of_streams(log, counts);
    }
}
