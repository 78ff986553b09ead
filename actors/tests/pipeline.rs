//! The replay pipeline end to end, in process: a fault injected into one shard restarts
//! that shard only and the replay completes; exceeding the restart budget stops the replay
//! with an error naming the stage.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowmesh_actors::batch::MappedInput;
use flowmesh_actors::pipeline::{replay, ReplayConfig, ReplayError, ReplayReport};
use flowmesh_actors::runtime::{reason, RestartPolicy};
use flowmesh_actors::stages::{Fault, Output};
use flowmesh_schemas::flow::Endpoint;
use flowmesh_schemas::{FlowKey, FlowRecord};

/// Collects the output in memory.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn corpus_pcaps() -> Vec<PathBuf> {
    let dir = std::env::var_os("FLOWMESH_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
        .join("pcaps");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus at {} ({e}): set FLOWMESH_CORPUS", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    files
}

fn run(cfg: ReplayConfig) -> (Result<ReplayReport, ReplayError>, Vec<FlowRecord>) {
    let inputs = corpus_pcaps()
        .iter()
        .map(|p| MappedInput::open(p).expect("corpus file opens"))
        .collect();
    let buf = SharedBuf::default();
    let result = replay(cfg, inputs, Output::JsonLines(Box::new(buf.clone())), None);
    let text = String::from_utf8(buf.0.lock().expect("buffer lock").clone()).expect("utf-8");
    let records = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect();
    (result, records)
}

fn four_shards(fault: Option<Arc<Fault>>, restart: RestartPolicy) -> ReplayConfig {
    ReplayConfig {
        shards: 4,
        workers: 2,
        encoders: 2,
        restart,
        fault,
        // Small queues so the capture is still sending when the fault fires.
        shard_queue: 2,
        ..ReplayConfig::default()
    }
}

/// The shard a record's flow was routed to.
fn shard_of(r: &FlowRecord, shards: u64) -> u64 {
    let client = Endpoint {
        ip: r.client_ip,
        port: r.client_port,
    };
    let server = Endpoint {
        ip: r.server_ip,
        port: r.server_port,
    };
    let (key, _) = FlowKey::from_packet(client, server, r.transport.proto(), r.vlan);
    key.symmetric_hash() % shards
}

#[test]
fn a_panicking_shard_restarts_alone_and_the_replay_completes() {
    let (clean, clean_records) = run(four_shards(None, RestartPolicy::default()));
    let clean = clean.expect("clean replay");
    assert!(clean.stages.iter().all(|s| s.restarts == 0));
    let victim = 1;
    assert!(
        clean_records.iter().any(|r| shard_of(r, 4) == victim),
        "the corpus routes flows to shard {victim}"
    );

    let fault = Arc::new(Fault::new(victim as usize, 0, 1));
    let (faulty, records) = run(four_shards(Some(fault), RestartPolicy::default()));
    let faulty = faulty.expect("the replay completes despite the fault");
    for s in &faulty.stages {
        if s.stage == "shard-1" {
            assert_eq!(s.restarts, 1, "{s:?}");
            assert_eq!(s.panics, 1, "{s:?}");
            assert_eq!(s.low.dropped.get(reason::HANDLER_PANIC), 1, "{s:?}");
        } else {
            assert_eq!(s.restarts, 0, "{s:?}");
        }
    }
    // Every flow of the other shards is reported exactly as in the clean run.
    let mut others: Vec<String> = clean_records
        .iter()
        .filter(|r| shard_of(r, 4) != victim)
        .map(|r| serde_json::to_string(r).expect("json"))
        .collect();
    let mut got: Vec<String> = records
        .iter()
        .filter(|r| shard_of(r, 4) != victim)
        .map(|r| serde_json::to_string(r).expect("json"))
        .collect();
    others.sort();
    got.sort();
    assert_eq!(got, others);
    assert_eq!(faulty.board.records_written as usize, records.len());
}

#[test]
fn a_shard_failing_past_its_restart_budget_stops_the_replay_with_an_error() {
    let fault = Arc::new(Fault::new(2, 0, u64::MAX));
    let restart = RestartPolicy {
        max_restarts: 2,
        window: Duration::from_secs(60),
    };
    let (result, _) = run(four_shards(Some(fault), restart));
    match result {
        Err(ReplayError::StageFailed(f)) => {
            assert_eq!(f.stage, "shard-2");
            assert_eq!(f.restarts, 2);
            assert!(f.cause.contains("injected fault"), "{f}");
        }
        other => panic!("expected the stage failure, got {other:?}"),
    }
}
