//! State shared by all flows of one generation run: the frame builder, the random
//! stream, addressing, the ciphertext pool and the manifest.

use super::manifest::{HandshakeEntry, ManifestWriter, Totals};
use super::tcp::Endpoints;
use crate::rng::Rng;
use crate::wire::{Addrs, FrameBuilder, L2};
use std::io::{self, Write};

/// Number of client hosts addresses are drawn from.
const CLIENT_HOSTS: usize = 1 << 16;
/// Number of servers.
const SERVERS: u64 = 2000;
/// Ephemeral port range (Linux default 32768..60999).
const PORT_LO: u16 = 32768;
const PORT_HI: u16 = 60999;

const NAMES: &[&str] = &[
    "www", "api", "cdn", "static", "img", "login", "mail", "docs", "update", "assets", "m", "app",
];
const DOMAINS: &[&str] = &[
    "example", "campus", "video", "social", "search", "news", "shop", "cloud", "maps", "git",
    "office", "stream", "weather", "bank", "univ", "library",
];
const TLDS: &[&str] = &["com", "org", "net", "edu", "io", "de", "fr", "test"];

/// Generation-wide state.
#[derive(Debug)]
pub struct Ctx {
    /// Frame builder (one reusable buffer).
    pub fb: FrameBuilder,
    /// The random stream (deterministic from the seed).
    pub rng: Rng,
    /// Opaque bytes standing in for ciphertext.
    pub pool: Vec<u8>,
    /// Share of flows over IPv6.
    pub ipv6_share: f64,
    /// Share of flows tagged with an 802.1Q VLAN.
    pub vlan_share: f64,
    /// Running totals.
    pub totals: Totals,
    manifest: ManifestWriter<Box<dyn Write>>,
    next_port: Vec<u16>,
}

impl Ctx {
    /// A context writing handshakes to `manifest`.
    pub fn new(seed: u64, manifest: ManifestWriter<Box<dyn Write>>) -> Self {
        let mut rng = Rng::new(seed);
        let mut pool = vec![0u8; 256 * 1024];
        rng.fill(&mut pool);
        let mut next_port = vec![0u16; CLIENT_HOSTS];
        for p in next_port.iter_mut() {
            *p = rng.range(u64::from(PORT_LO), u64::from(PORT_HI)) as u16;
        }
        Self {
            fb: FrameBuilder::new(),
            rng,
            pool,
            ipv6_share: 0.1,
            vlan_share: 0.05,
            totals: Totals::default(),
            manifest,
            next_port,
        }
    }

    /// Records a handshake in the manifest.
    pub fn record(&mut self, e: &HandshakeEntry) -> io::Result<()> {
        self.totals.handshakes += 1;
        if e.transport == "quic" {
            self.totals.quic_handshakes += 1;
        } else {
            self.totals.tls_tcp_handshakes += 1;
        }
        self.manifest.handshake(e)
    }

    /// Finishes the manifest with the totals.
    pub fn finish(self) -> io::Result<Totals> {
        self.manifest.finish(&self.totals)?;
        Ok(self.totals)
    }

    /// Fresh endpoints for a flow to `server_port`: a random client host with its next
    /// ephemeral port (so 5-tuples do not repeat), a random server.
    pub fn endpoints(&mut self, server_port: u16) -> Endpoints {
        let h = self.rng.below(CLIENT_HOSTS as u64) as usize;
        let port = self.next_port[h];
        self.next_port[h] = if port >= PORT_HI { PORT_LO } else { port + 1 };
        let s = self.rng.below(SERVERS) as u16;
        let v6 = self.rng.chance(self.ipv6_share);
        let ip = if v6 {
            let mut c = [0u8; 16];
            c[0] = 0xfd;
            c[1] = 0x00;
            c[13] = 1;
            c[14..16].copy_from_slice(&(h as u16).to_be_bytes());
            let mut d = [0u8; 16];
            d[0] = 0xfd;
            d[1] = 0x01;
            d[14..16].copy_from_slice(&(s + 1).to_be_bytes());
            Addrs::V6(c, d)
        } else {
            let hb = (h as u16).to_be_bytes();
            let sb = (s + 1).to_be_bytes();
            Addrs::V4([10, 1, hb[0], hb[1]], [172, 16, sb[0], sb[1]])
        };
        let vlan = self
            .rng
            .chance(self.vlan_share)
            .then(|| [10u16, 20, 30][self.rng.below(3) as usize]);
        let hb = (h as u16).to_be_bytes();
        Endpoints {
            l2: L2 {
                src: [0x02, 0x10, 0, 0, hb[0], hb[1]],
                dst: [0x02, 0x20, 0, 0, 0, 1],
                vlan,
            },
            ip,
            cport: port,
            sport: server_port,
        }
    }

    /// A host name like `api.video.net`, sometimes with a numbered label.
    pub fn hostname(&mut self) -> String {
        let r = &mut self.rng;
        let n = NAMES[r.below(NAMES.len() as u64) as usize];
        let d = DOMAINS[r.below(DOMAINS.len() as u64) as usize];
        let t = TLDS[r.below(TLDS.len() as u64) as usize];
        if r.chance(0.2) {
            format!("{n}{}.{d}.{t}", r.below(100))
        } else {
            format!("{n}.{d}.{t}")
        }
    }
}
