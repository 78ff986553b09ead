//! `loadgen`: generate pcaps from traffic profiles, send them into an interface, and
//! benchmark sensors on them.

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand};
use flowmesh_loadgen::gen::{
    generate, generate_pcap_bytes, parse_size, GenOptions, Impairments, Profile,
};
use flowmesh_loadgen::send::{send_frames, PcapFile, SendOptions};
use std::num::NonZeroU64;
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
    /// Time flowmesh against Suricata and tshark on one capture, alternating rounds; or,
    /// with --daemon, measure a running daemon capturing what loadgen sends on its link
    Bench(BenchArgs),
    /// Send a pcap's or a profile's frames into an interface (AF_PACKET, needs root)
    Send(SendArgs),
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
    /// Drive this running daemon (like http://127.0.0.1:8765) instead: send the capture
    /// into --interface, whose peer the daemon captures, and report what it counted
    #[arg(long, requires = "interface", conflicts_with_all = ["rounds", "shards", "peers"])]
    daemon: Option<String>,
    /// With --daemon: the interface to send on
    #[arg(long, requires = "daemon")]
    interface: Option<String>,
    /// With --daemon: the network namespace (`ip netns` name) of --interface
    #[arg(long, requires = "daemon")]
    netns: Option<String>,
    /// With --daemon: frames per second (default: as fast as possible)
    #[arg(long, requires = "daemon")]
    rate: Option<NonZeroU64>,
    /// With --daemon: times to send the capture
    #[arg(long, requires = "daemon", default_value = "1")]
    loops: NonZeroU64,
    /// With --daemon: longest wait, in seconds, after sending for the daemon to store
    /// every handshake (records are stored when their flows end or time out)
    #[arg(long, requires = "daemon", default_value_t = 180)]
    wait: u64,
    /// With --daemon, without a manifest: seconds of unchanged counts that mean done
    #[arg(long, requires = "daemon", default_value_t = 15)]
    settle: u64,
}

/// Whether `program` is on the PATH.
fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn bench(a: BenchArgs) -> Result<()> {
    use flowmesh_loadgen::bench::{bench, Tool};
    if let Some(api) = &a.daemon {
        return drive(api, &a);
    }
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
    match report.flowmesh_disagreement() {
        Some(why) => Err(anyhow!("handshake check failed: {why}")),
        None => Ok(()),
    }
}

/// `loadgen bench --daemon`.
fn drive(api: &str, a: &BenchArgs) -> Result<()> {
    use flowmesh_loadgen::bench::manifest_totals;
    use flowmesh_loadgen::drive::{drive, DriveOptions};
    let bytes = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let file = PcapFile::parse(&bytes).with_context(|| format!("reading {}", a.file.display()))?;
    let opts = DriveOptions {
        api: api.to_owned(),
        interface: a.interface.clone().unwrap_or_default(),
        netns: a.netns.clone(),
        send: SendOptions {
            rate: a.rate,
            loops: a.loops,
        },
        expected_handshakes: manifest_totals(&a.file).map(|t| t.handshakes * a.loops.get()),
        wait: std::time::Duration::from_secs(a.wait),
        settle: std::time::Duration::from_secs(a.settle),
    };
    let report = drive(&file, &opts)?;
    print!("{report}");
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    match report.handshakes_expected {
        Some(want) if want != report.handshakes => Err(anyhow!(
            "the daemon stored {} handshakes, the manifest lists {want}",
            report.handshakes
        )),
        _ => Ok(()),
    }
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

fn parse_profile(name: &str) -> Result<Profile> {
    Profile::parse(name).ok_or_else(|| {
        anyhow!("unknown profile {name:?}: mixed, handshakes, syn-flood, ooo-heavy, many-flows")
    })
}

fn parse_bytes(size: Option<&str>) -> Result<Option<u64>> {
    size.map(|s| parse_size(s).ok_or_else(|| anyhow!("bad size {s:?}: use e.g. 1G, 500M, 64k")))
        .transpose()
}

fn gen(a: GenArgs) -> Result<()> {
    let profile = parse_profile(&a.profile)?;
    let bytes = parse_bytes(a.bytes.as_deref())?;
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

#[derive(Debug, clap::Args)]
struct SendArgs {
    /// Interface to send on
    #[arg(long)]
    interface: String,
    /// Classic pcap to send (Ethernet link type)
    #[arg(long, required_unless_present = "profile", conflicts_with = "profile")]
    pcap: Option<PathBuf>,
    /// Generate this profile in memory and send it: mixed | handshakes | syn-flood | ooo-heavy | many-flows
    #[arg(long)]
    profile: Option<String>,
    /// Flows to generate (with --profile)
    #[arg(long, conflicts_with = "pcap")]
    flows: Option<u64>,
    /// Stop starting flows once the capture reaches this size (with --profile)
    #[arg(long, conflicts_with = "pcap")]
    bytes: Option<String>,
    /// Seed (with --profile)
    #[arg(long, conflicts_with = "pcap", default_value_t = 1)]
    seed: u64,
    /// Frames per second (default: as fast as possible)
    #[arg(long)]
    rate: Option<NonZeroU64>,
    /// Times to send the whole sequence
    #[arg(long, default_value = "1")]
    loops: NonZeroU64,
    /// Print the summary as one JSON object
    #[arg(long)]
    json: bool,
}

fn send(a: SendArgs) -> Result<()> {
    let (capture, source) = match (&a.pcap, &a.profile) {
        (Some(path), _) => (
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
            path.display().to_string(),
        ),
        (None, Some(name)) => {
            let opt = GenOptions {
                profile: parse_profile(name)?,
                flows: a.flows,
                bytes: parse_bytes(a.bytes.as_deref())?,
                seed: a.seed,
                out: PathBuf::new(),
                impairments: None,
                nanos: false,
            };
            let bytes =
                generate_pcap_bytes(&opt).with_context(|| format!("generating profile {name}"))?;
            (bytes, format!("profile {name}"))
        }
        (None, None) => return Err(anyhow!("give --pcap FILE or --profile NAME")),
    };
    let file = PcapFile::parse(&capture).with_context(|| format!("reading {source}"))?;
    let opts = SendOptions {
        rate: a.rate,
        loops: a.loops,
    };
    let r = send_frames(&a.interface, file.frames(), &opts)
        .with_context(|| format!("sending {source} on {}", a.interface))?;
    if r.oversize_skipped > 0 {
        eprintln!(
            "loadgen send: {} frames longer than MTU {} allows were skipped (raise it with `ip link set {} mtu N`)",
            r.oversize_skipped, r.mtu, a.interface
        );
    }
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{}: {} frames, {} bytes sent in {:.3} s: {:.0} frames/s, {:.1} Mbit/s; {} oversize skipped, {} retries",
            a.interface,
            r.frames_sent,
            r.bytes_sent,
            r.elapsed_s,
            r.pps,
            r.mbit_per_s,
            r.oversize_skipped,
            r.retries
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Gen(a) => gen(a),
        Cmd::Bench(a) => bench(a),
        Cmd::Send(a) => send(a),
    }
}
