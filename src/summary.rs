//! What `replay` tells a person on standard error: a progress line and a summary.

use flowmesh_actors::pipeline::ReplayReport;
use flowmesh_actors::stats::Board;
use flowmesh_core::stats::ReasonCounts;
use flowmesh_schemas::EndReason;
use std::fmt;
use std::io::Write;
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
    pub fn tick(&mut self, board: &Board) {
        if !self.enabled || self.last.elapsed() < Duration::from_secs(2) {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let c = &board.capture;
        let pct = 100.0 * c.bytes_read as f64 / self.total_bytes.max(1) as f64;
        let shards = board.shards_total();
        eprint!(
            "\r{pct:5.1}%  {} packets  {} flows  {:.0} packets/s   ",
            c.decode.frames,
            shards.records_total(),
            c.decode.frames as f64 / secs
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
    /// What the run counted.
    pub report: &'a ReplayReport,
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
        let board = &self.report.board;
        let c = &board.capture;
        let s = board.shards_total();
        let w = board.workers_total();
        let secs = self.report.elapsed.as_secs_f64().max(1e-9);
        let shards = board.shards.len();
        writeln!(
            f,
            "flowmesh replay: {} file(s), {} packets, {} bytes, {} flows, {} handshakes in {:.3} s ({:.0} packets/s, {:.3} Gbit/s, {} shard(s))",
            self.files,
            c.decode.frames,
            s.bytes,
            s.records_total(),
            w.handshakes,
            secs,
            c.decode.frames as f64 / secs,
            s.bytes as f64 * 8.0 / secs / 1e9,
            shards,
        )?;
        let ended: Vec<String> = EndReason::ENDED
            .iter()
            .zip(s.records)
            .map(|(r, n)| format!("{}={n}", r.as_str()))
            .collect();
        writeln!(f, "  flows ended: {}", ended.join(", "))?;
        let mut drops = ReasonCounts::default();
        for (reason, n) in c.decode.drops() {
            drops.add(reason.as_str(), n);
        }
        drops.merge(&s.decode_drops);
        reasons(f, "packet drops", &drops)?;
        let mut sessions = s.sessions.clone();
        sessions.merge(&w.sessions);
        reasons(f, "malformed hellos", &sessions.malformed)?;
        reasons(f, "incomplete handshakes", &sessions.incomplete)?;
        reasons(f, "handshake data not used", &sessions.drops)?;
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
        )?;
        writeln!(
            f,
            "  handshake events: {}; defragmented datagrams: {}",
            board.events, c.decode.defrag.reassembled
        )?;
        let mut restarts = Vec::new();
        let mut dropped = Vec::new();
        for st in &self.report.stages {
            if st.restarts > 0 {
                restarts.push(format!("{}={}", st.stage, st.restarts));
            }
            for (queue, counters) in [("high", &st.high), ("low", &st.low)] {
                let list: Vec<String> = counters
                    .dropped
                    .iter()
                    .map(|(r, n)| format!("{r}={n}"))
                    .collect();
                if !list.is_empty() {
                    dropped.push(format!("{} {queue}: {}", st.stage, list.join(", ")));
                }
            }
        }
        if !restarts.is_empty() {
            writeln!(f, "  stage restarts: {}", restarts.join(", "))?;
        }
        if dropped.is_empty() {
            writeln!(f, "  queue drops: none")
        } else {
            // Shard and scheduler high queues carry hints (inspection updates, service
            // reports); data queues of a replay never drop.
            writeln!(f, "  queue drops: {}", dropped.join("; "))
        }
    }
}
