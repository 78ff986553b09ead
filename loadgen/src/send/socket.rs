//! The AF_PACKET transmit socket: SOCK_RAW with protocol 0, so the kernel delivers nothing
//! to it, bound to one interface, with PACKET_QDISC_BYPASS on. Frames go out in `sendmmsg`
//! batches straight from the caller's buffers.
//!
//! With the qdisc bypassed a frame the device cannot take is not queued: the call fails
//! with ENOBUFS and that frame (and every later one of the batch) was not sent, which is
//! what lets the sender retry it and keep exact counts.

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;
use thiserror::Error;

/// Most frames handed to one `sendmmsg` call.
pub const BATCH: usize = 64;

/// Why the socket could not be set up.
#[derive(Debug, Error)]
pub enum SocketError {
    /// The interface name cannot be passed to the kernel.
    #[error("bad interface name {0:?}")]
    BadName(String),
    /// No such interface (in this network namespace).
    #[error("no interface {0:?} in this network namespace")]
    NoInterface(String),
    /// The interface does not take Ethernet frames.
    #[error("{iface} is not an Ethernet interface (ARPHRD {hw_type})")]
    NotEthernet {
        /// Interface name.
        iface: String,
        /// Its ARPHRD_* hardware type.
        hw_type: u16,
    },
    /// A system call failed.
    #[error("{op} on {iface} failed{}", permission_hint(source))]
    Sys {
        /// The call.
        op: &'static str,
        /// Interface name.
        iface: String,
        /// The error.
        source: io::Error,
    },
}

fn permission_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::PermissionDenied {
        " (AF_PACKET needs root or CAP_NET_RAW)"
    } else {
        ""
    }
}

/// A transmit-only packet socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    mtu: u32,
}

impl PacketSocket {
    /// Opens a socket on `iface`: checks that it is Ethernet (or loopback, which takes
    /// Ethernet frames too), reads its MTU, bypasses the qdisc and binds.
    pub fn open(iface: &str) -> Result<Self, SocketError> {
        let sys = |op| {
            let iface = iface.to_string();
            move |source| SocketError::Sys { op, iface, source }
        };
        let name = CString::new(iface).map_err(|_| SocketError::BadName(iface.to_string()))?;
        if name.as_bytes_with_nul().len() > libc::IFNAMSIZ {
            return Err(SocketError::BadName(iface.to_string()));
        }
        // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(SocketError::NoInterface(iface.to_string()));
        }
        // SAFETY: plain system call with constant arguments; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(sys("socket(AF_PACKET)")(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let mut req = ifreq(&name);
        ioctl(&fd, libc::SIOCGIFHWADDR, &mut req).map_err(sys("SIOCGIFHWADDR"))?;
        // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member of the union.
        let hw_type = unsafe { req.ifr_ifru.ifru_hwaddr.sa_family };
        if hw_type != libc::ARPHRD_ETHER && hw_type != libc::ARPHRD_LOOPBACK {
            return Err(SocketError::NotEthernet {
                iface: iface.to_string(),
                hw_type,
            });
        }
        let mut req = ifreq(&name);
        ioctl(&fd, libc::SIOCGIFMTU, &mut req).map_err(sys("SIOCGIFMTU"))?;
        // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member of the union.
        let mtu = unsafe { req.ifr_ifru.ifru_mtu }.max(0) as u32;

        setsockopt(&fd, libc::PACKET_QDISC_BYPASS, 1).map_err(sys("PACKET_QDISC_BYPASS"))?;
        // SAFETY: all-zero is a valid sockaddr_ll; the fields that matter are set below.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = 0; // receive nothing
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll and its exact size is passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(sys("bind")(io::Error::last_os_error()));
        }
        Ok(Self { fd, mtu })
    }

    /// The interface MTU (bytes above the Ethernet header).
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Sends up to [`BATCH`] frames of `frames` in one `sendmmsg`; returns how many the
    /// kernel took, in order. An error means the first frame was not sent.
    pub fn send_batch(&self, frames: &[&[u8]]) -> io::Result<usize> {
        let n = frames.len().min(BATCH);
        if n == 0 {
            return Ok(0);
        }
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths).
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        for (k, f) in frames[..n].iter().enumerate() {
            // the kernel only reads through iov_base (a send); the cast to *mut is C's signature
            iov[k].iov_base = f.as_ptr().cast_mut().cast();
            iov[k].iov_len = f.len();
            msgs[k].msg_hdr.msg_iov = &raw mut iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs[..n]` point at `iov[..n]`, which point into `frames`; all outlive
        // the call, and the bound socket needs no destination address.
        let rc = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), n as _, 0) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc as usize)
        }
    }

    /// Waits until the socket is writable or `timeout` passes.
    pub fn wait_writable(&self, timeout: Duration) -> io::Result<()> {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: `p` is one valid pollfd.
        let rc = unsafe { libc::poll(&raw mut p, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// An `ifreq` naming `name` (at most IFNAMSIZ bytes with the NUL, checked by the caller).
fn ifreq(name: &CString) -> libc::ifreq {
    // SAFETY: all-zero is a valid ifreq (an empty name and a zeroed union).
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *d = *s as libc::c_char;
    }
    req
}

fn ioctl(fd: &OwnedFd, request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: `req` is a valid ifreq that the SIOCGIF* requests used here read and fill.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, std::ptr::from_mut(req)) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets an integer SOL_PACKET option.
fn setsockopt(fd: &OwnedFd, opt: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` is a c_int and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            opt,
            (&raw const value).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
