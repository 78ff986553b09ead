//! AF_XDP capture: the XDP program of `ebpf/flowmesh_xdp.c` and the sockets it feeds.
//!
//! The program parses each frame to L4, counts the packets of flows user space has put in
//! the bypass map (and passes or drops them), passes what is not IP, and redirects the
//! rest to the AF_XDP socket of the frame's receive queue. User space loads it (aya),
//! reads the sockets (xdpilone, one UMEM and one reader thread per queue), and manages
//! the bypass map through [`BypassMap`].
//!
//! - [`abi`]: the structs shared with the program (mirror of `ebpf/flowmesh_xdp.h`);
//! - [`XdpCapture`]: program + sockets on one interface; [`XdpSocket`]: one queue;
//! - [`BypassMap`]: insert / peek / take flows, from any thread;
//! - [`mono_to_timestamp`]: the program's CLOCK_MONOTONIC times as wall-clock timestamps.
//!
//! Needs Linux 5.14+ (atomic lookup-and-delete on hash maps), CAP_NET_ADMIN, CAP_BPF
//! (or root), and a build with clang (see `actors/build.rs`); without clang every
//! [`XdpCapture::open`] returns [`XdpError::NoProgram`].

pub mod abi;
mod bypass;
mod capture;
mod clock;
mod config;
mod counters;
mod error;
mod program;
mod socket;
mod sys;

pub use bypass::{BypassCounters, BypassMap};
pub use capture::XdpCapture;
pub use clock::{mono_now_ns, mono_to_timestamp};
pub use config::{BypassAction, XdpConfig, XdpMode};
pub use counters::XdpCounters;
pub use error::XdpError;
pub use socket::{XdpSocket, XskStats};
