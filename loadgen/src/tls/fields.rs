//! The fields of a ClientHello/ServerHello that fingerprints are computed from,
//! recorded by the builders exactly as they were written on the wire.

use serde::Serialize;

/// What a ClientHello carried (values as sent, GREASE included, in wire order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientHelloFields {
    /// `legacy_version` of the ClientHello body.
    pub legacy_version: u16,
    /// Cipher suites.
    pub ciphers: Vec<u16>,
    /// Extension types.
    pub extensions: Vec<u16>,
    /// supported_groups (10) list.
    pub groups: Vec<u16>,
    /// ec_point_formats (11) list.
    pub point_formats: Vec<u8>,
    /// signature_algorithms (13) list.
    pub sig_algs: Vec<u16>,
    /// supported_versions (43) list.
    pub versions: Vec<u16>,
    /// server_name host, if sent.
    pub sni: Option<String>,
    /// ALPN protocols offered, in order.
    pub alpn: Vec<String>,
}

/// What a ServerHello carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerHelloFields {
    /// `legacy_version` of the ServerHello body.
    pub legacy_version: u16,
    /// Selected cipher suite.
    pub cipher: u16,
    /// Extension types, in wire order.
    pub extensions: Vec<u16>,
    /// supported_versions (43) selected version, if the extension was sent.
    pub selected_version: Option<u16>,
    /// ALPN protocol selected, if sent in the ServerHello (TLS 1.2).
    pub alpn: Option<String>,
}

/// True for the 16 GREASE values of RFC 8701 (0x0a0a, 0x1a1a, ... 0xfafa).
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// Human name of a TLS version as the daemon's records and the corpus print it.
pub fn version_name(v: u16) -> &'static str {
    match v {
        0x0304 => "TLS 1.3",
        0x0303 => "TLS 1.2",
        0x0302 => "TLS 1.1",
        0x0301 => "TLS 1.0",
        0x0300 => "SSL 3.0",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease_values() {
        let all: Vec<u16> = (0..16u16)
            .map(|i| (i << 12) | 0x0a00 | (i << 4) | 0x0a)
            .collect();
        assert!(all.iter().all(|&v| is_grease(v)));
        assert_eq!((0..=u16::MAX).filter(|&v| is_grease(v)).count(), 16);
        assert!(!is_grease(0x0a0b));
    }
}
