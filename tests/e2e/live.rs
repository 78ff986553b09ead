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

/// Waits until the daemon's live capture has taken `frames` frames from the kernel.
fn wait_for_frames(d: &Daemon, frames: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = d.get("/api/v1/stats").body;
        let capture = stats["capture"].clone();
        if capture["frames"].as_u64() == Some(frames) || Instant::now() > deadline {
            return capture;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Captures `pcap` played into the pair with `source`, and checks the stored flows.
fn live_equals_replay(source: &str, extra_config: &str) {
    if let Some(why) = unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = capture(dir.path());
    let expected = replay(std::slice::from_ref(&pcap), &[]);
    // Jumbo frames: loadgen writes segments above 1500 bytes, as offloading NICs capture them.
    let net = TestNet::create(Some(9000)).expect("test network");
    let data = dir.path().join("data");
    let config = format!(
        "{ALL_FINGERPRINTS}[capture]\nsource = \"{source}\"\ninterface = \"{}\"\n{extra_config}",
        net.capture_if
    );
    let capture_ns = net.capture_ns.clone();
    let stored = TestNet::run_in(&capture_ns, move || {
        let d = Daemon::start(&data, &config);
        let sent = play(&net, &pcap);
        let capture = wait_for_frames(&d, sent);
        assert_eq!(capture["frames"].as_u64(), Some(sent), "{capture}");
        for (reason, n) in capture["dropped"].as_object().expect("drops") {
            assert_eq!(n.as_u64(), Some(0), "dropped for {reason}: {capture}");
        }
        assert!(d.stop().success());
        // The store keeps what live capture wrote; a spool daemon serves it.
        let d = Daemon::start(&data, ALL_FINGERPRINTS);
        d.flows("")
    })
    .expect("capture namespace");
    assert_eq!(stored.len(), expected.len());
    assert_eq!(
        sorted(stored.iter().map(timeless)),
        sorted(expected.iter().map(timeless))
    );
}

#[test]
fn afpacket_capture_stores_what_replay_finds() {
    live_equals_replay("afpacket", "readers = 2\n");
}
