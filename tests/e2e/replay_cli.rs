//! `flowmesh replay` as a user meets it: errors, warnings, output destinations.

use crate::support::{corpus_dir, flowmesh};

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flowmesh-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn stderr_of(args: &[&str]) -> (bool, String) {
    let out = flowmesh(args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_directory_is_a_clear_error() {
    let dir = corpus_dir().join("pcaps");
    let (ok, err) = stderr_of(&["replay", dir.to_str().expect("utf-8")]);
    assert!(!ok);
    assert!(err.contains("is a directory"), "{err}");
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let (ok, err) = stderr_of(&["replay", "/nonexistent/flowmesh/x.pcap"]);
    assert!(!ok);
    assert!(
        err.contains("cannot read /nonexistent/flowmesh/x.pcap"),
        "{err}"
    );
}

#[test]
fn a_non_capture_file_is_a_clear_error() {
    let p = tmp("notes.txt");
    std::fs::write(&p, b"this is not a capture file at all").expect("write");
    let (ok, err) = stderr_of(&["replay", p.to_str().expect("utf-8")]);
    assert!(!ok);
    assert!(err.contains("not a readable capture file"), "{err}");
}

#[test]
fn an_unknown_link_type_is_a_clear_error() {
    // A classic pcap header with LINKTYPE 147 (user 0), which flowmesh does not decode.
    let mut hdr = Vec::new();
    hdr.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&[0; 8]);
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&147u32.to_le_bytes());
    let p = tmp("user0.pcap");
    std::fs::write(&p, &hdr).expect("write");
    let (ok, err) = stderr_of(&["replay", p.to_str().expect("utf-8")]);
    assert!(!ok);
    assert!(err.contains("147"), "the error names the link type: {err}");
}

#[test]
fn a_file_cut_short_keeps_its_records_and_warns() {
    let src =
        std::fs::read(corpus_dir().join("pcaps/pub_curl_vs_openssl_server.pcap")).expect("read");
    let p = tmp("cut.pcap");
    std::fs::write(&p, &src[..src.len() * 2 / 3 + 7]).expect("write");
    let out = flowmesh(&[
        "replay",
        "--fingerprints",
        "ja3,ja4",
        p.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning"), "{err}");
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let with_hs = records
        .iter()
        .filter(|r| r["handshakes"].as_array().is_some_and(|h| !h.is_empty()))
        .count();
    assert!(
        with_hs >= 2,
        "the first flows' handshakes survive: {with_hs}"
    );
    assert!(err.contains("flowmesh replay:"), "summary printed: {err}");
}

#[test]
fn output_to_a_file_equals_standard_output() {
    let f = corpus_dir().join("pcaps/pub_gnutls.pcap");
    let f = f.to_str().expect("utf-8");
    let p = tmp("out.jsonl");
    let to_file = flowmesh(&[
        "replay",
        "--quiet",
        "--output",
        p.to_str().expect("utf-8"),
        f,
    ]);
    assert!(to_file.status.success());
    assert!(to_file.stdout.is_empty());
    let to_stdout = flowmesh(&["replay", "--quiet", "-o", "-", f]);
    assert!(to_stdout.status.success());
    let written = std::fs::read_to_string(&p).expect("output written");
    assert!(!written.is_empty());
    // Shards finish in any order: the same lines, not necessarily in the same order.
    let mut a: Vec<&str> = written.lines().collect();
    let stdout = String::from_utf8(to_stdout.stdout).expect("utf-8");
    let mut b: Vec<&str> = stdout.lines().collect();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
}

#[test]
fn summary_reports_counts_and_reasons() {
    let f = corpus_dir().join("pcaps/pub_snaplen96.pcap");
    let (ok, err) = stderr_of(&[
        "replay",
        "--output",
        tmp("s.jsonl").to_str().expect("utf-8"),
        f.to_str().expect("utf-8"),
    ]);
    assert!(ok);
    assert!(
        err.contains("packets") && err.contains("flows") && err.contains("handshakes"),
        "{err}"
    );
    assert!(
        err.contains("incomplete handshakes: ") && err.contains("truncated_hello"),
        "{err}"
    );
}
