//! Initial packet-protection keys (RFC 9001 §5.2; QUIC v2: RFC 9369 §3.3).
//!
//! ```text
//! initial_secret        = HKDF-Extract(initial_salt, client_dst_connection_id)
//! client_initial_secret = HKDF-Expand-Label(initial_secret, "client in", "", 32)
//! server_initial_secret = HKDF-Expand-Label(initial_secret, "server in", "", 32)
//! key = HKDF-Expand-Label(secret, "quic key", "", 16)   // v2: "quicv2 key"
//! iv  = HKDF-Expand-Label(secret, "quic iv",  "", 12)   // v2: "quicv2 iv"
//! hp  = HKDF-Expand-Label(secret, "quic hp",  "", 16)   // v2: "quicv2 hp"
//! ```
//! Initial packets always use AEAD_AES_128_GCM and AES-128 header protection
//! (RFC 9001 §5.3, §5.4.3).

use std::fmt;

use ring::aead::quic::{HeaderProtectionKey, AES_128};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use ring::hkdf;

use super::QuicVersion;

/// QUIC v1 initial salt (RFC 9001 §5.2).
pub const INITIAL_SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];

/// QUIC v2 initial salt (RFC 9369 §3.3.1).
pub const INITIAL_SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];

/// AEAD tag length of AES-128-GCM (RFC 9001 §5.3).
pub const TAG_LEN: usize = 16;

/// Retry integrity key and nonce for v1 (RFC 9001 §5.8).
const RETRY_KEY_V1: [u8; 16] = [
    0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a, 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e,
];
const RETRY_NONCE_V1: [u8; 12] = [
    0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb,
];
/// Retry integrity key and nonce for v2 (RFC 9369 §3.3.3).
const RETRY_KEY_V2: [u8; 16] = [
    0x8f, 0xb4, 0xb0, 0x1b, 0x56, 0xac, 0x48, 0xe2, 0x60, 0xfb, 0xcb, 0xce, 0xad, 0x7c, 0xcc, 0x92,
];
const RETRY_NONCE_V2: [u8; 12] = [
    0xd8, 0x69, 0x69, 0xbc, 0x2d, 0x7c, 0x6d, 0x99, 0x90, 0xef, 0xb0, 0x4a,
];

/// Checks the Retry Integrity Tag (RFC 9001 §5.8): the last 16 bytes of `retry` must
/// be the AES-128-GCM tag, under a fixed key and nonce, of an empty plaintext with the
/// Retry Pseudo-Packet `ODCID Length || ODCID || Retry packet without tag` as AAD.
/// `odcid` is the Destination Connection ID of the client's Initial the Retry answers.
pub fn verify_retry_integrity(version: QuicVersion, odcid: &[u8], retry: &[u8]) -> bool {
    let Some(body_len) = retry.len().checked_sub(TAG_LEN) else {
        return false;
    };
    let Ok(odcid_len) = u8::try_from(odcid.len()) else {
        return false;
    };
    let (key, nonce) = match version {
        QuicVersion::V1 => (&RETRY_KEY_V1, RETRY_NONCE_V1),
        QuicVersion::V2 => (&RETRY_KEY_V2, RETRY_NONCE_V2),
    };
    let Ok(key) = UnboundKey::new(&AES_128_GCM, key) else {
        return false;
    };
    let key = LessSafeKey::new(key);
    let mut aad = Vec::with_capacity(1 + odcid.len() + body_len);
    aad.push(odcid_len);
    aad.extend_from_slice(odcid);
    aad.extend_from_slice(retry.get(..body_len).unwrap_or(&[]));
    // Opening "tag only" succeeds iff the tag matches (constant-time in ring).
    let mut tag = retry.get(body_len..).unwrap_or(&[]).to_vec();
    key.open_in_place(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(&aad),
        &mut tag,
    )
    .is_ok()
}

/// Output length for `hkdf::Prk::expand`.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label with an empty context (RFC 8446 §7.1, used by RFC 9001 §5.1).
/// The HkdfLabel is `u16 length || u8 len || "tls13 " label || u8 0`.
fn expand_label<const N: usize>(prk: &hkdf::Prk, label: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let len = (N as u16).to_be_bytes();
    // Labels here are short constants, so the length fits a byte.
    let label_len = [(6 + label.len()) as u8];
    let info: [&[u8]; 5] = [&len, &label_len, b"tls13 ", label, &[0u8]];
    // `fill` only fails for N > 255 * 32, impossible for the constant sizes used here.
    if let Ok(okm) = prk.expand(&info, Len(N)) {
        let _ = okm.fill(&mut out);
    }
    out
}

/// Packet-protection keys for one direction (client→server or server→client).
pub struct DirectionKeys {
    key: [u8; 16],
    iv: [u8; 12],
    hp: [u8; 16],
    aead: Option<LessSafeKey>,
    hp_key: Option<HeaderProtectionKey>,
}

impl fmt::Debug for DirectionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Initial keys are public (derived from the DCID), but keep logs short.
        f.debug_struct("DirectionKeys").finish_non_exhaustive()
    }
}

impl DirectionKeys {
    fn from_secret(version: QuicVersion, secret: &[u8; 32]) -> Self {
        let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, secret);
        let (lk, liv, lhp): (&[u8], &[u8], &[u8]) = match version {
            QuicVersion::V1 => (b"quic key", b"quic iv", b"quic hp"),
            // RFC 9369 §3.3.2.
            QuicVersion::V2 => (b"quicv2 key", b"quicv2 iv", b"quicv2 hp"),
        };
        let key: [u8; 16] = expand_label(&prk, lk);
        let iv: [u8; 12] = expand_label(&prk, liv);
        let hp: [u8; 16] = expand_label(&prk, lhp);
        let aead = UnboundKey::new(&AES_128_GCM, &key)
            .ok()
            .map(LessSafeKey::new);
        let hp_key = HeaderProtectionKey::new(&AES_128, &hp).ok();
        Self {
            key,
            iv,
            hp,
            aead,
            hp_key,
        }
    }

    /// The 16-byte AEAD_AES_128_GCM key.
    pub fn key(&self) -> &[u8; 16] {
        &self.key
    }

    /// The 12-byte IV; the nonce is this XOR the packet number (RFC 9001 §5.3).
    pub fn iv(&self) -> &[u8; 12] {
        &self.iv
    }

    /// The 16-byte AES-128 header-protection key (RFC 9001 §5.4.3).
    pub fn hp(&self) -> &[u8; 16] {
        &self.hp
    }

    /// The 5-byte header-protection mask for a 16-byte `sample` (RFC 9001 §5.4.3).
    pub fn hp_mask(&self, sample: &[u8]) -> Option<[u8; 5]> {
        self.hp_key.as_ref()?.new_mask(sample).ok()
    }

    /// The AEAD nonce for packet number `pn`: the IV with the 62-bit packet number
    /// XORed into its low-order bytes (RFC 9001 §5.3).
    pub fn nonce(&self, pn: u64) -> [u8; 12] {
        let mut n = self.iv;
        for (d, p) in n[4..].iter_mut().zip(pn.to_be_bytes()) {
            *d ^= p;
        }
        n
    }

    /// Decrypts `in_out` (ciphertext followed by the 16-byte tag) in place and returns
    /// the plaintext length, or `None` if authentication fails.
    pub fn open(&self, pn: u64, aad: &[u8], in_out: &mut [u8]) -> Option<usize> {
        let key = self.aead.as_ref()?;
        let nonce = Nonce::assume_unique_for_key(self.nonce(pn));
        key.open_in_place(nonce, Aad::from(aad), in_out)
            .ok()
            .map(|p| p.len())
    }

    /// Encrypts `in_out` in place and appends the tag (used to build test packets).
    pub fn seal(&self, pn: u64, aad: &[u8], in_out: &mut Vec<u8>) -> Option<()> {
        let key = self.aead.as_ref()?;
        let nonce = Nonce::assume_unique_for_key(self.nonce(pn));
        key.seal_in_place_append_tag(nonce, Aad::from(aad), in_out)
            .ok()
    }
}

/// Client and server Initial keys derived from a client Destination Connection ID.
#[derive(Debug)]
pub struct InitialKeys {
    version: QuicVersion,
    dcid: Vec<u8>,
    client: DirectionKeys,
    server: DirectionKeys,
}

impl InitialKeys {
    /// Derives both directions' Initial keys for `version` from `dcid`
    /// (RFC 9001 §5.2; RFC 9369 §3.3.1–3.3.3 for v2).
    pub fn derive(version: QuicVersion, dcid: &[u8]) -> Self {
        let salt = match version {
            QuicVersion::V1 => &INITIAL_SALT_V1,
            QuicVersion::V2 => &INITIAL_SALT_V2,
        };
        let initial = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(dcid);
        let client_secret: [u8; 32] = expand_label(&initial, b"client in");
        let server_secret: [u8; 32] = expand_label(&initial, b"server in");
        Self {
            version,
            dcid: dcid.to_vec(),
            client: DirectionKeys::from_secret(version, &client_secret),
            server: DirectionKeys::from_secret(version, &server_secret),
        }
    }

    /// The version these keys were derived for.
    pub fn version(&self) -> QuicVersion {
        self.version
    }

    /// The connection ID the keys were derived from.
    pub fn dcid(&self) -> &[u8] {
        &self.dcid
    }

    /// Keys protecting client→server Initial packets.
    pub fn client(&self) -> &DirectionKeys {
        &self.client
    }

    /// Keys protecting server→client Initial packets.
    pub fn server(&self) -> &DirectionKeys {
        &self.server
    }

    /// Keys for one direction.
    pub fn side(&self, from_client: bool) -> &DirectionKeys {
        if from_client {
            &self.client
        } else {
            &self.server
        }
    }
}
