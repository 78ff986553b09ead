//! Capture filters in tcpdump syntax (`tcp port 443 or udp port 443`), compiled to classic
//! BPF by libpcap's own compiler, so every expression tcpdump accepts means the same here.
//!
//! Where a filter runs:
//! - `afpacket`: attached to each socket (`SO_ATTACH_FILTER`); the kernel JITs it and a
//!   frame that fails it is never copied into the ring.
//! - `afxdp`: the same program runs in user space on each frame the XDP program delivered,
//!   before it is routed to a shard (libpcap's `bpf_filter` interpreter); frames that fail
//!   are counted as `filtered`.
//!
//! The program is compiled for Ethernet frames as they appear on the wire. On AF_PACKET
//! the kernel has already moved a frame's VLAN tag into metadata when the filter runs, so
//! there `udp` also matches VLAN-tagged UDP and a `vlan` expression matches nothing (as
//! with tcpdump on a Linux interface); on AF_XDP the filter sees the tag, so `udp` matches
//! untagged UDP only and tagged traffic needs `vlan and udp`. The end-to-end tests pin
//! both behaviours.
use std::ffi::{c_char, c_int, c_uint, CStr, CString};
use std::sync::Mutex;

use thiserror::Error;

/// libpcap's `struct bpf_insn` (the same layout as the kernel's `struct sock_filter`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct BpfInsn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

#[repr(C)]
struct BpfProgram {
    bf_len: c_uint,
    bf_insns: *mut BpfInsn,
}

#[repr(C)]
struct Pcap {
    _opaque: [u8; 0],
}

#[link(name = "pcap")]
extern "C" {
    fn pcap_open_dead(linktype: c_int, snaplen: c_int) -> *mut Pcap;
    fn pcap_compile(
        p: *mut Pcap,
        fp: *mut BpfProgram,
        text: *const c_char,
        optimize: c_int,
        netmask: u32,
    ) -> c_int;
    fn pcap_geterr(p: *mut Pcap) -> *const c_char;
    fn pcap_freecode(fp: *mut BpfProgram);
    fn pcap_close(p: *mut Pcap);
    fn bpf_filter(pc: *const BpfInsn, pkt: *const u8, wirelen: c_uint, buflen: c_uint) -> c_uint;
}

/// libpcap's compiler keeps global state in older releases: one compilation at a time.
static COMPILER: Mutex<()> = Mutex::new(());

/// `DLT_EN10MB`.
const LINKTYPE_ETHERNET: c_int = 1;

/// A filter expression libpcap refused.
#[derive(Debug, Error)]
#[error("capture filter {expr:?}: {message}")]
pub struct FilterError {
    /// The expression.
    pub expr: String,
    /// libpcap's message.
    pub message: String,
}

/// A compiled capture filter.
#[derive(Debug, Clone)]
pub struct CaptureFilter {
    expr: String,
    insns: Vec<BpfInsn>,
}

impl CaptureFilter {
    /// Compiles `expr` (tcpdump syntax) for Ethernet frames.
    pub fn compile(expr: &str) -> Result<Self, FilterError> {
        let fail = |message: String| FilterError {
            expr: expr.to_owned(),
            message,
        };
        let text = CString::new(expr).map_err(|_| fail("contains a NUL byte".into()))?;
        let _guard = COMPILER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // SAFETY: opens a capture-less handle; checked for NULL.
        let handle = unsafe { pcap_open_dead(LINKTYPE_ETHERNET, 262_144) };
        if handle.is_null() {
            return Err(fail("libpcap could not create a compiler handle".into()));
        }
        let mut prog = BpfProgram {
            bf_len: 0,
            bf_insns: std::ptr::null_mut(),
        };
        // SAFETY: `handle` is live, `prog` writable, `text` NUL-terminated. The netmask is
        // only used by `broadcast` expressions (0: unknown, as tcpdump on a dead handle).
        let rc = unsafe { pcap_compile(handle, &mut prog, text.as_ptr(), 1, 0) };
        let result = if rc != 0 {
            // SAFETY: pcap_geterr returns a NUL-terminated string owned by `handle`.
            let message = unsafe { CStr::from_ptr(pcap_geterr(handle)) }
                .to_string_lossy()
                .into_owned();
            Err(fail(message))
        } else {
            // SAFETY: on success `prog` holds `bf_len` instructions allocated by libpcap.
            let insns =
                unsafe { std::slice::from_raw_parts(prog.bf_insns, prog.bf_len as usize) }.to_vec();
            // SAFETY: frees what pcap_compile allocated, once.
            unsafe { pcap_freecode(&mut prog) };
            Ok(CaptureFilter {
                expr: expr.to_owned(),
                insns,
            })
        };
        // SAFETY: closes the handle opened above, once.
        unsafe { pcap_close(handle) };
        result
    }

    /// The expression it was compiled from.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// Classic BPF instructions.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Never true for a compiled filter (libpcap emits at least a return).
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// Whether a frame of `wire_len` bytes on the wire, of which `data` was captured,
    /// passes the filter.
    pub fn matches(&self, data: &[u8], wire_len: u32) -> bool {
        // SAFETY: `insns` is a complete program from pcap_compile (validated by libpcap);
        // `data` is readable for `data.len()` bytes, which bounds every load.
        unsafe {
            bpf_filter(
                self.insns.as_ptr(),
                data.as_ptr(),
                wire_len,
                data.len() as c_uint,
            ) != 0
        }
    }

    /// The program as the kernel's `sock_fprog`, borrowing `self`.
    pub fn sock_fprog(&self) -> libc::sock_fprog {
        libc::sock_fprog {
            len: u16::try_from(self.insns.len()).unwrap_or(u16::MAX),
            // `BpfInsn` has the layout of `sock_filter`; the kernel only reads it.
            filter: self.insns.as_ptr().cast_mut().cast(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 + TCP or UDP frame from port `sport` to `dport`.
    fn frame(proto: u8, sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let l4_len = if proto == 6 { 20 } else { 8 };
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        f.extend_from_slice(&ip);
        let mut l4 = vec![0u8; l4_len];
        l4[0..2].copy_from_slice(&sport.to_be_bytes());
        l4[2..4].copy_from_slice(&dport.to_be_bytes());
        if proto == 6 {
            l4[12] = 0x50;
        }
        f.extend_from_slice(&l4);
        f
    }

    #[test]
    fn port_filter_keeps_only_its_ports() {
        let f = CaptureFilter::compile("tcp port 443 or udp port 443").expect("compiles");
        assert!(!f.is_empty());
        let ok = |p: &[u8]| f.matches(p, p.len() as u32);
        assert!(ok(&frame(6, 50000, 443)));
        assert!(ok(&frame(6, 443, 50000)));
        assert!(ok(&frame(17, 50000, 443)));
        assert!(!ok(&frame(6, 50000, 80)));
        assert!(!ok(&frame(17, 53, 50000)));
        // Cut short: a filter never reads past what was captured.
        assert!(!ok(&frame(6, 50000, 443)[..20]));
    }

    #[test]
    fn a_bad_expression_says_what_libpcap_said() {
        let e = CaptureFilter::compile("tcp prot 443").expect_err("syntax error");
        assert!(e.to_string().contains("tcp prot 443"), "{e}");
        assert!(!e.message.is_empty());
    }
}
