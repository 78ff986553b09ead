//! The scheduler: keeps a set of concurrent flows, steps a random one at a time (or all
//! in lock-step for `many-flows`), spawns new flows from the profile's mix until the flow
//! or byte budget is spent, and writes pcap and manifest.

use super::burst::Burst;
use super::ctx::Ctx;
use super::emit::{Emitter, Impairments};
use super::manifest::{ManifestWriter, Totals};
use crate::flows::quic::{QuicFlow, QuicFlowError};
use crate::flows::simple::{DnsFlow, HttpFlow, SynProbe};
use crate::flows::tls_tcp::TlsTcpFlow;
use crate::flows::Flow;
use crate::pcap::{PcapWriter, Resolution};
use crate::rng::Rng;
use crate::tls::profile::{QUIC_STACKS, TCP_STACKS, TCP_WEIGHTS};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Traffic profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Campus-link-like: ~95 % of bytes in bulk TLS flows, thousands of short TLS flows, DNS, HTTP, QUIC.
    Mixed,
    /// Short TLS-over-TCP and QUIC flows only.
    Handshakes,
    /// SYN probes from many sources, a few real TLS flows among them.
    SynFlood,
    /// Handshakes and transfers under heavy reordering, loss and duplication.
    OooHeavy,
    /// Many concurrent flows: all are opened before any closes.
    ManyFlows,
}

impl Profile {
    /// Parses a profile name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "mixed" => Profile::Mixed,
            "handshakes" => Profile::Handshakes,
            "syn-flood" => Profile::SynFlood,
            "ooo-heavy" => Profile::OooHeavy,
            "many-flows" => Profile::ManyFlows,
            _ => return None,
        })
    }

    /// The profile's name.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Mixed => "mixed",
            Profile::Handshakes => "handshakes",
            Profile::SynFlood => "syn-flood",
            Profile::OooHeavy => "ooo-heavy",
            Profile::ManyFlows => "many-flows",
        }
    }

    /// Flows generated when neither `--flows` nor `--bytes` is given.
    pub fn default_flows(self) -> u64 {
        match self {
            Profile::Mixed => 20_000,
            Profile::Handshakes => 20_000,
            Profile::SynFlood => 200_000,
            Profile::OooHeavy => 10_000,
            Profile::ManyFlows => 1_000_000,
        }
    }

    /// Default impairment rates.
    pub fn impairments(self) -> Impairments {
        match self {
            Profile::OooHeavy => Impairments {
                loss: 0.02,
                reorder: 0.2,
                dup: 0.02,
            },
            Profile::ManyFlows | Profile::SynFlood => Impairments::default(),
            _ => Impairments {
                loss: 0.001,
                reorder: 0.002,
                dup: 0.001,
            },
        }
    }

    fn concurrency(self, flows: u64) -> usize {
        match self {
            Profile::ManyFlows => flows as usize,
            Profile::Mixed => 40,
            _ => 128,
        }
    }
}

/// Options of one generation run.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Profile.
    pub profile: Profile,
    /// Flow budget (flows spawned).
    pub flows: Option<u64>,
    /// Byte budget (pcap size): no new flow starts once it is reached.
    pub bytes: Option<u64>,
    /// Seed.
    pub seed: u64,
    /// Output pcap; the manifest goes to `<out>.manifest.json`.
    pub out: PathBuf,
    /// Impairments (profile default when `None`).
    pub impairments: Option<Impairments>,
    /// Nanosecond timestamps instead of microseconds.
    pub nanos: bool,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Report {
    /// Totals (also in the manifest).
    pub totals: Totals,
    /// Manifest path.
    pub manifest: PathBuf,
    /// Wall time of the run in seconds.
    pub seconds: f64,
}

/// Errors of a generation run.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// Writing the pcap or manifest failed.
    #[error("writing {path}: {source}")]
    Io {
        /// File being written.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// QUIC packet protection failed.
    #[error(transparent)]
    Quic(#[from] QuicFlowError),
}

/// Parses sizes like `1G`, `500M`, `64k`, `12345` (powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&s[..i], 1 << 20),
        (i, 'g' | 'G') => (&s[..i], 1 << 30),
        (i, 't' | 'T') => (&s[..i], 1 << 40),
        _ => (s, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v >= 0.0).then_some((v * mult as f64) as u64)
}

fn manifest_path(out: &Path) -> PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".manifest.json");
    PathBuf::from(p)
}

fn tls_flow(cx: &mut Ctx, response: u64, bulk: bool) -> io::Result<Flow> {
    let i = cx.rng.weighted(TCP_WEIGHTS);
    Ok(Flow::Tls(TlsTcpFlow::new(
        cx,
        &TCP_STACKS[i],
        response,
        bulk,
    )?))
}

fn quic_flow(cx: &mut Ctx) -> Result<Flow, QuicFlowError> {
    let i = usize::from(cx.rng.chance(0.25));
    Ok(Flow::Quic(QuicFlow::new(cx, &QUIC_STACKS[i])?))
}

/// Concurrent bulk transfers at most: long flows would otherwise crowd out the short ones
/// and overshoot a byte budget by the whole set.
const MAX_BULK_ACTIVE: usize = 12;

/// A new flow of `profile`; `bulk_room` is how many bytes a new bulk transfer may carry
/// (0: no bulk flow now).
fn spawn(profile: Profile, cx: &mut Ctx, bulk_room: u64) -> Result<Flow, GenError> {
    let io_err = |source| GenError::Io {
        path: PathBuf::from("manifest"),
        source,
    };
    let short = |cx: &mut Ctx| cx.rng.range(500, 8000);
    Ok(match profile {
        Profile::Handshakes => {
            if cx.rng.chance(0.15) {
                quic_flow(cx)?
            } else {
                let r = short(cx);
                tls_flow(cx, r, false).map_err(io_err)?
            }
        }
        // a free bulk slot is always filled: bulk transfers carry ~95 % of the bytes
        Profile::Mixed if bulk_room > 1 << 20 => {
            let r = cx.rng.range(2 << 20, 16 << 20).min(bulk_room);
            tls_flow(cx, r, true).map_err(io_err)?
        }
        Profile::Mixed => match cx.rng.weighted(&[0.6, 0.05, 0.3, 0.05]) {
            0 => {
                let r = short(cx);
                tls_flow(cx, r, false).map_err(io_err)?
            }
            1 => quic_flow(cx)?,
            2 => Flow::Dns(DnsFlow::new(cx)),
            _ => {
                let b = cx.rng.range(200, 20_000) as u32;
                Flow::Http(HttpFlow::new(cx, b))
            }
        },
        Profile::OooHeavy => match cx.rng.weighted(&[0.1, 0.75, 0.15]) {
            0 if bulk_room > 100_000 => {
                let r = cx.rng.range(100_000, 1 << 20).min(bulk_room);
                tls_flow(cx, r, true).map_err(io_err)?
            }
            0 | 1 => {
                let r = short(cx);
                tls_flow(cx, r, false).map_err(io_err)?
            }
            _ => quic_flow(cx)?,
        },
        Profile::SynFlood => {
            if cx.rng.chance(0.05) {
                let r = short(cx);
                tls_flow(cx, r, false).map_err(io_err)?
            } else {
                Flow::Syn(SynProbe::new(cx))
            }
        }
        Profile::ManyFlows => {
            let b = cx.rng.range(100, 1200) as u32;
            Flow::Http(HttpFlow::new(cx, b))
        }
    })
}

/// Generates a pcap and its manifest.
pub fn generate(opt: &GenOptions) -> Result<Report, GenError> {
    let t0 = Instant::now();
    let mpath = manifest_path(&opt.out);
    let pcap_err = |source| GenError::Io {
        path: opt.out.clone(),
        source,
    };
    let man_err = |source| GenError::Io {
        path: mpath.clone(),
        source,
    };
    let file = File::create(&opt.out).map_err(pcap_err)?;
    let mfile: Box<dyn Write> = Box::new(BufWriter::with_capacity(
        1 << 20,
        File::create(&mpath).map_err(man_err)?,
    ));
    let out = BufWriter::with_capacity(4 << 20, file);
    let (totals, _) = run(opt, out, mfile, &opt.out, &mpath)?;
    Ok(Report {
        totals,
        manifest: mpath,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Generates the pcap of `opt` into memory and returns its bytes; `opt.out` is not used
/// and no manifest is written. The whole capture is held, so mind `flows` and `bytes`.
pub fn generate_pcap_bytes(opt: &GenOptions) -> Result<Vec<u8>, GenError> {
    let mem = Path::new("(memory)");
    let (_, bytes) = run(opt, Vec::new(), Box::new(io::sink()), mem, mem)?;
    Ok(bytes)
}

/// The generation run: writes the pcap to `out` and the manifest to `manifest`; the paths
/// only name the two in errors. Returns the totals and `out`, flushed.
fn run<W: Write>(
    opt: &GenOptions,
    out: W,
    manifest: Box<dyn Write>,
    pcap_path: &Path,
    manifest_path: &Path,
) -> Result<(Totals, W), GenError> {
    let pcap_err = |source| GenError::Io {
        path: pcap_path.to_path_buf(),
        source,
    };
    let man_err = |source| GenError::Io {
        path: manifest_path.to_path_buf(),
        source,
    };
    let res = if opt.nanos {
        Resolution::Nano
    } else {
        Resolution::Micro
    };
    let pcap = PcapWriter::new(out, res).map_err(pcap_err)?;
    let manifest = ManifestWriter::new(manifest, opt.profile.name(), opt.seed).map_err(man_err)?;
    let mut cx = Ctx::new(opt.seed, manifest);
    let mut em = Emitter::new(
        pcap,
        opt.impairments.unwrap_or_else(|| opt.profile.impairments()),
        Rng::new(opt.seed ^ 0x5eed_1a7e),
    );
    let flow_budget = match (opt.flows, opt.bytes) {
        (Some(f), _) => f,
        (None, Some(_)) => u64::MAX,
        (None, None) => opt.profile.default_flows(),
    };
    let byte_budget = opt.bytes.unwrap_or(u64::MAX);
    let conc = opt.profile.concurrency(flow_budget.min(10_000_000));
    let lockstep = opt.profile == Profile::ManyFlows;
    let mut active: Vec<Flow> = Vec::with_capacity(conc.min(1 << 21));
    let mut burst = Burst::new();
    let mut spawned = 0u64;
    let mut bulk_active = 0usize;
    loop {
        while active.len() < conc && spawned < flow_budget && em.bytes() < byte_budget {
            let left = byte_budget.saturating_sub(em.bytes()) / 4;
            let room = if bulk_active < MAX_BULK_ACTIVE {
                left
            } else {
                0
            };
            let f = spawn(opt.profile, &mut cx, room).map_err(|e| match e {
                GenError::Io { source, .. } => man_err(source),
                e => e,
            })?;
            bulk_active += usize::from(f.is_bulk());
            active.push(f);
            spawned += 1;
        }
        if active.is_empty() {
            break;
        }
        if lockstep {
            // every flow takes one step per round: all open before any closes
            let mut i = 0;
            while i < active.len() {
                let done = active[i].step(&mut cx, &mut burst);
                em.flush(&mut burst).map_err(pcap_err)?;
                if done {
                    bulk_active -= usize::from(active[i].is_bulk());
                    active.swap_remove(i);
                } else {
                    i += 1;
                }
            }
        } else {
            let i = cx.rng.below(active.len() as u64) as usize;
            let before = em.bytes();
            let done = active[i].step(&mut cx, &mut burst);
            em.flush(&mut burst).map_err(pcap_err)?;
            if active[i].is_bulk() {
                cx.totals.bulk_bytes += em.bytes() - before;
            }
            if done {
                bulk_active -= usize::from(active[i].is_bulk());
                active.swap_remove(i);
            }
        }
    }
    cx.totals.flows = spawned;
    cx.totals.packets = em.packets();
    cx.totals.bytes = em.bytes();
    let out = em.finish().map_err(pcap_err)?;
    let totals = cx.finish().map_err(man_err)?;
    Ok((totals, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("500M"), Some(500 << 20));
        assert_eq!(parse_size("1.5k"), Some(1536));
        assert_eq!(parse_size("42"), Some(42));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn in_memory_matches_file() {
        let dir = std::env::temp_dir().join(format!("loadgen-mem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let opt = GenOptions {
            profile: Profile::Handshakes,
            flows: Some(20),
            bytes: None,
            seed: 7,
            out: dir.join("hs.pcap"),
            impairments: None,
            nanos: false,
        };
        generate(&opt).expect("generate");
        let file = std::fs::read(&opt.out).expect("read back");
        let mem = generate_pcap_bytes(&opt).expect("generate in memory");
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert_eq!(file, mem);
    }
}
