//! `loadgen send`: puts frames on an interface through an AF_PACKET socket, as fast as
//! possible or paced by a token bucket, and counts exactly what went out.
//!
//! Invariants: every frame offered is either sent (the kernel took it), skipped and counted
//! as oversize, or the run stops with an error; ENOBUFS/EAGAIN (the device or the socket
//! is full) only delay a frame, it is retried until the kernel takes it.

pub mod pace;
pub mod pcap_read;
pub mod socket;

mod batch;

pub use pcap_read::{Frames, PcapFile, PcapReadError};
pub use socket::SocketError;

use batch::Batcher;
use pace::{Pace, Pacer};
use serde::Serialize;
use socket::PacketSocket;
use std::io;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Ethernet header length.
const ETH_HLEN: usize = 14;
/// 802.1Q tag length.
const VLAN_HLEN: usize = 4;
/// Waits shorter than this are spun, longer ones slept.
const SPIN_BELOW: Duration = Duration::from_micros(100);

/// How to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOptions {
    /// Frames per second; `None`: as fast as possible.
    pub rate: Option<NonZeroU64>,
    /// Times the whole frame sequence is sent.
    pub loops: NonZeroU64,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self {
            rate: None,
            loops: NonZeroU64::MIN,
        }
    }
}

/// What a run sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendReport {
    /// Frames the kernel took.
    pub frames_sent: u64,
    /// Sum of their lengths (Ethernet header to end of frame, no FCS).
    pub bytes_sent: u64,
    /// Frames skipped because they exceed the interface MTU.
    pub oversize_skipped: u64,
    /// The interface MTU the frames were checked against.
    pub mtu: u32,
    /// Times the kernel pushed back (ENOBUFS/EAGAIN) and a frame was retried.
    pub retries: u64,
    /// Seconds from the first frame to the last one sent.
    pub elapsed_s: f64,
    /// Frames sent per second.
    pub pps: f64,
    /// Megabits of frame bytes sent per second.
    pub mbit_per_s: f64,
}

/// Why a run failed.
#[derive(Debug, Error)]
pub enum SendError {
    /// The socket could not be set up.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The kernel refused a frame for a reason other than a full buffer.
    #[error("send failed after {sent} frames")]
    Send {
        /// Frames sent before the failure.
        sent: u64,
        /// The error.
        source: io::Error,
    },
}

/// Sends every frame of `frames`, `opts.loops` times, into `iface`. Frames longer than
/// the MTU allows are skipped and counted.
pub fn send_frames<'a, I>(
    iface: &str,
    frames: I,
    opts: &SendOptions,
) -> Result<SendReport, SendError>
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: Clone,
{
    let sock = PacketSocket::open(iface)?;
    let mtu = sock.mtu() as usize;
    let frames = frames.into_iter();
    let mut tx = Batcher::new(&sock);
    let t0 = Instant::now();
    let mut pacer = opts.rate.map(|r| Pacer::new(r, 0));
    let mut granted = 0u32;
    for _ in 0..opts.loops.get() {
        for f in frames.clone() {
            if f.len() > max_frame_len(f, mtu) {
                tx.oversize += 1;
                continue;
            }
            if let Some(p) = pacer.as_mut() {
                if granted == 0 {
                    // what was granted before goes out before we wait for more
                    tx.flush()?;
                    granted = wait_for_grant(p, t0);
                }
                granted -= 1;
            }
            tx.push(f)?;
        }
    }
    tx.flush()?;
    let elapsed = t0.elapsed().as_secs_f64();
    let per_s = |v: f64| if elapsed > 0.0 { v / elapsed } else { 0.0 };
    Ok(SendReport {
        frames_sent: tx.frames,
        bytes_sent: tx.bytes,
        oversize_skipped: tx.oversize,
        mtu: sock.mtu(),
        retries: tx.retries,
        elapsed_s: elapsed,
        pps: per_s(tx.frames as f64),
        mbit_per_s: per_s(tx.bytes as f64 * 8.0 / 1e6),
    })
}

/// Longest `frame` the interface takes: MTU plus the Ethernet header plus 4 bytes per
/// VLAN tag (802.1Q, 802.1ad) the frame carries.
fn max_frame_len(frame: &[u8], mtu: usize) -> usize {
    let mut at = 12;
    let mut tags = 0;
    while let Some(t) = frame.get(at..at + 2) {
        if !matches!(u16::from_be_bytes([t[0], t[1]]), 0x8100 | 0x88a8) {
            break;
        }
        tags += 1;
        at += VLAN_HLEN;
    }
    mtu + ETH_HLEN + VLAN_HLEN * tags
}

/// Blocks until `p` grants frames; sleeps when the wait is long, spins when it is short.
fn wait_for_grant(p: &mut Pacer, t0: Instant) -> u32 {
    loop {
        let now = t0.elapsed().as_nanos() as u64;
        match p.grant(now, pace::MAX_BURST) {
            Pace::Go(n) => return n,
            Pace::Wait(d) if d > SPIN_BELOW => std::thread::sleep(d),
            Pace::Wait(_) => std::hint::spin_loop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_limit_counts_vlan_tags() {
        let mut f = vec![0u8; 1600];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        assert_eq!(max_frame_len(&f, 1500), 1514);
        f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        f[16..18].copy_from_slice(&0x0800u16.to_be_bytes());
        assert_eq!(max_frame_len(&f, 1500), 1518);
        f[12..14].copy_from_slice(&0x88a8u16.to_be_bytes());
        f[16..18].copy_from_slice(&0x8100u16.to_be_bytes());
        f[20..22].copy_from_slice(&0x86ddu16.to_be_bytes());
        assert_eq!(max_frame_len(&f, 1500), 1522);
        assert_eq!(max_frame_len(&[0u8; 10], 1500), 1514);
        assert_eq!(
            max_frame_len(&[0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0], 1500),
            1518
        );
    }
}
