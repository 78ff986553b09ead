//! Key layouts of the flow store. Every number is fixed-width big-endian, so byte order
//! is numeric order and a scan walks keys in (value, time, sequence) order.
//!
//! - [`Family::Flows`](super::Family::Flows): key = [`FlowId`] = `[first_seen ns u64][seq u64]`.
//! - index families: `[value part][first_seen u64][seq u64]`; the value part is a 16-byte
//!   IP (IPv4 as IPv4-mapped IPv6), a 2-byte port, or an 8-byte [`stable_hash`] of the
//!   normalized text (JA3 hash, JA4, SNI, Community ID). The time is always at
//!   `key[len-16..len-8]`, which is what retention's compaction filter reads
//!   ([`index_key_time`]). A hash collision only adds candidates: the store re-checks
//!   every candidate record against the whole filter.
//! - [`Family::Counts`](super::Family::Counts): `[field u8][minute u32][value bytes]` →
//!   little-endian u64 count.

use flowmesh_schemas::Timestamp;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A stored flow's id: its first-seen time (nanoseconds, negative clamped to 0) and a
/// sequence number assigned at write time. Ordered by time, then sequence; its 16-byte
/// big-endian form is the [`Family::Flows`](super::Family::Flows) key, and its text form
/// is 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FlowId {
    /// First-seen time in nanoseconds since the epoch (clamped to ≥ 0).
    pub time_ns: u64,
    /// Write-time sequence number, unique within a store.
    pub seq: u64,
}

impl FlowId {
    /// The smallest id.
    pub const MIN: FlowId = FlowId { time_ns: 0, seq: 0 };
    /// The largest id.
    pub const MAX: FlowId = FlowId {
        time_ns: u64::MAX,
        seq: u64::MAX,
    };

    /// The id of a record first seen at `first_seen` with sequence `seq`.
    pub fn new(first_seen: Timestamp, seq: u64) -> Self {
        FlowId {
            time_ns: time_key(first_seen),
            seq,
        }
    }

    /// The 16-byte key form.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.time_ns.to_be_bytes());
        b[8..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    /// Reads the 16-byte key form (`None` if `b` is not 16 bytes).
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let b: &[u8; 16] = b.try_into().ok()?;
        Some(Self::from_tail(b))
    }

    /// The id in the last 16 bytes of an index key (`None` if shorter).
    pub fn from_index_key(key: &[u8]) -> Option<Self> {
        let tail = key.len().checked_sub(16).map(|s| &key[s..])?;
        Self::from_bytes(tail)
    }

    fn from_tail(b: &[u8; 16]) -> Self {
        let (t, s) = b.split_at(8);
        FlowId {
            time_ns: u64::from_be_bytes(t.try_into().unwrap_or_default()),
            seq: u64::from_be_bytes(s.try_into().unwrap_or_default()),
        }
    }

    /// The next id in order (`None` after [`FlowId::MAX`]).
    pub fn successor(self) -> Option<Self> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(FlowId { seq, ..self }),
            None => self
                .time_ns
                .checked_add(1)
                .map(|time_ns| FlowId { time_ns, seq: 0 }),
        }
    }
}

/// Why a text is not a [`FlowId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowIdError {
    /// Not 32 characters long.
    #[error("a flow id is 32 hex digits, got {0} characters")]
    Length(usize),
    /// A character that is not a hex digit.
    #[error("a flow id is 32 hex digits, found {0:?}")]
    NotHex(char),
}

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}{:016x}", self.time_ns, self.seq)
    }
}

impl FromStr for FlowId {
    type Err = FlowIdError;

    /// Parses 32 hex digits (either case).
    fn from_str(s: &str) -> Result<Self, FlowIdError> {
        let n = s.chars().count();
        if n != 32 {
            return Err(FlowIdError::Length(n));
        }
        if let Some(c) = s.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(FlowIdError::NotHex(c));
        }
        // 32 ASCII hex digits: both halves parse.
        let half = |r: std::ops::Range<usize>| u64::from_str_radix(&s[r], 16).unwrap_or(0);
        Ok(FlowId {
            time_ns: half(0..16),
            seq: half(16..32),
        })
    }
}

/// A timestamp as key time: nanoseconds, negative clamped to 0.
pub fn time_key(t: Timestamp) -> u64 {
    u64::try_from(t.as_nanos()).unwrap_or(0)
}

/// The time field of an index key (`key[len-16..len-8]`), `None` if the key is shorter.
pub fn index_key_time(key: &[u8]) -> Option<u64> {
    let s = key.len().checked_sub(16)?;
    key.get(s..s + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

/// 64-bit FNV-1a (Fowler, Noll, Vo): stable across builds and platforms, unlike
/// `std::hash`. Used for the value part of text indexes, where it only has to spread
/// values; collisions are resolved by re-checking records.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    stable_hash_iter(bytes.iter().copied())
}

/// [`stable_hash`] of bytes as they come (several fields in a row, without copying them
/// into one buffer).
pub fn stable_hash_iter(bytes: impl IntoIterator<Item = u8>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .into_iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// FNV-1a over the ASCII-lowercased bytes (same as [`stable_hash`] of the lowercased text).
pub fn stable_hash_lower(text: &str) -> u64 {
    stable_hash_iter(text.bytes().map(|b| b.to_ascii_lowercase()))
}

/// An SNI as indexed and compared: trailing dot removed (ASCII case is folded by the
/// callers' case-insensitive compare and hash).
pub fn sni_trimmed(sni: &str) -> &str {
    sni.strip_suffix('.').unwrap_or(sni)
}

/// Whether two SNIs name the same host (ASCII case-insensitive, trailing dot ignored).
pub fn sni_eq(a: &str, b: &str) -> bool {
    sni_trimmed(a).eq_ignore_ascii_case(sni_trimmed(b))
}

/// An address as 16 bytes (IPv4 as its IPv4-mapped IPv6 form).
pub fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The longest index key: 16-byte value part + time + seq.
pub const MAX_INDEX_KEY: usize = 32;

/// An index key built on the stack: `[value part][time][seq]`.
#[derive(Debug, Clone, Copy)]
pub struct IndexKey {
    buf: [u8; MAX_INDEX_KEY],
    len: usize,
}

impl IndexKey {
    /// `value` (at most 16 bytes) followed by `id`.
    pub fn new(value: &[u8], id: FlowId) -> Self {
        let mut buf = [0u8; MAX_INDEX_KEY];
        let v = value.len().min(16);
        buf[..v].copy_from_slice(&value[..v]);
        buf[v..v + 16].copy_from_slice(&id.to_bytes());
        IndexKey { buf, len: v + 16 }
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The value part of a text index entry: the 8-byte big-endian hash.
pub fn hash_part(h: u64) -> [u8; 8] {
    h.to_be_bytes()
}

/// A field counted per minute in [`Family::Counts`](super::Family::Counts), for "top" lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopField {
    /// JA3 (counted by its MD5 hash).
    Ja3,
    /// JA3S (counted by its MD5 hash).
    Ja3s,
    /// JA4.
    Ja4,
    /// JA4S.
    Ja4s,
    /// SNI (lowercased, trailing dot removed).
    Sni,
}

impl TopField {
    /// Every counted field.
    pub const ALL: [TopField; 5] = [
        TopField::Ja3,
        TopField::Ja3s,
        TopField::Ja4,
        TopField::Ja4s,
        TopField::Sni,
    ];

    /// The field's first key byte in the Counts family.
    pub fn code(self) -> u8 {
        match self {
            TopField::Ja3 => 1,
            TopField::Ja3s => 2,
            TopField::Ja4 => 3,
            TopField::Ja4s => 4,
            TopField::Sni => 5,
        }
    }

    /// The field's name (`ja3`, `ja3s`, `ja4`, `ja4s`, `sni`).
    pub fn as_str(self) -> &'static str {
        match self {
            TopField::Ja3 => "ja3",
            TopField::Ja3s => "ja3s",
            TopField::Ja4 => "ja4",
            TopField::Ja4s => "ja4s",
            TopField::Sni => "sni",
        }
    }
}

impl fmt::Display for TopField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`TopField`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown top field {0:?}: expected ja3, ja3s, ja4, ja4s or sni")]
pub struct TopFieldError(pub String);

impl FromStr for TopField {
    type Err = TopFieldError;
    fn from_str(s: &str) -> Result<Self, TopFieldError> {
        TopField::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| TopFieldError(s.to_owned()))
    }
}

/// Nanoseconds per minute.
pub const NANOS_PER_MINUTE: u64 = 60_000_000_000;

/// The minute (since the epoch) of a key time, saturating at `u32::MAX`.
pub fn minute_of(time_ns: u64) -> u32 {
    u32::try_from(time_ns / NANOS_PER_MINUTE).unwrap_or(u32::MAX)
}

/// Writes a Counts key `[field][minute BE][value]` into `out` (cleared first).
pub fn count_key(out: &mut Vec<u8>, field: TopField, minute: u32, value: &[u8]) {
    out.clear();
    out.push(field.code());
    out.extend_from_slice(&minute.to_be_bytes());
    out.extend_from_slice(value);
}

/// The first Counts key of `field` at or after `minute`.
pub fn count_prefix(field: TopField, minute: u32) -> [u8; 5] {
    let m = minute.to_be_bytes();
    [field.code(), m[0], m[1], m[2], m[3]]
}

/// The (minute, value) of a Counts key of any field (`None` if shorter than 5 bytes).
pub fn split_count_key(key: &[u8]) -> Option<(u32, &[u8])> {
    let m: [u8; 4] = key.get(1..5)?.try_into().ok()?;
    Some((u32::from_be_bytes(m), &key[5..]))
}

/// Prefix of the Meta keys that mark stored interim records awaiting their final record.
pub const OPEN_MARKER_PREFIX: &[u8] = b"open/";

/// The Meta key marking that the record under `id` is an interim one whose final record
/// has not been stored: `open/` then the id's key form, so markers sort by time.
pub fn open_marker(id: FlowId) -> [u8; 21] {
    let mut k = [0u8; 21];
    k[..5].copy_from_slice(OPEN_MARKER_PREFIX);
    k[5..].copy_from_slice(&id.to_bytes());
    k
}

/// The smallest byte string greater than every string starting with `prefix`
/// (`None` if `prefix` is all `0xff`: no such bound).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn flow_id_byte_order_is_numeric_order() {
        let ids = [
            FlowId { time_ns: 0, seq: 5 },
            FlowId { time_ns: 1, seq: 0 },
            FlowId { time_ns: 1, seq: 1 },
            FlowId {
                time_ns: 255,
                seq: u64::MAX,
            },
            FlowId {
                time_ns: 256,
                seq: 0,
            },
            FlowId::MAX,
        ];
        for w in ids.windows(2) {
            assert!(w[0] < w[1]);
            assert!(w[0].to_bytes() < w[1].to_bytes());
        }
    }

    #[test]
    fn negative_times_clamp_to_zero() {
        assert_eq!(FlowId::new(Timestamp(-7), 3), FlowId { time_ns: 0, seq: 3 });
    }

    #[test]
    fn flow_id_text() {
        let id = FlowId {
            time_ns: 0x1234,
            seq: 0xabcdef,
        };
        assert_eq!(id.to_string(), "00000000000012340000000000abcdef");
        assert_eq!("00000000000012340000000000ABCDEF".parse(), Ok(id));
        assert_eq!("".parse::<FlowId>(), Err(FlowIdError::Length(0)));
        assert_eq!(
            "0000000000001234000000000abcdef".parse::<FlowId>(),
            Err(FlowIdError::Length(31))
        );
        assert_eq!(
            "0000000000001234000000000abcdefg".parse::<FlowId>(),
            Err(FlowIdError::NotHex('g'))
        );
        assert_eq!(
            "+000000000001234000000000abcdef0".parse::<FlowId>(),
            Err(FlowIdError::NotHex('+'))
        );
        // 32 characters, but not 32 bytes of ASCII.
        let s = "é".repeat(32);
        assert_eq!(s.parse::<FlowId>(), Err(FlowIdError::NotHex('é')));
    }

    #[test]
    fn index_keys_put_time_before_seq_at_the_end() {
        let id = FlowId {
            time_ns: 0x0102_0304_0506_0708,
            seq: 9,
        };
        for value in [&[0xaa; 16][..], &[1, 2], &[7; 8]] {
            let k = IndexKey::new(value, id);
            assert_eq!(k.as_bytes().len(), value.len() + 16);
            assert_eq!(index_key_time(k.as_bytes()), Some(id.time_ns));
            assert_eq!(FlowId::from_index_key(k.as_bytes()), Some(id));
        }
        assert_eq!(index_key_time(&[0; 15]), None);
    }

    #[test]
    fn stable_hash_is_pinned() {
        // FNV-1a test vectors; a change here would orphan every stored text index entry.
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(stable_hash_lower("FooBar"), stable_hash(b"foobar"));
    }

    #[test]
    fn sni_normalization() {
        assert!(sni_eq("Example.COM.", "example.com"));
        assert!(!sni_eq("example.com..", "example.com"));
        assert_eq!(sni_trimmed("a.b."), "a.b");
    }

    #[test]
    fn prefix_end_bounds() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }

    #[test]
    fn count_keys_order_by_field_then_minute() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        count_key(&mut a, TopField::Ja4, 5, b"zzz");
        count_key(&mut b, TopField::Ja4, 6, b"aaa");
        assert!(a < b);
        assert!(count_prefix(TopField::Ja4, 6).as_slice() <= b.as_slice());
        assert_eq!(split_count_key(&b), Some((6, &b"aaa"[..])));
        for f in TopField::ALL {
            assert_eq!(f.as_str().parse(), Ok(f));
        }
        assert!("ja5".parse::<TopField>().is_err());
    }

    proptest! {
        #[test]
        fn flow_id_text_round_trips(time_ns: u64, seq: u64) {
            let id = FlowId { time_ns, seq };
            let s = id.to_string();
            prop_assert_eq!(s.len(), 32);
            prop_assert!(s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            prop_assert_eq!(s.parse::<FlowId>(), Ok(id));
            prop_assert_eq!(FlowId::from_bytes(&id.to_bytes()), Some(id));
        }

        #[test]
        fn flow_id_parse_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<FlowId>();
        }

        #[test]
        fn flow_id_order_matches_bytes(a: (u64, u64), b: (u64, u64)) {
            let (x, y) = (FlowId { time_ns: a.0, seq: a.1 }, FlowId { time_ns: b.0, seq: b.1 });
            prop_assert_eq!(x.cmp(&y), x.to_bytes().cmp(&y.to_bytes()));
        }
    }
}
