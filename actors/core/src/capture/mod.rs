//! Capture-file parsing: classic pcap and pcapng, read zero-copy from a byte slice.
//!
//! This module owns the file-level view of a capture: the format detected by magic,
//! per-interface link types and timestamp resolutions, and the iteration over records.
//! It never copies packet bytes: every [`Frame`] borrows from the input slice, which the
//! daemon memory-maps.
//!
//! Invariants:
//! - No input can make the reader panic; all reads are bounds-checked.
//! - A fatal error ([`CaptureError::is_fatal`]) is yielded once, after which the
//!   iterator is fused and returns `None`; the frames yielded before it stay valid.
//! - In pcapng, a packet on an interface whose link type is not decoded (or on an
//!   interface that was never described) is *not* an error: the frame is yielded with
//!   [`LinkType::Unsupported`], so the decoder counts it as an unsupported link type and
//!   the rest of the file is still read. For classic pcap, whose single link type is in
//!   the file header, an unknown link type is a file-level error from
//!   [`CaptureReader::new`].

mod pcap;
mod pcapng;

use flowmesh_schemas::Timestamp;

/// Largest captured length of one record we accept; anything larger is corrupt.
pub const MAX_RECORD_LEN: usize = 256 * 1024;

/// The link-layer framing of a captured frame (LINKTYPE_* values from the tcpdump.org
/// link-type registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// LINKTYPE_ETHERNET (1): Ethernet II, possibly VLAN-tagged.
    Ethernet,
    /// LINKTYPE_RAW (101; DLT_RAW 12 and 14 on some BSDs): IPv4 or IPv6 by version nibble.
    Raw,
    /// LINKTYPE_IPV4 (228): raw IPv4.
    Ipv4,
    /// LINKTYPE_IPV6 (229): raw IPv6.
    Ipv6,
    /// LINKTYPE_LINUX_SLL (113): Linux cooked capture v1, 16-byte header.
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 (276): Linux cooked capture v2, 20-byte header.
    LinuxSll2,
    /// LINKTYPE_NULL (0): BSD loopback, 4-byte address family in the writer's byte order.
    Null,
    /// LINKTYPE_LOOP (108): OpenBSD loopback, 4-byte address family in network order.
    Loop,
    /// A pcapng interface whose link type we do not decode (the raw LINKTYPE value), or
    /// [`LinkType::UNKNOWN_INTERFACE`] for a packet naming an undescribed interface.
    Unsupported(u32),
}

impl LinkType {
    /// Marker link type of a pcapng packet whose interface id has no IDB.
    pub const UNKNOWN_INTERFACE: LinkType = LinkType::Unsupported(u32::MAX);

    /// Maps a LINKTYPE_*/DLT_* value to a decodable link type; `None` if unsupported.
    pub fn from_linktype(v: u32) -> Option<LinkType> {
        Some(match v {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            // DLT_RAW is 12 on most BSDs and 14 on OpenBSD; LINKTYPE_RAW is 101.
            12 | 14 | 101 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    /// Like [`LinkType::from_linktype`], but maps unknown values to `Unsupported(v)`.
    pub fn from_linktype_lossy(v: u32) -> LinkType {
        LinkType::from_linktype(v).unwrap_or(LinkType::Unsupported(v))
    }
}

/// The container format of a capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaptureFormat {
    /// Classic libpcap format.
    Pcap,
    /// pcapng (draft-ietf-opsawg-pcapng).
    PcapNg,
}

/// One captured frame, borrowing its bytes from the capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Capture timestamp, nanoseconds since the epoch.
    pub ts: Timestamp,
    /// Link-layer framing of `data`.
    pub link: LinkType,
    /// The captured bytes (possibly fewer than were on the wire).
    pub data: &'a [u8],
    /// Length of the frame on the wire.
    pub orig_len: u32,
    /// pcapng interface id (0 for classic pcap and Simple Packet Blocks).
    pub interface: u32,
}

impl Frame<'_> {
    /// Whether the capture cut the frame short (snaplen).
    pub fn is_truncated(&self) -> bool {
        (self.data.len() as u64) < u64::from(self.orig_len)
    }
}

/// A capture file that cannot be (further) read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// The magic number is neither pcap nor pcapng.
    #[error("not a pcap or pcapng capture file")]
    NotACaptureFile,
    /// The classic pcap header names a link type we do not decode.
    #[error("unsupported link type {linktype}")]
    UnknownLinkType {
        /// The LINKTYPE_* value.
        linktype: u32,
    },
    /// The file ends in the middle of a record or block (e.g. a capture still being
    /// written, or cut by a copy); the records before `offset` are valid.
    #[error("capture file truncated at byte {offset}")]
    TruncatedFile {
        /// Offset of the incomplete record or block.
        offset: usize,
    },
    /// A record or block violates the format.
    #[error("malformed capture file at byte {offset}: {what}")]
    Malformed {
        /// Offset of the offending record or block.
        offset: usize,
        /// What is wrong.
        what: &'static str,
    },
}

impl CaptureError {
    /// Whether reading must stop. Every current variant is fatal; the method exists so
    /// callers do not hard-code that.
    pub fn is_fatal(&self) -> bool {
        true
    }
}

/// Byte order of the file's multi-byte fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endian {
    Little,
    Big,
}

impl Endian {
    /// Reads a u16 at `off`, `None` if out of bounds.
    pub(crate) fn u16(self, b: &[u8], off: usize) -> Option<u16> {
        let s: [u8; 2] = b.get(off..off.checked_add(2)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u16::from_le_bytes(s),
            Endian::Big => u16::from_be_bytes(s),
        })
    }

    /// Reads a u32 at `off`, `None` if out of bounds.
    pub(crate) fn u32(self, b: &[u8], off: usize) -> Option<u32> {
        let s: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u32::from_le_bytes(s),
            Endian::Big => u32::from_be_bytes(s),
        })
    }

    /// Reads a u64 at `off`, `None` if out of bounds.
    pub(crate) fn u64(self, b: &[u8], off: usize) -> Option<u64> {
        let s: [u8; 8] = b.get(off..off.checked_add(8)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u64::from_le_bytes(s),
            Endian::Big => u64::from_be_bytes(s),
        })
    }
}

/// The format-specific reader state.
#[derive(Debug)]
enum Inner<'a> {
    Pcap(pcap::PcapReader<'a>),
    PcapNg(pcapng::PcapNgReader<'a>),
}

/// Reads frames from a pcap or pcapng file held in memory. Also an [`Iterator`].
#[derive(Debug)]
pub struct CaptureReader<'a> {
    inner: Inner<'a>,
    /// Set after a fatal error or the end of input: the iterator is fused.
    done: bool,
}

impl<'a> CaptureReader<'a> {
    /// Detects the format by magic number and reads the file header.
    pub fn new(bytes: &'a [u8]) -> Result<Self, CaptureError> {
        let inner = if pcapng::is_pcapng(bytes) {
            Inner::PcapNg(pcapng::PcapNgReader::new(bytes)?)
        } else {
            Inner::Pcap(pcap::PcapReader::new(bytes)?)
        };
        Ok(CaptureReader { inner, done: false })
    }

    /// The detected container format.
    pub fn format(&self) -> CaptureFormat {
        match self.inner {
            Inner::Pcap(_) => CaptureFormat::Pcap,
            Inner::PcapNg(_) => CaptureFormat::PcapNg,
        }
    }

    /// The next frame, a fatal error (once), or `None` at the end.
    pub fn next_frame(&mut self) -> Option<Result<Frame<'a>, CaptureError>> {
        if self.done {
            return None;
        }
        let item = match &mut self.inner {
            Inner::Pcap(r) => r.next_frame(),
            Inner::PcapNg(r) => r.next_frame(),
        };
        match item {
            None | Some(Err(_)) => self.done = true,
            Some(Ok(_)) => {}
        }
        item
    }

    /// Bytes consumed so far, for progress reporting.
    pub fn offset(&self) -> usize {
        match &self.inner {
            Inner::Pcap(r) => r.offset(),
            Inner::PcapNg(r) => r.offset(),
        }
    }
}

impl<'a> Iterator for CaptureReader<'a> {
    type Item = Result<Frame<'a>, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame()
    }
}

impl std::iter::FusedIterator for CaptureReader<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn linktype_mapping() {
        assert_eq!(LinkType::from_linktype(1), Some(LinkType::Ethernet));
        for raw in [12, 14, 101] {
            assert_eq!(LinkType::from_linktype(raw), Some(LinkType::Raw));
        }
        assert_eq!(LinkType::from_linktype(0), Some(LinkType::Null));
        assert_eq!(LinkType::from_linktype(108), Some(LinkType::Loop));
        assert_eq!(LinkType::from_linktype(113), Some(LinkType::LinuxSll));
        assert_eq!(LinkType::from_linktype(276), Some(LinkType::LinuxSll2));
        assert_eq!(LinkType::from_linktype(228), Some(LinkType::Ipv4));
        assert_eq!(LinkType::from_linktype(229), Some(LinkType::Ipv6));
        assert_eq!(LinkType::from_linktype(105), None);
        assert_eq!(
            LinkType::from_linktype_lossy(105),
            LinkType::Unsupported(105)
        );
    }

    #[test]
    fn rejects_unknown_magic() {
        assert_eq!(
            CaptureReader::new(b"").err(),
            Some(CaptureError::NotACaptureFile)
        );
        assert_eq!(
            CaptureReader::new(&[0u8; 64]).err(),
            Some(CaptureError::NotACaptureFile)
        );
    }

    #[test]
    fn frame_truncation_flag() {
        let f = Frame {
            ts: Timestamp(0),
            link: LinkType::Raw,
            data: &[1, 2],
            orig_len: 3,
            interface: 0,
        };
        assert!(f.is_truncated());
        let g = Frame { orig_len: 2, ..f };
        assert!(!g.is_truncated());
    }

    proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(r) = CaptureReader::new(&bytes) {
                for item in r.take(1000) {
                    let _ = item;
                }
            }
        }

        #[test]
        fn never_panics_on_corrupted_headers(
            kind in 0usize..3,
            tail in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            // Valid magic followed by random bytes exercises the record/block parsers.
            let mut bytes: Vec<u8> = match kind {
                0 => vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0],
                1 => vec![0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 1],
                _ => vec![0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0,
                          0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0],
            };
            bytes.extend_from_slice(&tail);
            if let Ok(r) = CaptureReader::new(&bytes) {
                let mut last = 0;
                for item in r.take(1000) {
                    if let Ok(f) = item {
                        prop_assert!(f.data.len() <= MAX_RECORD_LEN);
                    }
                    last += 1;
                }
                prop_assert!(last <= 1000);
            }
        }
    }
}
