//! The `afxdp` live source: the XDP program's sockets as [`FrameSource`]s, and its bypass
//! map as the shards' [`KernelBypass`].
//!
//! AF_XDP frames carry no timestamp: each batch a socket hands over is stamped with the
//! wall clock when its first frame is read. A capture filter runs in user space here (see
//! [`super::filter`]).

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowmesh_core::capture::{Frame, LinkType};
use flowmesh_core::shard::{KernelBypass, KernelCounts};
use flowmesh_schemas::{FlowKey, Timestamp};

use super::afpacket::{interface_still_there, INTERFACE_CHECK};
use super::filter::CaptureFilter;
use super::live::{BypassFactory, FrameSource, KernelCounters, LiveInput};
use super::xdp::{mono_to_timestamp, BypassMap, XdpCapture, XdpConfig, XdpError, XdpSocket};

/// Frames a socket hands over per poll at most.
const POLL_FRAMES: usize = 1024;

/// While frames flow, a reader lets this much time pass between two reads of its ring
/// instead of sleeping in poll(2) until the next frame: one wake-up per interval rather
/// than one every few frames, whose scheduling cost was most of the reader's CPU
/// (measured with perf). The ring (thousands of frames) absorbs the interval at any
/// rate a veth or NIC queue delivers; a frame waits at most this long. On a quiet link
/// the reader sleeps in poll(2) as before.
const READ_INTERVAL: Duration = Duration::from_micros(100);

/// What the kernel reserves at the start of each UMEM frame (`XDP_PACKET_HEADROOM`).
const KERNEL_HEADROOM: u32 = 256;

/// The UMEM frame size that holds every frame of an interface with `mtu`: Ethernet
/// header and two VLAN tags on top of the MTU, after the kernel's headroom. AF_XDP
/// without multi-buffer cannot take larger frames: the kernel would drop them.
pub fn frame_size_for_mtu(mtu: u32) -> Result<u32, String> {
    let frame = mtu + 14 + 8;
    [2048, 4096]
        .into_iter()
        .find(|size| frame <= size - KERNEL_HEADROOM)
        .ok_or_else(|| {
            format!(
                "MTU {mtu} is too large for AF_XDP frames (at most {} bytes with the \
                 kernel's headroom); lower the MTU or capture with afpacket",
                4096 - KERNEL_HEADROOM - 22
            )
        })
}

/// One AF_XDP socket as a frame source.
#[derive(Debug)]
struct XdpSource {
    socket: XdpSocket,
    delivered: u64,
    /// The last read found frames: the next one waits [`READ_INTERVAL`] and looks
    /// without blocking.
    flowing: bool,
    /// The interface's index: an idle source checks now and then that it still exists.
    ifindex: u32,
    checked: Instant,
}

impl FrameSource for XdpSource {
    fn poll(&mut self, timeout: Duration, f: &mut dyn FnMut(Frame<'_>)) -> io::Result<usize> {
        let mut ts: Option<Timestamp> = None;
        let mut deliver = |data: &[u8]| {
            let ts = *ts.get_or_insert_with(Timestamp::now);
            f(Frame {
                ts,
                link: LinkType::Ethernet,
                data,
                orig_len: data.len() as u32,
                interface: 0,
            });
        };
        let mut n = 0;
        if self.flowing {
            std::thread::sleep(READ_INTERVAL);
            n = self
                .socket
                .poll(Duration::ZERO, POLL_FRAMES, &mut deliver)?;
        }
        if n == 0 {
            n = self.socket.poll(timeout, POLL_FRAMES, &mut deliver)?;
        }
        self.flowing = n > 0;
        self.delivered += n as u64;
        if n == 0 && self.checked.elapsed() >= INTERFACE_CHECK {
            self.checked = Instant::now();
            interface_still_there(self.ifindex)?;
        }
        Ok(n)
    }

    fn kernel_counters(&mut self) -> KernelCounters {
        let dropped = self.socket.stats().map_or(0, |s| s.rx_dropped);
        KernelCounters {
            received: self.delivered + dropped,
            dropped,
        }
    }
}

/// The bypass map as one shard sees it.
#[derive(Debug)]
struct XdpBypass {
    map: BypassMap,
}

impl KernelBypass for XdpBypass {
    fn insert(&mut self, key: &FlowKey) -> bool {
        match self.map.insert(key) {
            Ok(()) => true,
            Err(XdpError::BypassFull { .. }) => false,
            Err(e) => {
                tracing::warn!(error = %e, "bypass insert failed; the flow stays in user space");
                false
            }
        }
    }

    fn last_seen(&mut self, key: &FlowKey) -> Option<Timestamp> {
        let c = self.map.peek(key).ok()??;
        // With no packet counted, last_seen is the insertion time, not a packet's.
        (c.packets[0] + c.packets[1] > 0).then(|| mono_to_timestamp(c.last_seen_mono_ns))
    }

    fn take(&mut self, key: &FlowKey) -> Option<KernelCounts> {
        let c = match self.map.take(key) {
            Ok(c) => c?,
            Err(e) => {
                tracing::warn!(error = %e, "bypass take failed; the record misses the kernel's counts");
                return None;
            }
        };
        let counted = c.packets[0] + c.packets[1] > 0;
        Some(KernelCounts {
            packets: c.packets,
            bytes: c.bytes,
            tcp_flags: c.tcp_flags,
            last_seen: counted.then(|| mono_to_timestamp(c.last_seen_mono_ns)),
        })
    }
}

/// Loads and attaches the XDP program on `cfg.interface` and opens its sockets: the live
/// input (one reader per receive queue, `filter` in user space, the bypass when `bypass`)
/// and the capture itself, which must outlive the readers (dropping it detaches the
/// program).
pub fn open(
    cfg: &XdpConfig,
    filter: Option<CaptureFilter>,
    bypass: bool,
) -> Result<(XdpCapture, LiveInput), XdpError> {
    let mut capture = XdpCapture::open(cfg)?;
    let ifindex = capture.ifindex();
    let sources: Vec<Box<dyn FrameSource>> = capture
        .take_sockets()
        .into_iter()
        .map(|socket| {
            Box::new(XdpSource {
                socket,
                delivered: 0,
                flowing: false,
                ifindex,
                checked: Instant::now(),
            }) as Box<dyn FrameSource>
        })
        .collect();
    let bypass: Option<BypassFactory> = bypass.then(|| {
        let map = capture.bypass();
        Arc::new(move || Box::new(XdpBypass { map: map.clone() }) as Box<dyn KernelBypass>)
            as BypassFactory
    });
    let input = LiveInput {
        sources,
        filter: filter.map(Arc::new),
        bypass,
    };
    Ok((capture, input))
}

#[cfg(test)]
mod tests {
    use super::frame_size_for_mtu;

    #[test]
    fn frames_are_sized_for_the_mtu() {
        assert_eq!(frame_size_for_mtu(1500), Ok(2048));
        assert_eq!(frame_size_for_mtu(1770), Ok(2048));
        assert_eq!(frame_size_for_mtu(1771), Ok(4096));
        assert_eq!(frame_size_for_mtu(3818), Ok(4096));
        assert!(frame_size_for_mtu(9000).is_err_and(|e| e.contains("afpacket")));
    }
}
