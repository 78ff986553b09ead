//! QUIC v1 Initial packet protection (RFC 9001 §5): key derivation from the client's
//! Destination Connection ID, AEAD_AES_128_GCM payload protection and AES header protection.

use ring::aead::{self, quic, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;

/// RFC 9001 §5.2 initial_salt for QUIC version 1.
pub const INITIAL_SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];

/// Errors of Initial packet protection.
#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    /// A ring primitive refused its input (key length, buffer size).
    #[error("QUIC Initial protection failed: {0}")]
    Crypto(&'static str),
    /// The packet is too short to sample for header protection (RFC 9001 §5.4.2).
    #[error("packet too short for a header protection sample")]
    TooShort,
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label of TLS 1.3 (RFC 8446 §7.1) with an empty context.
fn expand_label(prk: &hkdf::Prk, label: &[u8], out: &mut [u8]) -> Result<(), ProtectError> {
    let full_len = (6 + label.len()) as u8;
    let len = (out.len() as u16).to_be_bytes();
    let info: [&[u8]; 5] = [&len, &[full_len], b"tls13 ", label, &[0]];
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| ProtectError::Crypto("hkdf expand"))
}

/// Packet protection keys of one direction.
pub struct DirectionKeys {
    /// AEAD key bytes (kept for tests and diagnostics).
    pub key_bytes: [u8; 16],
    /// AEAD IV.
    pub iv: [u8; 12],
    /// Header protection key bytes.
    pub hp_bytes: [u8; 16],
    key: LessSafeKey,
    hp: quic::HeaderProtectionKey,
}

impl std::fmt::Debug for DirectionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectionKeys").finish_non_exhaustive()
    }
}

impl DirectionKeys {
    fn from_secret(secret: &[u8; 32]) -> Result<Self, ProtectError> {
        let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, secret);
        let mut key_bytes = [0u8; 16];
        let mut iv = [0u8; 12];
        let mut hp_bytes = [0u8; 16];
        expand_label(&prk, b"quic key", &mut key_bytes)?;
        expand_label(&prk, b"quic iv", &mut iv)?;
        expand_label(&prk, b"quic hp", &mut hp_bytes)?;
        let key = UnboundKey::new(&aead::AES_128_GCM, &key_bytes)
            .map_err(|_| ProtectError::Crypto("aead key"))?;
        let hp = quic::HeaderProtectionKey::new(&quic::AES_128, &hp_bytes)
            .map_err(|_| ProtectError::Crypto("hp key"))?;
        Ok(Self {
            key_bytes,
            iv,
            hp_bytes,
            key: LessSafeKey::new(key),
            hp,
        })
    }

    /// Protects the packet in `buf[start..]` in place: `buf[start..start + header_len]` is the
    /// unprotected header ending with a `pn_len`-byte packet number, the rest is the plaintext
    /// payload. Appends the 16-byte tag, then applies header protection.
    pub fn seal(
        &self,
        buf: &mut Vec<u8>,
        start: usize,
        header_len: usize,
        pn: u64,
        pn_len: usize,
    ) -> Result<(), ProtectError> {
        let mut nonce = self.iv;
        for (i, b) in pn.to_be_bytes().iter().enumerate() {
            nonce[4 + i] ^= b; // RFC 9001 §5.3: IV xor left-padded packet number
        }
        let (head, payload) = buf[start..].split_at_mut(header_len);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&*head),
                payload,
            )
            .map_err(|_| ProtectError::Crypto("seal"))?;
        buf.extend_from_slice(tag.as_ref());
        // RFC 9001 §5.4.2: the sample starts 4 bytes after the start of the packet number.
        let pn_offset = start + header_len - pn_len;
        let sample_at = pn_offset + 4;
        let sample = buf
            .get(sample_at..sample_at + 16)
            .ok_or(ProtectError::TooShort)?;
        let mask = self
            .hp
            .new_mask(sample)
            .map_err(|_| ProtectError::Crypto("hp mask"))?;
        buf[start] ^= mask[0] & 0x0f; // long header: low 4 bits
        for i in 0..pn_len {
            buf[pn_offset + i] ^= mask[1 + i];
        }
        Ok(())
    }
}

/// Client and server Initial keys for a client-chosen Destination Connection ID.
#[derive(Debug)]
pub struct InitialKeys {
    /// Keys protecting client-to-server Initial packets.
    pub client: DirectionKeys,
    /// Keys protecting server-to-client Initial packets.
    pub server: DirectionKeys,
}

impl InitialKeys {
    /// RFC 9001 §5.2 derivation.
    pub fn new(dcid: &[u8]) -> Result<Self, ProtectError> {
        let initial = hkdf::Salt::new(hkdf::HKDF_SHA256, &INITIAL_SALT_V1).extract(dcid);
        let mut cs = [0u8; 32];
        let mut ss = [0u8; 32];
        expand_label(&initial, b"client in", &mut cs)?;
        expand_label(&initial, b"server in", &mut ss)?;
        Ok(Self {
            client: DirectionKeys::from_secret(&cs)?,
            server: DirectionKeys::from_secret(&ss)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    const DCID: &str = "8394c8f03e515708";

    #[test]
    fn rfc9001_a1_keys() {
        let k = InitialKeys::new(&hex(DCID)).expect("keys");
        assert_eq!(
            k.client.key_bytes.to_vec(),
            hex("1f369613dd76d5467730efcbe3b1a22d")
        );
        assert_eq!(k.client.iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(
            k.client.hp_bytes.to_vec(),
            hex("9f50449e04a0e810283a1e9933adedd2")
        );
        assert_eq!(
            k.server.key_bytes.to_vec(),
            hex("cf3a5331653c364c88f0f379b6067e37")
        );
        assert_eq!(k.server.iv.to_vec(), hex("0ac1493ca1905853b0bba03e"));
        assert_eq!(
            k.server.hp_bytes.to_vec(),
            hex("c206b8d9b9f0f37644430b490eeaa314")
        );
    }

    #[test]
    fn rfc9001_a2_client_initial() {
        let k = InitialKeys::new(&hex(DCID)).expect("keys");
        let header = hex("c300000001088394c8f03e5157080000449e00000002");
        let mut buf = header.clone();
        buf.extend_from_slice(&hex(
            "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868
             04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578
             616d706c652e636f6dff01000100000a00080006001d00170018001000070005
             04616c706e000500050100000000003300260024001d00209370b2c9caa47fba
             baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400
             0d0010000e0403050306030203080408050806002d00020101001c0002400100
             3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000
             75300901100f088394c8f03e51570806048000ffff",
        ));
        buf.resize(header.len() + 1162, 0); // PADDING to a 1162-byte payload
        k.client
            .seal(&mut buf, 0, header.len(), 2, 4)
            .expect("seal");
        assert_eq!(buf.len(), 1200);
        assert_eq!(
            buf[..38].to_vec(),
            hex("c000000001088394c8f03e5157080000449e7b9aec34 d1b1c98dd7689fb8ec11d242b123dc9b")
        );
        assert_eq!(
            buf[1184..].to_vec(),
            hex("e221af44860018ab0856972e194cd934")
        );
    }

    #[test]
    fn rfc9001_a3_server_initial() {
        let k = InitialKeys::new(&hex(DCID)).expect("keys");
        let header = hex("c1000000010008f067a5502a4262b50040750001");
        let mut buf = header.clone();
        buf.extend_from_slice(&hex(
            "02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739
             88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94
             0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00
             020304",
        ));
        k.server
            .seal(&mut buf, 0, header.len(), 1, 2)
            .expect("seal");
        assert_eq!(
            buf,
            hex(
                "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a
                 5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3
                 dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84
                 022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4
                 2158407dd074ee"
            )
        );
    }
}
