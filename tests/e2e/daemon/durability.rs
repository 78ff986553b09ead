//! What the store keeps across a clean restart and across `kill -9`.

use super::{corpus_pcaps, sorted, Daemon};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `copies` copies of a little-endian classic pcap's packets, each copy `gap_s` seconds
/// after the previous, so every copy's flows are new flows.
fn repeated_pcap(source: &[u8], copies: u32, gap_s: u32) -> Vec<u8> {
    assert_eq!(
        &source[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian microsecond pcap"
    );
    let records = &source[24..];
    let mut out = Vec::with_capacity(24 + records.len() * copies as usize);
    out.extend_from_slice(&source[..24]);
    for copy in 0..copies {
        let mut at = 0;
        while at + 16 <= records.len() {
            let word = |i: usize| {
                u32::from_le_bytes(records[at + i..at + i + 4].try_into().expect("4 bytes"))
            };
            let (ts, len) = (word(0), word(8) as usize);
            out.extend_from_slice(&(ts + copy * gap_s).to_le_bytes());
            out.extend_from_slice(&records[at + 4..at + 16 + len]);
            at += 16 + len;
        }
    }
    out
}

fn nginx_capture() -> Vec<u8> {
    let file = corpus_pcaps()
        .into_iter()
        .find(|p| p.ends_with("pub_nginx_many_clients.pcap"))
        .expect("corpus file");
    std::fs::read(file).expect("pcap")
}

#[test]
fn flows_survive_a_clean_restart_and_new_ids_never_repeat_old_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = corpus_pcaps();
    let daemon = Daemon::start(dir.path(), "");
    for f in &files[..files.len() - 1] {
        let a = daemon.ingest(&std::fs::read(f).expect("pcap"));
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let before = daemon.flows("");
    assert!(!before.is_empty());
    let status = daemon.stop();
    assert!(status.success(), "SIGTERM exit status {status}");

    let daemon = Daemon::start(dir.path(), "");
    assert_eq!(sorted(daemon.flows("")), sorted(before.clone()));
    let a = daemon.ingest(&std::fs::read(&files[files.len() - 1]).expect("pcap"));
    assert_eq!(a.status, 200, "{}", a.body);
    let after = daemon.flows("");
    let old: BTreeSet<&str> = before
        .iter()
        .filter_map(|f| f["flow_id"].as_str())
        .collect();
    let all: BTreeSet<&str> = after.iter().filter_map(|f| f["flow_id"].as_str()).collect();
    assert_eq!(all.len(), after.len(), "ids are unique");
    assert_eq!(
        after.len(),
        before.len() + a.body["flows"].as_u64().expect("flows") as usize
    );
    assert!(old.is_subset(&all));
    assert!(daemon.stop().success());
}

#[test]
fn kill_9_during_ingest_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = Arc::new(repeated_pcap(&nginx_capture(), 2000, 3600));
    let daemon = Arc::new(Daemon::start(dir.path(), ""));
    let acked = Arc::new(AtomicU64::new(0));
    let uploads = Arc::new(AtomicU64::new(0));
    let per_upload = Arc::new(AtomicU64::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let uploader = {
        let (daemon, capture, acked, uploads, per_upload, killed) = (
            Arc::clone(&daemon),
            Arc::clone(&capture),
            Arc::clone(&acked),
            Arc::clone(&uploads),
            Arc::clone(&per_upload),
            Arc::clone(&killed),
        );
        std::thread::spawn(move || {
            while !killed.load(Ordering::SeqCst) {
                let a = daemon.try_ingest(&capture);
                match a {
                    Some(a) if a.status == 200 => {
                        let n = a.body["flows"].as_u64().expect("flows");
                        per_upload.store(n, Ordering::SeqCst);
                        acked.fetch_add(n, Ordering::SeqCst);
                        uploads.fetch_add(1, Ordering::SeqCst);
                    }
                    // The connection died with the daemon: not acknowledged.
                    _ => return,
                }
            }
        })
    };
    while uploads.load(Ordering::SeqCst) < 3 {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Somewhere inside the next upload.
    std::thread::sleep(Duration::from_millis(150));
    killed.store(true, Ordering::SeqCst);
    daemon.signal("KILL");
    uploader.join().expect("uploader");
    let acked = acked.load(Ordering::SeqCst);
    let per_upload = per_upload.load(Ordering::SeqCst);
    assert!(
        per_upload >= 5000,
        "a large ingest: {per_upload} flows per upload"
    );
    let daemon =
        Arc::try_unwrap(daemon).unwrap_or_else(|_| panic!("uploader still holds the daemon"));
    drop(daemon);

    let daemon = Daemon::start(dir.path(), "");
    let stored = daemon.flows("");
    let n = stored.len() as u64;
    assert!(n >= acked, "stored {n} < acknowledged {acked}");
    assert!(
        n <= acked + per_upload,
        "stored {n}: more than the acknowledged {acked} plus one upload in flight ({per_upload})"
    );
    let ids: BTreeSet<&str> = stored
        .iter()
        .filter_map(|f| f["flow_id"].as_str())
        .collect();
    assert_eq!(ids.len() as u64, n, "ids are unique");
    // Every stored record decodes to a whole flow.
    assert!(stored
        .iter()
        .all(|f| f["community_id"].is_string() && f["first_seen"].is_string()));
    assert!(daemon.stop().success());
}
