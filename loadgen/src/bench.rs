//! `loadgen bench`: flowmesh and the sensors people run today (Suricata, tshark) on the same
//! capture, in alternating rounds, each timed by GNU time (wall, user and system CPU, peak
//! RSS). Reports per tool medians, rates and the flowmesh/peer ratios, and checks that the
//! tools found the handshakes the capture's manifest lists.

use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use thiserror::Error;

/// Why a benchmark could not run.
#[derive(Debug, Error)]
pub enum BenchError {
    /// A program could not be started.
    #[error("cannot run {program}: {source}{hint}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
        /// What to install.
        hint: &'static str,
    },
    /// A tool exited with an error.
    #[error("{tool} failed ({status}): {stderr}")]
    Failed {
        /// The tool.
        tool: &'static str,
        /// Its exit status.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
    /// GNU time's report was not readable.
    #[error("cannot read the measurement of {tool}: {detail}")]
    Measure {
        /// The tool.
        tool: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A sensor under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tool {
    /// `flowmesh replay` at the given path, with this many shards.
    Flowmesh {
        /// The binary.
        path: PathBuf,
        /// `--shards`.
        shards: u16,
    },
    /// Suricata, `--runmode single`, JA3 and JA4 on, no rules.
    Suricata,
    /// tshark, dissecting every packet, printing each ClientHello's frame number.
    Tshark,
}

impl Tool {
    /// The tool's name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Tool::Flowmesh { .. } => "flowmesh",
            Tool::Suricata => "suricata",
            Tool::Tshark => "tshark",
        }
    }

    /// The command line for `file`, logging into `scratch`.
    fn command(&self, file: &Path, scratch: &Path) -> Vec<String> {
        let f = file.display().to_string();
        match self {
            Tool::Flowmesh { path, shards } => vec![
                path.display().to_string(),
                "replay".into(),
                "--shards".into(),
                shards.to_string(),
                "-o".into(),
                "/dev/null".into(),
                f,
            ],
            Tool::Suricata => [
                "suricata",
                "--runmode",
                "single",
                "-k",
                "none",
                "-S",
                "/dev/null",
                "--set",
                "app-layer.protocols.tls.ja3-fingerprints=yes",
                "--set",
                "app-layer.protocols.tls.ja4-fingerprints=yes",
                "-l",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([scratch.display().to_string(), "-r".into(), f])
            .collect(),
            Tool::Tshark => [
                "tshark",
                "-n",
                "-r",
                &f,
                "-Y",
                "tls.handshake.type == 1",
                "-T",
                "fields",
                "-e",
                "frame.number",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }

    /// Handshakes the tool reported: flowmesh's summary line, Suricata's TLS events (TLS
    /// over TCP only), tshark's ClientHello lines (TCP and QUIC).
    fn handshakes(&self, stdout: &str, stderr: &str, scratch: &Path) -> Option<u64> {
        match self {
            Tool::Flowmesh { .. } => flowmesh_handshakes(stderr),
            Tool::Suricata => {
                let eve = std::fs::read_to_string(scratch.join("eve.json")).ok()?;
                Some(eve.matches("\"event_type\":\"tls\"").count() as u64)
            }
            Tool::Tshark => Some(stdout.lines().filter(|l| !l.trim().is_empty()).count() as u64),
        }
    }

    /// How many of the manifest's handshakes this tool reports when it finds them all:
    /// flowmesh and tshark see TLS over TCP and QUIC, Suricata's TLS events TLS over TCP
    /// only (its QUIC events are per packet, not per handshake).
    pub fn expected_handshakes(&self, e: &Expected) -> u64 {
        match self {
            Tool::Flowmesh { .. } | Tool::Tshark => e.handshakes,
            Tool::Suricata => e.tls_tcp_handshakes,
        }
    }
}

/// The handshake count of flowmesh's summary line (`..., N handshakes in ...`).
pub fn flowmesh_handshakes(stderr: &str) -> Option<u64> {
    let line = stderr.lines().find(|l| l.starts_with("flowmesh replay:"))?;
    let before = &line[..line.find(" handshakes in ")?];
    before.rsplit([' ', ',']).next()?.parse().ok()
}

/// One timed run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Run {
    /// Wall seconds.
    pub wall_s: f64,
    /// User CPU seconds.
    pub user_s: f64,
    /// System CPU seconds.
    pub sys_s: f64,
    /// Peak resident set, KiB.
    pub max_rss_kb: u64,
}

/// Parses GNU time's `-f "%e %U %S %M"` line.
pub fn parse_time(text: &str) -> Option<Run> {
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let mut it = line.split_whitespace();
    Some(Run {
        wall_s: it.next()?.parse().ok()?,
        user_s: it.next()?.parse().ok()?,
        sys_s: it.next()?.parse().ok()?,
        max_rss_kb: it.next()?.parse().ok()?,
    })
}

/// Runs `tool` on `file` once under GNU time; returns the run and the handshakes it found.
pub fn run_once(
    tool: &Tool,
    file: &Path,
    scratch: &Path,
) -> Result<(Run, Option<u64>), BenchError> {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch)?;
    let report = scratch.join("time.txt");
    let argv = tool.command(file, scratch);
    let mut child = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %U %S %M")
        .arg("-o")
        .arg(&report)
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BenchError::Spawn {
            program: "/usr/bin/time".into(),
            source,
            hint: " (install GNU time: Debian package `time`)",
        })?;
    // Read both pipes without deadlocking: stderr on a thread.
    let mut stderr_pipe = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = stderr_pipe.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let mut stdout = String::new();
    if let Some(mut p) = child.stdout.take() {
        p.read_to_string(&mut stdout)?;
    }
    let status = child.wait()?;
    let stderr = reader.join().unwrap_or_default();
    if !status.success() {
        let tail: String = stderr
            .chars()
            .rev()
            .take(600)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(BenchError::Failed {
            tool: tool.name(),
            status: status.to_string(),
            stderr: tail,
        });
    }
    let text = std::fs::read_to_string(&report)?;
    let run = parse_time(&text).ok_or_else(|| BenchError::Measure {
        tool: tool.name(),
        detail: format!("GNU time wrote {text:?}"),
    })?;
    Ok((run, tool.handshakes(&stdout, &stderr, scratch)))
}

/// What a capture's manifest says it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Expected {
    /// Packets.
    pub packets: u64,
    /// Handshakes, TCP and QUIC.
    pub handshakes: u64,
    /// TLS-over-TCP handshakes.
    pub tls_tcp_handshakes: u64,
}

/// Reads the totals at the end of `<file>.manifest.json`, if there is one.
pub fn manifest_totals(file: &Path) -> Option<Expected> {
    let mut path = file.as_os_str().to_owned();
    path.push(".manifest.json");
    let text = std::fs::read(PathBuf::from(path)).ok()?;
    let tail = &text[text.len().saturating_sub(4096)..];
    let tail = std::str::from_utf8(tail).ok()?;
    let at = tail.rfind("\"totals\":")?;
    // `"totals":{...}}`: the totals object, then the manifest's own closing brace.
    let body = tail[at + 9..].trim_end();
    let json: serde_json::Value = serde_json::from_str(body.strip_suffix('}')?).ok()?;
    Some(Expected {
        packets: json["packets"].as_u64()?,
        handshakes: json["handshakes"].as_u64()?,
        tls_tcp_handshakes: json["tls_tcp_handshakes"].as_u64()?,
    })
}

/// Per tool: every run, medians, rates and the handshakes found.
#[derive(Debug, Clone, Serialize)]
pub struct ToolReport {
    /// Tool name.
    pub tool: &'static str,
    /// Each round's run.
    pub runs: Vec<Run>,
    /// Median wall seconds.
    pub wall_s: f64,
    /// Median CPU seconds (user + system).
    pub cpu_s: f64,
    /// Largest peak RSS over the runs, MiB.
    pub max_rss_mb: f64,
    /// Packets per wall second (from the manifest's packet count).
    pub packets_per_s: Option<f64>,
    /// Gbit/s of capture file per wall second.
    pub gbit_per_s: f64,
    /// Handshakes the tool reported (last run).
    pub handshakes: Option<u64>,
    /// Handshakes it reported in each run.
    pub run_handshakes: Vec<Option<u64>>,
    /// Handshakes of the manifest this tool should report ([`Tool::expected_handshakes`]).
    pub handshakes_expected: Option<u64>,
    /// Every run reported the same count, equal to `handshakes_expected`; `None` without
    /// a manifest or a count.
    pub handshakes_agree: Option<bool>,
    /// Handshakes per wall second.
    pub handshakes_per_s: Option<f64>,
    /// flowmesh's median wall time divided into this tool's (how many times faster
    /// flowmesh is); 1 for flowmesh itself.
    pub flowmesh_speedup: f64,
    /// flowmesh's peak RSS over this tool's.
    pub flowmesh_rss_ratio: f64,
}

/// The whole benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The capture.
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// What its manifest lists, if it has one.
    pub expected: Option<Expected>,
    /// Rounds run.
    pub rounds: usize,
    /// Per tool.
    pub tools: Vec<ToolReport>,
}

/// Whether every run found exactly `want` handshakes; `None` when there is nothing to
/// compare (no manifest, or the tool never gave a count).
fn handshakes_agree(want: Option<u64>, found: &[Option<u64>]) -> Option<bool> {
    let want = want?;
    if found.iter().all(Option::is_none) {
        return None;
    }
    Some(found.iter().all(|&n| n == Some(want)))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs every tool `rounds` times on `file`, alternating (round 1: each tool, round 2: each
/// tool, ...), so slow drifts of a noisy machine hit every tool alike.
pub fn bench(
    tools: &[Tool],
    file: &Path,
    rounds: usize,
    scratch: &Path,
) -> Result<Report, BenchError> {
    let bytes = std::fs::metadata(file)?.len();
    let expected = manifest_totals(file);
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); tools.len()];
    let mut found: Vec<Vec<Option<u64>>> = vec![Vec::new(); tools.len()];
    for _ in 0..rounds.max(1) {
        for (i, tool) in tools.iter().enumerate() {
            let (run, hs) = run_once(tool, file, &scratch.join(tool.name()))?;
            runs[i].push(run);
            found[i].push(hs);
        }
    }
    let summary = |i: usize| {
        let r = &runs[i];
        let wall = median(r.iter().map(|x| x.wall_s).collect());
        let cpu = median(r.iter().map(|x| x.user_s + x.sys_s).collect());
        let rss = r.iter().map(|x| x.max_rss_kb).max().unwrap_or(0) as f64 / 1024.0;
        (wall, cpu, rss)
    };
    let (fm_wall, _, fm_rss) = tools
        .iter()
        .position(|t| matches!(t, Tool::Flowmesh { .. }))
        .map_or((f64::NAN, 0.0, f64::NAN), summary);
    let reports = tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let (wall, cpu, rss) = summary(i);
            let per_s = |n: u64| n as f64 / wall.max(1e-9);
            let last = found[i].last().copied().flatten();
            let want = expected.map(|e| tool.expected_handshakes(&e));
            let agree = handshakes_agree(want, &found[i]);
            ToolReport {
                tool: tool.name(),
                runs: runs[i].clone(),
                wall_s: wall,
                cpu_s: cpu,
                max_rss_mb: rss,
                packets_per_s: expected.map(|e| per_s(e.packets)),
                gbit_per_s: bytes as f64 * 8.0 / wall.max(1e-9) / 1e9,
                handshakes: last,
                run_handshakes: found[i].clone(),
                handshakes_expected: want,
                handshakes_agree: agree,
                handshakes_per_s: last.map(per_s),
                flowmesh_speedup: wall / fm_wall,
                flowmesh_rss_ratio: fm_rss / rss.max(1e-9),
            }
        })
        .collect();
    Ok(Report {
        file: file.display().to_string(),
        bytes,
        expected,
        rounds: rounds.max(1),
        tools: reports,
    })
}

impl ToolReport {
    /// Each run's handshake count, `-` where the tool gave none.
    fn runs_handshakes(&self) -> Vec<String> {
        self.run_handshakes
            .iter()
            .map(|n| n.map_or("-".to_string(), |n| n.to_string()))
            .collect()
    }
}

impl Report {
    /// flowmesh's handshake count disagrees with the manifest (or changed between runs):
    /// what to tell the user. A peer's disagreement is reported in the table, not here:
    /// it measures the peer.
    pub fn flowmesh_disagreement(&self) -> Option<String> {
        let t = self.tools.iter().find(|t| t.tool == "flowmesh")?;
        (t.handshakes_agree == Some(false)).then(|| {
            format!(
                "flowmesh reported {} handshakes over the runs, the manifest lists {}",
                t.runs_handshakes().join(", "),
                t.handshakes_expected.unwrap_or(0)
            )
        })
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} ({:.1} MB), {} round(s), medians:",
            self.file,
            self.bytes as f64 / 1e6,
            self.rounds
        )?;
        writeln!(
            f,
            "{:<9} {:>8} {:>8} {:>9} {:>12} {:>7} {:>10} {:>12} {:>12} {:>10}",
            "tool",
            "wall s",
            "cpu s",
            "rss MB",
            "packets/s",
            "Gbit/s",
            "handshakes",
            "handshakes/s",
            "fm speedup",
            "fm rss"
        )?;
        for t in &self.tools {
            let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
            writeln!(
                f,
                "{:<9} {:>8.3} {:>8.3} {:>9.1} {:>12} {:>7.2} {:>10} {:>12} {:>11.2}x {:>9.2}x",
                t.tool,
                t.wall_s,
                t.cpu_s,
                t.max_rss_mb,
                opt(t.packets_per_s),
                t.gbit_per_s,
                t.handshakes.map_or("-".to_string(), |h| h.to_string()),
                opt(t.handshakes_per_s),
                t.flowmesh_speedup,
                t.flowmesh_rss_ratio,
            )?;
        }
        if let Some(e) = self.expected {
            writeln!(
                f,
                "manifest: {} packets, {} handshakes ({} TLS over TCP); suricata counts TLS over TCP only",
                e.packets, e.handshakes, e.tls_tcp_handshakes
            )?;
        }
        for t in &self.tools {
            if let (Some(agree), Some(want)) = (t.handshakes_agree, t.handshakes_expected) {
                let found = t.runs_handshakes().join(", ");
                let verdict = if agree { "agrees" } else { "DISAGREES" };
                writeln!(
                    f,
                    "handshake check: {} {verdict}: found {found} in its runs, manifest {want}",
                    t.tool
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_time_lines_parse() {
        let r = parse_time("Command exited with non-zero status 1\n1.35 1.03 0.49 85112\n")
            .expect("parses");
        assert_eq!(
            r,
            Run {
                wall_s: 1.35,
                user_s: 1.03,
                sys_s: 0.49,
                max_rss_kb: 85112
            }
        );
        assert_eq!(parse_time("garbage"), None);
    }

    #[test]
    fn handshake_counts_agree_only_when_every_run_matches_the_manifest() {
        let e = Expected {
            packets: 10,
            handshakes: 5,
            tls_tcp_handshakes: 3,
        };
        let fm = Tool::Flowmesh {
            path: PathBuf::from("flowmesh"),
            shards: 1,
        };
        assert_eq!(fm.expected_handshakes(&e), 5);
        assert_eq!(Tool::Suricata.expected_handshakes(&e), 3);
        assert_eq!(Tool::Tshark.expected_handshakes(&e), 5);
        assert_eq!(handshakes_agree(Some(5), &[Some(5), Some(5)]), Some(true));
        assert_eq!(handshakes_agree(Some(5), &[Some(5), Some(4)]), Some(false));
        assert_eq!(handshakes_agree(Some(5), &[Some(4), Some(5)]), Some(false));
        assert_eq!(handshakes_agree(Some(5), &[None, Some(5)]), Some(false));
        assert_eq!(handshakes_agree(Some(5), &[None, None]), None);
        assert_eq!(handshakes_agree(None, &[Some(5)]), None);
    }

    #[test]
    fn flowmesh_summary_gives_the_handshake_count() {
        let s = "flowmesh replay: 1 file(s), 1082831 packets, 1116183465 bytes, 3670 flows, 2380 handshakes in 0.470 s (...)\n";
        assert_eq!(flowmesh_handshakes(s), Some(2380));
        assert_eq!(flowmesh_handshakes("no summary"), None);
    }

    #[test]
    fn medians_take_the_middle() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn manifest_totals_are_read_from_the_tail() {
        let dir = std::env::temp_dir().join(format!("loadgen-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let pcap = dir.join("x.pcap");
        std::fs::write(
            dir.join("x.pcap.manifest.json"),
            r#"{"format":1,"handshakes":[
{"sni":"a"}
],"totals":{"flows":3,"handshakes":2,"tls_tcp_handshakes":1,"quic_handshakes":1,"packets":40,"bytes":5000,"bulk_bytes":0}}
"#,
        )
        .expect("write");
        assert_eq!(
            manifest_totals(&pcap),
            Some(Expected {
                packets: 40,
                handshakes: 2,
                tls_tcp_handshakes: 1
            })
        );
        assert_eq!(manifest_totals(&dir.join("none.pcap")), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
