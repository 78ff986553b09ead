//! Classic libpcap file writer (microsecond or nanosecond timestamps, Ethernet link type).

use std::io::{self, Write};

/// Timestamp resolution of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Magic 0xa1b2c3d4: microseconds.
    Micro,
    /// Magic 0xa1b23c4d: nanoseconds.
    Nano,
}

const LINKTYPE_ETHERNET: u32 = 1;
const SNAPLEN: u32 = 262_144;

/// Writes packets to a classic pcap stream; counts packets and bytes written.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    res: Resolution,
    packets: u64,
    bytes: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header and returns the writer. Pass a buffered `out`.
    pub fn new(mut out: W, res: Resolution) -> io::Result<Self> {
        let magic: u32 = match res {
            Resolution::Micro => 0xa1b2_c3d4,
            Resolution::Nano => 0xa1b2_3c4d,
        };
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&magic.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(Self {
            out,
            res,
            packets: 0,
            bytes: 24,
        })
    }

    /// Appends one frame captured at `ts_ns` nanoseconds since the epoch.
    pub fn write(&mut self, ts_ns: u64, frame: &[u8]) -> io::Result<()> {
        let secs = (ts_ns / 1_000_000_000) as u32;
        let frac = match self.res {
            Resolution::Micro => ((ts_ns % 1_000_000_000) / 1000) as u32,
            Resolution::Nano => (ts_ns % 1_000_000_000) as u32,
        };
        let len = frame.len() as u32;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&frac.to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(frame)?;
        self.packets += 1;
        self.bytes += 16 + frame.len() as u64;
        Ok(())
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Bytes written so far, headers included.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_record_layout() {
        let mut w = PcapWriter::new(Vec::new(), Resolution::Micro).expect("vec write");
        w.write(1_500_000_002_000, &[1, 2, 3]).expect("vec write");
        let v = w.finish().expect("flush");
        assert_eq!(&v[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(v.len(), 24 + 16 + 3);
        assert_eq!(u32::from_le_bytes([v[24], v[25], v[26], v[27]]), 1500);
        assert_eq!(u32::from_le_bytes([v[28], v[29], v[30], v[31]]), 2);
        assert_eq!(&v[40..], &[1, 2, 3]);
    }
}
