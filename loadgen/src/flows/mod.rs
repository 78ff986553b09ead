//! Flow kinds: each is a small state machine whose `step` appends the next packets of
//! the flow to a burst and says whether the flow is over.

pub mod quic;
pub mod simple;
pub mod tls_tcp;

use crate::gen::burst::Burst;
use crate::gen::ctx::Ctx;

/// Any flow loadgen generates.
#[derive(Debug)]
pub enum Flow {
    /// TLS over TCP.
    Tls(tls_tcp::TlsTcpFlow),
    /// QUIC.
    Quic(quic::QuicFlow),
    /// DNS over UDP.
    Dns(simple::DnsFlow),
    /// HTTP/1.1 over TCP.
    Http(simple::HttpFlow),
    /// SYN probe.
    Syn(simple::SynProbe),
}

impl Flow {
    /// Emits the next step of the flow; true when the flow is finished.
    pub fn step(&mut self, cx: &mut Ctx, out: &mut Burst) -> bool {
        match self {
            Flow::Tls(f) => f.step(cx, out),
            Flow::Quic(f) => f.step(cx, out),
            Flow::Dns(f) => f.step(cx, out),
            Flow::Http(f) => f.step(cx, out),
            Flow::Syn(f) => f.step(cx, out),
        }
    }

    /// True for bulk transfers (for the bytes-share statistic).
    pub fn is_bulk(&self) -> bool {
        matches!(self, Flow::Tls(f) if f.bulk)
    }
}
