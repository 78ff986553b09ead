//! A TLS-over-TCP connection: handshake, ClientHello (one or two segments), the server's
//! first flight, the client's finish, a response of chosen size in application_data
//! records, and FIN teardown.

use crate::fingerprint::Transport;
use crate::gen::burst::Burst;
use crate::gen::ctx::Ctx;
use crate::gen::manifest::HandshakeEntry;
use crate::gen::payload::{fill_records, record_stream_len};
use crate::gen::tcp::{Dir, TcpConn};
use crate::tls::server_hello::{
    app_data_record, build_server_hello, negotiate_version, server_flight, ServerKind,
};
use crate::tls::{build_client_hello, wrap_records, HelloOptions, StackProfile};
use std::io;

/// Segments sent per step of the response (flows interleave between steps).
const SEGMENTS_PER_STEP: u64 = 24;

/// State of one TLS-over-TCP flow.
#[derive(Debug)]
pub struct TlsTcpFlow {
    conn: TcpConn,
    phase: u8,
    client_flight: Vec<u8>,
    server_flight: Vec<u8>,
    v13: bool,
    response_total: u64,
    response_sent: u64,
    /// Whether this flow's bytes count as bulk.
    pub bulk: bool,
}

impl TlsTcpFlow {
    /// Builds the hellos now (so the manifest entry is written) and returns the flow.
    pub fn new(cx: &mut Ctx, stack: &StackProfile, response: u64, bulk: bool) -> io::Result<Self> {
        let port = if cx.rng.chance(0.9) { 443 } else { 8443 };
        let ep = cx.endpoints(port);
        // Stacks that are not browsers sometimes connect to an IP literal: no SNI.
        let browser = stack.order == crate::tls::profile::Order::Permuted
            || stack.name == "firefox"
            || stack.name == "safari";
        let sni = (browser || cx.rng.chance(0.9)).then(|| cx.hostname());
        let mut hello = Vec::with_capacity(2048);
        let opt = HelloOptions {
            sni: sni.as_deref(),
            ..Default::default()
        };
        let ch = build_client_hello(stack, &opt, &mut cx.rng, &mut hello);
        let mut client_flight = Vec::with_capacity(hello.len() + 16);
        wrap_records(0x16, 0x0301, &hello, &mut client_flight);
        let version = negotiate_version(&ch, cx.rng.chance(0.9));
        let kind = if cx.rng.chance(0.85) {
            ServerKind::OpenSsl
        } else {
            ServerKind::GnuTls
        };
        let sid_len = hello[38] as usize;
        let sid = hello[39..39 + sid_len].to_vec();
        let mut sh = Vec::with_capacity(1400);
        let shf = build_server_hello(&ch, &sid, version, kind, &mut cx.rng, &mut sh);
        let v13 = version == 0x0304;
        let enc = cx.rng.range(1800, 4200) as usize;
        let mut server = Vec::with_capacity(sh.len() + enc + 64);
        server_flight(&sh, v13, enc, &mut cx.rng, &mut server);
        let entry = HandshakeEntry::for_flow(Transport::Tcp, &ep, stack.name, &ch, &shf);
        cx.record(&entry)?;
        let isn_c = cx.rng.next_u32();
        let isn_s = cx.rng.next_u32();
        Ok(Self {
            conn: TcpConn::new(ep, isn_c, isn_s, ep.mss()),
            phase: 0,
            client_flight,
            server_flight: server,
            v13,
            response_total: record_stream_len(response),
            response_sent: 0,
            bulk,
        })
    }

    /// Emits the next step; returns true when the flow is finished.
    pub fn step(&mut self, cx: &mut Ctx, out: &mut Burst) -> bool {
        let fb = &mut cx.fb;
        let c = &mut self.conn;
        match self.phase {
            0 => c.syn(fb, out),
            1 => c.syn_ack(fb, out),
            2 => {
                c.ack(fb, out, Dir::C2s);
                c.send(fb, out, Dir::C2s, &self.client_flight);
            }
            3 => c.send(fb, out, Dir::S2c, &self.server_flight),
            4 => {
                let mut m = Vec::with_capacity(700);
                if self.v13 {
                    m.extend_from_slice(&[0x14, 0x03, 0x03, 0, 1, 1]);
                    app_data_record(53, &mut cx.rng, &mut m); // Finished
                } else {
                    let mut cke = vec![0x10, 0, 0, 33, 32];
                    cke.resize(37, 0);
                    cx.rng.fill(&mut cke[5..]);
                    wrap_records(0x16, 0x0303, &cke, &mut m);
                    m.extend_from_slice(&[0x14, 0x03, 0x03, 0, 1, 1]);
                    m.extend_from_slice(&[0x16, 0x03, 0x03, 0, 40]);
                    let at = m.len();
                    m.resize(at + 40, 0);
                    cx.rng.fill(&mut m[at..]);
                }
                let req = cx.rng.range(150, 600) as usize;
                app_data_record(req, &mut cx.rng, &mut m);
                c.send(fb, out, Dir::C2s, &m);
                if !self.v13 {
                    let mut s = vec![0x14, 0x03, 0x03, 0, 1, 1, 0x16, 0x03, 0x03, 0, 40];
                    s.resize(51, 0);
                    cx.rng.fill(&mut s[11..]);
                    c.send(fb, out, Dir::S2c, &s);
                }
            }
            5 => {
                let left = self.response_total - self.response_sent;
                let per_step = if self.bulk {
                    4 * SEGMENTS_PER_STEP
                } else {
                    SEGMENTS_PER_STEP
                };
                let n = left.min(per_step * c.segment_payload() as u64);
                let total = self.response_total;
                let pool = &cx.pool;
                c.send_with(
                    fb,
                    out,
                    Dir::S2c,
                    self.response_sent,
                    n as usize,
                    |off, buf| fill_records(off, total, pool, buf),
                );
                self.response_sent += n;
                if self.response_sent < self.response_total {
                    return false;
                }
            }
            _ => {
                c.close(fb, out);
                return true;
            }
        }
        self.phase += 1;
        false
    }
}
