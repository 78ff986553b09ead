//! `loadgen send` end to end: two network namespaces of the test's own joined by a veth
//! pair; the binary sends a generated profile from one end, a plain AF_PACKET socket on the
//! other end counts what arrives, and both must agree exactly with the capture. Needs root
//! and iproute2; skipped (with a note on stderr) otherwise.

use flowmesh_loadgen::gen::{generate_pcap_bytes, GenOptions, Profile};
use flowmesh_loadgen::netns::{unavailable, TestNet};
use flowmesh_loadgen::send::PcapFile;
use std::fs::File;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// MTU of both veth ends: below the generator's full-size segments, so some frames must be
/// skipped as oversize and counted.
const MTU: usize = 1400;
const FLOWS: u64 = 200;
const SEED: u64 = 7;
const RATE: u64 = 20_000;

/// What the receiving end saw.
#[derive(Debug, Default)]
struct Received {
    frames: u64,
    bytes: u64,
    drops: u32,
}

fn last_error(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> Result<(), String> {
    // SAFETY: `v` is a c_int and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&raw const v).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(last_error("setsockopt"));
    }
    Ok(())
}

/// Opens an AF_PACKET receive socket on `iface` inside namespace `ns` (this thread moves
/// into it; the socket stays there).
fn open_receiver(ns: &str, iface: &str) -> Result<OwnedFd, String> {
    let nsfile =
        File::open(PathBuf::from("/run/netns").join(ns)).map_err(|e| format!("{ns}: {e}"))?;
    // SAFETY: `nsfile` is an open network namespace file; only this thread moves.
    if unsafe { libc::setns(nsfile.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(last_error("setns"));
    }
    let name = std::ffi::CString::new(iface).map_err(|e| e.to_string())?;
    // SAFETY: `name` is NUL-terminated and outlives the call.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(last_error(iface));
    }
    let all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain system call; the result is checked.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(all),
        )
    };
    if raw < 0 {
        return Err(last_error("socket"));
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 64 << 20)?;
    set_int(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, 1)?;
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: `tv` is a timeval and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(last_error("SO_RCVTIMEO"));
    }
    // SAFETY: all-zero is a valid sockaddr_ll; the fields that matter are set below.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = all;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a valid sockaddr_ll and its exact size is passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(last_error("bind"));
    }
    Ok(fd)
}

/// Counts incoming frames on `fd` until `stop` is set and the socket has been idle for one
/// receive timeout. A VLAN tag the kernel moved into metadata counts its 4 bytes.
fn count(fd: &OwnedFd, stop: &AtomicBool) -> Result<Received, String> {
    let mut r = Received::default();
    let mut buf = vec![0u8; 1 << 16];
    // u64 elements: the control buffer must be aligned for cmsghdr
    let mut control = [0u64; 16];
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: all-zero is a valid msghdr; the pointers are set below.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = (&raw mut from).cast();
        msg.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = mem::size_of_val(&control) as _;
        // SAFETY: every pointer in `msg` points at a live buffer of the stated size.
        let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &raw mut msg, libc::MSG_TRUNC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => {
                    if stop.load(Ordering::Acquire) || Instant::now() > deadline {
                        break;
                    }
                    continue;
                }
                _ => return Err(format!("recvmsg: {e}")),
            }
        }
        if from.sll_pkttype == libc::PACKET_OUTGOING {
            continue;
        }
        let mut len = n as u64;
        // SAFETY: `msg` was filled by recvmsg; the CMSG macros walk its control buffer.
        let mut c = unsafe { libc::CMSG_FIRSTHDR(&raw const msg) };
        while !c.is_null() {
            // SAFETY: `c` points at a complete cmsghdr inside `control`.
            let h = unsafe { &*c };
            if h.cmsg_level == libc::SOL_PACKET && h.cmsg_type == libc::PACKET_AUXDATA {
                // SAFETY: PACKET_AUXDATA carries a tpacket_auxdata, possibly unaligned.
                let aux: libc::tpacket_auxdata = unsafe {
                    libc::CMSG_DATA(c)
                        .cast::<libc::tpacket_auxdata>()
                        .read_unaligned()
                };
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                    len += 4;
                }
            }
            // SAFETY: as above.
            c = unsafe { libc::CMSG_NXTHDR(&raw const msg, c) };
        }
        r.frames += 1;
        r.bytes += len;
    }
    let mut st = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut sl = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `st` is a tpacket_stats and `sl` its size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&raw mut st).cast(),
            &raw mut sl,
        )
    };
    if rc < 0 {
        return Err(last_error("PACKET_STATISTICS"));
    }
    r.drops = st.tp_drops;
    Ok(r)
}

/// What the capture must yield on an MTU-`MTU` link: (frames sent, bytes sent, oversize).
fn expected() -> (u64, u64, u64) {
    let pcap = generate_pcap_bytes(&GenOptions {
        profile: Profile::Handshakes,
        flows: Some(FLOWS),
        bytes: None,
        seed: SEED,
        out: PathBuf::new(),
        impairments: None,
        nanos: false,
    })
    .expect("generate the profile");
    let file = PcapFile::parse(&pcap).expect("parse the generated capture");
    let (mut frames, mut bytes, mut oversize) = (0, 0, 0);
    for f in file.frames() {
        let tagged = f.len() >= 14 && f[12..14] == [0x81, 0x00];
        if f.len() > MTU + 14 + if tagged { 4 } else { 0 } {
            oversize += 1;
        } else {
            frames += 1;
            bytes += f.len() as u64;
        }
    }
    (frames, bytes, oversize)
}

/// Runs `loadgen send` in namespace `ns`; returns its JSON summary.
fn send(ns: &str, iface: &str, extra: &[&str]) -> serde_json::Value {
    let flows = FLOWS.to_string();
    let seed = SEED.to_string();
    let mut args = vec!["netns", "exec", ns, env!("CARGO_BIN_EXE_loadgen"), "send"];
    args.extend(["--interface", iface, "--profile", "handshakes"]);
    args.extend(["--flows", &flows, "--seed", &seed, "--json"]);
    args.extend(extra);
    let out = Command::new("ip")
        .args(&args)
        .output()
        .expect("run ip netns exec");
    assert!(
        out.status.success(),
        "loadgen send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

fn field(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

#[test]
fn sends_a_profile_across_a_veth_pair_with_exact_counts() {
    if let Some(why) = unavailable() {
        eprintln!("skipping send_veth: {why}");
        return;
    }
    let net = TestNet::create(Some(MTU as u32), 1).expect("test network");
    let (tx_ns, tx_if) = (net.sender_ns.clone(), net.sender_if.clone());
    let (rx_ns, rx_if) = (net.capture_ns.clone(), net.capture_if.clone());

    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = {
        let (stop, ns, iface) = (Arc::clone(&stop), rx_ns.clone(), rx_if.clone());
        thread::spawn(move || {
            let fd = match open_receiver(&ns, &iface) {
                Ok(fd) => fd,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.clone()));
                    return Err(e);
                }
            };
            let _ = ready_tx.send(Ok(()));
            count(&fd, &stop)
        })
    };
    ready_rx
        .recv()
        .expect("receiver thread alive")
        .expect("open the receive socket");

    let (frames, bytes, oversize) = expected();
    assert!(
        oversize > 0,
        "the profile should have frames above MTU {MTU}"
    );
    let fast = send(&tx_ns, &tx_if, &[]);
    let paced = send(
        &tx_ns,
        &tx_if,
        &["--rate", &RATE.to_string(), "--loops", "2"],
    );
    stop.store(true, Ordering::Release);
    let got = receiver
        .join()
        .expect("receiver thread")
        .expect("count received frames");

    assert_eq!(field(&fast, "frames_sent"), frames, "{fast}");
    assert_eq!(field(&fast, "bytes_sent"), bytes, "{fast}");
    assert_eq!(field(&fast, "oversize_skipped"), oversize, "{fast}");
    assert_eq!(field(&paced, "frames_sent"), 2 * frames, "{paced}");
    assert_eq!(field(&paced, "bytes_sent"), 2 * bytes, "{paced}");
    assert_eq!(field(&paced, "oversize_skipped"), 2 * oversize, "{paced}");
    // a bucket that starts with one frame of credit cannot run ahead of the rate
    let elapsed = paced["elapsed_s"].as_f64().expect("elapsed_s");
    assert!(
        elapsed >= (2 * frames - 1) as f64 / RATE as f64,
        "{} frames in {elapsed} s at {RATE}/s",
        2 * frames
    );
    assert_eq!(got.drops, 0, "the receive socket dropped frames: {got:?}");
    assert_eq!(got.frames, 3 * frames, "frames received: {got:?}");
    assert_eq!(got.bytes, 3 * bytes, "bytes received: {got:?}");
    eprintln!(
        "send_veth: {frames} frames ({bytes} bytes) per run, {oversize} oversize skipped; received {got:?} over 3 runs"
    );
}
