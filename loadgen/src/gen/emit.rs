//! Writes bursts to the pcap with impairments applied: loss upstream of the capture point
//! (the segment shows up later, as its retransmission), reordering of neighbours and
//! duplication. All decisions come from the seeded random stream.

use super::burst::Burst;
use crate::pcap::PcapWriter;
use crate::rng::Rng;
use std::io::{self, Write};

/// Impairment rates, each a probability per packet.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Impairments {
    /// Lost before the sensor and retransmitted after the rest of the burst.
    pub loss: f64,
    /// Swapped with the packet after it.
    pub reorder: f64,
    /// Captured twice.
    pub dup: f64,
}

/// Pcap output with a clock and impairments.
#[derive(Debug)]
pub struct Emitter<W: Write> {
    pcap: PcapWriter<W>,
    imp: Impairments,
    rng: Rng,
    clock_ns: u64,
    order: Vec<usize>,
}

/// First timestamp of a generated file: 2026-01-01T00:00:00Z.
pub const EPOCH_NS: u64 = 1_767_225_600_000_000_000;

impl<W: Write> Emitter<W> {
    /// An emitter over `pcap` with its own random stream for impairments and gaps.
    pub fn new(pcap: PcapWriter<W>, imp: Impairments, rng: Rng) -> Self {
        Self {
            pcap,
            imp,
            rng,
            clock_ns: EPOCH_NS,
            order: Vec::with_capacity(64),
        }
    }

    /// Writes and clears `burst`.
    pub fn flush(&mut self, burst: &mut Burst) -> io::Result<()> {
        let n = burst.len();
        self.order.clear();
        self.order.extend(0..n);
        if n > 1 {
            if self.imp.loss > 0.0 {
                let mut i = 0;
                let mut moved = 0;
                while i + moved < n - 1 {
                    if self.rng.chance(self.imp.loss) {
                        let p = self.order.remove(i);
                        self.order.push(p);
                        moved += 1;
                    } else {
                        i += 1;
                    }
                }
            }
            if self.imp.reorder > 0.0 {
                let mut i = 0;
                while i + 1 < n {
                    if self.rng.chance(self.imp.reorder) {
                        self.order.swap(i, i + 1);
                        i += 1;
                    }
                    i += 1;
                }
            }
        }
        for k in 0..n {
            let f = burst.frame(self.order[k]);
            // 1..32 us between packets: the file's time runs, flows interleave
            self.clock_ns += 1000 + (self.rng.next_u32() & 0x7fff) as u64;
            self.pcap.write(self.clock_ns, f)?;
            if self.imp.dup > 0.0 && self.rng.chance(self.imp.dup) {
                self.clock_ns += 2000;
                self.pcap.write(self.clock_ns, f)?;
            }
        }
        burst.clear();
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.pcap.bytes()
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.pcap.packets()
    }

    /// Flushes the file.
    pub fn finish(self) -> io::Result<W> {
        self.pcap.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::Resolution;

    #[test]
    fn impairments_keep_every_frame() {
        let pcap = PcapWriter::new(Vec::new(), Resolution::Micro).expect("vec");
        let imp = Impairments {
            loss: 0.3,
            reorder: 0.3,
            dup: 0.0,
        };
        let mut e = Emitter::new(pcap, imp, Rng::new(4));
        let mut b = Burst::new();
        for i in 0..50u8 {
            b.push(&[i]);
        }
        e.flush(&mut b).expect("write");
        let v = e.finish().expect("flush");
        let mut seen: Vec<u8> = (0..50).map(|k| v[24 + k * 17 + 16]).collect();
        assert_ne!(seen, (0..50).collect::<Vec<u8>>(), "order changed");
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<u8>>(), "nothing lost for good");
    }
}
