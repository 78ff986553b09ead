//! One TCP connection as a capture point sees it: three-way handshake with real options,
//! data segmented at the MSS with ACKs from the receiver, and FIN teardown (RFC 9293).

use super::burst::Burst;
use crate::wire::{Addrs, FrameBuilder, TcpFlags, TcpMeta, L2};

/// Direction of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client to server.
    C2s,
    /// Server to client.
    S2c,
}

/// Addressing of a flow: link, addresses and ports of the client-to-server direction.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    /// Client-to-server link addressing.
    pub l2: L2,
    /// Client-to-server addresses.
    pub ip: Addrs,
    /// Client port.
    pub cport: u16,
    /// Server port.
    pub sport: u16,
}

impl Endpoints {
    /// The MSS a host on a 1500-byte MTU link announces: 1460 over IPv4, 1440 over IPv6
    /// (the larger IP header).
    pub fn mss(&self) -> usize {
        match self.ip {
            Addrs::V4(..) => 1460,
            Addrs::V6(..) => 1440,
        }
    }

    /// Link, addresses and (source, destination) ports for `dir`.
    pub fn toward(&self, dir: Dir) -> (L2, Addrs, u16, u16) {
        match dir {
            Dir::C2s => (self.l2, self.ip, self.cport, self.sport),
            Dir::S2c => (
                self.l2.reversed(),
                self.ip.reversed(),
                self.sport,
                self.cport,
            ),
        }
    }
}

/// Sequence state of one TCP connection.
#[derive(Debug, Clone)]
pub struct TcpConn {
    /// Addressing.
    pub ep: Endpoints,
    /// Next client sequence number.
    pub cseq: u32,
    /// Next server sequence number.
    pub sseq: u32,
    /// Maximum segment size (payload bytes per segment).
    pub mss: usize,
    /// The last timestamp value each side sent (client, server); the other side echoes it
    /// (RFC 7323 §3: TSecr is the peer's most recent TSval).
    ts: [u32; 2],
}

/// SYN options: MSS 1460, SACK permitted, timestamps, window scale 7 (Linux order).
fn syn_options(mss: u16, ts: u32, ecr: u32) -> [u8; 20] {
    let m = mss.to_be_bytes();
    let t = ts.to_be_bytes();
    let e = ecr.to_be_bytes();
    [
        2, 4, m[0], m[1], 4, 2, 8, 10, t[0], t[1], t[2], t[3], e[0], e[1], e[2], e[3], 1, 3, 3, 7,
    ]
}

fn ts_options(ts: u32, ecr: u32) -> [u8; 12] {
    let t = ts.to_be_bytes();
    let e = ecr.to_be_bytes();
    [1, 1, 8, 10, t[0], t[1], t[2], t[3], e[0], e[1], e[2], e[3]]
}

impl TcpConn {
    /// A connection with initial sequence numbers `isn_c`, `isn_s`.
    pub fn new(ep: Endpoints, isn_c: u32, isn_s: u32, mss: usize) -> Self {
        Self {
            ep,
            cseq: isn_c,
            sseq: isn_s,
            mss,
            ts: [isn_c >> 8, isn_s >> 8],
        }
    }

    fn seg(
        &mut self,
        fb: &mut FrameBuilder,
        out: &mut Burst,
        dir: Dir,
        flags: u8,
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) {
        let (me, peer) = match dir {
            Dir::C2s => (0, 1),
            Dir::S2c => (1, 0),
        };
        self.ts[me] = self.ts[me].wrapping_add(1);
        let (tsval, tsecr) = (self.ts[me], self.ts[peer]);
        let (l2, ip, sp, dp) = self.ep.toward(dir);
        let (seq, ack) = match dir {
            Dir::C2s => (self.cseq, self.sseq),
            Dir::S2c => (self.sseq, self.cseq),
        };
        let syn = flags & TcpFlags::SYN != 0;
        let so;
        let to;
        let options: &[u8] = if syn {
            // A SYN echoes nothing; a SYN-ACK echoes the SYN's value.
            let ecr = if flags & TcpFlags::ACK != 0 { tsecr } else { 0 };
            so = syn_options(self.mss as u16, tsval, ecr);
            &so
        } else {
            to = ts_options(tsval, tsecr);
            &to
        };
        let meta = TcpMeta {
            sport: sp,
            dport: dp,
            seq,
            ack,
            flags: TcpFlags(flags),
            window: if syn { 64240 } else { 502 },
            options,
        };
        out.push(fb.tcp(&l2, &ip, &meta, payload_len, fill));
        let consumed = payload_len as u32 + u32::from(flags & (TcpFlags::SYN | TcpFlags::FIN) != 0);
        match dir {
            Dir::C2s => self.cseq = self.cseq.wrapping_add(consumed),
            Dir::S2c => self.sseq = self.sseq.wrapping_add(consumed),
        }
    }

    /// Client SYN.
    pub fn syn(&mut self, fb: &mut FrameBuilder, out: &mut Burst) {
        self.seg(fb, out, Dir::C2s, TcpFlags::SYN, 0, |_| {});
    }

    /// Server SYN-ACK.
    pub fn syn_ack(&mut self, fb: &mut FrameBuilder, out: &mut Burst) {
        self.seg(fb, out, Dir::S2c, TcpFlags::SYN | TcpFlags::ACK, 0, |_| {});
    }

    /// A pure ACK from `dir`'s sender.
    pub fn ack(&mut self, fb: &mut FrameBuilder, out: &mut Burst, dir: Dir) {
        self.seg(fb, out, dir, TcpFlags::ACK, 0, |_| {});
    }

    /// A RST from `dir`'s sender.
    pub fn rst(&mut self, fb: &mut FrameBuilder, out: &mut Burst, dir: Dir) {
        self.seg(fb, out, dir, TcpFlags::RST | TcpFlags::ACK, 0, |_| {});
    }

    /// Payload bytes per data segment: the MSS less the timestamp option every segment
    /// carries (RFC 9293 §3.7.1: the sender leaves room for its options; Linux sends 1448
    /// bytes per segment for an MSS of 1460), so full frames fit a 1500-byte MTU.
    pub fn segment_payload(&self) -> usize {
        self.mss - 12
    }

    /// Sends `data` from `dir`'s sender in full segments (PSH on the last), the
    /// receiver ACKing every second segment and the last (delayed ACK, RFC 9293 §3.8.6.3).
    pub fn send(&mut self, fb: &mut FrameBuilder, out: &mut Burst, dir: Dir, data: &[u8]) {
        let size = self.segment_payload();
        let n = data.chunks(size).len();
        for (i, chunk) in data.chunks(size).enumerate() {
            let last = i + 1 == n;
            let flags = TcpFlags::ACK | if last { TcpFlags::PSH } else { 0 };
            self.seg(fb, out, dir, flags, chunk.len(), |p| {
                p.copy_from_slice(chunk)
            });
            if i % 2 == 1 || last {
                self.ack(fb, out, other(dir));
            }
        }
    }

    /// Sends `len` generated bytes from `dir`'s sender: `fill(stream_offset, buf)` writes each
    /// segment's payload. `offset` is the stream offset of the first byte.
    pub fn send_with(
        &mut self,
        fb: &mut FrameBuilder,
        out: &mut Burst,
        dir: Dir,
        offset: u64,
        len: usize,
        mut fill: impl FnMut(u64, &mut [u8]),
    ) {
        let mut done = 0usize;
        let mut i = 0;
        while done < len {
            let n = (len - done).min(self.segment_payload());
            let last = done + n == len;
            let flags = TcpFlags::ACK | if last { TcpFlags::PSH } else { 0 };
            let at = offset + done as u64;
            self.seg(fb, out, dir, flags, n, |p| fill(at, p));
            if i % 2 == 1 || last {
                self.ack(fb, out, other(dir));
            }
            done += n;
            i += 1;
        }
    }

    /// Orderly close: the client's FIN, the server's FIN-ACK, the client's final ACK.
    pub fn close(&mut self, fb: &mut FrameBuilder, out: &mut Burst) {
        self.seg(fb, out, Dir::C2s, TcpFlags::FIN | TcpFlags::ACK, 0, |_| {});
        self.seg(fb, out, Dir::S2c, TcpFlags::FIN | TcpFlags::ACK, 0, |_| {});
        self.ack(fb, out, Dir::C2s);
    }
}

/// The opposite direction.
pub fn other(dir: Dir) -> Dir {
    match dir {
        Dir::C2s => Dir::S2c,
        Dir::S2c => Dir::C2s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> TcpConn {
        let ep = Endpoints {
            l2: L2 {
                src: [2, 0, 0, 0, 0, 1],
                dst: [2, 0, 0, 0, 0, 2],
                vlan: None,
            },
            ip: Addrs::V4([10, 0, 0, 1], [10, 0, 0, 2]),
            cport: 40000,
            sport: 443,
        };
        TcpConn::new(ep, 1000, 5000, 1460)
    }

    #[test]
    fn handshake_data_and_close_advance_sequence_numbers() {
        let mut fb = FrameBuilder::new();
        let mut b = Burst::new();
        let mut c = conn();
        c.syn(&mut fb, &mut b);
        c.syn_ack(&mut fb, &mut b);
        c.ack(&mut fb, &mut b, Dir::C2s);
        assert_eq!((c.cseq, c.sseq), (1001, 5001));
        c.send(&mut fb, &mut b, Dir::C2s, &[0u8; 3000]);
        // 3 segments (1448, 1448, 104: the MSS less the timestamp option) and ACKs after
        // the 2nd and 3rd; a full segment fills a 1500-byte MTU exactly
        assert_eq!(b.len(), 3 + 3 + 2);
        assert_eq!(c.cseq, 4001);
        assert_eq!(b.frame(3).len(), 14 + 1500);
        let last_data = b.frame(6);
        assert_eq!(last_data.len(), 14 + 20 + 32 + 104);
        c.close(&mut fb, &mut b);
        assert_eq!((c.cseq, c.sseq), (4002, 5002));
    }

    /// (source port, TSval, TSecr) of an IPv4 frame's TCP timestamp option.
    fn timestamps(frame: &[u8]) -> (u16, u32, u32) {
        let tcp = &frame[14 + 20..];
        let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
        let options = &tcp[20..usize::from(tcp[12] >> 4) * 4];
        let at = options
            .windows(2)
            .position(|w| w == [8, 10])
            .expect("timestamp option");
        let word = |i: usize| {
            u32::from_be_bytes([options[i], options[i + 1], options[i + 2], options[i + 3]])
        };
        (sport, word(at + 2), word(at + 6))
    }

    #[test]
    fn every_segment_echoes_the_peers_latest_timestamp() {
        // RFC 7323 §3: a SYN echoes 0, a SYN-ACK the SYN's TSval, every later segment the
        // most recent TSval from the other side (Suricata refuses a SYN-ACK that does not).
        let mut fb = FrameBuilder::new();
        let mut b = Burst::new();
        let mut c = conn();
        c.syn(&mut fb, &mut b);
        c.syn_ack(&mut fb, &mut b);
        c.ack(&mut fb, &mut b, Dir::C2s);
        c.send(&mut fb, &mut b, Dir::C2s, &[0u8; 3000]);
        c.send(&mut fb, &mut b, Dir::S2c, &[0u8; 2000]);
        c.close(&mut fb, &mut b);
        let mut last = std::collections::HashMap::new();
        for i in 0..b.len() {
            let (sport, tsval, tsecr) = timestamps(b.frame(i));
            let peer = if sport == 443 { 40000 } else { 443 };
            assert_eq!(tsecr, last.get(&peer).copied().unwrap_or(0), "segment {i}");
            if let Some(mine) = last.get(&sport) {
                assert!(tsval > *mine, "segment {i}: TSval goes backwards");
            }
            last.insert(sport, tsval);
        }
    }
}
