//! The XDP program in the kernel: loads the object clang built (embedded in this crate),
//! fills its maps, attaches it to an interface and detaches it on drop.
//!
//! Map names and the program name are those of `ebpf/flowmesh_xdp.c`.

use std::os::fd::{AsFd, RawFd};

use aya::maps::{Array, HashMap, IterableMap, MapData, PerCpuArray, XskMap};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{Xdp, XdpMode as AyaMode};
use aya::{Ebpf, EbpfLoader};

use super::abi::{BypassKey, BypassValue, CounterBlock, ProgramConfig};
use super::{BypassMap, XdpCounters, XdpError, XdpMode};

const PROGRAM: &str = "flowmesh_xdp";
const XSKS: &str = "xsks";
const BYPASS: &str = "bypass";
const CONFIG: &str = "config";
const COUNTERS: &str = "counters";

/// The object file clang built, aligned for the ELF reader.
#[cfg(flowmesh_xdp)]
fn object() -> Result<&'static [u8], XdpError> {
    #[repr(C, align(8))]
    struct Aligned<B: ?Sized>(B);
    static OBJECT: &Aligned<[u8]> =
        &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/flowmesh_xdp.o")));
    Ok(&OBJECT.0)
}

/// This build has no object: build.rs says why.
#[cfg(not(flowmesh_xdp))]
fn object() -> Result<&'static [u8], XdpError> {
    Err(XdpError::NoProgram(env!("FLOWMESH_XDP_MISSING")))
}

/// The loaded program and its maps; detached from its interface on drop.
pub(super) struct XdpProgram {
    ebpf: Ebpf,
    counters: PerCpuArray<MapData, CounterBlock>,
    link: Option<XdpLinkId>,
}

impl XdpProgram {
    /// Loads the program with room for `bypass_capacity` flows and `xsk_slots` sockets
    /// (the highest queue id + 1). Not attached yet.
    pub(super) fn load(bypass_capacity: u32, xsk_slots: u32) -> Result<Self, XdpError> {
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(BYPASS, bypass_capacity)
            .map_max_entries(XSKS, xsk_slots)
            .load(object()?)?;
        program(&mut ebpf)?
            .load()
            .map_err(|source| XdpError::Program {
                what: "load".into(),
                source,
            })?;
        let counters = ebpf
            .take_map(COUNTERS)
            .ok_or(XdpError::Missing("map counters"))?;
        let counters = PerCpuArray::try_from(counters).map_err(map_error(COUNTERS))?;
        Ok(XdpProgram {
            ebpf,
            counters,
            link: None,
        })
    }

    /// Writes the `config` map.
    pub(super) fn configure(&mut self, config: ProgramConfig) -> Result<(), XdpError> {
        let map = self
            .ebpf
            .map_mut(CONFIG)
            .ok_or(XdpError::Missing("map config"))?;
        let mut array: Array<_, ProgramConfig> = Array::try_from(map).map_err(map_error(CONFIG))?;
        array.set(0, config, 0).map_err(map_error(CONFIG))
    }

    /// Sends the packets of receive queue `queue` to the bound AF_XDP socket `fd`.
    pub(super) fn register_socket(&mut self, queue: u32, fd: RawFd) -> Result<(), XdpError> {
        let map = self
            .ebpf
            .map_mut(XSKS)
            .ok_or(XdpError::Missing("map xsks"))?;
        let mut xsks = XskMap::try_from(map).map_err(map_error(XSKS))?;
        xsks.set(queue, fd, 0).map_err(map_error(XSKS))
    }

    /// A shareable handle on the bypass map.
    pub(super) fn bypass(&self, capacity: u32) -> Result<BypassMap, XdpError> {
        let map = self
            .ebpf
            .map(BYPASS)
            .ok_or(XdpError::Missing("map bypass"))?;
        // The typed view checks the key and value sizes against the ABI structs.
        let typed: HashMap<_, BypassKey, BypassValue> =
            HashMap::try_from(map).map_err(map_error(BYPASS))?;
        let fd = typed
            .map()
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| XdpError::Bypass { op: "dup", source })?;
        Ok(BypassMap::new(fd, capacity))
    }

    /// Attaches to the interface `ifindex` of the calling thread's network namespace and
    /// returns the mode used (Native or Generic).
    pub(super) fn attach(&mut self, ifindex: u32, mode: XdpMode) -> Result<XdpMode, XdpError> {
        let prog = program(&mut self.ebpf)?;
        let attach = |prog: &mut Xdp, m: XdpMode| {
            let aya_mode = match m {
                XdpMode::Native => AyaMode::Driver,
                _ => AyaMode::Skb,
            };
            prog.attach_to_if_index(ifindex, aya_mode)
                .map_err(|source| XdpError::Program {
                    what: format!("attach in {m:?} mode to ifindex {ifindex}"),
                    source,
                })
        };
        let (link, used) = match mode {
            XdpMode::Native | XdpMode::Generic => (attach(prog, mode)?, mode),
            XdpMode::Auto => match attach(prog, XdpMode::Native) {
                Ok(link) => (link, XdpMode::Native),
                Err(native) => {
                    tracing::info!(%native, "native XDP unavailable; using generic mode");
                    (attach(prog, XdpMode::Generic)?, XdpMode::Generic)
                }
            },
        };
        self.link = Some(link);
        Ok(used)
    }

    /// The per-CPU counters, summed.
    pub(super) fn counters(&self) -> Result<XdpCounters, XdpError> {
        let per_cpu = self.counters.get(&0, 0).map_err(map_error(COUNTERS))?;
        Ok(XdpCounters::sum(per_cpu.iter()))
    }
}

impl std::fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpProgram")
            .field("ebpf", &self.ebpf)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        let Some(link) = self.link.take() else {
            return;
        };
        // Dropping the Ebpf would detach too; doing it here makes a failure visible.
        let detached = program(&mut self.ebpf).and_then(|p| {
            p.detach(link).map_err(|source| XdpError::Program {
                what: "detach".into(),
                source,
            })
        });
        if let Err(e) = detached {
            tracing::warn!(error = %e, "detaching the XDP program failed");
        }
    }
}

/// The XDP program of the object.
fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp, XdpError> {
    ebpf.program_mut(PROGRAM)
        .ok_or(XdpError::Missing("program flowmesh_xdp"))?
        .try_into()
        .map_err(|source| XdpError::Program {
            what: "type".into(),
            source,
        })
}

/// Wraps a map error with the map's name.
fn map_error(map: &'static str) -> impl Fn(aya::maps::MapError) -> XdpError {
    move |source| XdpError::Map { map, source }
}
