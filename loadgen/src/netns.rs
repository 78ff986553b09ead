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
    let probe = format!("fmprobe{}", std::process::id());
    match ip(&["netns", "add", &probe]) {
        Ok(()) => {
            let _ = ip(&["netns", "del", &probe]);
            None
        }
        Err(e) => Some(e),
    }
}

impl TestNet {
    /// Makes the namespaces and the pair, with IPv6 off and every link up. `mtu` sets the
    /// pair's MTU when given. Names are unique per process and call.
    pub fn create(mtu: Option<u32>) -> Result<TestNet, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let net = TestNet {
            capture_ns: format!("fmcap{id}"),
            capture_if: format!("fmc{id}"),
            sender_ns: format!("fmsnd{id}"),
            sender_if: format!("fms{id}"),
        };
        // From here on, Drop cleans up whatever exists.
        ip(&["netns", "add", &net.capture_ns])?;
        ip(&["netns", "add", &net.sender_ns])?;
        ip(&[
            "link",
            "add",
            &net.capture_if,
            "netns",
            &net.capture_ns,
            "type",
            "veth",
            "peer",
            "name",
            &net.sender_if,
            "netns",
            &net.sender_ns,
        ])?;
        for (ns, link) in [
            (&net.capture_ns, &net.capture_if),
            (&net.sender_ns, &net.sender_if),
        ] {
            let sysctl = format!("net.ipv6.conf.{link}.disable_ipv6=1");
            ip(&["netns", "exec", ns, "sysctl", "-qw", &sysctl])?;
            if let Some(mtu) = mtu {
                ip(&["-n", ns, "link", "set", link, "mtu", &mtu.to_string()])?;
            }
            ip(&["-n", ns, "link", "set", link, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// Runs `f` on a new thread that has entered namespace `ns`; sockets it opens and
    /// processes it spawns live in `ns`.
    pub fn run_in<T: Send + 'static>(
        ns: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<T> {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            enter(&path)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
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
