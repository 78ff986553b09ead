//! `loadgen`: generate pcaps from traffic profiles (and, later, benchmark sensors on them).

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand};
use flowmesh_loadgen::gen::{generate, parse_size, GenOptions, Impairments, Profile};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "flowmesh traffic generator")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write a pcap and `<out>.manifest.json` from a profile
    Gen(GenArgs),
    /// Time flowmesh against Suricata and tshark on one capture, alternating rounds
    Bench(BenchArgs),
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// The capture (a loadgen file's manifest, beside it, gives packet and handshake counts)
    #[arg(long)]
    file: PathBuf,
    /// Rounds; every tool runs once per round
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The flowmesh binary (default: `flowmesh` beside this loadgen)
    #[arg(long)]
    flowmesh: Option<PathBuf>,
    /// flowmesh shards
    #[arg(long, default_value_t = 1)]
    shards: u16,
    /// Peers to run, comma-separated (default: those of suricata, tshark that are installed)
    #[arg(long, value_delimiter = ',')]
    peers: Option<Vec<String>>,
    /// Also write the report as JSON here
    #[arg(long)]
    json: Option<PathBuf>,
    /// Scratch directory for the tools' logs
    #[arg(long, default_value = "loadgen-bench")]
    scratch: PathBuf,
}

/// Whether `program` is on the PATH.
fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn bench(a: BenchArgs) -> Result<()> {
    use flowmesh_loadgen::bench::{bench, Tool};
    let flowmesh = match a.flowmesh {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("flowmesh"))
            .ok_or_else(|| anyhow!("cannot locate flowmesh; pass --flowmesh"))?,
    };
    let mut tools = vec![Tool::Flowmesh {
        path: flowmesh,
        shards: a.shards,
    }];
    let peers = a.peers.unwrap_or_else(|| {
        ["suricata", "tshark"]
            .iter()
            .filter(|p| installed(p))
            .map(|p| p.to_string())
            .collect()
    });
    for p in &peers {
        tools.push(match p.as_str() {
            "suricata" => Tool::Suricata,
            "tshark" => Tool::Tshark,
            other => return Err(anyhow!("unknown peer {other:?}: suricata or tshark")),
        });
    }
    if peers.is_empty() {
        eprintln!("loadgen bench: neither suricata nor tshark is installed; timing flowmesh alone (scripts/bench-suricata installs Suricata)");
    }
    let report = bench(&tools, &a.file, a.rounds, &a.scratch)?;
    print!("{report}");
    if let Some(path) = a.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
struct GenArgs {
    /// mixed | handshakes | syn-flood | ooo-heavy | many-flows
    #[arg(long)]
    profile: String,
    /// Flows to generate (default: the profile's, unless --bytes is given)
    #[arg(long)]
    flows: Option<u64>,
    /// Stop starting flows once the file reaches this size (1G, 500M, 64k)
    #[arg(long)]
    bytes: Option<String>,
    /// Seed: the same seed writes the same bytes
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output pcap
    #[arg(long)]
    out: PathBuf,
    /// Loss rate per packet (lost before the sensor, retransmitted later); default: the profile's
    #[arg(long)]
    loss: Option<f64>,
    /// Reordering rate per packet; default: the profile's
    #[arg(long)]
    reorder: Option<f64>,
    /// Duplication rate per packet; default: the profile's
    #[arg(long)]
    dup: Option<f64>,
    /// Nanosecond pcap timestamps
    #[arg(long)]
    nanos: bool,
}

fn gen(a: GenArgs) -> Result<()> {
    let profile = Profile::parse(&a.profile).ok_or_else(|| {
        anyhow!(
            "unknown profile {:?}: mixed, handshakes, syn-flood, ooo-heavy, many-flows",
            a.profile
        )
    })?;
    let bytes = a
        .bytes
        .as_deref()
        .map(|s| parse_size(s).ok_or_else(|| anyhow!("bad size {s:?}: use e.g. 1G, 500M, 64k")))
        .transpose()?;
    let d = profile.impairments();
    let imp = Impairments {
        loss: a.loss.unwrap_or(d.loss),
        reorder: a.reorder.unwrap_or(d.reorder),
        dup: a.dup.unwrap_or(d.dup),
    };
    let opt = GenOptions {
        profile,
        flows: a.flows,
        bytes,
        seed: a.seed,
        out: a.out.clone(),
        impairments: Some(imp),
        nanos: a.nanos,
    };
    let r = generate(&opt).with_context(|| format!("generating {}", a.out.display()))?;
    let t = &r.totals;
    let mb = t.bytes as f64 / 1e6;
    eprintln!(
        "{}: {} flows, {} handshakes ({} TLS/TCP, {} QUIC), {} packets, {:.1} MB ({:.1} % bulk) in {:.2} s: {:.0} MB/s, {:.0} packets/s; manifest {}",
        a.out.display(),
        t.flows,
        t.handshakes,
        t.tls_tcp_handshakes,
        t.quic_handshakes,
        t.packets,
        mb,
        100.0 * t.bulk_bytes as f64 / t.bytes.max(1) as f64,
        r.seconds,
        mb / r.seconds,
        t.packets as f64 / r.seconds,
        r.manifest.display()
    );
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Gen(a) => gen(a),
        Cmd::Bench(a) => bench(a),
    }
}
