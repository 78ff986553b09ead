//! Helpers shared by the end-to-end tests: locating the corpus and running `flowmesh`.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The public corpus: `$FLOWMESH_CORPUS`, else `shared/corpus` beside the repository.
pub fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("FLOWMESH_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    assert!(
        dir.join("expected.jsonl").is_file(),
        "corpus not found at {}: set FLOWMESH_CORPUS to the folder holding expected.jsonl and pcaps/",
        dir.display()
    );
    dir
}

/// Runs the flowmesh binary with `args`.
pub fn flowmesh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowmesh"))
        .args(args)
        .output()
        .expect("flowmesh binary runs")
}

/// Replays `files` with every fingerprint on and returns the records.
pub fn replay(files: &[PathBuf], extra: &[&str]) -> Vec<Value> {
    let mut args: Vec<String> = vec![
        "replay".into(),
        "--quiet".into(),
        "--fingerprints".into(),
        "ja3,ja3s,ja4,ja4s".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(files.iter().map(|f| f.display().to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = flowmesh(&argv);
    assert!(
        out.status.success(),
        "flowmesh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}
