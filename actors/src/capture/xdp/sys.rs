//! The few raw system calls the XDP layer makes itself: bpf(2) element operations on a map
//! (usable from any thread with only a file descriptor, unlike aya's `&mut` map handles),
//! the receive-queue count of an interface (ethtool), and socket options.
//!
//! Invariant: a map element call is only made with key and value types whose sizes the
//! caller has checked against the map's `key_size` and `value_size`, so the kernel never
//! reads or writes past them.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// bpf(2) commands (include/uapi/linux/bpf.h, `enum bpf_cmd`).
const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_MAP_LOOKUP_AND_DELETE_ELEM: libc::c_int = 21;

/// Update flag: create only, fail with EEXIST if the key is present.
pub(super) const BPF_NOEXIST: u64 = 1;

/// The part of `union bpf_attr` the element commands use.
#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Runs one element command.
fn map_elem(
    cmd: libc::c_int,
    fd: BorrowedFd<'_>,
    key: *const u8,
    value: *mut u8,
    flags: u64,
) -> io::Result<()> {
    let attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        pad: 0,
        key: key as u64,
        value: value as u64,
        flags,
    };
    // SAFETY: `attr` is a valid, fully initialised prefix of `union bpf_attr` of the size
    // passed; the pointers in it are valid for the map's key and value sizes (module
    // invariant) for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            &attr as *const MapElemAttr,
            size_of::<MapElemAttr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// BPF_MAP_UPDATE_ELEM.
pub(super) fn update_elem<K: aya::Pod, V: aya::Pod>(
    fd: BorrowedFd<'_>,
    key: &K,
    value: &V,
    flags: u64,
) -> io::Result<()> {
    // The kernel only reads through the value pointer for an update.
    map_elem(
        BPF_MAP_UPDATE_ELEM,
        fd,
        (key as *const K).cast(),
        (value as *const V).cast_mut().cast(),
        flags,
    )
}

/// BPF_MAP_LOOKUP_ELEM (`take` false) or BPF_MAP_LOOKUP_AND_DELETE_ELEM (`take` true, one
/// atomic step, Linux 5.14+ for hash maps). `None` when the key is absent.
pub(super) fn lookup_elem<K: aya::Pod, V: aya::Pod + Default>(
    fd: BorrowedFd<'_>,
    key: &K,
    take: bool,
) -> io::Result<Option<V>> {
    let mut value = V::default();
    let cmd = if take {
        BPF_MAP_LOOKUP_AND_DELETE_ELEM
    } else {
        BPF_MAP_LOOKUP_ELEM
    };
    match map_elem(
        cmd,
        fd,
        (key as *const K).cast(),
        (&mut value as *mut V).cast(),
        0,
    ) {
        Ok(()) => Ok(Some(value)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `struct ethtool_channels` (include/uapi/linux/ethtool.h).
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// ETHTOOL_GCHANNELS: get the channel counts.
const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// The number of receive queues of `ifname` in the calling thread's network namespace:
/// combined plus receive-only channels, or 1 when the driver does not report channels.
pub(super) fn rx_queue_count(ifname: &CStr) -> io::Result<u32> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut channels = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..EthtoolChannels::default()
    };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = ifname.to_bytes();
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (dst, &src) in req.ifr_name.iter_mut().zip(name) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_data = (&mut channels as *mut EthtoolChannels).cast();
    // SAFETY: SIOCETHTOOL reads the ifreq and writes an ethtool_channels through
    // ifru_data, which points at a live one.
    let rc = unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCETHTOOL,
            &mut req as *mut libc::ifreq,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) => Ok(1),
            _ => Err(e),
        };
    }
    Ok((channels.combined_count + channels.rx_count).max(1))
}

/// setsockopt(2) of an `int` option.
pub(super) fn set_int_opt(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live int of the length passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
