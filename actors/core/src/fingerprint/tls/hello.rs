//! Strict decoding of ClientHello and ServerHello bodies (the handshake message body,
//! without the 4-byte handshake header).
//!
//! Every length field is checked against its container (RFC 8446 §3.4 vectors):
//! session id (≤ 32 bytes), cipher suites (non-empty, even), compression methods
//! (non-empty), the extension block (must end exactly at the end of the hello), each
//! extension, and the inner lengths of server_name (RFC 6066 §3), ALPN (RFC 7301 §3.1),
//! supported_groups (RFC 8446 §4.2.7), ec_point_formats (RFC 8422 §5.1.2),
//! signature_algorithms (RFC 8446 §4.2.3) and supported_versions (RFC 8446 §4.2.1).
//! The first failing check decides the [`MalformedReason`]; nothing partial is returned.

use super::reader::{u16_list, Reader};
use super::{ClientHello, MalformedReason, ServerHello};

/// SHA-256("HelloRetryRequest"): the fixed `random` of a HelloRetryRequest
/// (RFC 8446 §4.1.3).
pub const HELLO_RETRY_REQUEST_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Extension code points this module decodes (IANA TLS ExtensionType registry).
const EXT_SERVER_NAME: u16 = 0x0000;
const EXT_SUPPORTED_GROUPS: u16 = 0x000a;
const EXT_EC_POINT_FORMATS: u16 = 0x000b;
const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
const EXT_ALPN: u16 = 0x0010;
const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;

/// Reads the common hello prefix: version, 32-byte random and legacy_session_id
/// (RFC 8446 §4.1.2: `opaque legacy_session_id<0..32>`). Returns version and random.
fn hello_prefix<'a>(r: &mut Reader<'a>) -> Result<(u16, &'a [u8]), MalformedReason> {
    let version = r.u16().ok_or(MalformedReason::TruncatedHello)?;
    let random = r.take(32).ok_or(MalformedReason::TruncatedHello)?;
    let sid = r.vec8().ok_or(MalformedReason::SessionIdLength)?;
    if sid.len() > 32 {
        return Err(MalformedReason::SessionIdLength);
    }
    Ok((version, random))
}

/// Validates the optional extension block that ends a hello and returns it with the
/// number of extensions in it (so the caller can size its lists exactly).
///
/// RFC 5246 §7.4.1.2: the block may be absent (nothing follows the compression
/// methods); when present its 2-byte length must cover exactly the rest of the hello,
/// and each extension's 2-byte length must stay inside the block. The whole block is
/// checked before any extension is decoded, so a framing error wins over an error
/// inside an extension. Iterate the validated block with [`Extensions`].
fn extension_block<'a>(r: &mut Reader<'a>) -> Result<(&'a [u8], usize), MalformedReason> {
    if r.is_empty() {
        return Ok((&[], 0));
    }
    let block = r.vec16().ok_or(MalformedReason::ExtensionsLength)?;
    if !r.is_empty() {
        return Err(MalformedReason::ExtensionsLength);
    }
    let mut b = Reader::new(block);
    let mut n = 0;
    while !b.is_empty() {
        b.u16().ok_or(MalformedReason::ExtensionLength)?;
        b.vec16().ok_or(MalformedReason::ExtensionLength)?;
        n += 1;
    }
    Ok((block, n))
}

/// `(type, data)` pairs of an extension block validated by [`extension_block`]
/// (on a malformed block it stops at the first bad extension).
struct Extensions<'a>(Reader<'a>);

impl<'a> Iterator for Extensions<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let ty = self.0.u16()?;
        let data = self.0.vec16()?;
        Some((ty, data))
    }
}

/// Reads a vector with a 2-byte length that must fill `data` exactly.
fn exact_vec16(data: &[u8], err: MalformedReason) -> Result<&[u8], MalformedReason> {
    let mut r = Reader::new(data);
    let inner = r.vec16().ok_or(err)?;
    if r.is_empty() {
        Ok(inner)
    } else {
        Err(err)
    }
}

/// Reads a vector with a 1-byte length that must fill `data` exactly.
fn exact_vec8(data: &[u8], err: MalformedReason) -> Result<&[u8], MalformedReason> {
    let mut r = Reader::new(data);
    let inner = r.vec8().ok_or(err)?;
    if r.is_empty() {
        Ok(inner)
    } else {
        Err(err)
    }
}

/// A list of 2-byte code points behind a 2-byte length (groups, signature algorithms).
fn u16_vec16(data: &[u8], err: MalformedReason) -> Result<Vec<u16>, MalformedReason> {
    u16_list(exact_vec16(data, err)?).ok_or(err)
}

/// server_name (RFC 6066 §3): `ServerName server_name_list<1..2^16-1>`, each entry a
/// `NameType` byte and an `opaque HostName<1..2^16-1>`. Returns the first host_name.
fn server_name(data: &[u8]) -> Result<Option<String>, MalformedReason> {
    let err = MalformedReason::ServerNameLength;
    let list = exact_vec16(data, err)?;
    let mut r = Reader::new(list);
    let mut first = None;
    while !r.is_empty() {
        let name_type = r.u8().ok_or(err)?;
        let name = r.vec16().ok_or(err)?;
        // NameType 0 = host_name; other types are skipped but their lengths validated.
        if name_type == 0 && first.is_none() {
            first = Some(String::from_utf8_lossy(name).into_owned());
        }
    }
    Ok(first)
}

/// ALPN (RFC 7301 §3.1): `ProtocolName protocol_name_list<2..2^16-1>`, each an
/// `opaque ProtocolName<1..2^8-1>`. Lengths must tile the list exactly. Returns the list
/// and the number of names in it; iterate the names with [`alpn_names`].
fn alpn_list(data: &[u8]) -> Result<(&[u8], usize), MalformedReason> {
    let err = MalformedReason::AlpnLength;
    let list = exact_vec16(data, err)?;
    let mut r = Reader::new(list);
    let mut n = 0;
    while !r.is_empty() {
        r.vec8().ok_or(err)?;
        n += 1;
    }
    Ok((list, n))
}

/// The protocol names of a list validated by [`alpn_list`].
fn alpn_names(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut r = Reader::new(list);
    std::iter::from_fn(move || r.vec8())
}

/// Decodes a ClientHello body (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2).
pub fn parse_client_hello(body: &[u8]) -> Result<ClientHello, MalformedReason> {
    let mut r = Reader::new(body);
    let (legacy_version, _random) = hello_prefix(&mut r)?;
    // cipher_suites<2..2^16-2>: non-empty, whole 2-byte code points.
    let suites = r.vec16().ok_or(MalformedReason::CipherSuitesLength)?;
    if suites.is_empty() {
        return Err(MalformedReason::CipherSuitesLength);
    }
    let cipher_suites = u16_list(suites).ok_or(MalformedReason::CipherSuitesLength)?;
    // legacy_compression_methods<1..2^8-1>.
    let comp = r.vec8().ok_or(MalformedReason::CompressionLength)?;
    if comp.is_empty() {
        return Err(MalformedReason::CompressionLength);
    }
    let (block, n_ext) = extension_block(&mut r)?;
    let mut ch = ClientHello {
        legacy_version,
        cipher_suites,
        extensions: Vec::with_capacity(n_ext),
        ..ClientHello::default()
    };
    for (ty, data) in Extensions(Reader::new(block)) {
        ch.extensions.push(ty);
        match ty {
            EXT_SERVER_NAME => {
                let name = server_name(data)?;
                if ch.sni.is_none() {
                    ch.sni = name;
                }
            }
            EXT_ALPN => {
                let (list, n) = alpn_list(data)?;
                if ch.alpn_raw.is_empty() {
                    // Both lists sized exactly, one allocation per name in each.
                    ch.alpn = Vec::with_capacity(n);
                    ch.alpn_raw = Vec::with_capacity(n);
                    for p in alpn_names(list) {
                        ch.alpn.push(String::from_utf8_lossy(p).into_owned());
                        ch.alpn_raw.push(p.to_vec());
                    }
                }
            }
            EXT_SUPPORTED_GROUPS => {
                ch.supported_groups = u16_vec16(data, MalformedReason::SupportedGroupsLength)?;
            }
            EXT_EC_POINT_FORMATS => {
                ch.ec_point_formats =
                    exact_vec8(data, MalformedReason::EcPointFormatsLength)?.to_vec();
            }
            EXT_SIGNATURE_ALGORITHMS => {
                ch.signature_algorithms =
                    u16_vec16(data, MalformedReason::SignatureAlgorithmsLength)?;
            }
            EXT_SUPPORTED_VERSIONS => {
                // ClientHello form: ProtocolVersion versions<2..254> (1-byte length).
                let err = MalformedReason::SupportedVersionsLength;
                ch.supported_versions = u16_list(exact_vec8(data, err)?).ok_or(err)?;
            }
            _ => {} // unknown or uninteresting: kept as a number in `extensions`
        }
    }
    Ok(ch)
}

/// Decodes a ServerHello or HelloRetryRequest body (RFC 8446 §4.1.3, RFC 5246 §7.4.1.3).
pub fn parse_server_hello(body: &[u8]) -> Result<ServerHello, MalformedReason> {
    let mut r = Reader::new(body);
    let (legacy_version, random) = hello_prefix(&mut r)?;
    let cipher_suite = r.u16().ok_or(MalformedReason::CipherSuitesLength)?;
    let _compression = r.u8().ok_or(MalformedReason::CompressionLength)?;
    let mut sh = ServerHello {
        legacy_version,
        cipher_suite,
        is_hello_retry_request: random == HELLO_RETRY_REQUEST_RANDOM,
        ..ServerHello::default()
    };
    let (block, n_ext) = extension_block(&mut r)?;
    sh.extensions = Vec::with_capacity(n_ext);
    for (ty, data) in Extensions(Reader::new(block)) {
        sh.extensions.push(ty);
        match ty {
            EXT_SUPPORTED_VERSIONS => {
                // ServerHello form: a single ProtocolVersion selected_version.
                let mut v = Reader::new(data);
                let sel = v.u16().ok_or(MalformedReason::SupportedVersionsLength)?;
                if !v.is_empty() {
                    return Err(MalformedReason::SupportedVersionsLength);
                }
                sh.selected_version = Some(sel);
            }
            EXT_ALPN => {
                // The server's list MUST contain exactly one name (RFC 7301 §3.1).
                let (list, n) = alpn_list(data)?;
                let first = alpn_names(list).next();
                let (Some(first), 1) = (first, n) else {
                    return Err(MalformedReason::AlpnLength);
                };
                sh.alpn = Some(String::from_utf8_lossy(first).into_owned());
                sh.alpn_raw = Some(first.to_vec());
            }
            _ => {}
        }
    }
    Ok(sh)
}
