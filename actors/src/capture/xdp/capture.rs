//! [`XdpCapture`]: the XDP program attached to one interface with an AF_XDP socket on
//! each captured receive queue.
//!
//! Set-up order, so that no packet meets a half-built capture: load the program and fill
//! its `config` map, create and bind the sockets and enter them in the XSKMAP, and attach
//! the program to the interface last.

use std::ffi::CString;
use std::io;

use super::abi::ProgramConfig;
use super::program::XdpProgram;
use super::{sys, BypassMap, XdpConfig, XdpCounters, XdpError, XdpMode, XdpSocket};

/// The XDP program loaded and attached to an interface, and the sockets of its queues.
/// Detaches the program on drop; sockets already taken keep working until dropped but
/// receive nothing more.
#[derive(Debug)]
pub struct XdpCapture {
    ifindex: u32,
    sockets: Vec<XdpSocket>,
    bypass: BypassMap,
    mode: XdpMode,
    program: XdpProgram,
}

const _: () = {
    const fn is_send<T: Send>() {}
    is_send::<XdpCapture>();
};

impl XdpCapture {
    /// Loads and attaches the program on `cfg.interface`, as seen from the calling
    /// thread's network namespace, with one socket per captured receive queue.
    pub fn open(cfg: &XdpConfig) -> Result<Self, XdpError> {
        cfg.check()?;
        let interface_error = |source: io::Error| XdpError::Interface {
            interface: cfg.interface.clone(),
            source,
        };
        let ifname = CString::new(cfg.interface.as_str())
            .map_err(|_| XdpError::Config("interface name has a NUL byte".into()))?;
        // SAFETY: `ifname` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
        if ifindex == 0 {
            return Err(interface_error(io::Error::last_os_error()));
        }
        let available = sys::rx_queue_count(&ifname).map_err(interface_error)?;
        let queues = match cfg.queues {
            None => available,
            Some(n) if n <= available => n,
            Some(n) => {
                return Err(XdpError::Config(format!(
                    "{n} queues asked, {} has {available}",
                    cfg.interface
                )))
            }
        };
        let mut program = XdpProgram::load(cfg.bypass_capacity, available)?;
        program.configure(ProgramConfig {
            bypass_action: cfg.bypass_action.abi(),
            pad: 0,
        })?;
        let bypass = program.bypass(cfg.bypass_capacity)?;
        let sockets = (0..queues)
            .map(|q| XdpSocket::open(&ifname, q, cfg))
            .collect::<Result<Vec<_>, _>>()?;
        for s in &sockets {
            program.register_socket(s.queue(), s.raw_fd())?;
        }
        let mode = program.attach(ifindex, cfg.mode)?;
        Ok(XdpCapture {
            ifindex,
            sockets,
            bypass,
            mode,
            program,
        })
    }

    /// The index of the interface the program is attached to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The sockets, one per captured queue in queue order (empty after the first call).
    pub fn take_sockets(&mut self) -> Vec<XdpSocket> {
        std::mem::take(&mut self.sockets)
    }

    /// A handle on the bypass map, for the shard threads.
    pub fn bypass(&self) -> BypassMap {
        self.bypass.clone()
    }

    /// The program's counters, summed over the CPUs.
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        self.program.counters()
    }

    /// The mode the program was attached in: Native or Generic.
    pub fn attached_mode(&self) -> XdpMode {
        self.mode
    }
}
