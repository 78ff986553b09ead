//! The errors of the XDP layer.

use std::io;

/// Why an AF_XDP capture could not be opened or a bypass map operation failed.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// The crate was built without clang, or clang failed on `ebpf/flowmesh_xdp.c`.
    #[error("this build has no XDP program: {0}")]
    NoProgram(&'static str),
    /// A configuration value is out of range.
    #[error("invalid XDP configuration: {0}")]
    Config(String),
    /// The interface does not exist or cannot be queried.
    #[error("interface {interface}: {source}")]
    Interface {
        /// Interface name.
        interface: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The kernel refused the program or its maps (verifier, permissions, memlock).
    #[error("loading the XDP program: {0}")]
    Load(#[from] aya::EbpfError),
    /// A program operation (load, attach) failed.
    #[error("XDP program {what}: {source}")]
    Program {
        /// What was being done.
        what: String,
        /// The failure.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// The embedded object lacks a map or program this code expects (a build mismatch).
    #[error("the XDP object has no {0}")]
    Missing(&'static str),
    /// A map of the program has the wrong shape, or an operation on it failed.
    #[error("XDP map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// The failure.
        #[source]
        source: aya::maps::MapError,
    },
    /// Setting up the AF_XDP socket of a queue failed.
    #[error("AF_XDP socket of queue {queue}: {what}: {source}")]
    Socket {
        /// Receive queue.
        queue: u32,
        /// The step that failed.
        what: &'static str,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The bypass map is full: the flow stays in user space.
    #[error("the bypass map is full ({capacity} flows)")]
    BypassFull {
        /// Map capacity.
        capacity: u32,
    },
    /// A bpf(2) call on the bypass map failed.
    #[error("bypass map {op}: {source}")]
    Bypass {
        /// The operation.
        op: &'static str,
        /// The failure.
        #[source]
        source: io::Error,
    },
}
