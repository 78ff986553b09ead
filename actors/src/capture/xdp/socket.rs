//! [`XdpSocket`]: the AF_XDP socket of one receive queue, with its own UMEM, fill,
//! completion and receive rings (xdpilone), read by one thread.
//!
//! Frame ownership: at start every UMEM frame is on the fill ring (the kernel's). The
//! kernel writes a packet into a frame and hands it back on the receive ring; [`poll`]
//! shows it to the callback and puts it back on the fill ring in the same call, so user
//! space never holds frames between calls and the kernel never runs short because of us.
//! The fill ring has room for every frame, so giving frames back never fails.
//!
//! [`poll`]: XdpSocket::poll

use std::ffi::CStr;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::{BorrowedFd, RawFd};
use std::ptr::NonNull;
use std::time::Duration;

use xdpilone::{DeviceQueue, IfInfo, RingRx, Socket, SocketConfig, Umem, UmemConfig};

use super::{sys, XdpConfig, XdpError};

/// Completion ring entries: this socket never transmits, but the kernel requires the ring.
const COMPLETION_RING: u32 = 64;

/// Busy-poll settings when enabled: how long a poll spins (µs) and how many packets the
/// driver's NAPI handles per spin.
const BUSY_POLL_USECS: libc::c_int = 20;
const BUSY_POLL_BUDGET: libc::c_int = 64;

/// Socket options not in every libc (include/uapi/asm-generic/socket.h).
const SO_BUSY_POLL: libc::c_int = 46;
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// The XDP_STATISTICS counters of one socket, plus what this side found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XskStats {
    /// Packets the kernel dropped for this socket for any reason (includes the two below).
    pub rx_dropped: u64,
    /// Invalid descriptors on the fill ring.
    pub rx_invalid_descs: u64,
    /// Packets dropped because the receive ring was full (user space too slow).
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Receive descriptors pointing outside the UMEM, skipped (a kernel bug if ever seen).
    pub rx_bad_descs: u64,
}

/// Anonymous memory holding the UMEM frames.
#[derive(Debug)]
struct UmemArea {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the area is plain memory owned by this value; which parts user space may read
// is governed by the rings, not by the thread that touches them.
unsafe impl Send for UmemArea {}

impl UmemArea {
    /// Maps `len` bytes, page aligned and populated.
    fn new(len: usize) -> io::Result<Self> {
        // SAFETY: an anonymous private mapping with no address hint has no preconditions.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(UmemArea { ptr, len })
    }

    /// The whole area, for registering it with the kernel.
    fn as_slice_ptr(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.ptr, self.len)
    }

    /// The `len` bytes at `addr`, if inside the area.
    ///
    /// # Safety
    /// The frame at `addr` must be owned by user space (read from the receive ring and not
    /// yet given back on the fill ring) for as long as the slice lives, so that the kernel
    /// does not write to it.
    unsafe fn frame(&self, addr: u64, len: u32) -> Option<&[u8]> {
        let start = usize::try_from(addr).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        if end > self.len {
            return None;
        }
        // SAFETY: start..end is inside the mapping; the caller guarantees no one writes
        // to it while the slice lives.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(start), end - start) })
    }
}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The AF_XDP socket of one receive queue. `Send`: move it to the thread that reads it.
pub struct XdpSocket {
    queue: u32,
    rx: RingRx,
    /// Fill and completion rings; holds the socket's file descriptor.
    device: DeviceQueue,
    /// Frames handled and not yet back on the fill ring (see `give_back`).
    done: Vec<u64>,
    /// Clears the offset within a frame (frames are a power of two, aligned mode).
    frame_mask: u64,
    rx_ring: u32,
    busy_poll: bool,
    bad_descs: u64,
    /// Declared last: unmapped after the rings and the socket are gone.
    area: UmemArea,
}

const _: () = {
    const fn is_send<T: Send>() {}
    is_send::<XdpSocket>();
};

impl std::fmt::Debug for XdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpSocket")
            .field("queue", &self.queue)
            .field("fd", &self.raw_fd())
            .field("rx_ring", &self.rx_ring)
            .finish_non_exhaustive()
    }
}

/// Puts as many of `frames` on the fill ring as it takes and removes them from `frames`;
/// the rest stay there for the next call. A reservation is served from the ring's cached
/// view of the kernel's position and may be short; the next one refreshes it, so this
/// loops until the ring takes nothing more.
///
/// The kernel publishes how far it has read the fill ring only when it needs more
/// entries, so frames it already filled (and user space already read) can still count
/// as occupying the ring. The ring has room for twice the UMEM's frames, so it does not
/// fill up that way; should it ever, the frames wait here rather than being lost or
/// stopping the capture.
fn give_back(device: &mut DeviceQueue, frames: &mut Vec<u64>) {
    let mut start = 0;
    while start < frames.len() {
        let want = u32::try_from(frames.len() - start).unwrap_or(u32::MAX);
        let mut fill = device.fill(want);
        let given = fill.insert(frames[start..].iter().copied()) as usize;
        fill.commit();
        if given == 0 {
            break;
        }
        start += given;
    }
    frames.drain(..start);
}

/// Maps an xdpilone error (sometimes negated) to an I/O error.
fn errno(e: xdpilone::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.get_raw().abs())
}

impl XdpSocket {
    /// Creates, binds and fills the socket of `queue` on `ifname` (in the calling thread's
    /// network namespace). Not yet in the XSKMAP: no packets arrive before that.
    pub(super) fn open(ifname: &CStr, queue: u32, cfg: &XdpConfig) -> Result<Self, XdpError> {
        let step = |what: &'static str| {
            move |source: io::Error| XdpError::Socket {
                queue,
                what,
                source,
            }
        };
        let frames = cfg.frames_per_queue;
        let ring = frames.next_power_of_two();
        // See `give_back`: the fill ring holds every frame twice over.
        let fill_ring = ring.saturating_mul(2);
        let area =
            UmemArea::new(frames as usize * cfg.frame_size as usize).map_err(step("mmap UMEM"))?;
        let umem_config = UmemConfig {
            fill_size: fill_ring,
            complete_size: COMPLETION_RING,
            frame_size: cfg.frame_size,
            headroom: 0,
            flags: 0,
        };
        // SAFETY: the area is page aligned (mmap), valid for its whole length, and outlives
        // the Umem and every ring made from it: it is the last field of XdpSocket.
        let umem = unsafe { Umem::new(umem_config, area.as_slice_ptr()) }
            .map_err(|e| step("register UMEM")(errno(e)))?;
        let mut info = IfInfo::invalid();
        info.from_name(ifname)
            .map_err(|e| step("interface")(errno(e)))?;
        info.set_queue(queue);
        let sock = Socket::with_shared(&info, &umem).map_err(|e| step("socket")(errno(e)))?;
        let mut device = umem
            .fq_cq(&sock)
            .map_err(|e| step("fill/completion rings")(errno(e)))?;
        let user = umem
            .rx_tx(
                &sock,
                &SocketConfig {
                    rx_size: NonZeroU32::new(ring),
                    tx_size: None,
                    bind_flags: SocketConfig::XDP_BIND_NEED_WAKEUP,
                },
            )
            .map_err(|e| step("rx ring")(errno(e)))?;
        let rx = user.map_rx().map_err(|e| step("map rx ring")(errno(e)))?;
        if cfg.busy_poll {
            // SAFETY: the descriptor is open: `device` owns it until the end of this scope.
            let fd = unsafe { BorrowedFd::borrow_raw(device.as_raw_fd()) };
            for (name, value) in [
                (SO_PREFER_BUSY_POLL, 1),
                (SO_BUSY_POLL, BUSY_POLL_USECS),
                (SO_BUSY_POLL_BUDGET, BUSY_POLL_BUDGET),
            ] {
                sys::set_int_opt(fd, libc::SOL_SOCKET, name, value)
                    .map_err(step("busy poll option"))?;
            }
        }
        umem.bind(&user).map_err(|e| step("bind")(errno(e)))?;
        let frame_size = u64::from(cfg.frame_size);
        let mut all: Vec<u64> = (0..u64::from(frames)).map(|i| i * frame_size).collect();
        give_back(&mut device, &mut all);
        if !all.is_empty() {
            return Err(step("fill ring")(io::Error::other(format!(
                "the fill ring took {} of {frames} frames",
                u64::from(frames) - all.len() as u64
            ))));
        }
        Ok(XdpSocket {
            queue,
            rx,
            device,
            done: Vec::with_capacity(ring as usize),
            frame_mask: !(frame_size - 1),
            rx_ring: ring,
            busy_poll: cfg.busy_poll,
            bad_descs: 0,
            area,
        })
    }

    /// The receive queue this socket reads.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The socket's descriptor, for the XSKMAP.
    pub(super) fn raw_fd(&self) -> RawFd {
        self.device.as_raw_fd()
    }

    /// Waits up to `timeout` for frames, calls `f(frame_bytes)` for each frame available
    /// (at most `max`), returns them to the fill ring, and returns the number handled
    /// (0 on timeout or when a signal interrupted the wait).
    ///
    /// A zero `timeout` only looks at the ring (no system call unless busy polling, which
    /// needs one to drive the device): a reader that spins this way while traffic flows
    /// spares the kernel a wake-up per packet, which costs more than the copy itself.
    pub fn poll(
        &mut self,
        timeout: Duration,
        max: usize,
        f: &mut dyn FnMut(&[u8]),
    ) -> io::Result<usize> {
        if max == 0 {
            return Ok(0);
        }
        if !self.done.is_empty() {
            give_back(&mut self.device, &mut self.done);
        }
        if self.rx.available() == 0 {
            if timeout.is_zero() && !self.busy_poll {
                return Ok(0);
            }
            if !self.wait(timeout)? {
                return Ok(0);
            }
        }
        let want = u32::try_from(max).unwrap_or(u32::MAX).min(self.rx_ring);
        let held = self.done.len();
        let mut reader = self.rx.receive(want);
        while let Some(desc) = reader.read() {
            // SAFETY: the descriptor was just read from the receive ring, so its frame is
            // ours until it goes back on the fill ring below, after the slice is gone.
            match unsafe { self.area.frame(desc.addr, desc.len) } {
                Some(bytes) => f(bytes),
                None => self.bad_descs += 1,
            }
            self.done.push(desc.addr & self.frame_mask);
        }
        reader.release();
        drop(reader);
        let handled = self.done.len() - held;
        give_back(&mut self.device, &mut self.done);
        if self.device.needs_wakeup() {
            self.device.wake();
        }
        Ok(handled)
    }

    /// Sleeps in poll(2) until the receive ring has frames or `timeout` passes. With busy
    /// polling on, the kernel spins on the device queue first.
    fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: one live pollfd, a live timespec, no signal mask.
        let rc = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        Ok(rc > 0)
    }

    /// The kernel's XDP_STATISTICS of this socket and the descriptors skipped here.
    pub fn stats(&self) -> io::Result<XskStats> {
        let s = self.device.statistics_v2().map_err(errno)?;
        Ok(XskStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            rx_bad_descs: self.bad_descs,
        })
    }
}
