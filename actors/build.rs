//! Builds the XDP program (`ebpf/flowmesh_xdp.c`) with clang into `$OUT_DIR/flowmesh_xdp.o`
//! and sets `cfg(flowmesh_xdp)` when it succeeds. Without clang (or when it fails) the
//! build still succeeds: a warning says why, and `flowmesh_actors::xdp` returns
//! "this build has no XDP program: <reason>" at run time (the reason is passed to the
//! crate as the environment variable `FLOWMESH_XDP_MISSING`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(flowmesh_xdp)");
    println!("cargo::rerun-if-env-changed=CLANG");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let ebpf = manifest.join("../ebpf");
    for file in ["flowmesh_xdp.c", "flowmesh_xdp.h"] {
        println!("cargo::rerun-if-changed={}", ebpf.join(file).display());
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("flowmesh_xdp.o");
    match build(&ebpf, &out) {
        Ok(()) => println!("cargo::rustc-cfg=flowmesh_xdp"),
        Err(reason) => {
            println!(
                "cargo::warning=install clang and libbpf-dev to build the XDP program; \
                 AF_XDP capture is disabled ({reason})"
            );
            println!("cargo::rustc-env=FLOWMESH_XDP_MISSING={reason}");
        }
    }
}

/// Runs clang; the error is a one-line reason.
fn build(ebpf: &Path, out: &Path) -> Result<(), String> {
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return Err("XDP needs Linux".into());
    }
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let mut cmd = Command::new(&clang);
    // BPF ISA v3 for the atomic OR of TCP flags (Linux 5.12+).
    cmd.args([
        "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror",
    ]);
    // <asm/types.h> lives under the multiarch directory on Debian.
    if let Some(dir) = multiarch_include() {
        cmd.arg(format!("-I{}", dir.display()));
    }
    cmd.arg("-c")
        .arg(ebpf.join("flowmesh_xdp.c"))
        .arg("-o")
        .arg(out);
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run `{clang}`: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in stderr.lines() {
        println!("cargo::warning={line}");
    }
    // Keep the reason on one line: it becomes an environment variable.
    let first = stderr
        .lines()
        .find(|l| l.contains("error"))
        .unwrap_or("no message");
    Err(format!("`{clang}` failed ({}): {first}", output.status))
}

/// `/usr/include/<arch>-linux-gnu` of the target, when it exists.
fn multiarch_include() -> Option<PathBuf> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").ok()?;
    let triplet = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "x86" => "i386-linux-gnu",
        "arm" => "arm-linux-gnueabihf",
        "riscv64" => "riscv64-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        _ => return None,
    };
    let dir = Path::new("/usr/include").join(triplet);
    dir.is_dir().then_some(dir)
}
