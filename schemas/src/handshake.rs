//! What a TLS or QUIC handshake tells us: one [`Handshake`] per ClientHello, paired with
//! the ServerHello (or HelloRetryRequest) that answered it.

use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// One ClientHello and the server's answer to it. Fingerprint fields are `None` when the
/// corresponding hello was not seen, was incomplete or was malformed — never partial.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Handshake {
    /// When the entry was learnt: the timestamp of the packet that completed its ClientHello
    /// (for an entry with no ClientHello, its ServerHello).
    pub ts: Option<Timestamp>,
    /// server_name from the ClientHello.
    pub sni: Option<String>,
    /// ALPN protocols offered by the client, in order.
    pub alpn: Vec<String>,
    /// ALPN protocol selected in a cleartext ServerHello (TLS ≤ 1.2).
    pub alpn_selected: Option<String>,
    /// Negotiated version, like "TLS 1.3"; `None` for a HelloRetryRequest or without a ServerHello.
    pub tls_version: Option<String>,
    /// The server's answer to this ClientHello was a HelloRetryRequest.
    pub server_hello_is_hrr: bool,
    /// JA3 string (GREASE removed).
    pub ja3: Option<String>,
    /// MD5 of the JA3 string, lowercase hex.
    pub ja3_hash: Option<String>,
    /// JA3S string.
    pub ja3s: Option<String>,
    /// MD5 of the JA3S string, lowercase hex.
    pub ja3s_hash: Option<String>,
    /// JA4 (`t…` over TCP, `q…` over QUIC).
    pub ja4: Option<String>,
    /// JA4S (only when enabled: FoxIO licence).
    pub ja4s: Option<String>,
    /// Cipher suites offered by the client, wire order, GREASE included.
    pub cipher_suites: Vec<u16>,
    /// Extension types of the ClientHello, wire order, GREASE included.
    pub extensions: Vec<u16>,
    /// supported_groups of the ClientHello, GREASE included.
    pub supported_groups: Vec<u16>,
    /// ec_point_formats of the ClientHello.
    pub ec_point_formats: Vec<u8>,
    /// signature_algorithms of the ClientHello, wire order.
    pub signature_algorithms: Vec<u16>,
    /// supported_versions offered by the client.
    pub supported_versions: Vec<u16>,
    /// Cipher suite chosen by the server.
    pub server_cipher_suite: Option<u16>,
    /// Extension types of the ServerHello, wire order.
    pub server_extensions: Vec<u16>,
    /// Server certificate chain (TLS ≤ 1.2 only: TLS 1.3 encrypts it), leaf first.
    pub certificates: Vec<CertificateInfo>,
    /// Why no client fingerprint was produced for this ClientHello, when it was malformed
    /// or incomplete (e.g. `extensions_length`, `truncated`).
    pub client_hello_error: Option<String>,
}

/// A certificate from the server's chain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CertificateInfo {
    /// Subject distinguished name, RFC 4514 string form.
    pub subject: String,
    /// Issuer distinguished name, RFC 4514 string form.
    pub issuer: String,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// SHA-256 of the DER encoding, lowercase hex.
    pub sha256: String,
}
