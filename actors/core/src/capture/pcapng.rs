//! pcapng files (draft-ietf-opsawg-pcapng): a sequence of sections, each a Section Header
//! Block followed by Interface Description Blocks and packet blocks.
//!
//! Owns: block framing and validation (§3.1: length ≥ 12, multiple of 4, trailing length
//! equal to the leading one), per-section byte order and interface table, the
//! `if_tsresol`/`if_tsoffset` timestamp conversion, and EPB/SPB/OPB packet extraction.
//! Blocks we do not need (NRB, ISB, DSB, custom, unknown) are skipped.
//!
//! Invariants: `pos` only advances past whole validated blocks; the interface table
//! belongs to the current section and is reset by every SHB (§4.1); the interface table
//! is the only allocation and happens per IDB, never per packet.

use super::{CaptureError, Endian, Frame, LinkType, MAX_RECORD_LEN};
use flowmesh_schemas::Timestamp;

const BT_SHB: u32 = 0x0A0D_0D0A;
const BT_IDB: u32 = 0x0000_0001;
const BT_OPB: u32 = 0x0000_0002;
const BT_SPB: u32 = 0x0000_0003;
const BT_EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Option codes (§4.2): end of options, if_tsresol, if_tsoffset.
const OPT_ENDOFOPT: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;
/// Upper bound on IDBs per section: more is an attack on memory, not a capture.
const MAX_INTERFACES: usize = 65_536;

/// Whether `bytes` starts with a pcapng Section Header Block.
pub(super) fn is_pcapng(bytes: &[u8]) -> bool {
    Endian::Little.u32(bytes, 0) == Some(BT_SHB)
}

/// Timestamp resolution of an interface (`if_tsresol`, §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsResol {
    /// Units of 10^-n seconds.
    Pow10(u8),
    /// Units of 2^-n seconds.
    Pow2(u8),
}

impl TsResol {
    /// Converts a timestamp in interface units to nanoseconds, saturating.
    fn to_nanos(self, units: u64) -> i128 {
        let units = i128::from(units);
        match self {
            TsResol::Pow10(n) if n <= 9 => units * 10i128.pow(9 - u32::from(n)),
            // 10^38 is the largest power of ten in an i128; a finer unit rounds to 0 ns.
            TsResol::Pow10(n) => 10i128
                .checked_pow(u32::from(n) - 9)
                .map_or(0, |d| units / d),
            // units < 2^64 and 1e9 < 2^30, so the product fits in 94 bits.
            TsResol::Pow2(n) => (units * 1_000_000_000)
                .checked_shr(u32::from(n))
                .unwrap_or(0),
        }
    }
}

/// What we keep of an Interface Description Block.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    resol: TsResol,
    /// `if_tsoffset`: seconds added to every timestamp.
    offset_secs: i64,
}

/// Reader state for one pcapng file.
#[derive(Debug)]
pub(super) struct PcapNgReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    endian: Endian,
    interfaces: Vec<Interface>,
    /// Timestamp of the last timestamped packet, for SPBs which carry none.
    last_ts: Timestamp,
}

/// One framed block: its type, body (between the length fields) and start offset.
struct Block<'a> {
    btype: u32,
    body: &'a [u8],
    start: usize,
}

impl<'a> PcapNgReader<'a> {
    /// Validates the leading SHB.
    pub(super) fn new(bytes: &'a [u8]) -> Result<Self, CaptureError> {
        let mut r = PcapNgReader {
            bytes,
            pos: 0,
            endian: Endian::Little,
            interfaces: Vec::new(),
            last_ts: Timestamp(0),
        };
        match r.next_block() {
            Some(Ok(b)) if b.btype == BT_SHB => Ok(r),
            Some(Err(e)) => Err(e),
            _ => Err(CaptureError::NotACaptureFile),
        }
    }

    /// Bytes consumed so far.
    pub(super) fn offset(&self) -> usize {
        self.pos
    }

    /// The next packet, skipping non-packet blocks.
    pub(super) fn next_frame(&mut self) -> Option<Result<Frame<'a>, CaptureError>> {
        loop {
            let block = match self.next_block()? {
                Ok(b) => b,
                Err(e) => return Some(Err(e)),
            };
            let frame = match block.btype {
                BT_IDB => match self.read_idb(&block) {
                    Ok(()) => continue,
                    Err(e) => return Some(Err(e)),
                },
                BT_EPB => self.read_epb(&block),
                BT_SPB => self.read_spb(&block),
                BT_OPB => self.read_opb(&block),
                // SHB was handled by next_block; NRB, ISB, DSB, custom, unknown: skip.
                _ => continue,
            };
            return Some(frame);
        }
    }

    /// Frames the next block, handling SHBs (byte order and interface reset) itself.
    fn next_block(&mut self) -> Option<Result<Block<'a>, CaptureError>> {
        let start = self.pos;
        let rest = self.bytes.get(start..)?;
        if rest.is_empty() {
            return None;
        }
        let truncated = CaptureError::TruncatedFile { offset: start };
        let malformed = |what| {
            Err(CaptureError::Malformed {
                offset: start,
                what,
            })
        };
        let Some(btype_le) = Endian::Little.u32(rest, 0) else {
            return Some(Err(truncated));
        };
        // The block type of an SHB is a palindrome, so it reads the same in both byte
        // orders; its byte-order magic decides the order of the whole section (§4.1).
        if btype_le == BT_SHB {
            self.endian = match Endian::Little.u32(rest, 8) {
                Some(BYTE_ORDER_MAGIC) => Endian::Little,
                Some(m) if m.swap_bytes() == BYTE_ORDER_MAGIC => Endian::Big,
                Some(_) => return Some(malformed("bad section byte-order magic")),
                None => return Some(Err(truncated)),
            };
            self.interfaces.clear();
        }
        let e = self.endian;
        let btype = if btype_le == BT_SHB {
            BT_SHB
        } else {
            e.u32(rest, 0).unwrap_or(btype_le)
        };
        let Some(total) = e.u32(rest, 4) else {
            return Some(Err(truncated));
        };
        let Ok(total) = usize::try_from(total) else {
            return Some(malformed("block length too large"));
        };
        let min = if btype == BT_SHB { 28 } else { 12 };
        if total < min {
            return Some(malformed("block length below minimum"));
        }
        if total % 4 != 0 {
            return Some(malformed("block length not a multiple of 4"));
        }
        let Some(block) = rest.get(..total) else {
            return Some(Err(truncated));
        };
        if e.u32(block, total - 4) != Some(total as u32) {
            return Some(malformed("trailing block length differs"));
        }
        let body = block.get(8..total - 4).unwrap_or_default();
        self.pos = start.saturating_add(total);
        Some(Ok(Block { btype, body, start }))
    }

    /// Interface Description Block (§4.2): link type, snaplen, options.
    fn read_idb(&mut self, b: &Block<'a>) -> Result<(), CaptureError> {
        let e = self.endian;
        let malformed = |what| CaptureError::Malformed {
            offset: b.start,
            what,
        };
        let linktype = e
            .u16(b.body, 0)
            .ok_or(malformed("short interface description block"))?;
        let snaplen = e
            .u32(b.body, 4)
            .ok_or(malformed("short interface description block"))?;
        let mut iface = Interface {
            link: LinkType::from_linktype_lossy(u32::from(linktype)),
            snaplen,
            resol: TsResol::Pow10(6),
            offset_secs: 0,
        };
        for (code, value) in Options::new(e, b.body.get(8..).unwrap_or_default()) {
            match (code, value) {
                (OPT_IF_TSRESOL, [v, ..]) => {
                    iface.resol = if v & 0x80 != 0 {
                        TsResol::Pow2(v & 0x7f)
                    } else {
                        TsResol::Pow10(*v)
                    };
                }
                (OPT_IF_TSOFFSET, v) => {
                    if let Some(off) = e.u64(v, 0) {
                        iface.offset_secs = off as i64;
                    }
                }
                _ => {}
            }
        }
        if self.interfaces.len() >= MAX_INTERFACES {
            return Err(malformed("too many interfaces"));
        }
        self.interfaces.push(iface);
        Ok(())
    }

    /// The interface `id`, or a placeholder that decodes as unsupported.
    fn interface(&self, id: u32) -> Interface {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.interfaces.get(i))
            .copied()
            .unwrap_or(Interface {
                link: LinkType::UNKNOWN_INTERFACE,
                snaplen: 0,
                resol: TsResol::Pow10(6),
                offset_secs: 0,
            })
    }

    /// Converts a 64-bit timestamp of `iface` to nanoseconds since the epoch.
    fn timestamp(iface: &Interface, units: u64) -> Timestamp {
        let ns = iface.resol.to_nanos(units) + i128::from(iface.offset_secs) * 1_000_000_000;
        Timestamp(ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
    }

    /// Common tail of EPB and OPB: interface id, timestamp, caplen, origlen, data.
    fn packet(
        &mut self,
        b: &Block<'a>,
        iface_id: u32,
        hdr: usize,
    ) -> Result<Frame<'a>, CaptureError> {
        let e = self.endian;
        let malformed = |what| CaptureError::Malformed {
            offset: b.start,
            what,
        };
        let short = || malformed("short packet block");
        let ts_hi = e.u32(b.body, hdr).ok_or_else(short)?;
        let ts_lo = e.u32(b.body, hdr + 4).ok_or_else(short)?;
        let caplen = e.u32(b.body, hdr + 8).ok_or_else(short)?;
        let orig_len = e.u32(b.body, hdr + 12).ok_or_else(short)?;
        let caplen = usize::try_from(caplen).map_err(|_| malformed("captured length too large"))?;
        if caplen > MAX_RECORD_LEN {
            return Err(malformed("captured length too large"));
        }
        let start = hdr + 16;
        let data = b
            .body
            .get(start..start + caplen)
            .ok_or(malformed("captured length exceeds block"))?;
        let iface = self.interface(iface_id);
        let ts = Self::timestamp(&iface, (u64::from(ts_hi) << 32) | u64::from(ts_lo));
        self.last_ts = ts;
        Ok(Frame {
            ts,
            link: iface.link,
            data,
            orig_len,
            interface: iface_id,
        })
    }

    /// Enhanced Packet Block (§4.3).
    fn read_epb(&mut self, b: &Block<'a>) -> Result<Frame<'a>, CaptureError> {
        let id = self.endian.u32(b.body, 0).ok_or(CaptureError::Malformed {
            offset: b.start,
            what: "short packet block",
        })?;
        self.packet(b, id, 4)
    }

    /// Obsolete Packet Block (Appendix A): 16-bit interface id and drop count.
    fn read_opb(&mut self, b: &Block<'a>) -> Result<Frame<'a>, CaptureError> {
        let id = self.endian.u16(b.body, 0).ok_or(CaptureError::Malformed {
            offset: b.start,
            what: "short packet block",
        })?;
        self.packet(b, u32::from(id), 4)
    }

    /// Simple Packet Block (§4.4): interface 0, no timestamp, captured length is
    /// min(original length, room in the block, interface snaplen).
    fn read_spb(&mut self, b: &Block<'a>) -> Result<Frame<'a>, CaptureError> {
        let orig_len = self.endian.u32(b.body, 0).ok_or(CaptureError::Malformed {
            offset: b.start,
            what: "short packet block",
        })?;
        let iface = self.interface(0);
        let room = b.body.len().saturating_sub(4);
        let mut caplen = usize::try_from(orig_len)
            .unwrap_or(usize::MAX)
            .min(room)
            .min(MAX_RECORD_LEN);
        if iface.snaplen != 0 {
            caplen = caplen.min(usize::try_from(iface.snaplen).unwrap_or(usize::MAX));
        }
        let data = b.body.get(4..4 + caplen).unwrap_or_default();
        Ok(Frame {
            ts: self.last_ts,
            link: iface.link,
            data,
            orig_len,
            interface: 0,
        })
    }
}

/// Iterator over the (code, value) options of a block (§3.5); stops at opt_endofopt or
/// at the first option that does not fit.
struct Options<'a> {
    e: Endian,
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    fn new(e: Endian, rest: &'a [u8]) -> Self {
        Options { e, rest }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let code = self.e.u16(self.rest, 0)?;
        let len = usize::from(self.e.u16(self.rest, 2)?);
        if code == OPT_ENDOFOPT {
            return None;
        }
        let value = self.rest.get(4..4 + len)?;
        // Values are padded to 32 bits.
        let padded = 4 + len.div_ceil(4) * 4;
        self.rest = self.rest.get(padded..).unwrap_or_default();
        Some((code, value))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::{CaptureFormat, CaptureReader};
    use super::*;

    /// A pcapng writer for tests, in either byte order.
    pub(crate) struct Writer {
        pub(crate) big: bool,
        pub(crate) out: Vec<u8>,
    }

    impl Writer {
        pub(crate) fn new(big: bool) -> Self {
            let mut w = Writer {
                big,
                out: Vec::new(),
            };
            w.shb();
            w
        }
        fn u16b(&self, x: u16) -> [u8; 2] {
            if self.big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            }
        }
        fn u32b(&self, x: u32) -> [u8; 4] {
            if self.big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            }
        }
        pub(crate) fn block(&mut self, btype: u32, body: &[u8]) {
            let mut body = body.to_vec();
            while !body.len().is_multiple_of(4) {
                body.push(0);
            }
            let total = (body.len() + 12) as u32;
            let bt = self.u32b(btype);
            let tl = self.u32b(total);
            self.out.extend_from_slice(&bt);
            self.out.extend_from_slice(&tl);
            self.out.extend_from_slice(&body);
            self.out.extend_from_slice(&tl);
        }
        pub(crate) fn shb(&mut self) {
            let mut b = self.u32b(BYTE_ORDER_MAGIC).to_vec();
            b.extend_from_slice(&self.u16b(1));
            b.extend_from_slice(&self.u16b(0));
            b.extend_from_slice(&[0xff; 8]);
            self.block(BT_SHB, &b);
        }
        pub(crate) fn idb(
            &mut self,
            linktype: u16,
            snaplen: u32,
            tsresol: Option<u8>,
            tsoffset: Option<i64>,
        ) {
            let mut b = self.u16b(linktype).to_vec();
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&self.u32b(snaplen));
            // An unrelated option first (if_name), to exercise option walking.
            b.extend_from_slice(&self.u16b(2));
            b.extend_from_slice(&self.u16b(3));
            b.extend_from_slice(b"eth\0");
            if let Some(r) = tsresol {
                b.extend_from_slice(&self.u16b(OPT_IF_TSRESOL));
                b.extend_from_slice(&self.u16b(1));
                b.extend_from_slice(&[r, 0, 0, 0]);
            }
            if let Some(o) = tsoffset {
                b.extend_from_slice(&self.u16b(OPT_IF_TSOFFSET));
                b.extend_from_slice(&self.u16b(8));
                let v = if self.big {
                    o.to_be_bytes()
                } else {
                    o.to_le_bytes()
                };
                b.extend_from_slice(&v);
            }
            b.extend_from_slice(&[0, 0, 0, 0]);
            self.block(BT_IDB, &b);
        }
        pub(crate) fn epb(&mut self, iface: u32, ts: u64, data: &[u8], orig: u32) {
            let mut b = self.u32b(iface).to_vec();
            b.extend_from_slice(&self.u32b((ts >> 32) as u32));
            b.extend_from_slice(&self.u32b(ts as u32));
            b.extend_from_slice(&self.u32b(data.len() as u32));
            b.extend_from_slice(&self.u32b(orig));
            b.extend_from_slice(data);
            self.block(BT_EPB, &b);
        }
        pub(crate) fn spb(&mut self, data: &[u8], orig: u32) {
            let mut b = self.u32b(orig).to_vec();
            b.extend_from_slice(data);
            self.block(BT_SPB, &b);
        }
    }

    #[test]
    fn two_interfaces_different_links_and_resolutions() {
        for big in [false, true] {
            let mut w = Writer::new(big);
            w.idb(1, 65535, None, None); // Ethernet, default µs
            w.idb(101, 65535, Some(9), Some(100)); // Raw, ns, +100 s
            w.block(4, &[0; 8]); // NRB: skipped
            w.epb(0, 1_500_000, b"ether", 5);
            w.epb(1, 2_000_000_123, b"raw-ip", 6);
            w.block(5, &[0; 16]); // ISB: skipped
            w.block(0x0BAD, &[1, 2, 3, 4]); // custom: skipped
            let mut r = CaptureReader::new(&w.out).expect("shb");
            assert_eq!(r.format(), CaptureFormat::PcapNg);
            let a = r.next().expect("a").expect("ok");
            assert_eq!(
                (a.link, a.interface, a.data),
                (LinkType::Ethernet, 0, &b"ether"[..])
            );
            assert_eq!(a.ts, Timestamp(1_500_000_000));
            let b = r.next().expect("b").expect("ok");
            assert_eq!(
                (b.link, b.interface, b.data),
                (LinkType::Raw, 1, &b"raw-ip"[..])
            );
            assert_eq!(b.ts, Timestamp(102_000_000_123));
            assert!(r.next().is_none());
            assert_eq!(r.offset(), w.out.len());
        }
    }

    #[test]
    fn base2_resolution() {
        let mut w = Writer::new(false);
        w.idb(1, 0, Some(0x80 | 10), None); // units of 1/1024 s
        w.epb(0, 2048 + 512, b"x", 1);
        let f = CaptureReader::new(&w.out)
            .expect("shb")
            .next()
            .expect("f")
            .expect("ok");
        assert_eq!(f.ts, Timestamp(2_500_000_000));
    }

    #[test]
    fn simple_packet_block_uses_last_timestamp_and_snaplen() {
        let mut w = Writer::new(false);
        w.idb(1, 4, None, None);
        w.epb(0, 7, b"abcd", 4);
        w.spb(b"abcdefgh", 8); // snaplen 4 cuts it
        w.spb(b"ab", 2); // padded to 4 in the block; orig_len 2 bounds it
        let frames: Vec<_> = CaptureReader::new(&w.out)
            .expect("shb")
            .map(|f| f.expect("ok"))
            .collect();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[1].ts, Timestamp(7_000));
        assert_eq!(frames[1].data, b"abcd");
        assert_eq!(frames[1].orig_len, 8);
        assert!(frames[1].is_truncated());
        assert_eq!(frames[2].data, b"ab");
    }

    #[test]
    fn unknown_interface_and_linktype_do_not_abort() {
        let mut w = Writer::new(false);
        w.idb(147, 0, None, None); // USER0: not decoded
        w.epb(0, 1, b"a", 1);
        w.epb(9, 1, b"b", 1); // no such interface
        w.idb(1, 0, None, None);
        w.epb(1, 1, b"c", 1);
        let frames: Vec<_> = CaptureReader::new(&w.out)
            .expect("shb")
            .map(|f| f.expect("ok"))
            .collect();
        assert_eq!(frames[0].link, LinkType::Unsupported(147));
        assert_eq!(frames[1].link, LinkType::UNKNOWN_INTERFACE);
        assert_eq!(frames[2].link, LinkType::Ethernet);
    }

    #[test]
    fn new_section_resets_interfaces_and_may_switch_byte_order() {
        let mut w = Writer::new(false);
        w.idb(1, 0, None, None);
        w.epb(0, 1, b"a", 1);
        let mut w2 = Writer::new(true);
        w2.idb(229, 0, Some(9), None);
        w2.epb(0, 5, b"b", 1);
        w2.epb(1, 5, b"c", 1); // interface 1 of the first section is gone
        let mut file = w.out.clone();
        file.extend_from_slice(&w2.out);
        let frames: Vec<_> = CaptureReader::new(&file)
            .expect("shb")
            .map(|f| f.expect("ok"))
            .collect();
        assert_eq!(frames[0].link, LinkType::Ethernet);
        assert_eq!(
            (frames[1].link, frames[1].ts),
            (LinkType::Ipv6, Timestamp(5))
        );
        assert_eq!(frames[2].link, LinkType::UNKNOWN_INTERFACE);
    }

    #[test]
    fn block_validation() {
        let mut w = Writer::new(false);
        w.idb(1, 0, None, None);
        w.epb(0, 1, b"abcd", 4);
        let good = w.out.clone();
        let epb_at = good.len() - 36;
        // Trailing length mismatch.
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 4] ^= 4;
        let mut r = CaptureReader::new(&bad).expect("shb");
        assert_eq!(
            r.next(),
            Some(Err(CaptureError::Malformed {
                offset: epb_at,
                what: "trailing block length differs"
            }))
        );
        assert_eq!(r.next(), None);
        // Not a multiple of 4.
        let mut bad = good.clone();
        bad[epb_at + 4] = 37;
        assert!(matches!(
            CaptureReader::new(&bad).expect("shb").next(),
            Some(Err(CaptureError::Malformed { .. }))
        ));
        // Below the minimum.
        let mut bad = good.clone();
        bad[epb_at + 4] = 8;
        assert!(matches!(
            CaptureReader::new(&bad).expect("shb").next(),
            Some(Err(CaptureError::Malformed { .. }))
        ));
        // Captured length larger than the block.
        let mut bad = good.clone();
        bad[epb_at + 20] = 200;
        assert!(matches!(
            CaptureReader::new(&bad).expect("shb").next(),
            Some(Err(CaptureError::Malformed { .. }))
        ));
        // Cut file.
        let cut = &good[..good.len() - 3];
        assert_eq!(
            CaptureReader::new(cut).expect("shb").next(),
            Some(Err(CaptureError::TruncatedFile { offset: epb_at }))
        );
        // Bad byte-order magic.
        let mut bad = good.clone();
        bad[8] = 0;
        assert!(matches!(
            CaptureReader::new(&bad).err(),
            Some(CaptureError::Malformed { .. })
        ));
    }

    #[test]
    fn resolution_conversion_saturates() {
        assert_eq!(TsResol::Pow10(6).to_nanos(1), 1000);
        assert_eq!(TsResol::Pow10(12).to_nanos(5000), 5);
        assert_eq!(TsResol::Pow10(127).to_nanos(u64::MAX), 0);
        assert_eq!(TsResol::Pow2(127).to_nanos(u64::MAX), 0);
        assert_eq!(TsResol::Pow2(0).to_nanos(3), 3_000_000_000);
    }
}
