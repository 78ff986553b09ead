//! Flow records made from the public corpus captures, by running each capture through
//! the pure packet path (`flowmesh_core::shard::Inline`). Shared by the store's tests and
//! its benchmark (included with `#[path]`).

use flowmesh_core::capture::CaptureReader;
use flowmesh_core::handshake::WorkerConfig;
use flowmesh_core::shard::{Inline, ShardConfig};
use flowmesh_schemas::FlowRecord;
use std::path::PathBuf;

/// The corpus captures folder: `$FLOWMESH_CORPUS/pcaps`, else `shared/corpus/pcaps`
/// beside the workspace. Panics with what to set when it is absent.
pub fn pcaps_dir() -> PathBuf {
    let root = std::env::var_os("FLOWMESH_CORPUS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
        PathBuf::from,
    );
    let dir = root.join("pcaps");
    assert!(
        dir.is_dir(),
        "corpus not found at {}: set FLOWMESH_CORPUS to the folder holding pcaps/",
        root.display()
    );
    dir
}

/// Every record of every corpus capture, all fingerprints on, in file-name order.
pub fn corpus_records() -> Vec<FlowRecord> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(pcaps_dir())
        .expect("corpus pcaps folder is readable")
        .map(|e| e.expect("corpus folder entry").path())
        .collect();
    files.sort();
    let mut records = Vec::new();
    for path in files {
        let bytes = std::fs::read(&path).expect("corpus capture is readable");
        let mut reader = CaptureReader::new(&bytes).expect("corpus capture has a valid header");
        let worker = WorkerConfig {
            fingerprints: "ja3,ja3s,ja4,ja4s".parse().expect("valid fingerprint list"),
            ..WorkerConfig::default()
        };
        let mut shard = Inline::new(ShardConfig::default(), worker);
        while let Some(frame) = reader.next_frame() {
            match frame {
                Ok(frame) => shard.process_frame(&frame, &mut records),
                Err(e) if e.is_fatal() => break,
                Err(_) => {}
            }
        }
        shard.finish(&mut records);
    }
    records
}
