//! What `replay` tells a person on standard error: a progress line and a summary.

use flowmesh_core::shard::ShardStats;
use flowmesh_core::stats::ReasonCounts;
use flowmesh_schemas::EndReason;
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// A progress line, redrawn at most every two seconds once a run is long enough to need it.
pub struct Progress {
    enabled: bool,
    total_bytes: u64,
    started: Instant,
    last: Instant,
    shown: bool,
}

impl Progress {
    /// Progress over `total_bytes` of input; silent when not `enabled`.
    pub fn new(enabled: bool, total_bytes: u64) -> Self {
        let now = Instant::now();
        Progress {
            enabled,
            total_bytes,
            started: now,
            last: now,
            shown: false,
        }
    }

    /// Redraws the line if two seconds passed.
    pub fn tick(&mut self, path: &Path, done_bytes: u64, stats: &ShardStats) {
        if !self.enabled || self.last.elapsed() < Duration::from_secs(2) {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let pct = 100.0 * done_bytes as f64 / self.total_bytes.max(1) as f64;
        eprint!(
            "\r{}: {pct:5.1}%  {} packets  {} flows  {} handshakes  {:.0} packets/s   ",
            path.display(),
            stats.frames,
            stats.records_total(),
            stats.handshakes,
            stats.frames as f64 / secs
        );
        let _ = std::io::stderr().flush();
    }

    /// Ends the progress line before other output.
    pub fn clear(&mut self) {
        if self.shown {
            eprintln!();
            self.shown = false;
        }
    }
}

/// The end-of-run summary.
pub struct Summary<'a> {
    /// Files read.
    pub files: usize,
    /// Counters of the run.
    pub stats: &'a ShardStats,
    /// Wall time of the run.
    pub elapsed: Duration,
}

fn reasons(f: &mut fmt::Formatter<'_>, title: &str, counts: &ReasonCounts) -> fmt::Result {
    if counts.total() == 0 {
        return writeln!(f, "  {title}: none");
    }
    let list: Vec<String> = counts
        .sorted()
        .iter()
        .map(|(r, n)| format!("{r}={n}"))
        .collect();
    writeln!(f, "  {title}: {} ({})", counts.total(), list.join(", "))
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.stats;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(
            f,
            "flowmesh replay: {} file(s), {} packets, {} bytes, {} flows, {} handshakes in {:.3} s ({:.0} packets/s, {:.3} Gbit/s)",
            self.files,
            s.frames,
            s.bytes,
            s.records_total(),
            s.handshakes,
            secs,
            s.frames as f64 / secs,
            s.bytes as f64 * 8.0 / secs / 1e9
        )?;
        let ended: Vec<String> = EndReason::ALL
            .iter()
            .zip(s.records)
            .map(|(r, n)| format!("{}={n}", r.as_str()))
            .collect();
        writeln!(f, "  flows ended: {}", ended.join(", "))?;
        reasons(f, "packet drops", &s.decode_drops)?;
        reasons(f, "malformed hellos", &s.sessions.malformed)?;
        reasons(f, "incomplete handshakes", &s.sessions.incomplete)?;
        reasons(f, "handshake data not used", &s.sessions.drops)?;
        writeln!(
            f,
            "  reassembly: {} segments, {} out of order, {} overlapping bytes ({} conflicting), {} past depth, {} refused by memcap",
            s.reassembly.segments,
            s.reassembly.out_of_order,
            s.reassembly.overlap_bytes,
            s.reassembly.conflicting_overlap_bytes,
            s.reassembly.beyond_depth,
            s.reassembly.memcap_drops
        )?;
        writeln!(
            f,
            "  flow table: {} created, {} evicted, {} expired",
            s.flows.created, s.flows.evicted, s.flows.expired
        )
    }
}
