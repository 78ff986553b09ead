//! A QUIC v1 connection: the client's Initial datagram(s) with the ClientHello, the
//! server's Initial (ServerHello) coalesced with Handshake packets in datagrams that fit a
//! 1500-byte MTU, then a few 1-RTT packets each way. Initial packets are really encrypted
//! (RFC 9001).

use crate::fingerprint::Transport;
use crate::gen::burst::Burst;
use crate::gen::ctx::Ctx;
use crate::gen::manifest::HandshakeEntry;
use crate::gen::tcp::{Dir, Endpoints};
use crate::quic::{
    client_initials, server_initial, short_packet, transport_params, ConnIds, InitialKeys,
};
use crate::tls::server_hello::{build_server_hello, ServerKind};
use crate::tls::{build_client_hello, HelloOptions, StackProfile};
use std::io;

/// State of one QUIC flow: its datagrams are built up front (a handful per flow).
#[derive(Debug)]
pub struct QuicFlow {
    ep: Endpoints,
    steps: Vec<(Dir, Vec<Vec<u8>>)>,
    next: usize,
}

/// Errors building a QUIC flow.
#[derive(Debug, thiserror::Error)]
pub enum QuicFlowError {
    /// Packet protection failed.
    #[error(transparent)]
    Protect(#[from] crate::quic::ProtectError),
    /// The manifest could not be written.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl QuicFlow {
    /// Builds the flow's datagrams and records its handshake.
    pub fn new(cx: &mut Ctx, stack: &StackProfile) -> Result<Self, QuicFlowError> {
        let ep = cx.endpoints(443);
        let mut ids = ConnIds {
            dcid: [0; 8],
            client_scid: [0; 8],
            server_scid: [0; 8],
        };
        cx.rng.fill(&mut ids.dcid);
        cx.rng.fill(&mut ids.client_scid);
        cx.rng.fill(&mut ids.server_scid);
        let sni = cx.hostname();
        let mut params = Vec::with_capacity(64);
        transport_params(&ids.client_scid, &mut params);
        let mut hello = Vec::with_capacity(2048);
        let opt = HelloOptions {
            sni: Some(&sni),
            quic_params: &params,
            order: None,
        };
        let ch = build_client_hello(stack, &opt, &mut cx.rng, &mut hello);
        let mut sh = Vec::with_capacity(1300);
        let shf = build_server_hello(&ch, &[], 0x0304, ServerKind::OpenSsl, &mut cx.rng, &mut sh);
        let keys = InitialKeys::new(&ids.dcid)?;
        let mut client = Vec::new();
        client_initials(&keys.client, &ids, &hello, &mut cx.rng, &mut client)?;
        let largest = client.len() as u64 - 1;
        let mut server = Vec::new();
        let hs_len = cx.rng.range(900, 1100) as usize;
        server_initial(
            &keys.server,
            &ids,
            largest,
            &sh,
            hs_len,
            &mut cx.rng,
            &mut server,
        )?;
        let mut steps = vec![(Dir::C2s, client), (Dir::S2c, server)];
        for _ in 0..cx.rng.range(1, 3) {
            let mut c = Vec::new();
            short_packet(
                &ids.server_scid,
                cx.rng.range(40, 300) as usize,
                &mut cx.rng,
                &mut c,
            );
            steps.push((Dir::C2s, vec![c]));
            let mut s = Vec::new();
            short_packet(
                &ids.client_scid,
                cx.rng.range(200, 1200) as usize,
                &mut cx.rng,
                &mut s,
            );
            steps.push((Dir::S2c, vec![s]));
        }
        let entry = HandshakeEntry::for_flow(Transport::Quic, &ep, stack.name, &ch, &shf);
        cx.record(&entry)?;
        Ok(Self { ep, steps, next: 0 })
    }

    /// Emits the next datagrams; returns true when done.
    pub fn step(&mut self, cx: &mut Ctx, out: &mut Burst) -> bool {
        let (dir, dgrams) = &self.steps[self.next];
        let (l2, ip, sp, dp) = self.ep.toward(*dir);
        for d in dgrams {
            out.push(
                cx.fb
                    .udp(&l2, &ip, sp, dp, d.len(), |p| p.copy_from_slice(d)),
            );
        }
        self.next += 1;
        self.next == self.steps.len()
    }
}
