//! AF_XDP capture on a veth pair between two network namespaces this test creates: the
//! XDP program redirects every IP frame byte-identical to the socket, passes what it
//! cannot parse, and counts bypassed flows in the kernel (passing or dropping them)
//! while their FIN/RST segments still come up.
//!
//! Needs root; skips (saying why) when not root or when the kernel cannot make network
//! namespaces or AF_XDP sockets. Frames are sent with AF_PACKET from the other namespace.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use flowmesh_actors::capture::xdp::{
    mono_now_ns, BypassAction, BypassCounters, XdpCapture, XdpConfig, XdpError, XdpMode, XdpSocket,
};
use flowmesh_schemas::flow::{Endpoint, FlowKey};

#[path = "support/frames.rs"]
mod frames;
#[path = "support/netns.rs"]
mod netns;

use frames::*;
use netns::{in_ns, RawSocket, TestNet, CAP_IF, ETH_P_ALL, SEND_IF};

/// A capture on a fresh veth pair, and a raw socket sending into it from the other side.
struct Rig {
    capture: Option<XdpCapture>,
    socket: XdpSocket,
    sender: RawSocket,
    net: TestNet,
}

/// A test network with `queues` queues per end; `None` (after printing why) only where
/// this machine cannot make one (not root, no network namespaces). A failure to create it
/// where it can is a test failure.
fn test_net(queues: u32) -> Option<TestNet> {
    if let Some(why) = netns::unavailable() {
        eprintln!("skipped: {why}");
        return None;
    }
    Some(TestNet::create(None, queues).expect("test network"))
}

impl Rig {
    /// `None` (after printing why) when this machine cannot run the test.
    fn new(mode: XdpMode, action: BypassAction, bypass_capacity: u32) -> Option<Rig> {
        let net = test_net(1)?;
        let cfg = XdpConfig {
            mode,
            frames_per_queue: 256,
            bypass_capacity,
            bypass_action: action,
            ..XdpConfig::new(CAP_IF)
        };
        let mut capture = match in_ns(&net.capture_ns, || XdpCapture::open(&cfg)) {
            Ok(c) => c,
            Err(XdpError::Socket { source, .. })
                if source.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
            {
                eprintln!("skipped: this kernel has no AF_XDP sockets ({source})");
                return None;
            }
            Err(e) => panic!("XdpCapture::open: {e}"),
        };
        let mut sockets = capture.take_sockets();
        assert_eq!(sockets.len(), 1, "a veth has one receive queue");
        let socket = sockets.pop().expect("one socket");
        assert_eq!(socket.queue(), 0);
        let sender = in_ns(&net.sender_ns, || RawSocket::open(SEND_IF, 0)).expect("sender");
        Some(Rig {
            capture: Some(capture),
            socket,
            sender,
            net,
        })
    }

    fn capture(&self) -> &XdpCapture {
        self.capture.as_ref().expect("open")
    }

    fn send(&self, frames: &[Vec<u8>]) {
        for f in frames {
            self.sender.send(f).expect("send");
        }
    }

    /// Receives until `n` frames arrived (or 5 s passed), then waits 100 ms for extras.
    fn receive(&mut self, n: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < n && Instant::now() < deadline {
            self.socket
                .poll(Duration::from_millis(50), 64, &mut |f| got.push(f.to_vec()))
                .expect("poll");
        }
        self.socket
            .poll(Duration::from_millis(100), 64, &mut |f| {
                got.push(f.to_vec())
            })
            .expect("poll");
        got
    }

    /// A sniffer in the capture namespace: sees what XDP passes, not what it drops or
    /// redirects.
    fn sniffer(&self) -> RawSocket {
        in_ns(&self.net.capture_ns, || RawSocket::open(CAP_IF, ETH_P_ALL)).expect("sniffer")
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // Detach in the namespace the program was attached in.
        if let Some(c) = self.capture.take() {
            in_ns(&self.net.capture_ns, move || drop(c));
        }
    }
}

fn v4(d: u8) -> [u8; 4] {
    [10, 0, 0, d]
}

fn v6(d: u8) -> [u8; 16] {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(d)).octets()
}

fn ep(ip: impl Into<IpAddr>, port: u16) -> Endpoint {
    Endpoint {
        ip: ip.into(),
        port,
    }
}

/// One IP frame of every shape the program parses, all expected in user space.
fn ip_frames() -> Vec<Vec<u8>> {
    let tcp_seg = tcp(40000, 443, 1, 0x02, &[]);
    vec![
        // IPv4/TCP SYN.
        eth(ETH_P_IP, &[], &ipv4(v4(1), v4(2), TCP, 0, &[], &tcp_seg)),
        // IPv4 with options (IHL 7)/UDP.
        eth(
            ETH_P_IP,
            &[],
            &ipv4(
                v4(1),
                v4(2),
                UDP,
                0,
                &[1; 8],
                &udp(5000, 53, &payload(30, 1)),
            ),
        ),
        // IPv6/UDP.
        eth(
            ETH_P_IPV6,
            &[],
            &ipv6(v6(1), v6(2), UDP, &udp(5353, 53, &payload(40, 2))),
        ),
        // 802.1Q VLAN 100, IPv4/TCP with payload.
        eth(
            ETH_P_IP,
            &[(ETH_P_8021Q, 100)],
            &ipv4(
                v4(3),
                v4(4),
                TCP,
                0,
                &[],
                &tcp(1234, 80, 9, 0x18, &payload(100, 3)),
            ),
        ),
        // QinQ: 802.1ad 200 outside, 802.1Q 300 inside, IPv6/TCP.
        eth(
            ETH_P_IPV6,
            &[(ETH_P_8021AD, 200), (ETH_P_8021Q, 300)],
            &ipv6(
                v6(3),
                v6(4),
                TCP,
                &tcp(443, 50000, 7, 0x10, &payload(10, 4)),
            ),
        ),
        // IPv4 first fragment (MF) and a later one (offset 185).
        eth(
            ETH_P_IP,
            &[],
            &ipv4(v4(1), v4(2), UDP, 0x2000, &[], &udp(7, 7, &payload(64, 5))),
        ),
        eth(
            ETH_P_IP,
            &[],
            &ipv4(v4(1), v4(2), UDP, 185, &[], &payload(24, 6)),
        ),
        // IPv6 hop-by-hop and destination options, then UDP.
        eth(
            ETH_P_IPV6,
            &[],
            &ipv6(
                v6(1),
                v6(2),
                0,
                &ext(60, 0, &ext(UDP, 1, &udp(1, 2, &payload(8, 7)))),
            ),
        ),
        // IPv6 Fragment header.
        eth(
            ETH_P_IPV6,
            &[],
            &ipv6(
                v6(1),
                v6(2),
                44,
                &frag6(UDP, 0, true, &udp(3, 4, &payload(16, 8))),
            ),
        ),
        // IPv6 with five destination-option headers: past the program's limit of four.
        eth(
            ETH_P_IPV6,
            &[],
            &ipv6(
                v6(1),
                v6(2),
                60,
                &ext(
                    60,
                    0,
                    &ext(
                        60,
                        0,
                        &ext(60, 0, &ext(60, 0, &ext(UDP, 0, &udp(5, 6, &[])))),
                    ),
                ),
            ),
        ),
        // IPv4/ICMP echo: no ports, still a flow.
        eth(
            ETH_P_IP,
            &[],
            &ipv4(v4(1), v4(2), 1, 0, &[], &[8, 0, 0, 0, 0, 1, 0, 1]),
        ),
    ]
}

/// Frames the program cannot parse: passed to the kernel, not redirected.
fn unparsed_frames() -> Vec<Vec<u8>> {
    vec![
        arp(),
        // Three VLAN tags: one more than the program follows.
        eth(
            ETH_P_IP,
            &[(ETH_P_8021AD, 1), (ETH_P_8021Q, 2), (ETH_P_8021Q, 3)],
            &ipv4(v4(1), v4(2), UDP, 0, &[], &udp(1, 2, &[])),
        ),
        // IPv4 header cut short.
        eth(ETH_P_IP, &[], &ipv4(v4(1), v4(2), UDP, 0, &[], &[])[..12]),
    ]
}

fn ip_frames_arrive_byte_identical(mode: XdpMode) {
    let Some(mut rig) = Rig::new(mode, BypassAction::Pass, 64) else {
        return;
    };
    let expected_mode = match mode {
        XdpMode::Generic => XdpMode::Generic,
        // veth has native XDP.
        _ => XdpMode::Native,
    };
    assert_eq!(rig.capture().attached_mode(), expected_mode);
    let ip = ip_frames();
    let unparsed = unparsed_frames();
    let sniffer = rig.sniffer();
    // Interleave, so order within the IP frames is still checked.
    for (i, f) in ip.iter().enumerate() {
        rig.send(std::slice::from_ref(f));
        if let Some(u) = unparsed.get(i) {
            rig.send(std::slice::from_ref(u));
        }
    }
    let got = rig.receive(ip.len());
    assert_eq!(got.len(), ip.len(), "exactly the IP frames arrive");
    for (i, (g, e)) in got.iter().zip(&ip).enumerate() {
        assert_eq!(g, e, "frame {i} differs");
    }
    let seen_by_kernel = sniffer.drain(Duration::from_millis(200)).expect("sniff");
    assert!(
        seen_by_kernel.contains(&unparsed[0]),
        "ARP reaches the kernel stack"
    );
    assert!(
        !ip.iter().any(|f| seen_by_kernel.contains(f)),
        "redirected frames do not reach the kernel stack"
    );
    let c = rig.capture().counters().expect("counters");
    let n = (ip.len() + unparsed.len()) as u64;
    assert_eq!(c.seen, n, "{c:?}");
    assert_eq!(c.redirected, ip.len() as u64, "{c:?}");
    assert_eq!(c.unparsed, unparsed.len() as u64, "{c:?}");
    assert_eq!((c.fragments, c.l4_unreached), (3, 1), "{c:?}");
    assert_eq!(
        (c.redirect_failed, c.bypass_packets, c.bypass_fin_rst),
        (0, 0, 0),
        "{c:?}"
    );
    let s = rig.socket.stats().expect("stats");
    assert_eq!(
        (s.rx_dropped, s.rx_invalid_descs, s.rx_bad_descs),
        (0, 0, 0),
        "{s:?}"
    );
}

#[test]
fn ip_frames_arrive_byte_identical_native() {
    ip_frames_arrive_byte_identical(XdpMode::Auto);
}

#[test]
fn ip_frames_arrive_byte_identical_generic() {
    ip_frames_arrive_byte_identical(XdpMode::Generic);
}

/// A TCP flow between `client` and `server` (IPv4, untagged): frames and their lengths.
struct TcpFlow {
    client: ([u8; 4], u16),
    server: ([u8; 4], u16),
    tags: Vec<(u16, u16)>,
}

impl TcpFlow {
    fn frame(&self, from_client: bool, flags: u8, len: usize) -> Vec<u8> {
        let ((sa, sp), (da, dp)) = if from_client {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        // Sequence numbers far apart: no two segments are ever contiguous.
        let seq = (len as u32) << 16 | u32::from(flags);
        eth(
            ETH_P_IP,
            &self.tags,
            &ipv4(
                sa,
                da,
                TCP,
                0,
                &[],
                &tcp(sp, dp, seq, flags, &payload(len, flags)),
            ),
        )
    }

    fn key(&self) -> FlowKey {
        let vlan = self.tags.first().map(|t| t.1);
        FlowKey::from_packet(
            ep(Ipv4Addr::from(self.client.0), self.client.1),
            ep(Ipv4Addr::from(self.server.0), self.server.1),
            TCP,
            vlan,
        )
        .0
    }
}

fn flow_is_bypassed(action: BypassAction) {
    let Some(mut rig) = Rig::new(XdpMode::Auto, action, 4) else {
        return;
    };
    let flow = TcpFlow {
        client: (v4(1), 40000),
        server: (v4(2), 443),
        tags: vec![],
    };
    let other = TcpFlow {
        client: (v4(1), 40001),
        server: flow.server,
        tags: vec![],
    };
    let key = flow.key();
    assert_eq!(key.lo.ip, IpAddr::V4(Ipv4Addr::from(v4(1))), "client is lo");
    let bypass = rig.capture().bypass();
    assert_eq!(bypass.capacity(), 4);
    bypass.insert(&key).expect("insert");
    bypass.insert(&key).expect("a second insert is fine");
    assert_eq!(
        bypass.peek(&key).expect("peek").map(|c| c.packets),
        Some([0, 0])
    );

    let sniffer = rig.sniffer();
    let started = mono_now_ns();
    // Client: ACK 100, PSH|ACK 50, ACK 0; server: PSH|ACK 200, SYN|ACK 0.
    let from_client = [
        flow.frame(true, 0x10, 100),
        flow.frame(true, 0x18, 50),
        flow.frame(true, 0x10, 0),
    ];
    let from_server = [flow.frame(false, 0x18, 200), flow.frame(false, 0x12, 0)];
    let bypassed: Vec<Vec<u8>> = vec![
        from_client[0].clone(),
        from_server[0].clone(),
        from_client[1].clone(),
        from_server[1].clone(),
        from_client[2].clone(),
    ];
    let other_seg = other.frame(true, 0x10, 20);
    let fin = flow.frame(true, 0x11, 0);
    let rst = flow.frame(false, 0x14, 0);
    rig.send(&bypassed[..2]);
    rig.send(std::slice::from_ref(&other_seg));
    rig.send(&bypassed[2..]);
    // Everything so far has been handled once the other flow's segment is in.
    let got = rig.receive(1);
    assert_eq!(
        got,
        vec![other_seg.clone()],
        "bypassed segments stay in the kernel"
    );
    let so_far = bypass.peek(&key).expect("peek").expect("still bypassed");
    assert_eq!(so_far.packets, [3, 2]);

    rig.send(&[fin.clone(), rst.clone(), arp()]);
    let got = rig.receive(2);
    assert_eq!(
        got,
        vec![fin, rst],
        "FIN and RST of a bypassed flow come up"
    );

    let len = |fs: &[Vec<u8>]| fs.iter().map(|f| f.len() as u64).sum::<u64>();
    let taken: BypassCounters = bypass.take(&key).expect("take").expect("present");
    assert_eq!(taken.packets, [3, 2]);
    assert_eq!(taken.bytes, [len(&from_client), len(&from_server)]);
    assert_eq!(taken.tcp_flags, [0x18, 0x1a], "FIN/RST are not counted");
    assert!(
        (started..=mono_now_ns()).contains(&taken.last_seen_mono_ns),
        "{taken:?}"
    );
    assert_eq!(bypass.take(&key).expect("take"), None, "taken once");

    // After the take the flow comes up again.
    let again = flow.frame(true, 0x10, 5);
    rig.send(std::slice::from_ref(&again));
    assert_eq!(rig.receive(1), vec![again]);

    let sniffed = sniffer.drain(Duration::from_millis(200)).expect("sniff");
    assert!(sniffed.contains(&arp()), "the sniffer sees passed frames");
    let kernel_saw = bypassed.iter().filter(|f| sniffed.contains(f)).count();
    match action {
        BypassAction::Pass => assert_eq!(kernel_saw, bypassed.len(), "passed to the kernel"),
        BypassAction::Drop => assert_eq!(kernel_saw, 0, "dropped in XDP"),
    }

    let c = rig.capture().counters().expect("counters");
    assert_eq!(c.bypass_packets, 5, "{c:?}");
    assert_eq!(c.bypass_bytes, len(&bypassed), "{c:?}");
    assert_eq!(c.bypass_fin_rst, 2, "{c:?}");
    assert_eq!(c.redirected, 4, "{c:?}");
    assert_eq!(c.seen, 10, "{c:?}");

    // A full map refuses new flows; taking one makes room.
    let keys: Vec<FlowKey> = (0..4)
        .map(|i| {
            TcpFlow {
                client: (v4(9), 1000 + i),
                server: (v4(2), 443),
                tags: vec![],
            }
            .key()
        })
        .collect();
    for k in &keys {
        bypass.insert(k).expect("room for 4");
    }
    let fifth = TcpFlow {
        client: (v4(9), 2000),
        server: (v4(2), 443),
        tags: vec![],
    }
    .key();
    assert!(matches!(
        bypass.insert(&fifth),
        Err(XdpError::BypassFull { capacity: 4 })
    ));
    assert!(bypass.take(&keys[0]).expect("take").is_some());
    bypass.insert(&fifth).expect("room again");
}

#[test]
fn bypassed_flow_is_counted_and_dropped() {
    flow_is_bypassed(BypassAction::Drop);
}

#[test]
fn bypassed_flow_is_counted_and_passed() {
    flow_is_bypassed(BypassAction::Pass);
}

/// VLAN-tagged flows: the key carries the outermost VLAN id, so the same addresses on
/// another VLAN are another flow; IPv6 keys and the kernel's view of tagged frames.
#[test]
fn bypass_keys_carry_the_outer_vlan() {
    let Some(mut rig) = Rig::new(XdpMode::Auto, BypassAction::Pass, 16) else {
        return;
    };
    let bypass = rig.capture().bypass();
    // IPv6/UDP on VLAN 100; server sorts lower, so lo is the server.
    let (c6, s6) = (v6(9), v6(1));
    let udp6 = |from_client: bool, vid: u16, n: usize| {
        let (sa, sp, da, dp) = if from_client {
            (c6, 5353, s6, 53)
        } else {
            (s6, 53, c6, 5353)
        };
        eth(
            ETH_P_IPV6,
            &[(ETH_P_8021Q, vid)],
            &ipv6(sa, da, UDP, &udp(sp, dp, &payload(n, 1))),
        )
    };
    let key6 = FlowKey::from_packet(
        ep(Ipv6Addr::from(c6), 5353),
        ep(Ipv6Addr::from(s6), 53),
        UDP,
        Some(100),
    )
    .0;
    assert_eq!(key6.lo.ip, IpAddr::V6(Ipv6Addr::from(s6)));
    // QinQ TCP: outer 802.1ad 200, inner 300.
    let qinq = TcpFlow {
        client: (v4(5), 33000),
        server: (v4(6), 22),
        tags: vec![(ETH_P_8021AD, 200), (ETH_P_8021Q, 300)],
    };
    let keyq = qinq.key();
    assert_eq!(keyq.vlan, Some(200));
    bypass.insert(&key6).expect("insert");
    bypass.insert(&keyq).expect("insert");

    let sniffer = rig.sniffer();
    let bypassed = vec![
        udp6(true, 100, 10),
        udp6(false, 100, 300),
        udp6(true, 100, 20),
        qinq.frame(true, 0x18, 64),
    ];
    let other_vlan = udp6(true, 101, 10);
    rig.send(&bypassed);
    rig.send(std::slice::from_ref(&other_vlan));
    assert_eq!(rig.receive(1), vec![other_vlan], "VLAN 101 is another flow");

    let t6 = bypass.take(&key6).expect("take").expect("present");
    // Index 0 = sent by lo = the server.
    assert_eq!(t6.packets, [1, 2]);
    assert_eq!(
        t6.bytes,
        [
            bypassed[1].len() as u64,
            (bypassed[0].len() + bypassed[2].len()) as u64
        ]
    );
    assert_eq!(t6.tcp_flags, [0, 0], "UDP has no flags");
    let tq = bypass.take(&keyq).expect("take").expect("present");
    assert_eq!((tq.packets, tq.tcp_flags), ([1, 0], [0x18, 0]));

    // The stack saw them with the outer tag moved to metadata.
    let sniffed = sniffer.drain(Duration::from_millis(200)).expect("sniff");
    for f in &bypassed {
        assert!(sniffed.contains(&without_outer_tag(f)), "passed: {f:02x?}");
    }
}

/// Frames of many flows over a two-queue veth: one socket per queue, each in the XSKMAP
/// at its queue index; with only queue 0 captured, queue 1's frames are passed.
#[test]
fn every_receive_queue_has_its_socket() {
    let Some(net) = test_net(2) else {
        return;
    };
    let sender = in_ns(&net.sender_ns, || RawSocket::open(SEND_IF, 0)).expect("sender");
    // The sender's transmit queue (a hash of the flow) picks the veth receive queue.
    let sent: Vec<Vec<u8>> = (0..64u16)
        .map(|i| {
            eth(
                ETH_P_IP,
                &[],
                &ipv4(v4(1), v4(2), UDP, 0, &[], &udp(20000 + i, 53, &[])),
            )
        })
        .collect();
    for queues in [None, Some(1)] {
        let cfg = XdpConfig {
            queues,
            frames_per_queue: 256,
            ..XdpConfig::new(CAP_IF)
        };
        let mut capture = in_ns(&net.capture_ns, || XdpCapture::open(&cfg)).expect("open");
        let mut sockets = capture.take_sockets();
        let queue_ids: Vec<u32> = sockets.iter().map(XdpSocket::queue).collect();
        assert_eq!(
            queue_ids,
            if queues.is_none() {
                vec![0, 1]
            } else {
                vec![0]
            }
        );
        for f in &sent {
            sender.send(f).expect("send");
        }
        let mut per_queue = vec![Vec::new(); sockets.len()];
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            for (s, got) in sockets.iter_mut().zip(&mut per_queue) {
                s.poll(Duration::from_millis(20), 64, &mut |f| got.push(f.to_vec()))
                    .expect("poll");
            }
            let c = capture.counters().expect("counters");
            if c.seen == sent.len() as u64
                && per_queue.iter().map(Vec::len).sum::<usize>() as u64 == c.redirected
            {
                break;
            }
        }
        let c = capture.counters().expect("counters");
        assert_eq!(c.seen, sent.len() as u64, "{c:?}");
        let mut all: Vec<Vec<u8>> = per_queue.concat();
        all.sort();
        let mut expected = sent.clone();
        expected.sort();
        if queues.is_none() {
            assert!(
                per_queue.iter().all(|q| !q.is_empty()),
                "both queues carry frames"
            );
            assert_eq!(all, expected, "every frame arrives once");
            assert_eq!(
                (c.redirected, c.redirect_failed),
                (sent.len() as u64, 0),
                "{c:?}"
            );
        } else {
            // Queue 1 has no socket: its frames go to the kernel.
            assert!(c.redirect_failed > 0, "{c:?}");
            assert_eq!(c.redirected + c.redirect_failed, sent.len() as u64, "{c:?}");
            assert_eq!(all.len() as u64, c.redirected, "{c:?}");
        }
        drop(sockets);
        in_ns(&net.capture_ns, move || drop(capture));
    }
}

#[test]
fn more_queues_than_the_interface_has_are_refused() {
    let Some(net) = test_net(1) else {
        return;
    };
    let cfg = XdpConfig {
        queues: Some(2),
        ..XdpConfig::new(CAP_IF)
    };
    let r = in_ns(&net.capture_ns, || XdpCapture::open(&cfg).map(|_| ()));
    assert!(matches!(r, Err(XdpError::Config(_))), "{r:?}");
    let missing = in_ns(&net.capture_ns, || {
        XdpCapture::open(&XdpConfig::new("nosuchif0")).map(|_| ())
    });
    assert!(
        matches!(missing, Err(XdpError::Interface { .. })),
        "{missing:?}"
    );
}

/// Many times more frames than the UMEM holds, sent as fast as one thread can while the
/// socket is read: every frame is handed over or counted as dropped by the kernel, and
/// reading never fails. The kernel publishes its fill-ring position lazily, so a fill
/// ring no larger than the UMEM could look full to user space with frames to give back
/// (it did: the reader stopped after some hundred thousand frames at ~0.5 Mpps). The
/// reader spins, as the daemon's does under load, to give frames back within the moment
/// between the kernel publishing received frames and publishing its fill-ring position.
#[test]
fn a_socket_keeps_up_with_far_more_frames_than_its_umem() {
    const FRAMES: u64 = 1_000_000;
    let Some(mut rig) = Rig::new(XdpMode::Auto, BypassAction::Pass, 64) else {
        return;
    };
    let frame = eth(
        ETH_P_IP,
        &[],
        &ipv4(v4(1), v4(2), UDP, 0, &[], &udp(20000, 53, &[0; 64])),
    );
    let outcome = std::thread::scope(|s| {
        let sending = s.spawn(|| {
            for _ in 0..FRAMES {
                rig.sender.send(&frame).expect("send");
            }
        });
        let mut received = 0u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            received += rig
                .socket
                .poll(Duration::ZERO, 256, &mut |f| {
                    assert_eq!(f, &frame[..]);
                })
                .expect("poll never fails") as u64;
            let c = rig.capture().counters().expect("counters");
            let dropped = rig.socket.stats().expect("stats").rx_dropped;
            if sending.is_finished() && c.seen == FRAMES && received + dropped == c.redirected {
                break (received, dropped, c);
            }
            assert!(Instant::now() < deadline, "{received} received, {c:?}");
        }
    });
    let (received, dropped, c) = outcome;
    assert_eq!(
        (c.seen, c.redirected, c.redirect_failed),
        (FRAMES, FRAMES, 0),
        "{c:?}"
    );
    assert_eq!(received + dropped, FRAMES);
    assert!(
        received > 100 * 256,
        "the UMEM's 256 frames went round many times: {received}"
    );
    eprintln!("{received} received, {dropped} dropped by the kernel (receive ring full)");
}
