//! Test networks: two network namespaces joined by a veth pair, made with iproute2 and
//! deleted when dropped, so live-capture tests never touch the machine's own links.
//!
//! The kernel is kept quiet on both ends (IPv6 off before the links come up: no router
//! solicitations, no MLD reports), so the only frames on the pair are the ones a test sends.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Two namespaces and the veth pair between them.
#[derive(Debug)]
pub struct TestNet {
    /// Namespace of the capturing end.
    pub capture_ns: String,
    /// Interface of the capturing end (inside `capture_ns`).
    pub capture_if: String,
    /// Namespace of the sending end.
    pub sender_ns: String,
    /// Interface of the sending end (inside `sender_ns`).
    pub sender_if: String,
}

/// Runs `ip` with `args`, failing with its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why test networks cannot be made here, if they cannot (not root, no iproute2, no
/// network namespaces).
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces and veth pairs)".into());
    }
    static PROBES: AtomicU32 = AtomicU32::new(0);
    let probe = format!(
        "fmprobe-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    );
    match ip(&["netns", "add", &probe]) {
        Ok(()) => {
            let _ = ip(&["netns", "del", &probe]);
            None
        }
        Err(e) => Some(e),
    }
}

/// The capturing end's interface name (inside [`TestNet::capture_ns`]).
pub const CAPTURE_IF: &str = "vcap";
/// The sending end's interface name (inside [`TestNet::sender_ns`]).
pub const SENDER_IF: &str = "vsend";

impl TestNet {
    /// Makes the namespaces and the pair ([`CAPTURE_IF`] and [`SENDER_IF`], each with
    /// `queues` receive and transmit queues), with IPv6 off and every link up. `mtu` sets
    /// the pair's MTU when given. Namespace names are unique per process and call.
    pub fn create(mtu: Option<u32>, queues: u32) -> Result<TestNet, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let net = TestNet {
            capture_ns: format!("fmcap-{id}"),
            capture_if: CAPTURE_IF.to_owned(),
            sender_ns: format!("fmsnd-{id}"),
            sender_if: SENDER_IF.to_owned(),
        };
        // From here on, Drop cleans up whatever exists.
        for ns in [&net.capture_ns, &net.sender_ns] {
            ip(&["netns", "add", ns])?;
            // Off before any link exists, so no link ever sends router solicitations or MLD.
            ip(&[
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ])?;
        }
        net.add_pair(mtu, queues)?;
        Ok(net)
    }

    /// Makes the veth pair ([`CAPTURE_IF`] in the capture namespace, [`SENDER_IF`] in the
    /// sender's), each end with `queues` receive and transmit queues and `mtu` when given,
    /// and brings both ends up. [`TestNet::create`] calls it; a test that removed the pair
    /// calls it again to put back an interface of the same name (with a new index).
    pub fn add_pair(&self, mtu: Option<u32>, queues: u32) -> Result<(), String> {
        let q = queues.max(1).to_string();
        ip(&[
            "-n",
            &self.capture_ns,
            "link",
            "add",
            CAPTURE_IF,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            SENDER_IF,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "netns",
            &self.sender_ns,
        ])?;
        for (ns, link) in [(&self.capture_ns, CAPTURE_IF), (&self.sender_ns, SENDER_IF)] {
            if let Some(mtu) = mtu {
                ip(&["-n", ns, "link", "set", link, "mtu", &mtu.to_string()])?;
            }
            ip(&["-n", ns, "link", "set", link, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Removes the veth pair (both ends), as when an interface goes away under a capture.
    pub fn remove_pair(&self) -> Result<(), String> {
        ip(&["-n", &self.capture_ns, "link", "del", CAPTURE_IF])
    }

    /// `ip -s link show` of both ends (their drop counters), for reports.
    pub fn link_stats(&self) -> String {
        let mut s = String::new();
        for (ns, link) in [(&self.capture_ns, CAPTURE_IF), (&self.sender_ns, SENDER_IF)] {
            if let Ok(out) = Command::new("ip")
                .args(["-n", ns, "-s", "link", "show", "dev", link])
                .output()
            {
                s.push_str(&String::from_utf8_lossy(&out.stdout));
            }
        }
        s
    }

    /// Runs `f` on a new thread that has entered namespace `ns` and waits for it; sockets
    /// it opens (and processes it spawns) live in `ns` wherever they are used afterwards.
    /// A panic in `f` is resumed on the caller.
    pub fn run_in<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        let path = format!("/run/netns/{ns}");
        std::thread::scope(|s| {
            s.spawn(|| {
                enter(&path)?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

/// Moves the calling thread into the network namespace at `path`.
pub fn enter(path: &str) -> io::Result<()> {
    let file = File::open(path)?;
    // SAFETY: setns on a valid namespace descriptor; affects only this thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and with it the pair.
        let _ = ip(&["netns", "del", &self.capture_ns]);
        let _ = ip(&["netns", "del", &self.sender_ns]);
    }
}
