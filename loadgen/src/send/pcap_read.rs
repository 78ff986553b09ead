//! Classic pcap reader for the sender: microsecond or nanosecond files in either byte order,
//! Ethernet link type only. The whole file is validated when it is opened, so a truncated
//! or corrupt capture is an error before the first frame leaves; after that, iterating
//! the frames cannot fail. pcapng is recognised and refused.

use crate::pcap::Resolution;
use thiserror::Error;

/// LINKTYPE_ETHERNET.
const LINKTYPE_ETHERNET: u32 = 1;
/// Largest captured length accepted per record (libpcap's MAXIMUM_SNAPLEN); anything
/// larger means the record headers are not where we think they are.
const MAX_CAPLEN: u32 = 262_144;
const FILE_HEADER: usize = 24;
const RECORD_HEADER: usize = 16;
/// The pcapng Section Header Block type, the same in both byte orders.
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;

/// Why a capture cannot be replayed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PcapReadError {
    /// Shorter than the 24-byte file header.
    #[error("not a pcap file: {0} bytes, shorter than the 24-byte file header")]
    TooShort(usize),
    /// A pcapng file.
    #[error("pcapng is not supported: convert to classic pcap first (editcap -F pcap IN OUT)")]
    Pcapng,
    /// Unknown magic number.
    #[error("not a pcap file: magic {0:#010x}")]
    BadMagic(u32),
    /// Not Ethernet.
    #[error("link type {0} is not Ethernet (1): only Ethernet captures can be sent")]
    LinkType(u32),
    /// The file ends inside a record.
    #[error(
        "truncated capture: record {index} at byte {offset} needs {needed} bytes, {left} left"
    )]
    Truncated {
        /// Zero-based record number.
        index: u64,
        /// Offset of the record header.
        offset: usize,
        /// Bytes the record (header and data) needs.
        needed: usize,
        /// Bytes left in the file.
        left: usize,
    },
    /// A record claims an implausible captured length.
    #[error("corrupt capture: record {index} at byte {offset} claims {caplen} captured bytes")]
    BadLength {
        /// Zero-based record number.
        index: u64,
        /// Offset of the record header.
        offset: usize,
        /// The captured length it claims.
        caplen: u32,
    },
}

/// A validated capture over borrowed bytes.
#[derive(Debug, Clone, Copy)]
pub struct PcapFile<'a> {
    data: &'a [u8],
    big_endian: bool,
    resolution: Resolution,
    frames: u64,
}

impl<'a> PcapFile<'a> {
    /// Checks the header and every record of `data`.
    pub fn parse(data: &'a [u8]) -> Result<Self, PcapReadError> {
        if data.len() >= 4 && u32::from_le_bytes(word(data, 0)) == PCAPNG_SHB {
            return Err(PcapReadError::Pcapng);
        }
        if data.len() < FILE_HEADER {
            return Err(PcapReadError::TooShort(data.len()));
        }
        let (big_endian, resolution) = match u32::from_le_bytes(word(data, 0)) {
            0xa1b2_c3d4 => (false, Resolution::Micro),
            0xa1b2_3c4d => (false, Resolution::Nano),
            0xd4c3_b2a1 => (true, Resolution::Micro),
            0x4d3c_b2a1 => (true, Resolution::Nano),
            m => return Err(PcapReadError::BadMagic(m)),
        };
        let mut file = Self {
            data,
            big_endian,
            resolution,
            frames: 0,
        };
        // the low 16 bits are the link type; the upper bits carry FCS flags (pcap-linktype(7))
        let link = file.u32_at(20) & 0xffff;
        if link != LINKTYPE_ETHERNET {
            return Err(PcapReadError::LinkType(link));
        }
        let mut offset = FILE_HEADER;
        while offset < data.len() {
            let left = data.len() - offset;
            let index = file.frames;
            if left < RECORD_HEADER {
                return Err(PcapReadError::Truncated {
                    index,
                    offset,
                    needed: RECORD_HEADER,
                    left,
                });
            }
            let caplen = file.u32_at(offset + 8);
            if caplen > MAX_CAPLEN {
                return Err(PcapReadError::BadLength {
                    index,
                    offset,
                    caplen,
                });
            }
            let needed = RECORD_HEADER + caplen as usize;
            if left < needed {
                return Err(PcapReadError::Truncated {
                    index,
                    offset,
                    needed,
                    left,
                });
            }
            offset += needed;
            file.frames += 1;
        }
        Ok(file)
    }

    /// Number of frames.
    pub fn len(&self) -> u64 {
        self.frames
    }

    /// Whether the capture holds no frame.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Timestamp resolution of the file.
    pub fn resolution(&self) -> Resolution {
        self.resolution
    }

    /// The captured bytes of every frame, in file order.
    pub fn frames(&self) -> Frames<'a> {
        Frames {
            rest: &self.data[FILE_HEADER..],
            big_endian: self.big_endian,
        }
    }

    fn u32_at(&self, at: usize) -> u32 {
        let w = word(self.data, at);
        if self.big_endian {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        }
    }
}

/// The four bytes at `at`; the caller has checked the length.
fn word(data: &[u8], at: usize) -> [u8; 4] {
    [data[at], data[at + 1], data[at + 2], data[at + 3]]
}

/// Iterator over the frames of a [`PcapFile`]; cheap to clone (it is a slice).
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    rest: &'a [u8],
    big_endian: bool,
}

impl<'a> Iterator for Frames<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // `PcapFile::parse` checked every record; `get` keeps this panic-free regardless
        let w = self.rest.get(8..12)?;
        let w = [w[0], w[1], w[2], w[3]];
        let caplen = if self.big_endian {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        } as usize;
        let frame = self.rest.get(RECORD_HEADER..RECORD_HEADER + caplen)?;
        self.rest = &self.rest[RECORD_HEADER + caplen..];
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::PcapWriter;

    fn frames() -> Vec<Vec<u8>> {
        (0..20u8)
            .map(|i| (0..60 + usize::from(i) * 37).map(|k| k as u8 ^ i).collect())
            .collect()
    }

    fn written(res: Resolution) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new(), res).expect("vec write");
        for (i, f) in frames().iter().enumerate() {
            w.write(1_767_225_600_000_000_000 + i as u64 * 1_234_567, f)
                .expect("vec write");
        }
        w.finish().expect("flush")
    }

    /// `v`, a little-endian file written by `PcapWriter`, with every header field swapped.
    fn big_endian(v: &[u8]) -> Vec<u8> {
        let mut out = v.to_vec();
        let swap = |b: &mut [u8]| b.reverse();
        swap(&mut out[0..4]);
        swap(&mut out[4..6]);
        swap(&mut out[6..8]);
        for at in [8, 12, 16, 20] {
            swap(&mut out[at..at + 4]);
        }
        let mut off = 24;
        while off < out.len() {
            let caplen = u32::from_le_bytes(word(&out, off + 8)) as usize;
            for at in [0, 4, 8, 12] {
                swap(&mut out[off + at..off + at + 4]);
            }
            off += 16 + caplen;
        }
        out
    }

    #[test]
    fn round_trip_through_the_writer() {
        for res in [Resolution::Micro, Resolution::Nano] {
            let v = written(res);
            let f = PcapFile::parse(&v).expect("valid file");
            assert_eq!(f.resolution(), res);
            assert_eq!(f.len(), 20);
            let got: Vec<&[u8]> = f.frames().collect();
            let want = frames();
            assert_eq!(got, want.iter().map(Vec::as_slice).collect::<Vec<_>>());
        }
    }

    #[test]
    fn big_endian_files() {
        for res in [Resolution::Micro, Resolution::Nano] {
            let v = big_endian(&written(res));
            let f = PcapFile::parse(&v).expect("valid big-endian file");
            assert_eq!(f.resolution(), res);
            assert_eq!(f.frames().count(), 20);
            assert_eq!(f.frames().last(), frames().last().map(Vec::as_slice));
        }
    }

    #[test]
    fn every_truncation_is_an_error_or_a_shorter_file() {
        let v = written(Resolution::Micro);
        let mut boundaries = vec![24];
        for f in frames() {
            boundaries.push(boundaries[boundaries.len() - 1] + 16 + f.len());
        }
        for cut in 0..v.len() {
            match PcapFile::parse(&v[..cut]) {
                Ok(f) => {
                    // cut exactly between records: a valid, shorter capture
                    let k = boundaries.iter().position(|&b| b == cut);
                    assert_eq!(k.map(|k| k as u64), Some(f.len()), "cut at {cut}");
                }
                Err(PcapReadError::TooShort(n)) => assert!(cut < 24 && n == cut),
                Err(PcapReadError::Truncated { left, needed, .. }) => assert!(left < needed),
                Err(e) => panic!("cut at {cut}: unexpected {e}"),
            }
        }
    }

    #[test]
    fn refuses_other_formats() {
        let mut v = written(Resolution::Micro);
        v[20] = 113; // LINKTYPE_LINUX_SLL
        assert_eq!(
            PcapFile::parse(&v).err(),
            Some(PcapReadError::LinkType(113))
        );
        let ng = [0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a];
        let e = PcapFile::parse(&ng).expect_err("pcapng");
        assert!(e.to_string().contains("pcapng"));
        assert_eq!(
            PcapFile::parse(&[0u8; 24]).err(),
            Some(PcapReadError::BadMagic(0))
        );
    }

    #[test]
    fn implausible_length_is_corruption() {
        let mut v = written(Resolution::Micro);
        v[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            PcapFile::parse(&v),
            Err(PcapReadError::BadLength { index: 0, .. })
        ));
    }
}
