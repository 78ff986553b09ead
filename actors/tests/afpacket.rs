//! The `afpacket` source on a real veth pair between two network namespaces the test makes:
//! frames arrive byte for byte (VLAN tags put back), the capture filter runs in the kernel,
//! a fanout group splits flows over its readers without losing or repeating a frame.
//! Needs root; skips with the reason otherwise.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use flowmesh_actors::capture::afpacket::{interface_index, AfPacketConfig, AfPacketRing};
use flowmesh_actors::capture::filter::CaptureFilter;
use flowmesh_actors::capture::FrameSource;
use flowmesh_loadgen::netns::{unavailable, TestNet};

/// An Ethernet frame carrying IPv4 + TCP (or UDP) from 10.0.0.1:`sport` to 10.0.0.2:`dport`,
/// with `vlan` tags (outermost first) and `pad` payload bytes.
fn frame(proto: u8, sport: u16, dport: u16, vlan: &[u16], pad: usize) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    for (i, id) in vlan.iter().enumerate() {
        let tpid: u16 = if i + 1 < vlan.len() { 0x88a8 } else { 0x8100 };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
    }
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let l4 = if proto == 6 { 20 } else { 8 };
    let total = (20 + l4 + pad) as u16;
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut h = vec![0u8; l4];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    if proto == 6 {
        h[12] = 0x50;
        h[13] = 0x10;
    } else {
        h[4..6].copy_from_slice(&((8 + pad) as u16).to_be_bytes());
    }
    f.extend_from_slice(&h);
    f.extend(std::iter::repeat_n(0xabu8, pad));
    f
}

/// Sends `frames` out of `iface` in namespace `ns` with a raw AF_PACKET socket.
fn send(ns: &str, iface: &str, frames: Vec<Vec<u8>>) {
    let iface = iface.to_owned();
    TestNet::run_in(ns, move || {
        let index = interface_index(&iface).expect("sender interface");
        // SAFETY: plain system call, checked.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: all-zero sockaddr_ll is valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = index;
        addr.sll_halen = 6;
        for f in &frames {
            loop {
                // SAFETY: `f` and `addr` are valid for the lengths given.
                let rc = unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        f.as_ptr().cast(),
                        f.len(),
                        0,
                        (&raw const addr).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                if rc >= 0 {
                    break;
                }
                let e = std::io::Error::last_os_error();
                assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS), "sendto: {e}");
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    })
    .expect("sender namespace");
}

/// Polls `rings` until `want` frames arrived in all (or 5 s passed); returns each ring's
/// frames.
fn collect(rings: &mut [AfPacketRing], want: usize) -> Vec<Vec<Vec<u8>>> {
    let mut got: Vec<Vec<Vec<u8>>> = vec![Vec::new(); rings.len()];
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.iter().map(Vec::len).sum::<usize>() < want && Instant::now() < deadline {
        for (ring, out) in rings.iter_mut().zip(got.iter_mut()) {
            ring.poll(Duration::from_millis(20), &mut |f| {
                assert_eq!(f.orig_len as usize, f.data.len());
                out.push(f.data.to_vec());
            })
            .expect("poll");
        }
    }
    // Anything more would be a repeat or a stray frame.
    for (ring, out) in rings.iter_mut().zip(got.iter_mut()) {
        ring.poll(Duration::from_millis(50), &mut |f| {
            out.push(f.data.to_vec())
        })
        .expect("poll");
    }
    got
}

fn skip() -> bool {
    if let Some(why) = unavailable() {
        eprintln!("skipped: {why}");
        return true;
    }
    false
}

/// Opens `n` rings on the capture end (in its namespace), in one fanout group when `n > 1`.
fn open(net: &TestNet, n: usize, filter: Option<&str>) -> Vec<AfPacketRing> {
    let cfg = AfPacketConfig {
        interface: net.capture_if.clone(),
        block_size: 1 << 16,
        blocks: 8,
        fanout_group: (n > 1).then_some((std::process::id() % 60_000) as u16),
        ..AfPacketConfig::default()
    };
    let filter = filter.map(|f| CaptureFilter::compile(f).expect("filter"));
    TestNet::run_in(&net.capture_ns, move || {
        (0..n)
            .map(|_| AfPacketRing::open(&cfg, filter.as_ref()).expect("ring opens"))
            .collect()
    })
    .expect("capture namespace")
}

#[test]
fn frames_arrive_byte_for_byte_with_vlan_tags_restored() {
    if skip() {
        return;
    }
    let net = TestNet::create(None, 1).expect("test network");
    let mut rings = open(&net, 1, None);
    let sent = vec![
        frame(6, 40000, 443, &[], 0),
        frame(17, 40001, 443, &[], 1000),
        frame(6, 40002, 443, &[100], 10),
        frame(6, 40003, 443, &[200, 300], 10),
        frame(6, 40004, 443, &[], 1400),
    ];
    send(&net.sender_ns, &net.sender_if, sent.clone());
    let got = collect(&mut rings, sent.len());
    assert_eq!(got[0], sent);
    let k = rings[0].kernel_counters();
    assert_eq!((k.received, k.dropped), (sent.len() as u64, 0));
}

#[test]
fn the_filter_runs_in_the_kernel() {
    if skip() {
        return;
    }
    let net = TestNet::create(None, 1).expect("test network");
    let mut rings = open(&net, 1, Some("tcp port 443 or udp port 443"));
    let wanted = [frame(6, 40000, 443, &[], 0), frame(17, 443, 40001, &[], 8)];
    let unwanted = [frame(6, 40000, 80, &[], 0), frame(17, 53, 40001, &[], 8)];
    let mut all = Vec::new();
    for (w, u) in wanted.iter().zip(&unwanted) {
        all.push(u.clone());
        all.push(w.clone());
    }
    send(&net.sender_ns, &net.sender_if, all);
    let got = collect(&mut rings, wanted.len());
    assert_eq!(got[0], wanted.to_vec());
    // The kernel never even counted the others for this socket.
    assert_eq!(rings[0].kernel_counters().received, wanted.len() as u64);
}

#[test]
fn a_fanout_group_keeps_each_flow_on_one_reader_and_loses_nothing() {
    if skip() {
        return;
    }
    let net = TestNet::create(None, 1).expect("test network");
    let mut rings = open(&net, 2, None);
    let mut sent = Vec::new();
    for round in 0..5 {
        for flow in 0..40u16 {
            sent.push(frame(6, 30000 + flow, 443, &[], round));
        }
    }
    send(&net.sender_ns, &net.sender_if, sent.clone());
    let got = collect(&mut rings, sent.len());
    assert_eq!(got.iter().map(Vec::len).sum::<usize>(), sent.len());
    let mut owner: HashMap<Vec<u8>, usize> = HashMap::new();
    for (reader, frames) in got.iter().enumerate() {
        for f in frames {
            // Source port identifies the flow.
            let port = f[34..36].to_vec();
            assert_eq!(
                *owner.entry(port).or_insert(reader),
                reader,
                "a flow split across readers"
            );
        }
    }
    assert!(
        got.iter().all(|g| !g.is_empty()),
        "hash fanout used one reader only: {:?}",
        got.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let mut all: Vec<Vec<u8>> = got.concat();
    let mut expected = sent;
    all.sort();
    expected.sort();
    assert_eq!(all, expected);
}

#[test]
fn a_link_going_down_and_up_is_waited_out() {
    if skip() {
        return;
    }
    let net = TestNet::create(None, 1).expect("test network");
    let mut rings = open(&net, 1, None);
    let ip = |state: &str| {
        let ok = std::process::Command::new("ip")
            .args(["-n", &net.capture_ns, "link", "set", &net.capture_if, state])
            .status()
            .expect("ip runs")
            .success();
        assert!(ok, "ip link set {state}");
    };
    ip("down");
    let started = Instant::now();
    for _ in 0..5 {
        let n = rings[0]
            .poll(Duration::from_millis(20), &mut |_| {})
            .expect("a down link is not an error");
        assert_eq!(n, 0);
    }
    // Each poll waited (no busy loop while the link is down).
    assert!(
        started.elapsed() >= Duration::from_millis(80),
        "{:?}",
        started.elapsed()
    );
    ip("up");
    let sent = vec![frame(6, 40000, 443, &[], 0), frame(6, 40001, 443, &[], 5)];
    send(&net.sender_ns, &net.sender_if, sent.clone());
    assert_eq!(collect(&mut rings, sent.len())[0], sent);
}
