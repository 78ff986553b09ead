//! Command-line interface.

use clap::{Parser, Subcommand, ValueEnum};
use flowmesh_core::handshake::FingerprintSet;
use std::path::PathBuf;

/// flowmesh: flows, TCP reassembly and TLS/QUIC fingerprints from packets.
#[derive(Debug, Parser)]
#[command(name = "flowmesh", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read pcap/pcapng files and print one JSON flow record per line.
    Replay(ReplayArgs),
    /// Run the daemon: ingest captures into the flow store, serve the admin API.
    Run(RunArgs),
    /// Query the flows of a running daemon.
    Query(QueryArgs),
    /// Check a configuration file and print the configuration it gives.
    CheckConfig(CheckConfigArgs),
}

/// Arguments of `flowmesh run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Configuration file, overlaid on the embedded defaults (config/flowmesh.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// State directory (overrides daemon.data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Admin API address (overrides api.listen), e.g. 127.0.0.1:8765; port 0 picks one.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Packet source (overrides capture.source).
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub capture: Option<crate::config::Source>,
    /// Live capture interface (overrides capture.interface).
    #[arg(long, value_name = "IFACE")]
    pub interface: Option<String>,
}

/// Arguments of `flowmesh check-config`.
#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    /// The file to check.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Output formats of `query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    /// Aligned columns.
    Table,
    /// The API's flow objects, one per line.
    Json,
}

/// Arguments of `flowmesh query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The daemon's admin API.
    #[arg(long, default_value = "http://127.0.0.1:8765", env = "FLOWMESH_SERVER")]
    pub server: String,
    /// First packet at or after this time (RFC 3339 or Unix seconds).
    #[arg(long)]
    pub from: Option<String>,
    /// First packet before this time (RFC 3339 or Unix seconds).
    #[arg(long)]
    pub to: Option<String>,
    /// Client or server address.
    #[arg(long)]
    pub ip: Option<String>,
    /// Client or server address in this network (10.0.0.0/8).
    #[arg(long)]
    pub cidr: Option<String>,
    /// Client or server port.
    #[arg(long)]
    pub port: Option<u16>,
    /// tcp, udp, icmp, icmpv6 or ip-N.
    #[arg(long)]
    pub transport: Option<String>,
    /// SNI of any handshake.
    #[arg(long)]
    pub sni: Option<String>,
    /// JA3 hash of any handshake.
    #[arg(long)]
    pub ja3: Option<String>,
    /// JA4 of any handshake.
    #[arg(long)]
    pub ja4: Option<String>,
    /// Community ID.
    #[arg(long)]
    pub community_id: Option<String>,
    /// Flows to print at most.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    pub format: QueryFormat,
}

/// Output formats of `replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per flow record, one per line.
    Jsonl,
}

/// Arguments of `flowmesh replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Capture files (pcap or pcapng), read in order as one stream of packets.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Where to write records: a path, or `-` for standard output.
    #[arg(long, short, default_value = "-", value_name = "PATH|-")]
    pub output: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Fingerprints to compute, comma-separated: ja3, ja3s, ja4, ja4s.
    /// JA4S is off by default (FoxIO licence, see README).
    #[arg(long, default_value = "ja3,ja3s,ja4", value_parser = parse_fingerprints)]
    pub fingerprints: FingerprintSet,
    /// Reassembly shards (threads that own flows). Default: one per CPU core.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub shards: Option<u16>,
    /// Handshake workers (TLS/QUIC parsing and fingerprints). Default: one per shard.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
    /// Flow table capacity over all shards; past it the least recently active flow is
    /// evicted.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_flows: usize,
    /// Reassembly memory cap in MiB, over all shards.
    #[arg(long, default_value_t = 256)]
    pub reassembly_memcap_mb: usize,
    /// Bytes reassembled per direction for handshake parsing.
    #[arg(long, default_value_t = 32 * 1024)]
    pub depth: u32,
    /// No progress line and no summary on standard error.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_fingerprints(s: &str) -> Result<FingerprintSet, String> {
    s.parse()
}
