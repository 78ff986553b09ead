//! Noise flows: DNS over UDP, plain HTTP/1.1 over TCP, and half-open SYN probes.

use crate::gen::burst::Burst;
use crate::gen::ctx::Ctx;
use crate::gen::payload::{dns_query, dns_response, http_request, http_response};
use crate::gen::tcp::{Dir, Endpoints, TcpConn};

/// A DNS query and its answer.
#[derive(Debug)]
pub struct DnsFlow {
    ep: Endpoints,
}

impl DnsFlow {
    /// A query from a random client to a resolver.
    pub fn new(cx: &mut Ctx) -> Self {
        Self {
            ep: cx.endpoints(53),
        }
    }

    /// Emits query and response; DNS flows are one step.
    pub fn step(&mut self, cx: &mut Ctx, out: &mut Burst) -> bool {
        let name = cx.hostname();
        let mut q = Vec::with_capacity(128);
        let id = cx.rng.next_u32() as u16;
        dns_query(id, &name, cx.rng.chance(0.3), &mut q);
        let mut r = Vec::with_capacity(256);
        let answers = cx.rng.range(1, 3) as u16;
        dns_response(&q, answers, &mut cx.rng, &mut r);
        for (dir, msg) in [(Dir::C2s, &q), (Dir::S2c, &r)] {
            let (l2, ip, sp, dp) = self.ep.toward(dir);
            out.push(
                cx.fb
                    .udp(&l2, &ip, sp, dp, msg.len(), |p| p.copy_from_slice(msg)),
            );
        }
        true
    }
}

/// A plain HTTP/1.1 exchange on port 80.
#[derive(Debug)]
pub struct HttpFlow {
    conn: TcpConn,
    phase: u8,
    body: u32,
}

impl HttpFlow {
    /// A GET with a `body`-byte answer.
    pub fn new(cx: &mut Ctx, body: u32) -> Self {
        let ep = cx.endpoints(80);
        let (a, b) = (cx.rng.next_u32(), cx.rng.next_u32());
        Self {
            conn: TcpConn::new(ep, a, b, ep.mss()),
            phase: 0,
            body,
        }
    }

    /// Emits the next step; true when closed.
    pub fn step(&mut self, cx: &mut Ctx, out: &mut Burst) -> bool {
        let fb = &mut cx.fb;
        let c = &mut self.conn;
        match self.phase {
            0 => c.syn(fb, out),
            1 => c.syn_ack(fb, out),
            2 => {
                c.ack(fb, out, Dir::C2s);
                let mut req = Vec::with_capacity(256);
                http_request("intranet.campus.edu", "/index.html", &mut req);
                c.send(fb, out, Dir::C2s, &req);
            }
            3 => {
                let mut resp = Vec::with_capacity(self.body as usize + 200);
                http_response(self.body as usize, &mut resp);
                c.send(fb, out, Dir::S2c, &resp);
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

/// A SYN from a (spoofed) client: sometimes answered by SYN-ACK, then RST.
#[derive(Debug)]
pub struct SynProbe {
    conn: TcpConn,
}

impl SynProbe {
    /// A probe to port 443 or 80.
    pub fn new(cx: &mut Ctx) -> Self {
        let port = if cx.rng.chance(0.7) { 443 } else { 80 };
        let ep = cx.endpoints(port);
        let (a, b) = (cx.rng.next_u32(), cx.rng.next_u32());
        Self {
            conn: TcpConn::new(ep, a, b, ep.mss()),
        }
    }

    /// Emits the probe (one step).
    pub fn step(&mut self, cx: &mut Ctx, out: &mut Burst) -> bool {
        let fb = &mut cx.fb;
        self.conn.syn(fb, out);
        if cx.rng.chance(0.3) {
            self.conn.syn_ack(fb, out);
            if cx.rng.chance(0.5) {
                self.conn.rst(fb, out, Dir::C2s);
            }
        }
        true
    }
}
