//! `loadgen bench --daemon`: drives a running flowmesh daemon that captures live on the
//! far end of a link. Sends a capture into the link at a rate (AF_PACKET), waits until the
//! daemon has accounted for every frame and stored the handshakes, and reports what the
//! daemon itself counted over the run (differences of `/api/v1/stats` and `/metrics`):
//! packets/s, Gbit/s, handshakes/s, drops by reason, handshake-to-record latency
//! percentiles and peak memory.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::netns::TestNet;
use crate::prom;
use crate::send::{send_frames, PcapFile, SendError, SendOptions, SendReport};

/// The daemon's histogram of handshake-to-record latency.
const LATENCY: &str = "flowmesh_handshake_record_latency_seconds";
/// How often the daemon's counters are read while waiting.
const POLL: Duration = Duration::from_millis(200);

/// Why a drive failed.
#[derive(Debug, Error)]
pub enum DriveError {
    /// The daemon did not answer.
    #[error("cannot read {url} (is `flowmesh run` up, capturing live?): {detail}")]
    Api {
        /// What was asked.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The daemon has no live capture.
    #[error("the daemon at {0} has no live capture: run it with `--capture afpacket|afxdp --interface IFACE`")]
    NotLive(String),
    /// Sending failed.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The sender's namespace could not be entered.
    #[error("cannot enter network namespace {ns}: {source}")]
    Netns {
        /// The namespace.
        ns: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What to send where, and how long to wait for the daemon.
#[derive(Debug, Clone)]
pub struct DriveOptions {
    /// The daemon's address, like `http://127.0.0.1:8765`.
    pub api: String,
    /// The interface to send on (its peer is the daemon's capture interface).
    pub interface: String,
    /// Network namespace the interface is in (`ip netns` name), if not the current one.
    pub netns: Option<String>,
    /// Rate and loops.
    pub send: SendOptions,
    /// Handshakes the daemon should store (all of them, every loop), if known.
    pub expected_handshakes: Option<u64>,
    /// Longest wait after sending for the daemon to store them.
    pub wait: Duration,
    /// Without an expected count: the daemon's counts unchanged this long means done
    /// (longer than its closed-flow timeout, since records are stored when flows end).
    pub settle: Duration,
}

/// Handshake-to-record latency over the run, from the daemon's histogram.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// Handshakes observed.
    pub observed: u64,
    /// Median, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile, milliseconds.
    pub p90_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Observations above the histogram's last bound (their percentiles read as that bound).
    pub above_last_bound: u64,
}

/// What the daemon counted over one drive.
#[derive(Debug, Clone, Serialize)]
pub struct DaemonReport {
    /// What loadgen sent.
    pub sent: SendReport,
    /// Frames the daemon's capture took.
    pub frames_taken: u64,
    /// Frames counted in the kernel for bypassed flows (AF_XDP bypass).
    pub frames_bypassed: u64,
    /// Frames dropped, by the daemon's reasons (its queues, the kernel ring, decoding).
    pub dropped: BTreeMap<String, u64>,
    /// Frames sent that the daemon never accounted for (lost before its capture, e.g. on
    /// the link, or rejected by a kernel filter).
    pub frames_unaccounted: u64,
    /// Frames taken or bypassed per second of sending.
    pub packets_per_s: f64,
    /// Gbit of frames taken or bypassed per second of sending.
    pub gbit_per_s: f64,
    /// Final flow records stored.
    pub records: u64,
    /// Interim records stored (flows still open, replaced by their final records).
    pub interim_records: u64,
    /// Handshakes stored.
    pub handshakes: u64,
    /// Handshakes there were to store, if known.
    pub handshakes_expected: Option<u64>,
    /// Handshakes stored per second of sending.
    pub handshakes_per_s: f64,
    /// Handshake-to-record latency; `None` if no handshake was stored.
    pub latency: Option<Latency>,
    /// Seconds from the end of sending until the counts were final.
    pub settle_s: f64,
    /// The daemon's resident memory at the end, MiB.
    pub rss_mb: Option<f64>,
    /// The daemon's peak resident memory, MiB: over this run if `peak_is_of_run`, else
    /// since the daemon started.
    pub peak_rss_mb: Option<f64>,
    /// Whether the daemon's peak was reset before sending (it runs on this host, as the
    /// same user or root), so `peak_rss_mb` is the run's.
    pub peak_is_of_run: bool,
}

/// One reading of the daemon's counters.
struct Reading {
    stats: Value,
    metrics: String,
}

impl Reading {
    fn capture(&self, path: &[&str]) -> u64 {
        path.iter()
            .fold(&self.stats["capture"], |v, k| &v[*k])
            .as_u64()
            .unwrap_or(0)
    }

    /// How much the capture counter at `path` grew since `before` (0 if it went back: the
    /// daemon restarted).
    fn since(&self, before: &Reading, path: &[&str]) -> u64 {
        self.capture(path).saturating_sub(before.capture(path))
    }

    fn dropped(&self) -> BTreeMap<String, u64> {
        self.stats["capture"]["dropped"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
            .collect()
    }

    /// Frames taken, bypassed or dropped, records and handshakes stored: all that moves.
    fn progress(&self) -> (u64, u64, u64) {
        (
            self.capture(&["frames"])
                + self.capture(&["xdp", "bypassed_packets"])
                + self.dropped().values().sum::<u64>(),
            self.capture(&["records"]),
            self.capture(&["handshakes"]),
        )
    }

    /// Resets the daemon's peak resident memory (`VmHWM`) to its current size, by writing
    /// 5 to `/proc/<pid>/clear_refs`; false where that is not possible (the daemon runs
    /// elsewhere or in another pid namespace, or as another user).
    fn reset_peak_memory(&self) -> bool {
        let Some(pid) = self.stats["process"]["pid"].as_u64() else {
            return false;
        };
        let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
        let is_flowmesh =
            std::fs::read_to_string(proc.join("comm")).is_ok_and(|comm| comm.trim() == "flowmesh");
        is_flowmesh && std::fs::write(proc.join("clear_refs"), "5").is_ok()
    }

    fn memory_mb(&self, key: &str) -> Option<f64> {
        self.stats["process"][key]
            .as_u64()
            .map(|b| b as f64 / (1 << 20) as f64)
    }
}

/// The daemon's HTTP API.
struct Api {
    agent: ureq::Agent,
    base: String,
}

impl Api {
    fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Api {
            agent,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    fn text(&self, path: &str) -> Result<String, DriveError> {
        let url = format!("{}{path}", self.base);
        let fail = |e: ureq::Error| DriveError::Api {
            url: url.clone(),
            detail: e.to_string(),
        };
        self.agent
            .get(&url)
            .call()
            .map_err(fail)?
            .body_mut()
            .read_to_string()
            .map_err(fail)
    }

    fn read(&self) -> Result<Reading, DriveError> {
        let stats = self.text("/api/v1/stats")?;
        let stats: Value = serde_json::from_str(&stats).map_err(|e| DriveError::Api {
            url: format!("{}/api/v1/stats", self.base),
            detail: e.to_string(),
        })?;
        if stats["capture"].is_null() {
            return Err(DriveError::NotLive(self.base.clone()));
        }
        Ok(Reading {
            stats,
            metrics: self.text("/metrics")?,
        })
    }
}

/// Sends `file` as `opts` says and reports what the daemon counted.
pub fn drive(file: &PcapFile<'_>, opts: &DriveOptions) -> Result<DaemonReport, DriveError> {
    let api = Api::new(&opts.api);
    let before = api.read()?;
    let peak_is_of_run = before.reset_peak_memory();
    let sent = match &opts.netns {
        Some(ns) => TestNet::run_in(ns, || {
            send_frames(&opts.interface, file.frames(), &opts.send)
        })
        .map_err(|source| DriveError::Netns {
            ns: ns.clone(),
            source,
        })??,
        None => send_frames(&opts.interface, file.frames(), &opts.send)?,
    };
    let sent_at = Instant::now();
    let after = wait_until_final(&api, &before, &sent, opts)?;
    Ok(report(
        &before,
        &after,
        sent,
        sent_at.elapsed(),
        peak_is_of_run,
        opts,
    ))
}

/// Reads the daemon until every frame sent is accounted for and the handshakes expected
/// are stored (or, without an expected count, nothing moved for `opts.settle`), or until
/// `opts.wait` has passed.
fn wait_until_final(
    api: &Api,
    before: &Reading,
    sent: &SendReport,
    opts: &DriveOptions,
) -> Result<Reading, DriveError> {
    let start = before.progress();
    let deadline = Instant::now() + opts.wait;
    let mut last = (start, Instant::now());
    loop {
        std::thread::sleep(POLL);
        let now = api.read()?;
        let p = now.progress();
        if p != last.0 {
            last = (p, Instant::now());
        }
        let frames_done = p.0.saturating_sub(start.0) >= sent.frames_sent;
        let done = match opts.expected_handshakes {
            Some(want) => frames_done && p.2.saturating_sub(start.2) >= want,
            None => last.1.elapsed() >= opts.settle,
        };
        if done || Instant::now() >= deadline {
            // Pipeline counters reach /metrics on the daemon's progress tick.
            std::thread::sleep(Duration::from_millis(1100));
            return api.read();
        }
    }
}

fn report(
    before: &Reading,
    after: &Reading,
    sent: SendReport,
    settle: Duration,
    peak_is_of_run: bool,
    opts: &DriveOptions,
) -> DaemonReport {
    let taken = after.since(before, &["frames"]);
    let bypassed = after.since(before, &["xdp", "bypassed_packets"]);
    let was = before.dropped();
    let dropped: BTreeMap<String, u64> = after
        .dropped()
        .into_iter()
        .map(|(k, v)| {
            let d = v.saturating_sub(was.get(&k).copied().unwrap_or(0));
            (k, d)
        })
        .collect();
    let accounted = taken + bypassed + dropped.values().sum::<u64>();
    let bytes = (prom::sum(&after.metrics, "flowmesh_capture_bytes_total")
        - prom::sum(&before.metrics, "flowmesh_capture_bytes_total"))
    .max(0.0)
        + after.since(before, &["xdp", "bypassed_bytes"]) as f64;
    let handshakes = after.since(before, &["handshakes"]);
    let per_s = |v: f64| {
        if sent.elapsed_s > 0.0 {
            v / sent.elapsed_s
        } else {
            0.0
        }
    };
    DaemonReport {
        frames_taken: taken,
        frames_bypassed: bypassed,
        dropped,
        frames_unaccounted: sent.frames_sent.saturating_sub(accounted),
        packets_per_s: per_s((taken + bypassed) as f64),
        gbit_per_s: per_s(bytes * 8.0 / 1e9),
        records: after.since(before, &["records"]),
        interim_records: after.since(before, &["interim_records"]),
        handshakes,
        handshakes_expected: opts.expected_handshakes,
        handshakes_per_s: per_s(handshakes as f64),
        latency: latency(before, after),
        settle_s: settle.as_secs_f64(),
        rss_mb: after.memory_mb("rss_bytes"),
        peak_rss_mb: after.memory_mb("peak_rss_bytes"),
        peak_is_of_run,
        sent,
    }
}

fn latency(before: &Reading, after: &Reading) -> Option<Latency> {
    let b = prom::delta(
        &prom::buckets(&before.metrics, LATENCY),
        &prom::buckets(&after.metrics, LATENCY),
    );
    let ms = |q| prom::quantile(&b, q).map(|s| s * 1e3);
    let total = b.last()?.1;
    let last_finite = b.iter().rev().find(|(le, _)| le.is_finite())?.1;
    Some(Latency {
        observed: total as u64,
        p50_ms: ms(0.5)?,
        p90_ms: ms(0.9)?,
        p99_ms: ms(0.99)?,
        above_last_bound: (total - last_finite) as u64,
    })
}

impl std::fmt::Display for DaemonReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |v: Option<f64>, unit: &str| v.map_or("-".into(), |v| format!("{v:.1} {unit}"));
        writeln!(
            f,
            "sent       {} frames in {:.3} s ({:.0} frames/s, {:.1} Mbit/s)",
            self.sent.frames_sent, self.sent.elapsed_s, self.sent.pps, self.sent.mbit_per_s
        )?;
        writeln!(
            f,
            "taken      {} frames, {} bypassed in the kernel, {} unaccounted",
            self.frames_taken, self.frames_bypassed, self.frames_unaccounted
        )?;
        let drops: Vec<String> = self
            .dropped
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(f, "dropped    {}", drops.join(", "))?;
        writeln!(
            f,
            "rate       {:.0} packets/s, {:.3} Gbit/s, {:.0} handshakes/s",
            self.packets_per_s, self.gbit_per_s, self.handshakes_per_s
        )?;
        let expected = self
            .handshakes_expected
            .map_or(String::new(), |e| format!(" of {e} expected"));
        writeln!(
            f,
            "stored     {} records ({} interim), {} handshakes{expected}, final {:.1} s after sending",
            self.records, self.interim_records, self.handshakes, self.settle_s
        )?;
        match &self.latency {
            Some(l) => writeln!(
                f,
                "latency    handshake to record: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms over {} handshakes ({} above the last bucket)",
                l.p50_ms, l.p90_ms, l.p99_ms, l.observed, l.above_last_bound
            )?,
            None => writeln!(f, "latency    no handshake stored")?,
        }
        writeln!(
            f,
            "memory     {} now, {} at peak {}",
            opt(self.rss_mb, "MiB"),
            opt(self.peak_rss_mb, "MiB"),
            if self.peak_is_of_run {
                "over the run"
            } else {
                "since the daemon started"
            }
        )
    }
}
