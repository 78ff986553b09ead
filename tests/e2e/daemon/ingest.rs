//! The public corpus ingested through the API and through the spool, queried back by JA4,
//! SNI and IP, and compared with `replay` and with the corpus' expected values.

use super::{corpus_pcaps, sorted, without_id, Daemon, ALL_FINGERPRINTS};
use crate::corpus::{check_side, load_expected, record_matches, CLIENT_FIELDS, SERVER_FIELDS};
use crate::support::{flowmesh, replay};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Every expected row with a client fingerprint is found by its JA4, its SNI and its client
/// IP, on a flow with the expected fields.
fn check_expected_rows(daemon: &Daemon) {
    let mut failures = Vec::new();
    let mut checked = 0;
    for row in load_expected() {
        if row["expect_client_fp"] != Value::Bool(true) {
            continue;
        }
        let idx = row["client_hello_index"].as_u64().unwrap_or(0) as usize;
        let mut queries = vec![
            format!("ja4={}", row["ja4"].as_str().expect("ja4")),
            format!("ip={}", row["client_ip"].as_str().expect("ip")),
            format!("port={}", row["client_port"]),
        ];
        if let Some(sni) = row["sni"].as_str() {
            queries.push(format!("sni={sni}"));
        }
        for q in queries {
            let flows = daemon.flows(&q);
            let Some(flow) = flows.iter().find(|f| record_matches(f, &row)) else {
                failures.push(format!(
                    "{q}: no flow {}:{}",
                    row["client_ip"], row["client_port"]
                ));
                continue;
            };
            let hs = flow["handshakes"].as_array().and_then(|h| h.get(idx));
            let mut bad = check_side(&row, hs, &CLIENT_FIELDS, &row["expect_client_fp"]);
            bad.extend(check_side(
                &row,
                hs,
                &SERVER_FIELDS,
                &row["expect_server_fp"],
            ));
            failures.extend(bad.into_iter().map(|b| format!("{q}: {b}")));
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 3 * 30, "only {checked} lookups checked");
}

/// Every distinct JA4 of the replayed records finds exactly the records that have it.
fn check_every_ja4(daemon: &Daemon, replayed: &[Value]) {
    let ja4s: BTreeSet<String> = replayed
        .iter()
        .flat_map(|r| r["handshakes"].as_array().cloned().unwrap_or_default())
        .filter_map(|h| h["ja4"].as_str().map(str::to_string))
        .collect();
    assert!(ja4s.len() >= 10, "corpus JA4 values: {}", ja4s.len());
    for ja4 in &ja4s {
        let want = sorted(
            replayed
                .iter()
                .filter(|r| {
                    r["handshakes"]
                        .as_array()
                        .is_some_and(|h| h.iter().any(|x| x["ja4"].as_str() == Some(ja4)))
                })
                .cloned(),
        );
        let got = sorted(daemon.flows(&format!("ja4={ja4}")).iter().map(without_id));
        assert_eq!(got, want, "flows with JA4 {ja4}");
    }
}

fn replay_corpus() -> Vec<Value> {
    corpus_pcaps()
        .iter()
        .flat_map(|f| replay(std::slice::from_ref(f), &[]))
        .collect()
}

#[test]
fn corpus_ingested_through_the_api_is_queryable_with_the_fields_of_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start(dir.path(), ALL_FINGERPRINTS);
    let mut flows = 0;
    for file in corpus_pcaps() {
        let bytes = std::fs::read(&file).expect("pcap");
        let a = daemon.ingest(&bytes);
        assert_eq!(a.status, 200, "{}: {}", file.display(), a.body);
        let replayed = replay(std::slice::from_ref(&file), &[]);
        assert_eq!(
            a.body["flows"].as_u64(),
            Some(replayed.len() as u64),
            "{}",
            file.display()
        );
        let handshakes: usize = replayed
            .iter()
            .map(|r| r["handshakes"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(
            a.body["handshakes"].as_u64(),
            Some(handshakes as u64),
            "{}",
            file.display()
        );
        flows += replayed.len();
    }
    let replayed = replay_corpus();
    let all = daemon.flows("");
    assert_eq!(all.len(), flows);
    let ids: BTreeSet<&str> = all.iter().filter_map(|f| f["flow_id"].as_str()).collect();
    assert_eq!(ids.len(), flows, "every flow has its own id");
    assert_eq!(sorted(all.iter().map(without_id)), sorted(replayed.clone()));
    // Each flow is also reachable by its id.
    for f in all.iter().step_by(7) {
        let one = daemon.get(&format!(
            "/api/v1/flows/{}",
            f["flow_id"].as_str().expect("id")
        ));
        assert_eq!(one.status, 200);
        assert_eq!(&one.body, f);
    }
    check_every_ja4(&daemon, &replayed);
    check_expected_rows(&daemon);

    // Top JA4 counts the flows that had each value, over all time.
    let top = daemon.get("/api/v1/fingerprints/top?field=ja4&since=0&limit=1000");
    assert_eq!(top.status, 200, "{}", top.body);
    let counted: u64 = top.body["top"]
        .as_array()
        .expect("top")
        .iter()
        .map(|e| e["count"].as_u64().expect("count"))
        .sum();
    let with_ja4: u64 = replayed
        .iter()
        .map(|r| {
            let values: BTreeSet<&str> = r["handshakes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| h["ja4"].as_str())
                .collect();
            values.len() as u64
        })
        .sum();
    assert_eq!(counted, with_ja4);

    // The query command gives the same flows.
    let ja4 = all
        .iter()
        .find_map(|f| f["handshakes"][0]["ja4"].as_str())
        .expect("a JA4");
    let out = flowmesh(&[
        "query",
        "--server",
        &daemon.base,
        "--ja4",
        ja4,
        "--format",
        "json",
        "--limit",
        "100000",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(sorted(lines), sorted(daemon.flows(&format!("ja4={ja4}"))));
    let table = flowmesh(&["query", "--server", &daemon.base, "--ja4", ja4]);
    assert!(table.status.success());
    assert!(String::from_utf8_lossy(&table.stdout).contains(ja4));

    // Metrics count what was ingested.
    let metrics = daemon.get("/metrics");
    let text = metrics.body.as_str().expect("text").to_string();
    for name in [
        "flowmesh_capture_packets_total",
        "flowmesh_flows_total",
        "flowmesh_handshakes_total",
        "flowmesh_storage_records_total",
        "flowmesh_storage_write_seconds",
        "flowmesh_ingest_files_total",
        "flowmesh_stage_queue_depth",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("flowmesh_storage_records_total")
                && l.ends_with(&format!(" {flows}"))),
        "flowmesh_storage_records_total is not {flows}"
    );
    assert!(daemon.stop().success());
}

#[test]
fn corpus_dropped_into_the_spool_is_ingested_and_moved_to_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config =
        format!("{ALL_FINGERPRINTS}[capture]\nspool_poll_ms = 50\nspool_settle_ms = 100\n");
    let daemon = Daemon::start(dir.path(), &config);
    let spool = dir.path().join("spool");
    let files = corpus_pcaps();
    for f in &files {
        let name = f.file_name().expect("name").to_string_lossy().into_owned();
        // Written under a .part name, then renamed: the watcher never sees half a file.
        let part = spool.join(format!("{name}.part"));
        std::fs::copy(f, &part).expect("copy");
        std::fs::rename(&part, spool.join(&name)).expect("rename");
    }
    std::fs::write(spool.join("notes.txt"), b"not a capture").expect("junk");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stats = daemon.get("/api/v1/stats");
        let done = stats.body["ingest"]["files"].as_u64().unwrap_or(0);
        let failed = stats.body["ingest"]["failed_files"].as_u64().unwrap_or(0);
        if done == files.len() as u64 && failed == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "spool not ingested: {}\n{}",
            stats.body,
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for f in &files {
        let name = f.file_name().expect("name");
        assert!(
            spool.join("done").join(name).is_file(),
            "{name:?} not in done/"
        );
        assert!(!spool.join(name).exists());
    }
    assert!(spool.join("failed").join("notes.txt").is_file());
    let note = std::fs::read_to_string(spool.join("failed").join("notes.txt.error")).expect("note");
    assert!(!note.trim().is_empty());
    let all = daemon.flows("");
    assert_eq!(sorted(all.iter().map(without_id)), sorted(replay_corpus()));
    check_expected_rows(&daemon);
    assert!(daemon.stop().success());
}
