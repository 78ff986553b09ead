//! Pairs hellos into [`Handshake`] entries: one per ClientHello, answered by the next
//! ServerHello (or HelloRetryRequest) in order.
//!
//! A HelloRetryRequest flow (RFC 8446 §4.1.4) has two ClientHellos: the HRR answers the
//! first, the real ServerHello the second. A ServerHello with no ClientHello waiting
//! (midstream pickup, or a ClientHello the capture lost) gets an entry of its own with
//! no client fields, so its fingerprint is not lost. A malformed ClientHello gets an
//! entry with no client fingerprint and the reason, so the ServerHello still pairs.

use super::FingerprintSet;
use crate::fingerprint::ja3::{ja3, ja3s, md5_hex};
use crate::fingerprint::ja4::{ja4, ja4s, JaTransport};
use crate::fingerprint::tls::{version_name, ClientHello, ServerHello};
use flowmesh_schemas::{CertificateInfo, Handshake, Timestamp};

/// The handshakes of one flow, in ClientHello order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HandshakeLog {
    entries: Vec<Handshake>,
    /// Index of the first entry still waiting for the server's answer.
    next_answer: usize,
    /// Entry the last ServerHello answered (certificates attach to it).
    last_answered: Option<usize>,
    /// ClientHellos parsed (malformed ones excluded).
    parsed_client_hellos: usize,
    /// Timestamp of the packet being parsed, given to the entries it creates.
    now: Option<Timestamp>,
}

impl HandshakeLog {
    /// The entries so far.
    pub fn entries(&self) -> &[Handshake] {
        &self.entries
    }

    /// Sets the timestamp of the packet whose bytes are parsed next.
    pub fn at(&mut self, ts: Timestamp) {
        self.now = Some(ts);
    }

    /// Takes the entries, leaving the log empty.
    pub fn take(&mut self) -> Vec<Handshake> {
        self.next_answer = 0;
        self.last_answered = None;
        self.parsed_client_hellos = 0;
        std::mem::take(&mut self.entries)
    }

    /// Records a ClientHello and its fingerprints.
    pub fn client_hello(&mut self, ch: &ClientHello, transport: JaTransport, fps: FingerprintSet) {
        self.parsed_client_hellos += 1;
        let (ja3_str, ja3_hash) = if fps.ja3 {
            let s = ja3(ch);
            let h = md5_hex(&s);
            (Some(s), Some(h))
        } else {
            (None, None)
        };
        self.entries.push(Handshake {
            ts: self.now,
            sni: ch.sni.clone(),
            alpn: ch.alpn.clone(),
            ja3: ja3_str,
            ja3_hash,
            ja4: fps.ja4.then(|| ja4(ch, transport)),
            cipher_suites: ch.cipher_suites.clone(),
            extensions: ch.extensions.clone(),
            supported_groups: ch.supported_groups.clone(),
            ec_point_formats: ch.ec_point_formats.clone(),
            signature_algorithms: ch.signature_algorithms.clone(),
            supported_versions: ch.supported_versions.clone(),
            ..Handshake::default()
        });
    }

    /// Records a ClientHello that could not be parsed: no client fingerprint, the reason kept.
    pub fn malformed_client_hello(&mut self, reason: &str) {
        self.entries.push(Handshake {
            ts: self.now,
            client_hello_error: Some(reason.to_owned()),
            ..Handshake::default()
        });
    }

    /// Records a ServerHello (or HelloRetryRequest) as the answer to the oldest
    /// unanswered ClientHello.
    pub fn server_hello(&mut self, sh: &ServerHello, transport: JaTransport, fps: FingerprintSet) {
        if self.next_answer >= self.entries.len() {
            self.entries.push(Handshake {
                ts: self.now,
                ..Handshake::default()
            });
        }
        let i = self.next_answer;
        self.next_answer += 1;
        self.last_answered = Some(i);
        let h = &mut self.entries[i];
        h.server_hello_is_hrr = sh.is_hello_retry_request;
        h.tls_version = if sh.is_hello_retry_request {
            None
        } else {
            version_name(sh.negotiated_version()).map(str::to_owned)
        };
        h.alpn_selected = sh.alpn.clone();
        if fps.ja3s {
            let s = ja3s(sh);
            h.ja3s_hash = Some(md5_hex(&s));
            h.ja3s = Some(s);
        }
        h.ja4s = fps.ja4s.then(|| ja4s(sh, transport));
        h.server_cipher_suite = Some(sh.cipher_suite);
        h.server_extensions = sh.extensions.clone();
    }

    /// Attaches the server's certificate chain to the handshake it belongs to.
    pub fn certificates(&mut self, certs: Vec<CertificateInfo>) {
        if let Some(h) = self.last_answered.and_then(|i| self.entries.get_mut(i)) {
            h.certificates = certs;
        }
    }

    /// Some ClientHello is still waiting for its answer.
    pub fn awaiting_server(&self) -> bool {
        self.next_answer < self.entries.len()
    }

    /// Entries answered by the server so far (they come first, in order).
    pub fn answered(&self) -> usize {
        self.next_answer.min(self.entries.len())
    }

    /// Number of ClientHellos fingerprinted (malformed ones excluded).
    pub fn client_hellos(&self) -> usize {
        self.parsed_client_hellos
    }
}
