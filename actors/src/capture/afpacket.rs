//! The `afpacket` live source: an AF_PACKET socket with a TPACKET_V3 memory-mapped receive
//! ring, optionally one member of a fanout group.
//!
//! Owns: the socket, its ring mapping, the block being read and a scratch buffer for frames
//! whose VLAN tag the kernel moved out of the packet.
//!
//! Invariants:
//! - A block is read only after the kernel handed it over (`TP_STATUS_USER`, read with
//!   acquire ordering) and handed back (`TP_STATUS_KERNEL`, release) only after every frame
//!   borrowed from it was passed to the callback: frames never outlive one `poll`.
//! - Blocks are consumed in ring order; the kernel fills them in the same order.
//! - The capture filter (when set) is attached before the socket is bound, so no frame
//!   that fails it is ever queued.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use flowmesh_core::capture::{Frame, LinkType};
use flowmesh_schemas::Timestamp;

use super::filter::CaptureFilter;
use super::live::{FrameSource, KernelCounters};

/// Settings of one AF_PACKET ring.
#[derive(Debug, Clone)]
pub struct AfPacketConfig {
    /// Interface to capture on.
    pub interface: String,
    /// Ring block size in bytes (a power of two, a multiple of the page size).
    pub block_size: u32,
    /// Blocks in the ring; the ring holds `block_size * blocks` bytes.
    pub blocks: u32,
    /// The kernel hands over a block that is not full after this long, so a quiet link
    /// still delivers promptly.
    pub block_timeout: Duration,
    /// Fanout group id shared by the readers of one interface (hash mode, with
    /// defragmentation, so both directions and every fragment of a flow meet one reader).
    pub fanout_group: Option<u16>,
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        AfPacketConfig {
            interface: String::new(),
            block_size: 1 << 20,
            blocks: 64,
            block_timeout: Duration::from_millis(10),
            fanout_group: None,
        }
    }
}

/// Why an AF_PACKET ring could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum AfPacketError {
    /// The interface does not exist.
    #[error("interface {0:?} not found (see `ip link`)")]
    NoInterface(String),
    /// The interface does not carry Ethernet frames.
    #[error("interface {name:?} has ARP hardware type {kind}; afpacket captures Ethernet interfaces only")]
    NotEthernet {
        /// The interface.
        name: String,
        /// Its `/sys/class/net/*/type`.
        kind: u32,
    },
    /// The ring geometry is not one the kernel accepts.
    #[error("capture ring: {0}")]
    Geometry(&'static str),
    /// A system call failed.
    #[error("afpacket on {interface:?}: {step}: {source}{hint}")]
    Sys {
        /// The interface.
        interface: String,
        /// What was being done.
        step: &'static str,
        /// The error.
        source: io::Error,
        /// What to do about it.
        hint: &'static str,
    },
}

/// How often an idle capture reader checks that its interface still exists.
pub const INTERFACE_CHECK: Duration = Duration::from_secs(1);

/// An open TPACKET_V3 ring on one interface.
#[derive(Debug)]
pub struct AfPacketRing {
    fd: OwnedFd,
    ring: NonNull<u8>,
    ring_len: usize,
    block_size: usize,
    blocks: usize,
    next: usize,
    totals: KernelCounters,
    /// A frame with its VLAN tag put back (the kernel strips it into the frame header).
    scratch: Vec<u8>,
    /// The interface the socket is bound to, by index: a socket stays bound to that
    /// index, so an interface removed and made again under the same name needs a new one.
    ifindex: u32,
    /// When an idle socket last checked that its interface still exists.
    checked: Instant,
}

// SAFETY: the ring mapping is owned by this value alone (no other handle to it exists in
// the process); moving it to another thread moves that exclusive ownership.
unsafe impl Send for AfPacketRing {}

impl AfPacketRing {
    /// Opens a ring on `cfg.interface`, attaches `filter` (compiled for Ethernet), binds,
    /// and joins the fanout group when one is set.
    pub fn open(
        cfg: &AfPacketConfig,
        filter: Option<&CaptureFilter>,
    ) -> Result<Self, AfPacketError> {
        let block_size = cfg.block_size as usize;
        if !block_size.is_power_of_two() || block_size < 4096 {
            return Err(AfPacketError::Geometry(
                "block_size must be a power of two of at least 4096",
            ));
        }
        if cfg.blocks == 0 {
            return Err(AfPacketError::Geometry("blocks must be at least 1"));
        }
        let ifindex = interface_index(&cfg.interface)?;
        let sys = |step: &'static str, hint: &'static str| {
            let source = io::Error::last_os_error();
            let hint = if source.raw_os_error() == Some(libc::EPERM) {
                " (capturing needs root or CAP_NET_RAW)"
            } else {
                hint
            };
            AfPacketError::Sys {
                interface: cfg.interface.clone(),
                step,
                source,
                hint,
            }
        };

        // Protocol 0: the socket receives nothing until it is bound, after the ring and the
        // filter are in place.
        // SAFETY: plain system call; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(sys("socket", ""));
        }
        // SAFETY: `raw` is a fresh descriptor owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let kind = hardware_type(&fd, &cfg.interface).map_err(|_| sys("SIOCGIFHWADDR", ""))?;
        // ARPHRD_ETHER and ARPHRD_LOOPBACK both carry Ethernet headers.
        if !matches!(kind, 1 | 772) {
            return Err(AfPacketError::NotEthernet {
                name: cfg.interface.clone(),
                kind: u32::from(kind),
            });
        }
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &version)
            .map_err(|_| sys("PACKET_VERSION TPACKET_V3", " (kernel without TPACKET_V3?)"))?;
        if let Some(filter) = filter {
            let prog = filter.sock_fprog();
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
                .map_err(|_| sys("SO_ATTACH_FILTER", ""))?;
        }
        let frame_size = 2048u32;
        let req = libc::tpacket_req3 {
            tp_block_size: cfg.block_size,
            tp_block_nr: cfg.blocks,
            tp_frame_size: frame_size,
            tp_frame_nr: (cfg.block_size / frame_size) * cfg.blocks,
            tp_retire_blk_tov: u32::try_from(cfg.block_timeout.as_millis())
                .unwrap_or(u32::MAX)
                .max(1),
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
            .map_err(|_| sys("PACKET_RX_RING", " (ring too large for the memory limits?)"))?;
        let ring_len = block_size * cfg.blocks as usize;
        // SAFETY: maps the ring the kernel just allocated for this socket; checked below.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ring == libc::MAP_FAILED {
            return Err(sys("mmap of the ring", ""));
        }
        let ring = NonNull::new(ring.cast::<u8>()).ok_or_else(|| sys("mmap of the ring", ""))?;
        // From here on the mapping is released by Drop, also on the error paths below.
        let this = AfPacketRing {
            fd,
            ring,
            ring_len,
            block_size,
            blocks: cfg.blocks as usize,
            next: 0,
            totals: KernelCounters::default(),
            scratch: Vec::with_capacity(64 * 1024 + 4),
            ifindex: ifindex as u32,
            checked: Instant::now(),
        };

        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = ifindex;
        // SAFETY: `addr` is a valid sockaddr_ll of the length given.
        let rc = unsafe {
            libc::bind(
                this.fd.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc < 0 {
            return Err(sys("bind", ""));
        }
        if let Some(group) = cfg.fanout_group {
            let mode = libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG;
            let arg = (u32::from(group) | (mode << 16)) as libc::c_int;
            setsockopt(&this.fd, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg).map_err(|_| {
                sys(
                    "PACKET_FANOUT",
                    " (another process uses this fanout group id with other settings?)",
                )
            })?;
        }
        Ok(this)
    }

    /// The block descriptor's status word of block `i`.
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: block `i < blocks` lies inside the mapping; its first field
        // (`tpacket_block_desc.hdr.bh1.block_status`, at offset 8) is a naturally aligned
        // u32 shared with the kernel, accessed atomically.
        unsafe {
            &*self
                .ring
                .as_ptr()
                .add(i * self.block_size + 8)
                .cast::<AtomicU32>()
        }
    }

    /// Hands every frame of the ready block `i` to `f`, then gives the block back.
    fn read_block(&mut self, i: usize, f: &mut dyn FnMut(Frame<'_>)) -> usize {
        // SAFETY: the kernel handed block `i` to user space (TP_STATUS_USER, acquired) and
        // will not touch it until its status is set back to TP_STATUS_KERNEL below.
        let block = unsafe {
            std::slice::from_raw_parts(self.ring.as_ptr().add(i * self.block_size), self.block_size)
        };
        let num_pkts = read_u32(block, 12) as usize;
        let mut off = read_u32(block, 16) as usize;
        let mut handled = 0;
        for _ in 0..num_pkts {
            // tpacket3_hdr: next_offset, sec, nsec, snaplen, len, status (u32 each), mac,
            // net (u16), then hv1: rxhash, vlan_tci, vlan_tpid (u32, u32, u16).
            let Some(hdr) = block.get(off..off + 48) else {
                break;
            };
            let next = read_u32(hdr, 0) as usize;
            let ts = Timestamp::from_parts(i64::from(read_u32(hdr, 4)), read_u32(hdr, 8));
            let snaplen = read_u32(hdr, 12) as usize;
            let len = read_u32(hdr, 16);
            let status = read_u32(hdr, 20);
            let mac = usize::from(u16::from_ne_bytes([hdr[24], hdr[25]]));
            let tci = read_u32(hdr, 32) as u16;
            let tpid = u16::from_ne_bytes([hdr[36], hdr[37]]);
            if let Some(data) = block.get(off + mac..off + mac + snaplen) {
                if status & libc::TP_STATUS_VLAN_VALID != 0 && data.len() >= 12 {
                    let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                        tpid
                    } else {
                        0x8100
                    };
                    self.scratch.clear();
                    self.scratch.extend_from_slice(&data[..12]);
                    self.scratch.extend_from_slice(&tpid.to_be_bytes());
                    self.scratch.extend_from_slice(&tci.to_be_bytes());
                    self.scratch.extend_from_slice(&data[12..]);
                    f(frame(ts, &self.scratch, len + 4));
                } else {
                    f(frame(ts, data, len));
                }
                handled += 1;
            }
            if next == 0 {
                break;
            }
            off += next;
        }
        self.status(i)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        handled
    }

    /// Takes the socket's pending error after `poll` reported one. The interface going
    /// down (`ENETDOWN`) is waited out (a timeout's sleep, so a reader does not spin) until
    /// it comes back; anything else ends the reader.
    fn socket_error(&self, timeout: Duration) -> io::Result<()> {
        // SAFETY: SO_ERROR is a C int. Reading it clears it.
        let err: libc::c_int = unsafe { getsockopt(&self.fd, libc::SOL_SOCKET, libc::SO_ERROR)? };
        match err {
            0 => Ok(()),
            libc::ENETDOWN => {
                std::thread::sleep(timeout);
                interface_still_there(self.ifindex)
            }
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    fn refresh_counters(&mut self) -> io::Result<()> {
        // SAFETY: tpacket_stats_v3 is plain data. Reading resets the kernel's counters, so
        // they are accumulated here.
        let st: libc::tpacket_stats_v3 =
            unsafe { getsockopt(&self.fd, libc::SOL_PACKET, libc::PACKET_STATISTICS)? };
        // tp_packets counts every frame the socket accepted, dropped ones included.
        self.totals.received += u64::from(st.tp_packets);
        self.totals.dropped += u64::from(st.tp_drops);
        Ok(())
    }
}

fn frame(ts: Timestamp, data: &[u8], orig_len: u32) -> Frame<'_> {
    Frame {
        ts,
        link: LinkType::Ethernet,
        data,
        orig_len,
        interface: 0,
    }
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

impl FrameSource for AfPacketRing {
    fn poll(&mut self, timeout: Duration, f: &mut dyn FnMut(Frame<'_>)) -> io::Result<usize> {
        let mut handled = 0;
        let mut waited = false;
        // At most one pass over the ring per call, so the caller flushes batches and checks
        // its stop flag regularly even under full load.
        for _ in 0..self.blocks {
            let i = self.next;
            if self.status(i).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                if handled > 0 || waited {
                    break;
                }
                let mut pfd = libc::pollfd {
                    fd: self.fd.as_raw_fd(),
                    events: libc::POLLIN | libc::POLLERR,
                    revents: 0,
                };
                let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
                // SAFETY: one valid pollfd.
                let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
                if rc < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        return Ok(handled);
                    }
                    return Err(e);
                }
                waited = true;
                if pfd.revents & libc::POLLERR != 0 {
                    self.socket_error(timeout)?;
                } else if rc == 0 && self.checked.elapsed() >= INTERFACE_CHECK {
                    // A removed interface reports ENETDOWN once, which may have been taken
                    // while it was only down: an idle socket looks again now and then.
                    self.checked = Instant::now();
                    interface_still_there(self.ifindex)?;
                }
                fence(Ordering::Acquire);
                if self.status(i).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                    break;
                }
            }
            handled += self.read_block(i, f);
            self.next = (i + 1) % self.blocks;
        }
        Ok(handled)
    }

    fn kernel_counters(&mut self) -> KernelCounters {
        let _ = self.refresh_counters();
        self.totals
    }
}

impl Drop for AfPacketRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `open`; no frame borrows it any more
        // (frames live only inside `poll`).
        unsafe {
            libc::munmap(self.ring.as_ptr().cast(), self.ring_len);
        }
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a valid T of the length given, read by the kernel only.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Reads socket option `name` as a `T`.
///
/// # Safety
/// `T` must be plain C data (integers and structs of them) for which all-zero bytes are a
/// valid value, as the kernel's option types are.
unsafe fn getsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int) -> io::Result<T> {
    // SAFETY: all-zero is a valid T (the caller's guarantee).
    let mut value: T = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is writable for `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(value)
    }
}

/// An error when no interface has index `ifindex` any more (in the calling thread's
/// network namespace). A capture socket bound to a removed interface waits forever,
/// silently, even once an interface of the same name is made again (with a new index), so
/// idle readers look now and then ([`INTERFACE_CHECK`]) and end with this error.
pub fn interface_still_there(ifindex: u32) -> io::Result<()> {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `name` has room for IF_NAMESIZE bytes, as if_indextoname requires.
    let found = unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr()) };
    if found.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("interface index {ifindex} was removed"),
        ));
    }
    Ok(())
}

/// The index of interface `name`.
pub fn interface_index(name: &str) -> Result<i32, AfPacketError> {
    let c = CString::new(name).map_err(|_| AfPacketError::NoInterface(name.to_owned()))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(AfPacketError::NoInterface(name.to_owned()));
    }
    i32::try_from(index).map_err(|_| AfPacketError::NoInterface(name.to_owned()))
}

/// An `ifreq` naming interface `name` (cut to IFNAMSIZ - 1 bytes), the rest zero.
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req
}

/// The MTU of interface `name` (in the calling thread's network namespace).
pub fn interface_mtu(name: &str) -> io::Result<u32> {
    // SAFETY: plain system call; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = ifreq(name);
    // SAFETY: `req` names the interface; the kernel fills ifr_mtu.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFMTU filled the ifr_mtu member of the union.
    Ok(u32::try_from(unsafe { req.ifr_ifru.ifru_mtu }).unwrap_or(0))
}

/// The ARP hardware type of interface `name` (asked through `fd`, in its namespace).
fn hardware_type(fd: &OwnedFd, name: &str) -> io::Result<u16> {
    let mut req = ifreq(name);
    // SAFETY: `req` is a valid ifreq naming the interface; the kernel fills ifr_hwaddr.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR filled the ifr_hwaddr member of the union.
    Ok(unsafe { req.ifr_ifru.ifru_hwaddr.sa_family })
}
