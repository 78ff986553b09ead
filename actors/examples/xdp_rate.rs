//! How fast frames reach an AF_XDP socket: a veth pair between two private network
//! namespaces, the XDP program on the capture end, and one thread on another CPU sending
//! 60-byte UDP frames (64 on a wire, with the FCS) with sendmmsg(2) as fast as it can.
//! Prints frames sent and received, the rates, the program's counters and the socket's
//! and links' drop counters. Root only; traffic never leaves the namespaces it creates.
//!
//! ```text
//! cargo run --release -p flowmesh-actors --example xdp_rate -- \
//!     [--seconds 5] [--mode auto|native|generic] [--busy-poll] [--frames 4096] \
//!     [--batch 64] [--flows 64] [--spin] [--reader-cpu 1] [--napi-cpu N]
//! ```
//!
//! The sender runs on CPU 0 and the reader on `--reader-cpu`. veth runs the receiving
//! end's NAPI (and so the XDP program and the copy into the UMEM) in the softirq of the
//! sending CPU, unless `--napi-cpu` turns on threaded NAPI for the capture interface and
//! pins its kernel thread to that CPU.
//!
//! The reader sleeps in poll(2) when its ring is empty; with `--spin` it polls with a zero
//! timeout for up to 1 ms of empty rings before it sleeps, so the sender's CPU is not
//! charged a wake-up for every packet.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use flowmesh_actors::capture::xdp::{XdpCapture, XdpConfig, XdpMode};

#[path = "../tests/support/frames.rs"]
mod frames;
#[path = "../tests/support/netns.rs"]
mod netns;

use netns::{in_ns, RawSocket, TestNet, CAP_IF, SEND_IF};

/// Command-line settings.
#[derive(Debug)]
struct Args {
    seconds: u64,
    mode: XdpMode,
    busy_poll: bool,
    frames: u32,
    batch: usize,
    flows: u16,
    spin: bool,
    reader_cpu: usize,
    napi_cpu: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        seconds: 5,
        mode: XdpMode::Auto,
        busy_poll: false,
        frames: 4096,
        batch: 64,
        flows: 64,
        spin: false,
        reader_cpu: 1,
        napi_cpu: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => a.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--frames" => a.frames = value()?.parse().map_err(|e| format!("--frames: {e}"))?,
            "--batch" => a.batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--flows" => a.flows = value()?.parse().map_err(|e| format!("--flows: {e}"))?,
            "--busy-poll" => a.busy_poll = true,
            "--spin" => a.spin = true,
            "--reader-cpu" => {
                a.reader_cpu = value()?.parse().map_err(|e| format!("--reader-cpu: {e}"))?
            }
            "--napi-cpu" => {
                a.napi_cpu = Some(value()?.parse().map_err(|e| format!("--napi-cpu: {e}"))?)
            }
            "--mode" => {
                a.mode = match value()?.as_str() {
                    "auto" => XdpMode::Auto,
                    "native" => XdpMode::Native,
                    "generic" => XdpMode::Generic,
                    m => return Err(format!("--mode {m}: auto, native or generic")),
                }
            }
            f => return Err(format!("unknown argument {f}")),
        }
    }
    if a.batch == 0 || a.flows == 0 {
        return Err("--batch and --flows must be at least 1".into());
    }
    Ok(a)
}

/// Pins thread `tid` (0: the calling thread) to `cpu` (best effort).
fn pin(tid: libc::pid_t, cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it; sched_setaffinity reads
    // a live set of the size passed.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(tid, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Kernel threads whose name starts with `napi/<CAP_IF>-`.
fn napi_threads() -> Vec<libc::pid_t> {
    let prefix = format!("napi/{CAP_IF}-");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: libc::pid_t = e.ok()?.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        comm.starts_with(&prefix).then_some(pid)
    })
    .collect()
}

/// Turns on threaded NAPI for the capture interface and pins its new thread to `cpu`.
fn threaded_napi(net: &TestNet, cpu: usize) -> Result<(), String> {
    let before = napi_threads();
    let status = std::process::Command::new("ip")
        .args(["netns", "exec", &net.capture_ns, "sh", "-c"])
        .arg(format!("echo 1 > /sys/class/net/{CAP_IF}/threaded"))
        .status()
        .map_err(|e| format!("ip netns exec: {e}"))?;
    if !status.success() {
        return Err(
            "threaded NAPI could not be turned on (a veth has NAPI only with \
                    native XDP)"
                .into(),
        );
    }
    let new: Vec<_> = napi_threads()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    if new.is_empty() {
        return Err(format!("no new napi/{CAP_IF} thread"));
    }
    for pid in new {
        pin(pid, cpu);
    }
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("xdp_rate: {e}");
            std::process::exit(2);
        }
    };
    if let Some(why) = netns::unavailable() {
        eprintln!("xdp_rate: {why}");
        std::process::exit(2);
    }
    // Returning (rather than exiting) from `run` deletes the namespaces.
    if let Err(e) = run(&args) {
        eprintln!("xdp_rate: {e}");
        std::process::exit(1);
    }
}

/// Builds the network, sends and receives for `args.seconds`, and prints the figures.
fn run(args: &Args) -> Result<(), String> {
    let net = TestNet::create(None, 1).map_err(|e| format!("test network: {e}"))?;
    let cfg = XdpConfig {
        mode: args.mode,
        frames_per_queue: args.frames,
        busy_poll: args.busy_poll,
        ..XdpConfig::new(CAP_IF)
    };
    let mut capture =
        in_ns(&net.capture_ns, || XdpCapture::open(&cfg)).map_err(|e| format!("open: {e}"))?;
    let mut socket = capture.take_sockets().pop().ok_or("no socket")?;
    let sender = in_ns(&net.sender_ns, || RawSocket::open(SEND_IF, 0))
        .map_err(|e| format!("sender socket: {e}"))?;
    sender
        .bypass_qdisc()
        .map_err(|e| format!("PACKET_QDISC_BYPASS: {e}"))?;
    let detach = |capture| in_ns(&net.capture_ns, move || drop(capture));
    if let Some(cpu) = args.napi_cpu {
        if let Err(e) = threaded_napi(&net, cpu) {
            drop(socket);
            detach(capture);
            return Err(e);
        }
    }

    // One 60-byte IPv4/UDP frame per flow (18 bytes of payload).
    let flows: Vec<Vec<u8>> = (0..args.flows)
        .map(|i| {
            frames::eth(
                frames::ETH_P_IP,
                &[],
                &frames::ipv4(
                    [10, 0, 0, 1],
                    [10, 0, 0, 2],
                    frames::UDP,
                    0,
                    &[],
                    &frames::udp(10000 + i, 53, &[0; 18]),
                ),
            )
        })
        .collect();
    assert_eq!(flows[0].len(), 60);
    let batch: Vec<&[u8]> = flows
        .iter()
        .cycle()
        .take(args.batch)
        .map(Vec::as_slice)
        .collect();

    let sending = AtomicBool::new(true);
    let duration = Duration::from_secs(args.seconds);
    let (sent, received, elapsed) = std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            pin(0, args.reader_cpu);
            let mut n = 0u64;
            let mut idle_since = Instant::now();
            loop {
                let spinning = args.spin && idle_since.elapsed() < Duration::from_millis(1);
                let timeout = if spinning {
                    Duration::ZERO
                } else {
                    Duration::from_millis(10)
                };
                let got = socket.poll(timeout, 256, &mut |_| {}).expect("poll");
                n += got as u64;
                if got > 0 {
                    idle_since = Instant::now();
                } else if !spinning && !sending.load(Ordering::Acquire) {
                    return n;
                }
            }
        });
        pin(0, 0);
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < duration {
            sent += sender.send_many(&batch).expect("sendmmsg") as u64;
        }
        let elapsed = start.elapsed();
        sending.store(false, Ordering::Release);
        (sent, receiver.join().expect("receiver"), elapsed)
    });

    let secs = elapsed.as_secs_f64();
    let mpps = |n: u64| n as f64 / secs / 1e6;
    println!(
        "mode {:?}, busy_poll {}, spin {}, reader cpu {}, napi cpu {:?}, {} frames/queue, \
         batch {}, {} flows, {:.2} s",
        capture.attached_mode(),
        args.busy_poll,
        args.spin,
        args.reader_cpu,
        args.napi_cpu,
        args.frames,
        args.batch,
        args.flows,
        secs
    );
    println!("sent     {sent:>12} frames  {:>6.3} Mpps", mpps(sent));
    println!(
        "received {received:>12} frames  {:>6.3} Mpps  ({:.1}% of sent)",
        mpps(received),
        100.0 * received as f64 / sent.max(1) as f64
    );
    println!("xdp      {:?}", capture.counters().expect("counters"));
    println!("xsk      {:?}", socket.stats().expect("stats"));
    print!("{}", net.link_stats());
    drop(socket);
    detach(capture);
    Ok(())
}
