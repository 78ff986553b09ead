//! Classic libpcap files (draft-ietf-opsawg-pcap): a 24-byte file header followed by
//! records of a 16-byte header and `incl_len` captured bytes.
//!
//! Owns: magic/byte-order/resolution detection, record validation and the conversion of
//! (seconds, fraction) timestamps to nanoseconds. Invariant: `pos` never exceeds the
//! input length and only advances past complete, validated records.

use super::{CaptureError, Endian, Frame, LinkType, MAX_RECORD_LEN};
use flowmesh_schemas::Timestamp;

const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
/// Magic of microsecond-resolution files, as written by the writer.
const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Magic of nanosecond-resolution files.
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;

/// Reader state for one classic pcap file.
#[derive(Debug)]
pub(super) struct PcapReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    endian: Endian,
    /// Nanoseconds per unit of the record's fractional timestamp (1000 or 1).
    frac_scale: i64,
    snaplen: u32,
    link: LinkType,
}

impl<'a> PcapReader<'a> {
    /// Parses the file header.
    pub(super) fn new(bytes: &'a [u8]) -> Result<Self, CaptureError> {
        let le = Endian::Little
            .u32(bytes, 0)
            .ok_or(CaptureError::NotACaptureFile)?;
        let (endian, frac_scale) = match le {
            MAGIC_MICROS => (Endian::Little, 1000),
            MAGIC_NANOS => (Endian::Little, 1),
            m if m.swap_bytes() == MAGIC_MICROS => (Endian::Big, 1000),
            m if m.swap_bytes() == MAGIC_NANOS => (Endian::Big, 1),
            _ => return Err(CaptureError::NotACaptureFile),
        };
        if bytes.len() < FILE_HEADER_LEN {
            return Err(CaptureError::TruncatedFile { offset: 0 });
        }
        let snaplen = endian
            .u32(bytes, 16)
            .ok_or(CaptureError::TruncatedFile { offset: 0 })?;
        let network = endian
            .u32(bytes, 20)
            .ok_or(CaptureError::TruncatedFile { offset: 0 })?;
        // The upper bits of the LinkType field carry FCS information (pcap draft §4);
        // the link type proper is the low 16 bits.
        let linktype = network & 0xffff;
        let link =
            LinkType::from_linktype(linktype).ok_or(CaptureError::UnknownLinkType { linktype })?;
        Ok(PcapReader {
            bytes,
            pos: FILE_HEADER_LEN,
            endian,
            frac_scale,
            snaplen,
            link,
        })
    }

    /// Bytes consumed so far.
    pub(super) fn offset(&self) -> usize {
        self.pos
    }

    /// The next record.
    pub(super) fn next_frame(&mut self) -> Option<Result<Frame<'a>, CaptureError>> {
        let start = self.pos;
        let rest = self.bytes.get(start..)?;
        if rest.is_empty() {
            return None;
        }
        Some(self.read_record(start, rest))
    }

    fn read_record(&mut self, start: usize, rest: &'a [u8]) -> Result<Frame<'a>, CaptureError> {
        let e = self.endian;
        let truncated = CaptureError::TruncatedFile { offset: start };
        let (Some(sec), Some(frac), Some(incl), Some(orig)) = (
            e.u32(rest, 0),
            e.u32(rest, 4),
            e.u32(rest, 8),
            e.u32(rest, 12),
        ) else {
            return Err(truncated);
        };
        let malformed = |what| CaptureError::Malformed {
            offset: start,
            what,
        };
        let incl_len = usize::try_from(incl).map_err(|_| malformed("record length too large"))?;
        if incl_len > MAX_RECORD_LEN {
            return Err(malformed("record length too large"));
        }
        if incl > orig {
            return Err(malformed("captured length exceeds original length"));
        }
        // Some writers put 0 in snaplen; only a real snaplen bounds the record.
        if self.snaplen != 0 && incl > self.snaplen {
            return Err(malformed("captured length exceeds snaplen"));
        }
        let end = RECORD_HEADER_LEN
            .checked_add(incl_len)
            .ok_or(truncated.clone())?;
        let data = rest.get(RECORD_HEADER_LEN..end).ok_or(truncated)?;
        self.pos = start.saturating_add(end);
        let ts = Timestamp(
            i64::from(sec)
                .saturating_mul(Timestamp::NANOS_PER_SEC)
                .saturating_add(i64::from(frac).saturating_mul(self.frac_scale)),
        );
        Ok(Frame {
            ts,
            link: self.link,
            data,
            orig_len: orig,
            interface: 0,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::{CaptureFormat, CaptureReader};
    use super::*;

    /// Builds a pcap file: `nanos` selects the magic, `big` the byte order.
    pub(crate) fn build(
        big: bool,
        nanos: bool,
        snaplen: u32,
        linktype: u32,
        recs: &[(u32, u32, &[u8], u32)],
    ) -> Vec<u8> {
        let w32 = |v: &mut Vec<u8>, x: u32| {
            v.extend_from_slice(&if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        };
        let w16 = |v: &mut Vec<u8>, x: u16| {
            v.extend_from_slice(&if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        };
        let mut v = Vec::new();
        w32(&mut v, if nanos { MAGIC_NANOS } else { MAGIC_MICROS });
        w16(&mut v, 2);
        w16(&mut v, 4);
        w32(&mut v, 0);
        w32(&mut v, 0);
        w32(&mut v, snaplen);
        w32(&mut v, linktype);
        for (sec, frac, data, orig) in recs {
            w32(&mut v, *sec);
            w32(&mut v, *frac);
            w32(&mut v, data.len() as u32);
            w32(&mut v, *orig);
            v.extend_from_slice(data);
        }
        v
    }

    #[test]
    fn reads_all_four_variants() {
        for big in [false, true] {
            for nanos in [false, true] {
                let file = build(
                    big,
                    nanos,
                    65535,
                    1,
                    &[(10, 5, b"abcd", 4), (11, 7, b"xy", 60)],
                );
                let mut r = CaptureReader::new(&file).expect("header");
                assert_eq!(r.format(), CaptureFormat::Pcap);
                let a = r.next_frame().expect("first").expect("ok");
                let scale = if nanos { 1 } else { 1000 };
                assert_eq!(a.ts, Timestamp(10_000_000_000 + 5 * scale));
                assert_eq!(a.data, b"abcd");
                assert_eq!(a.link, LinkType::Ethernet);
                assert!(!a.is_truncated());
                let b = r.next().expect("second").expect("ok");
                assert_eq!(b.ts, Timestamp(11_000_000_000 + 7 * scale));
                assert_eq!(b.orig_len, 60);
                assert!(b.is_truncated());
                assert!(r.next().is_none());
                assert_eq!(r.offset(), file.len());
            }
        }
    }

    #[test]
    fn unknown_linktype_is_file_error() {
        let file = build(false, false, 65535, 147, &[]);
        assert_eq!(
            CaptureReader::new(&file).err(),
            Some(CaptureError::UnknownLinkType { linktype: 147 })
        );
    }

    #[test]
    fn fcs_bits_in_linktype_are_ignored() {
        let file = build(false, false, 65535, 0x1000_0001, &[]);
        assert!(CaptureReader::new(&file).is_ok());
    }

    #[test]
    fn short_header_is_truncated() {
        let file = build(false, false, 65535, 1, &[]);
        assert_eq!(
            CaptureReader::new(&file[..20]).err(),
            Some(CaptureError::TruncatedFile { offset: 0 })
        );
    }

    #[test]
    fn truncated_record_keeps_earlier_frames() {
        let mut file = build(
            false,
            false,
            65535,
            1,
            &[(1, 0, b"abcd", 4), (2, 0, b"efgh", 4)],
        );
        file.truncate(file.len() - 2);
        let items: Vec<_> = CaptureReader::new(&file).expect("header").collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert_eq!(
            items[1],
            Err(CaptureError::TruncatedFile { offset: 24 + 20 })
        );
        // A partial record header is truncation too.
        let file = build(false, false, 65535, 1, &[(1, 0, b"abcd", 4)]);
        let mut cut = file.clone();
        cut.extend_from_slice(&[1, 2, 3]);
        let items: Vec<_> = CaptureReader::new(&cut).expect("header").collect();
        assert_eq!(
            items.last(),
            Some(&Err(CaptureError::TruncatedFile { offset: file.len() }))
        );
    }

    #[test]
    fn malformed_records() {
        // incl_len > orig_len
        let file = build(false, false, 65535, 1, &[(1, 0, b"abcd", 2)]);
        assert!(matches!(
            CaptureReader::new(&file).expect("h").next(),
            Some(Err(CaptureError::Malformed { offset: 24, .. }))
        ));
        // incl_len > snaplen
        let file = build(false, false, 3, 1, &[(1, 0, b"abcd", 4)]);
        assert!(matches!(
            CaptureReader::new(&file).expect("h").next(),
            Some(Err(CaptureError::Malformed { .. }))
        ));
        // absurd incl_len
        let mut file = build(false, false, 0, 1, &[(1, 0, b"abcd", 4)]);
        file[24 + 8..24 + 12].copy_from_slice(&(1u32 << 20).to_le_bytes());
        file[24 + 12..24 + 16].copy_from_slice(&(1u32 << 20).to_le_bytes());
        let mut r = CaptureReader::new(&file).expect("h");
        assert!(matches!(
            r.next(),
            Some(Err(CaptureError::Malformed { .. }))
        ));
        assert!(r.next().is_none(), "fused after a fatal error");
    }
}
