//! Live capture end to end: a real daemon captures on one end of a veth pair between two
//! network namespaces the test makes; `loadgen send` plays a known capture into the other
//! end; after a clean shutdown every stored flow equals what `replay` makes of the same
//! file (timestamps aside: live ones are arrival times), with nothing dropped.
//! Needs root; skips with the reason otherwise.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flowmesh_loadgen::gen::{generate, GenOptions, Profile};
use flowmesh_loadgen::netns::{unavailable, TestNet};
use flowmesh_loadgen::send::{send_frames, PcapFile, SendOptions};
use serde_json::Value;

use crate::daemon::{sorted, without_id, Daemon, ALL_FINGERPRINTS};
use crate::support::replay;

/// Frames per second sent: moderate, so nothing may be dropped.
const RATE: u64 = 20_000;

/// A record without what live capture cannot reproduce: when packets arrived.
fn timeless(flow: &Value) -> Value {
    let mut v = without_id(flow);
    if let Some(o) = v.as_object_mut() {
        o.remove("first_seen");
        o.remove("last_seen");
        for h in o
            .get_mut("handshakes")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(h) = h.as_object_mut() {
                h.remove("ts");
            }
        }
    }
    v
}

/// A `handshakes` capture (TLS over TCP and QUIC, with the profile's loss and reordering).
fn capture(dir: &Path) -> PathBuf {
    let out = dir.join("live.pcap");
    generate(&GenOptions {
        profile: Profile::Handshakes,
        flows: Some(400),
        bytes: None,
        seed: 6,
        out: out.clone(),
        impairments: None,
        nanos: false,
    })
    .expect("loadgen generates");
    out
}

/// Plays `pcap` into the sending end at [`RATE`]; returns the frames sent.
fn play(net: &TestNet, pcap: &Path) -> u64 {
    let bytes = std::fs::read(pcap).expect("capture readable");
    let iface = net.sender_if.clone();
    let report = TestNet::run_in(&net.sender_ns, move || {
        let file = PcapFile::parse(&bytes).expect("loadgen's pcap parses");
        let opts = SendOptions {
            rate: std::num::NonZeroU64::new(RATE),
            ..SendOptions::default()
        };
        send_frames(&iface, file.frames(), &opts).expect("loadgen send")
    })
    .expect("sender namespace");
    assert_eq!(report.oversize_skipped, 0);
    report.frames_sent
}

/// Frames the capture accounted for: taken from the kernel, or counted there for a
/// bypassed flow.
fn accounted(capture: &Value) -> u64 {
    capture["frames"].as_u64().unwrap_or(0)
        + capture["xdp"]["bypassed_packets"].as_u64().unwrap_or(0)
}

/// Waits until the daemon's live capture has accounted for `frames` frames, or (for a
/// filter in the kernel, which hides how many it rejected) until its count stops moving.
fn wait_for_frames(d: &Daemon, frames: Option<u64>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = (u64::MAX, Instant::now());
    loop {
        let capture = d.get("/api/v1/stats").body["capture"].clone();
        let seen = accounted(&capture);
        let settled = match frames {
            Some(n) => seen == n,
            None if seen != last.0 => {
                last = (seen, Instant::now());
                false
            }
            None => last.1.elapsed() > Duration::from_secs(1),
        };
        if settled || Instant::now() > deadline {
            return capture;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The daemon's configuration: capture with `source` on the pair's capturing end, every
/// fingerprint on, and `extra_config` lines of the `[capture]` section.
fn live_config(source: &str, net: &TestNet, extra_config: &str) -> String {
    format!(
        "{ALL_FINGERPRINTS}[capture]\nsource = \"{source}\"\ninterface = \"{}\"\n{extra_config}",
        net.capture_if
    )
}

/// Captures `pcap` played into the pair with `source`, checks the stored flows against
/// replay's records that `keep` accepts, and returns the capture's counters. `all_seen`:
/// every frame sent must be accounted for (no filter in the kernel).
fn live_equals_replay(
    source: &str,
    extra_config: &str,
    keep: fn(&Value) -> bool,
    all_seen: bool,
) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = capture(dir.path());
    let expected: Vec<Value> = replay(std::slice::from_ref(&pcap), &[])
        .into_iter()
        .filter(keep)
        .collect();
    // The veth pair keeps its default 1500-byte MTU: every loadgen frame fits it.
    let net = TestNet::create(None, 1).expect("test network");
    let data = dir.path().join("data");
    let config = live_config(source, &net, extra_config);
    let capture_ns = net.capture_ns.clone();
    let stored = TestNet::run_in(&capture_ns, move || {
        let d = Daemon::start(&data, &config);
        let sent = play(&net, &pcap);
        let capture = wait_for_frames(&d, all_seen.then_some(sent));
        if all_seen {
            assert_eq!(accounted(&capture), sent, "{capture}");
        }
        for (reason, n) in capture["dropped"].as_object().expect("drops") {
            assert_eq!(n.as_u64(), Some(0), "dropped for {reason}: {capture}");
        }
        assert!(d.stop().success());
        // The store keeps what live capture wrote; a spool daemon serves it.
        let d = Daemon::start(&data, ALL_FINGERPRINTS);
        (d.flows(""), capture)
    })
    .expect("capture namespace");
    let (stored, capture) = stored;
    assert_eq!(stored.len(), expected.len());
    assert_eq!(
        sorted(stored.iter().map(timeless)),
        sorted(expected.iter().map(timeless))
    );
    capture
}

fn skip() -> bool {
    match unavailable() {
        Some(why) => {
            eprintln!("skipped: {why}");
            true
        }
        None => false,
    }
}

#[test]
fn afpacket_capture_stores_what_replay_finds() {
    if skip() {
        return;
    }
    let capture = live_equals_replay("afpacket", "readers = 2\n", |_| true, true);
    assert_eq!(capture["readers"].as_array().map(Vec::len), Some(2));
}

#[test]
fn afxdp_capture_with_bypass_keeps_records_exact() {
    if skip() {
        return;
    }
    let capture = live_equals_replay("afxdp", "bypass = true\n", |_| true, true);
    // Most packets of a fingerprinted flow never reached user space, yet every record's
    // counts are exact (checked above).
    let bypassed = capture["xdp"]["bypassed_packets"].as_u64().unwrap_or(0);
    assert!(bypassed > 0, "nothing was bypassed: {capture}");
    assert_eq!(
        capture["frames"].as_u64().unwrap_or(0) + bypassed,
        capture["xdp"]["seen"].as_u64().unwrap_or(0),
        "{capture}"
    );
}

#[test]
fn afxdp_capture_without_bypass_stores_what_replay_finds() {
    if skip() {
        return;
    }
    let capture = live_equals_replay("afxdp", "bypass = false\n", |_| true, true);
    assert_eq!(
        capture["xdp"]["bypassed_packets"].as_u64(),
        Some(0),
        "{capture}"
    );
}

/// The capture filter keeps exactly the flows it names. On frames as they are on the wire
/// (AF_XDP), `udp` in tcpdump syntax matches untagged UDP only (a tagged frame needs
/// `vlan and udp`)...
fn untagged_udp(r: &Value) -> bool {
    r["transport"] == "udp" && r["vlan"].is_null()
}

/// ... while AF_PACKET's kernel filter sees frames with the VLAN tag already moved into
/// metadata, so `udp` matches tagged UDP too (as tcpdump on a Linux interface does).
fn any_udp(r: &Value) -> bool {
    r["transport"] == "udp"
}

#[test]
fn afpacket_filter_runs_in_the_kernel() {
    if skip() {
        return;
    }
    let capture = live_equals_replay("afpacket", "filter = \"udp\"\n", any_udp, false);
    assert_eq!(capture["frames_filtered"].as_u64(), Some(0), "{capture}");
    assert_eq!(capture["filter"], "udp");
}

#[test]
fn afxdp_filter_runs_in_user_space() {
    if skip() {
        return;
    }
    let capture = live_equals_replay(
        "afxdp",
        "filter = \"udp\"\nbypass = false\n",
        untagged_udp,
        true,
    );
    assert!(
        capture["frames_filtered"].as_u64().unwrap_or(0) > 0,
        "{capture}"
    );
}

/// Polls `/readyz` until it answers `status` (or 20 s pass); returns the last answer.
fn wait_ready(d: &Daemon, status: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = d.get("/readyz");
        if a.status == status || Instant::now() > deadline {
            assert_eq!(a.status, status, "{}", a.body);
            return a.body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The interface is removed under a running capture and made again under the same name
/// (a new index): the daemon says so (`/readyz` 503, the reason in `/api/v1/stats`),
/// stores the flows of the first round as at shutdown, reopens the capture once the
/// interface is back, and stores the second round too; its counters add up over both.
fn capture_is_reopened_when_its_interface_is_replaced(source: &str, extra_config: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = capture(dir.path());
    let expected: Vec<Value> = replay(std::slice::from_ref(&pcap), &[]);
    let net = TestNet::create(None, 1).expect("test network");
    let data = dir.path().join("data");
    let config = live_config(source, &net, extra_config);
    let capture_ns = net.capture_ns.clone();
    let (stored, capture) = TestNet::run_in(&capture_ns, move || {
        let d = Daemon::start(&data, &config);
        let first = play(&net, &pcap);
        assert_eq!(accounted(&wait_for_frames(&d, Some(first))), first);

        net.remove_pair().expect("remove the pair");
        let down = wait_ready(&d, 503);
        assert_eq!(down["code"], "capture_down", "{down}");
        let stats = d.get("/api/v1/stats").body["capture"].clone();
        assert_eq!(stats["running"], false, "{stats}");
        assert!(
            stats["error"]
                .as_str()
                .is_some_and(|e| e.contains("removed")),
            "{stats}"
        );

        net.add_pair(None, 1).expect("make the pair again");
        wait_ready(&d, 200);
        let second = play(&net, &pcap);
        // The counters add up over both lives of the capture.
        let capture = wait_for_frames(&d, Some(first + second));
        assert_eq!(accounted(&capture), first + second, "{capture}");
        assert!(d.stop().success());
        let d = Daemon::start(&data, ALL_FINGERPRINTS);
        (d.flows(""), capture)
    })
    .expect("capture namespace");
    assert_eq!(capture["running"], true, "{capture}");
    assert_eq!(capture["restarts"], 1, "{capture}");
    // Both rounds, each as replay makes it.
    let twice = expected.iter().chain(&expected).map(timeless);
    assert_eq!(sorted(stored.iter().map(timeless)), sorted(twice));
}

#[test]
fn afpacket_capture_is_reopened_when_its_interface_is_replaced() {
    if skip() {
        return;
    }
    capture_is_reopened_when_its_interface_is_replaced("afpacket", "");
}

#[test]
fn afxdp_capture_is_reopened_when_its_interface_is_replaced() {
    if skip() {
        return;
    }
    capture_is_reopened_when_its_interface_is_replaced("afxdp", "bypass = false\n");
}

/// `loadgen bench --daemon` against a live daemon: it accounts for every frame sent,
/// counts every handshake of the manifest as stored, and reads handshake-to-record
/// latencies that the short flow timeouts configured here bound (the defaults would
/// hold a closed TCP flow 10 s). Every stored handshake carries the time of the packet
/// that completed its ClientHello, within its flow's span.
#[test]
fn loadgen_bench_drives_a_live_daemon() {
    if skip() {
        return;
    }
    use flowmesh_loadgen::bench::manifest_totals;
    use flowmesh_loadgen::drive::{drive, DriveOptions};
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = capture(dir.path());
    let want = manifest_totals(&pcap).expect("loadgen writes a manifest");
    let net = TestNet::create(None, 1).expect("test network");
    let data = dir.path().join("data");
    let config = format!(
        "{}[pipeline.timeouts]\ntcp_closed_s = 0\nudp_new_s = 1\nudp_established_s = 1\n",
        live_config("afpacket", &net, "")
    );
    let capture_ns = net.capture_ns.clone();
    let (report, flows) = TestNet::run_in(&capture_ns, move || {
        let d = Daemon::start(&data, &config);
        let bytes = std::fs::read(&pcap).expect("capture readable");
        let file = PcapFile::parse(&bytes).expect("pcap");
        let opts = DriveOptions {
            api: d.base.clone(),
            interface: net.sender_if.clone(),
            netns: Some(net.sender_ns.clone()),
            send: SendOptions {
                rate: std::num::NonZeroU64::new(RATE),
                ..SendOptions::default()
            },
            expected_handshakes: Some(want.handshakes),
            wait: Duration::from_secs(60),
            settle: Duration::from_secs(5),
        };
        let report = drive(&file, &opts).expect("loadgen drives the daemon");
        (report, d.flows(""))
    })
    .expect("capture namespace");
    assert_eq!(report.sent.frames_sent, want.packets, "{report}");
    assert_eq!(report.frames_taken, want.packets, "{report}");
    assert_eq!(report.frames_unaccounted, 0, "{report}");
    assert!(report.dropped.values().all(|&n| n == 0), "{report}");
    assert_eq!(report.handshakes, want.handshakes, "{report}");
    assert_eq!(report.records, flows.len() as u64, "{report}");
    // Interim records on (the default): the handshakes were stored before their flows ended.
    assert!(report.interim_records > 0, "{report}");
    assert!(
        report.packets_per_s > 0.0 && report.gbit_per_s > 0.0,
        "{report}"
    );
    let latency = report.latency.clone().expect("latencies observed");
    assert_eq!(latency.observed, want.handshakes, "{report}");
    assert!(
        latency.p50_ms <= latency.p90_ms && latency.p90_ms <= latency.p99_ms,
        "{report}"
    );
    // 1 s UDP timeout and the 1 s expiry check, with room for a slow machine.
    assert!(latency.p99_ms < 5_000.0, "{report}");
    assert!(report.peak_rss_mb.is_some_and(|m| m > 1.0), "{report}");
    // The daemon runs on this host as the same user: its peak is the run's.
    assert!(report.peak_is_of_run, "{report}");
    let mut stamped = 0;
    for f in &flows {
        for h in f["handshakes"].as_array().into_iter().flatten() {
            let ts = h["ts"].as_str().expect("a stored handshake has a time");
            let (first, last) = (f["first_seen"].as_str(), f["last_seen"].as_str());
            // RFC 3339 with nanoseconds, UTC: text order is time order.
            assert!(Some(ts) >= first && Some(ts) <= last, "{f}");
            stamped += 1;
        }
    }
    assert_eq!(stamped, want.handshakes);
}

/// The flow a record belongs to: Community ID and VLAN (a capture's flows differ in them).
fn flow_name(r: &Value) -> String {
    format!("{} {}", r["community_id"], r["vlan"])
}

/// With flow timeouts longer than the test, nothing ends while it runs: every handshake
/// the daemon has is in an interim record (`end_reason` "open"), queryable by its JA4, with
/// the handshakes `replay` finds for that flow. At shutdown every flow's final record
/// replaces its interim one under the same `flow_id`, and the store then equals replay.
#[test]
fn handshakes_are_queryable_while_their_flows_are_open() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = capture(dir.path());
    let expected: Vec<Value> = replay(std::slice::from_ref(&pcap), &[]);
    let net = TestNet::create(None, 1).expect("test network");
    let data = dir.path().join("data");
    let config = no_flow_ends_config(&net);
    let capture_ns = net.capture_ns.clone();
    let (open, capture, stored) = TestNet::run_in(&capture_ns, move || {
        let d = Daemon::start(&data, &config);
        let capture = play_until_interim_records(&d, &net, &pcap);
        let open = d.flows("");
        // Each JA4 finds its open flows through the index.
        let mut by_ja4: std::collections::BTreeMap<&str, Vec<&Value>> = Default::default();
        for o in &open {
            for h in o["handshakes"].as_array().into_iter().flatten() {
                if let Some(ja4) = h["ja4"].as_str() {
                    by_ja4.entry(ja4).or_default().push(&o["flow_id"]);
                }
            }
        }
        assert!(!by_ja4.is_empty());
        for (ja4, mut ids) in by_ja4 {
            let found = d.flows(&format!("ja4={ja4}"));
            let mut got: Vec<&Value> = found.iter().map(|f| &f["flow_id"]).collect();
            let key = |v: &&Value| v.to_string();
            ids.sort_by_key(key);
            ids.dedup();
            got.sort_by_key(key);
            assert_eq!(got, ids, "flows with JA4 {ja4}");
        }
        assert!(d.stop().success());
        let d = Daemon::start(&data, ALL_FINGERPRINTS);
        (open, capture, d.flows(""))
    })
    .expect("capture namespace");
    assert_eq!(capture["records"], 0, "no flow ended yet: {capture}");
    // One per flow, more where a flow's later ClientHello was answered too.
    assert!(
        capture["interim_records"].as_u64() >= Some(open.len() as u64),
        "{capture}"
    );
    let by_flow: std::collections::HashMap<String, &Value> =
        expected.iter().map(|r| (flow_name(r), r)).collect();
    let mut handshakes = 0;
    for o in &open {
        assert_eq!(o["end_reason"], "open", "{o}");
        let r = by_flow.get(&flow_name(o)).expect("a flow replay knows");
        // What is known once the server answers (certificates may come later).
        let strip = |v: &Value| {
            let mut hs = timeless(&serde_json::json!({ "handshakes": v["handshakes"] }));
            for h in hs["handshakes"].as_array_mut().into_iter().flatten() {
                h["certificates"] = Value::Null;
            }
            hs
        };
        assert_eq!(strip(o), strip(r), "interim handshakes of {o}");
        assert_eq!((&o["client_ip"], &o["l7"]), (&r["client_ip"], &r["l7"]));
        handshakes += o["handshakes"].as_array().map_or(0, Vec::len);
    }
    assert_eq!(capture["handshakes"].as_u64(), Some(handshakes as u64));
    // Every handshake the profile makes is answered (its loss is retransmitted).
    let want: usize = expected
        .iter()
        .map(|r| r["handshakes"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(handshakes, want);
    // After shutdown: the final records, each under its interim record's id.
    assert_eq!(
        sorted(stored.iter().map(timeless)),
        sorted(expected.iter().map(timeless))
    );
    let ids: std::collections::HashMap<&Value, &Value> =
        stored.iter().map(|f| (&f["flow_id"], f)).collect();
    for o in &open {
        let f = ids.get(&o["flow_id"]).expect("the interim record's id");
        assert_ne!(f["end_reason"], "open", "{f}");
        assert_eq!(flow_name(f), flow_name(o));
    }
}

/// A daemon killed while its flows are open leaves their interim records behind; the next
/// start closes each as `interrupted` under the same `flow_id`, with the same fields
/// otherwise, still found by its JA4, and says how many it closed.
#[test]
fn interim_records_of_a_killed_daemon_are_closed_at_the_next_start() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = capture(dir.path());
    let net = TestNet::create(None, 1).expect("test network");
    let data = dir.path().join("data");
    // The store keeps the interim ids of as many open flows as the flow table holds.
    let config =
        no_flow_ends_config(&net).replacen("[pipeline]\n", "[pipeline]\nmax_flows = 65536\n", 1);
    let capture_ns = net.capture_ns.clone();
    let (open, closed, stats, by_ja4) = TestNet::run_in(&capture_ns, move || {
        let mut d = Daemon::start(&data, &config);
        play_until_interim_records(&d, &net, &pcap);
        let open = d.flows("");
        let store = &d.get("/api/v1/stats").body["store"];
        assert_eq!(store["open_limit"], 65536, "{store}");
        assert_eq!(store["open_records"], open.len(), "{store}");
        d.signal("KILL");
        d.wait(Duration::from_secs(10));
        let d = Daemon::start(&data, ALL_FINGERPRINTS);
        let closed = d.flows("");
        let ja4 = open[0]["handshakes"][0]["ja4"].as_str().expect("a JA4");
        let by_ja4 = d.flows(&format!("ja4={ja4}"));
        let stats = d.get("/api/v1/stats").body;
        (open, closed, stats, by_ja4)
    })
    .expect("capture namespace");
    assert!(!open.is_empty());
    let want: Vec<Value> = open
        .iter()
        .map(|o| {
            assert_eq!(o["end_reason"], "open", "{o}");
            let mut c = o.clone();
            c["end_reason"] = "interrupted".into();
            c
        })
        .collect();
    for c in &closed {
        assert_eq!(c["end_reason"], "interrupted", "flow {}", c["flow_id"]);
    }
    assert_eq!(sorted(closed), sorted(want));
    assert_eq!(
        stats["store"]["interrupted_at_open"].as_u64(),
        Some(open.len() as u64),
        "{stats}"
    );
    assert!(by_ja4.iter().any(|f| f["flow_id"] == open[0]["flow_id"]));
}

/// A live config on `net` whose flow timeouts outlast the test: no flow ends while it runs.
fn no_flow_ends_config(net: &TestNet) -> String {
    format!(
        "{}[pipeline.timeouts]\ntcp_new_s = 600\ntcp_established_s = 600\ntcp_closed_s = 600\nudp_new_s = 600\nudp_established_s = 600\n",
        live_config("afpacket", net, "")
    )
}

/// Plays `pcap` into `d`'s capture, waits for every frame and for interim records to be
/// stored, and returns the capture counters then.
fn play_until_interim_records(d: &Daemon, net: &TestNet, pcap: &Path) -> Value {
    let sent = play(net, pcap);
    assert_eq!(accounted(&wait_for_frames(d, Some(sent))), sent);
    // The interim records follow the last handshakes by an expiry tick or so.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let capture = capture_settled(d);
        if capture["interim_records"].as_u64().unwrap_or(0) > 0 {
            return capture;
        }
        assert!(Instant::now() < deadline, "no interim records: {capture}");
    }
}

/// The capture counters once the interim records stored have not changed for 1.5 s (an
/// expiry tick and a record batch).
fn capture_settled(d: &Daemon) -> Value {
    let mut last = d.get("/api/v1/stats").body["capture"].clone();
    loop {
        std::thread::sleep(Duration::from_millis(1500));
        let now = d.get("/api/v1/stats").body["capture"].clone();
        if now["interim_records"] == last["interim_records"] {
            return now;
        }
        last = now;
    }
}
