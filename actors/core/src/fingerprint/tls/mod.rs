//! TLS handshake parsing for fingerprinting: the record layer (RFC 8446 §5.1,
//! RFC 5246 §6.2), handshake-message reassembly (RFC 8446 §4), strict ClientHello /
//! ServerHello decoding (RFC 8446 §4.1.2–4.1.3, RFC 5246 §7.4.1) and the server
//! certificate chain of TLS ≤ 1.2 (RFC 5246 §7.4.2).
//!
//! What this module owns:
//! - [`TlsDirectionParser`]: one per direction of a flow; fed reassembled bytes in order,
//!   it emits [`TlsEvent`]s and says when nothing more of interest can come.
//! - [`ClientHello`] / [`ServerHello`]: the fields the JA3/JA4 fingerprints and the flow
//!   record need, with every code point kept as a number (unknown ones included).
//! - [`probe_tls`]: a cheap content check so TLS is recognised on any port.
//!
//! Invariants:
//! - Never panics on any input; every read is bounds-checked, no arithmetic can overflow.
//! - "Need more bytes" (buffered silently) is distinct from "malformed" (a
//!   [`TlsEvent::Malformed`] event, after which the direction is finished).
//! - Validation is strict: every length field must be consistent with its container and
//!   the extension block must end exactly at the end of the hello. A hello failing any
//!   check yields `Malformed` and no hello event, so no partial fingerprint can exist.
//! - Memory is bounded: a handshake message is capped at [`MAX_HANDSHAKE_LEN`], a record
//!   at [`MAX_RECORD_LEN`], and a direction at [`MAX_DIRECTION_BYTES`] in total.
//!
//! SSLv2-compatible ClientHellos (RFC 5246 Appendix E.2, first byte with the high bit
//! set) are not TLS records: [`probe_tls`] answers [`Probe::No`] and the parser emits
//! [`TlsEvent::NotTls`].

mod certificate;
mod hello;
mod parser;
mod reader;

pub use certificate::parse_certificate_chain;
pub use hello::{parse_client_hello, parse_server_hello, HELLO_RETRY_REQUEST_RANDOM};
pub use parser::{probe_tls, Framing, Probe, TlsDirectionParser};

use flowmesh_schemas::CertificateInfo;

/// Largest handshake message this parser buffers (64 KiB). Real ClientHellos are < 4 KiB
/// (a post-quantum Chromium hello is ~1.9 KB); larger messages are reported as
/// [`MalformedReason::RecordTooLarge`].
pub const MAX_HANDSHAKE_LEN: usize = 64 * 1024;

/// Largest record fragment accepted: 2^14 + 2048 bytes, the TLSCiphertext bound of
/// RFC 5246 §6.2.3 (RFC 8446 §5.2 is tighter, 2^14 + 256).
pub const MAX_RECORD_LEN: usize = (1 << 14) + 2048;

/// After this many bytes in one direction the parser finishes: a handshake that has not
/// yet produced everything of interest by then is not worth copying further.
pub const MAX_DIRECTION_BYTES: usize = 256 * 1024;

/// A ClientHello, strictly validated (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// `legacy_version` / `client_version` of the hello (0x0303 for TLS 1.2 and 1.3).
    pub legacy_version: u16,
    /// Offered cipher suites, wire order, GREASE (RFC 8701) included.
    pub cipher_suites: Vec<u16>,
    /// Extension types, wire order, GREASE included.
    pub extensions: Vec<u16>,
    /// First `host_name` of server_name (RFC 6066 §3); non-UTF-8 is converted lossily.
    pub sni: Option<String>,
    /// ALPN protocol names offered (RFC 7301 §3.1), in order; non-UTF-8 → lossy.
    pub alpn: Vec<String>,
    /// ALPN protocol names offered, raw bytes (JA4 needs the bytes, not lossy text).
    pub alpn_raw: Vec<Vec<u8>>,
    /// supported_groups (RFC 8446 §4.2.7), wire order, GREASE included.
    pub supported_groups: Vec<u16>,
    /// ec_point_formats (RFC 8422 §5.1.2).
    pub ec_point_formats: Vec<u8>,
    /// signature_algorithms (RFC 8446 §4.2.3), wire order, GREASE included.
    pub signature_algorithms: Vec<u16>,
    /// supported_versions (RFC 8446 §4.2.1), wire order, GREASE included.
    pub supported_versions: Vec<u16>,
}

/// A ServerHello or HelloRetryRequest, strictly validated (RFC 8446 §4.1.3–4.1.4,
/// RFC 5246 §7.4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerHello {
    /// `legacy_version` / `server_version` of the hello.
    pub legacy_version: u16,
    /// Selected cipher suite.
    pub cipher_suite: u16,
    /// Extension types, wire order.
    pub extensions: Vec<u16>,
    /// `selected_version` of the supported_versions extension (RFC 8446 §4.2.1).
    pub selected_version: Option<u16>,
    /// Selected ALPN protocol (RFC 7301 §3.1); non-UTF-8 → lossy.
    pub alpn: Option<String>,
    /// Selected ALPN protocol, raw bytes.
    pub alpn_raw: Option<Vec<u8>>,
    /// The random equals SHA-256("HelloRetryRequest") (RFC 8446 §4.1.3).
    pub is_hello_retry_request: bool,
}

impl ServerHello {
    /// The negotiated version: `selected_version` when present (TLS 1.3, RFC 8446
    /// §4.2.1), else `legacy_version`.
    pub fn negotiated_version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }
}

/// Display name of a protocol version code point: 0x0300 "SSL 3.0", 0x0301 "TLS 1.0",
/// 0x0302 "TLS 1.1", 0x0303 "TLS 1.2", 0x0304 "TLS 1.3" (and 0x0002 "SSL 2.0",
/// DTLS 0xfeff/0xfefd/0xfefc); `None` for anything else.
pub fn version_name(v: u16) -> Option<&'static str> {
    match v {
        0x0002 => Some("SSL 2.0"),
        0x0300 => Some("SSL 3.0"),
        0x0301 => Some("TLS 1.0"),
        0x0302 => Some("TLS 1.1"),
        0x0303 => Some("TLS 1.2"),
        0x0304 => Some("TLS 1.3"),
        0xfeff => Some("DTLS 1.0"),
        0xfefd => Some("DTLS 1.2"),
        0xfefc => Some("DTLS 1.3"),
        _ => None,
    }
}

/// True for the GREASE code points of RFC 8701 §2: 0x0A0A, 0x1A1A, … 0xFAFA (both bytes
/// equal, low nibble 0xA). Used for cipher suites, extensions, groups, versions and
/// signature algorithms.
pub fn is_grease(v: u16) -> bool {
    let [hi, lo] = v.to_be_bytes();
    hi == lo && lo & 0x0f == 0x0a
}

/// Which hello a [`TlsEvent::Malformed`] concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HelloKind {
    /// A ClientHello was malformed (no client fingerprint for it).
    Client,
    /// A ServerHello / HelloRetryRequest was malformed.
    Server,
    /// Something else (record layer, certificate chain, other handshake message).
    Other,
}

/// Why bytes were rejected. Each variant maps to a stable snake_case name
/// ([`MalformedReason::as_str`]) suitable for counters and the flow record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum MalformedReason {
    /// A record fragment longer than [`MAX_RECORD_LEN`], or a handshake message longer
    /// than [`MAX_HANDSHAKE_LEN`].
    #[error("record or handshake message too large")]
    RecordTooLarge,
    /// A record with a major version other than 3 (RFC 8446 §5.1 legacy_record_version).
    #[error("bad record version")]
    RecordVersion,
    /// A record content type outside 20..=24 (RFC 8446 §5.1, RFC 6520).
    #[error("unknown record content type")]
    RecordType,
    /// Another record type between the fragments of one handshake message
    /// (RFC 8446 §5.1: handshake messages MUST NOT be interleaved with other records).
    #[error("record interleaved inside a fragmented handshake message")]
    InterleavedRecord,
    /// The stream ended (see [`TlsDirectionParser::end_of_stream`]) inside a hello.
    #[error("hello truncated")]
    TruncatedHello,
    /// legacy_session_id longer than 32 bytes or past the end of the hello.
    #[error("bad session id length")]
    SessionIdLength,
    /// cipher_suites length odd, zero, or past the end of the hello.
    #[error("bad cipher suites length")]
    CipherSuitesLength,
    /// compression_methods length zero or past the end of the hello (or a missing
    /// ServerHello compression byte).
    #[error("bad compression methods length")]
    CompressionLength,
    /// The extensions block length does not end exactly at the end of the hello.
    #[error("bad extensions length")]
    ExtensionsLength,
    /// One extension's length runs past the extensions block.
    #[error("bad extension length")]
    ExtensionLength,
    /// server_name inner lengths inconsistent (RFC 6066 §3).
    #[error("bad server_name length")]
    ServerNameLength,
    /// ALPN inner lengths inconsistent (RFC 7301 §3.1).
    #[error("bad ALPN length")]
    AlpnLength,
    /// supported_groups inner length inconsistent or odd (RFC 8446 §4.2.7).
    #[error("bad supported_groups length")]
    SupportedGroupsLength,
    /// ec_point_formats inner length inconsistent (RFC 8422 §5.1.2).
    #[error("bad ec_point_formats length")]
    EcPointFormatsLength,
    /// signature_algorithms inner length inconsistent or odd (RFC 8446 §4.2.3).
    #[error("bad signature_algorithms length")]
    SignatureAlgorithmsLength,
    /// supported_versions inner length inconsistent or odd (RFC 8446 §4.2.1).
    #[error("bad supported_versions length")]
    SupportedVersionsLength,
    /// Certificate message lengths inconsistent (RFC 5246 §7.4.2).
    #[error("bad certificate list length")]
    CertificateLength,
    /// A second HelloRetryRequest, or a third hello in one direction (RFC 8446 §4.1.4).
    #[error("unexpected hello")]
    UnexpectedHello,
}

impl MalformedReason {
    /// Stable snake_case name, e.g. `"extensions_length"`, `"record_too_large"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RecordTooLarge => "record_too_large",
            Self::RecordVersion => "record_version",
            Self::RecordType => "record_type",
            Self::InterleavedRecord => "interleaved_record",
            Self::TruncatedHello => "truncated_hello",
            Self::SessionIdLength => "session_id_length",
            Self::CipherSuitesLength => "cipher_suites_length",
            Self::CompressionLength => "compression_methods_length",
            Self::ExtensionsLength => "extensions_length",
            Self::ExtensionLength => "extension_length",
            Self::ServerNameLength => "server_name_length",
            Self::AlpnLength => "alpn_length",
            Self::SupportedGroupsLength => "supported_groups_length",
            Self::EcPointFormatsLength => "ec_point_formats_length",
            Self::SignatureAlgorithmsLength => "signature_algorithms_length",
            Self::SupportedVersionsLength => "supported_versions_length",
            Self::CertificateLength => "certificate_length",
            Self::UnexpectedHello => "unexpected_hello",
        }
    }
}

/// What a [`TlsDirectionParser`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsEvent {
    /// A complete, valid ClientHello (possibly the second one after a HelloRetryRequest).
    ClientHello(ClientHello),
    /// A complete, valid ServerHello or HelloRetryRequest.
    ServerHello(ServerHello),
    /// The server certificate chain (TLS ≤ 1.2), leaf first; one entry per certificate,
    /// with empty text fields when the DER does not parse.
    Certificates(Vec<CertificateInfo>),
    /// Malformed input; the direction is finished afterwards.
    Malformed {
        /// Which hello was lost.
        hello: HelloKind,
        /// What was wrong.
        reason: MalformedReason,
    },
    /// The direction does not start with a TLS handshake; it is finished afterwards.
    NotTls,
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
