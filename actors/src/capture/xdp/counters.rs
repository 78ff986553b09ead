//! [`XdpCounters`]: the XDP program's per-CPU counters, summed over the CPUs.

use super::abi::{counter, CounterBlock};

/// What the XDP program did, summed over all CPUs since it was loaded. Every packet is
/// in `seen` and in exactly one of `redirected`, `redirect_failed`, `bypass_packets` and
/// `unparsed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XdpCounters {
    /// Packets the program ran on.
    pub seen: u64,
    /// Redirected to the AF_XDP socket of their receive queue.
    pub redirected: u64,
    /// No socket on their queue: passed to the kernel stack.
    pub redirect_failed: u64,
    /// Packets of bypassed flows: counted in the bypass map, then passed or dropped.
    pub bypass_packets: u64,
    /// Their frame bytes.
    pub bypass_bytes: u64,
    /// FIN/RST segments of bypassed flows: redirected, not counted in the map.
    pub bypass_fin_rst: u64,
    /// Not IPv4/IPv6 (ARP, ...) or a truncated/malformed L2/L3 header: passed.
    pub unparsed: u64,
    /// IP fragments: redirected without a bypass lookup (user space defragments).
    pub fragments: u64,
    /// IP packets whose TCP/UDP header was not reached (IPv6 extension-header limit,
    /// truncation): redirected without a bypass lookup.
    pub l4_unreached: u64,
}

impl XdpCounters {
    /// Adds `o`'s counts (an earlier program's, when a capture was reopened).
    pub fn merge(&mut self, o: &XdpCounters) {
        self.seen += o.seen;
        self.redirected += o.redirected;
        self.redirect_failed += o.redirect_failed;
        self.bypass_packets += o.bypass_packets;
        self.bypass_bytes += o.bypass_bytes;
        self.bypass_fin_rst += o.bypass_fin_rst;
        self.unparsed += o.unparsed;
        self.fragments += o.fragments;
        self.l4_unreached += o.l4_unreached;
    }

    /// Sums per-CPU blocks.
    pub(super) fn sum<'a>(blocks: impl IntoIterator<Item = &'a CounterBlock>) -> Self {
        let mut t = [0u64; super::abi::COUNTERS];
        for b in blocks {
            for (t, c) in t.iter_mut().zip(b.c) {
                *t = t.wrapping_add(c);
            }
        }
        XdpCounters {
            seen: t[counter::SEEN],
            redirected: t[counter::REDIRECTED],
            redirect_failed: t[counter::REDIRECT_FAILED],
            bypass_packets: t[counter::BYPASS_PACKETS],
            bypass_bytes: t[counter::BYPASS_BYTES],
            bypass_fin_rst: t[counter::BYPASS_FIN_RST],
            unparsed: t[counter::UNPARSED],
            fragments: t[counter::FRAGMENTS],
            l4_unreached: t[counter::L4_UNREACHED],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_cpu_by_index() {
        let a = CounterBlock {
            c: [1, 2, 3, 4, 5, 6, 7, 8, 9],
        };
        let b = CounterBlock { c: [10; 9] };
        let s = XdpCounters::sum([&a, &b]);
        assert_eq!(
            (s.seen, s.redirected, s.unparsed, s.l4_unreached),
            (11, 12, 17, 19)
        );
    }
}
