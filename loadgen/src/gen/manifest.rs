//! The manifest written beside a generated pcap: what was generated and the fingerprints
//! every handshake must yield. Handshakes are streamed as they are made, so the manifest
//! of a file with millions of handshakes costs no memory.

use crate::fingerprint::{ja3, ja3s, ja4, ja4s, md5_hex, Transport};
use crate::tls::fields::version_name;
use crate::tls::{ClientHelloFields, ServerHelloFields};
use serde::{Deserialize, Serialize};
use std::io::{self, Write};

/// One handshake as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeEntry {
    /// `tcp` or `quic`.
    pub transport: String,
    /// Client address.
    pub client_ip: String,
    /// Client port.
    pub client_port: u16,
    /// Server address.
    pub server_ip: String,
    /// Server port.
    pub server_port: u16,
    /// 802.1Q VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// Client stack profile name.
    pub stack: String,
    /// server_name sent, if any.
    pub sni: Option<String>,
    /// ALPN offered.
    pub alpn: Vec<String>,
    /// Negotiated version name ("TLS 1.3").
    pub tls_version: String,
    /// JA3 string.
    pub ja3: String,
    /// MD5 of the JA3 string.
    pub ja3_hash: String,
    /// JA4.
    pub ja4: String,
    /// JA3S string.
    pub ja3s: String,
    /// MD5 of the JA3S string.
    pub ja3s_hash: String,
    /// JA4S.
    pub ja4s: String,
}

impl HandshakeEntry {
    /// Computes the expected fingerprints of a generated handshake.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        transport: Transport,
        client: (std::net::IpAddr, u16),
        server: (std::net::IpAddr, u16),
        vlan: Option<u16>,
        stack: &str,
        ch: &ClientHelloFields,
        sh: &ServerHelloFields,
    ) -> Self {
        let j3 = ja3(ch);
        let j3s = ja3s(sh);
        Self {
            transport: match transport {
                Transport::Tcp => "tcp",
                Transport::Quic => "quic",
            }
            .to_string(),
            client_ip: client.0.to_string(),
            client_port: client.1,
            server_ip: server.0.to_string(),
            server_port: server.1,
            vlan,
            stack: stack.to_string(),
            sni: ch.sni.clone(),
            alpn: ch.alpn.clone(),
            tls_version: version_name(sh.selected_version.unwrap_or(sh.legacy_version)).to_string(),
            ja3_hash: md5_hex(&j3),
            ja3: j3,
            ja4: ja4(ch, transport),
            ja3s_hash: md5_hex(&j3s),
            ja3s: j3s,
            ja4s: ja4s(sh, transport),
        }
    }
}

impl HandshakeEntry {
    /// [`HandshakeEntry::new`] for a flow's endpoints.
    pub fn for_flow(
        transport: Transport,
        ep: &crate::gen::tcp::Endpoints,
        stack: &str,
        ch: &ClientHelloFields,
        sh: &ServerHelloFields,
    ) -> Self {
        let client = (ep.ip.src(), ep.cport);
        let server = (ep.ip.dst(), ep.sport);
        Self::new(transport, client, server, ep.l2.vlan, stack, ch, sh)
    }
}

/// Totals written at the end of the manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Flows generated (every transport).
    pub flows: u64,
    /// Handshakes (entries of `handshakes`).
    pub handshakes: u64,
    /// TCP handshakes (TLS over TCP).
    pub tls_tcp_handshakes: u64,
    /// QUIC handshakes.
    pub quic_handshakes: u64,
    /// Packets written.
    pub packets: u64,
    /// pcap file size in bytes.
    pub bytes: u64,
    /// Bytes of bulk-flow packets (frames and record headers).
    pub bulk_bytes: u64,
}

/// Streams a manifest: `{"profile":..,"seed":..,"handshakes":[...],"totals":{...}}`.
pub struct ManifestWriter<W: Write> {
    out: W,
    first: bool,
}

impl<W: Write> std::fmt::Debug for ManifestWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestWriter").finish_non_exhaustive()
    }
}

impl<W: Write> ManifestWriter<W> {
    /// Starts the manifest of `profile` generated with `seed`.
    pub fn new(mut out: W, profile: &str, seed: u64) -> io::Result<Self> {
        write!(
            out,
            "{{\"format\":1,\"profile\":{},\"seed\":{seed},\"handshakes\":[",
            serde_json::to_string(profile).map_err(io::Error::other)?
        )?;
        Ok(Self { out, first: true })
    }

    /// Appends one handshake.
    pub fn handshake(&mut self, e: &HandshakeEntry) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",\n")?;
        } else {
            self.out.write_all(b"\n")?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, e).map_err(io::Error::other)
    }

    /// Writes the totals and closes the object.
    pub fn finish(mut self, totals: &Totals) -> io::Result<W> {
        write!(
            self.out,
            "\n],\"totals\":{}}}\n",
            serde_json::to_string(totals).map_err(io::Error::other)?
        )?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A parsed manifest (for tests and `bench`).
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// Profile name.
    pub profile: String,
    /// Seed.
    pub seed: u64,
    /// Every handshake.
    pub handshakes: Vec<HandshakeEntry>,
    /// Totals.
    pub totals: Totals,
}
