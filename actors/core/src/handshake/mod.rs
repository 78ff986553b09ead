//! Handshake parsers behind one small trait, and the registry that picks one per flow.
//!
//! A protocol says whether the first bytes of a flow are its own ([`HandshakeProtocol::probe`])
//! and starts a per-flow [`HandshakeSession`] that is fed bytes and records what it
//! learns in a [`HandshakeLog`]. Adding a protocol (say HASSH for SSH) is one new file
//! implementing the two traits plus one line in [`Registry::with_defaults`].

mod log;
mod quic;
mod tls;
mod work;
mod worker;

pub use log::HandshakeLog;
pub use quic::QuicProtocol;
pub use tls::TlsProtocol;
pub use work::{
    FlowIdent, HandshakeBatch, HandshakeEvent, HandshakeOp, HelloSeen, InspectionUpdate, SessionId,
};
pub use worker::{HandshakeWorker, WorkerConfig, WorkerOutput, WorkerStats};

use crate::stats::ReasonCounts;
use flowmesh_schemas::L7;
use std::fmt;

/// Which fingerprints to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FingerprintSet {
    /// JA3 (ClientHello).
    pub ja3: bool,
    /// JA3S (ServerHello).
    pub ja3s: bool,
    /// JA4 (ClientHello).
    pub ja4: bool,
    /// JA4S (ServerHello). Off by default: JA4S is under the FoxIO licence.
    pub ja4s: bool,
}

impl Default for FingerprintSet {
    fn default() -> Self {
        FingerprintSet {
            ja3: true,
            ja3s: true,
            ja4: true,
            ja4s: false,
        }
    }
}

impl std::str::FromStr for FingerprintSet {
    type Err = String;

    /// Parses a comma-separated list such as `ja3,ja3s,ja4,ja4s`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut set = FingerprintSet {
            ja3: false,
            ja3s: false,
            ja4: false,
            ja4s: false,
        };
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name.to_ascii_lowercase().as_str() {
                "ja3" => set.ja3 = true,
                "ja3s" => set.ja3s = true,
                "ja4" => set.ja4 = true,
                "ja4s" => set.ja4s = true,
                other => {
                    return Err(format!(
                        "unknown fingerprint {other:?} (known: ja3, ja3s, ja4, ja4s)"
                    ))
                }
            }
        }
        Ok(set)
    }
}

/// A protocol's verdict on the first payload of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Mine. `sender_is_client` tells which role the sender of these bytes has, when the
    /// bytes reveal it (a ClientHello is sent by the client).
    Match {
        /// The sender is the client, if known.
        sender_is_client: Option<bool>,
    },
    /// Not mine.
    No,
    /// Cannot tell yet.
    NeedMore,
}

/// Which transport a protocol's sessions are fed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Reassembled TCP stream bytes, in order, each byte once.
    Stream,
    /// Whole UDP datagrams, in arrival order.
    Datagram,
}

/// Counters a session updates: malformed and incomplete handshakes by reason.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SessionCounts {
    /// Hellos that were malformed, by reason.
    pub malformed: ReasonCounts,
    /// Handshakes that ended incomplete, by reason.
    pub incomplete: ReasonCounts,
    /// Datagrams or records that could not be used, by reason (e.g. QUIC decryption failure).
    pub drops: ReasonCounts,
}

impl SessionCounts {
    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &SessionCounts) {
        self.malformed.merge(&other.malformed);
        self.incomplete.merge(&other.incomplete);
        self.drops.merge(&other.drops);
    }
}

/// A handshake protocol: recognises flows and starts sessions.
pub trait HandshakeProtocol: Send + Sync + fmt::Debug {
    /// Short name, for logs and counters.
    fn name(&self) -> &'static str;
    /// The application protocol recorded on a flow it parses.
    fn l7(&self) -> L7;
    /// How its sessions are fed.
    fn feed(&self) -> Feed;
    /// Whether the first bytes of a flow (stream prefix or first datagram) are its own.
    fn probe(&self, first: &[u8]) -> Probe;
    /// A session for one flow.
    fn start(&self, fingerprints: FingerprintSet) -> Box<dyn HandshakeSession>;
}

/// Per-flow parser state of one protocol.
pub trait HandshakeSession: Send + fmt::Debug {
    /// Feeds bytes sent by the client (`from_client`) or the server: the next stream bytes
    /// (following those fed before) or one datagram.
    fn feed(
        &mut self,
        from_client: bool,
        data: &[u8],
        log: &mut HandshakeLog,
        counts: &mut SessionCounts,
    );
    /// Nothing more of interest can come: the caller stops feeding and frees buffers.
    fn is_finished(&self) -> bool;
    /// Whether bytes from this direction can still matter; when not, the caller stops
    /// reassembling that direction.
    fn wants(&self, from_client: bool) -> bool;
    /// The flow ended (or inspection stopped) before the session finished: count what
    /// was left incomplete.
    fn abort(&mut self, log: &mut HandshakeLog, counts: &mut SessionCounts);
}

/// The protocols probed on new flows, cheapest first.
#[derive(Debug)]
pub struct Registry {
    protocols: Vec<Box<dyn HandshakeProtocol>>,
}

impl Registry {
    /// TLS over TCP and QUIC over UDP.
    pub fn with_defaults() -> Self {
        Registry {
            protocols: vec![Box::new(TlsProtocol), Box::new(QuicProtocol)],
        }
    }

    /// Probes the protocols fed by `feed` on `first`. Returns the first match with its
    /// index (see [`Registry::get`]), or `NeedMore` while any protocol cannot tell yet, or
    /// `No`.
    pub fn probe(&self, feed: Feed, first: &[u8]) -> (Probe, Option<(u8, &dyn HandshakeProtocol)>) {
        let mut verdict = Probe::No;
        for (i, p) in self.protocols.iter().enumerate() {
            if p.feed() != feed {
                continue;
            }
            match p.probe(first) {
                m @ Probe::Match { .. } => {
                    // The registry holds a handful of protocols; an index past u8 is never built.
                    let index = u8::try_from(i).unwrap_or(u8::MAX);
                    return (m, Some((index, p.as_ref())));
                }
                Probe::NeedMore => verdict = Probe::NeedMore,
                Probe::No => {}
            }
        }
        (verdict, None)
    }

    /// The protocol at `index`, as [`Registry::probe`] reported it.
    pub fn get(&self, index: u8) -> Option<&dyn HandshakeProtocol> {
        self.protocols.get(usize::from(index)).map(|p| p.as_ref())
    }

    /// Whether any protocol is fed by `feed` (flows of other transports are only counted).
    pub fn wants(&self, feed: Feed) -> bool {
        self.protocols.iter().any(|p| p.feed() == feed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_list_parses() {
        let all: FingerprintSet = "ja3,ja3s,ja4,ja4s".parse().expect("valid");
        assert!(all.ja3 && all.ja3s && all.ja4 && all.ja4s);
        let some: FingerprintSet = "JA4".parse().expect("valid");
        assert!(some.ja4 && !some.ja3 && !some.ja4s);
        assert!("ja5".parse::<FingerprintSet>().is_err());
        assert!(!FingerprintSet::default().ja4s);
    }
}
