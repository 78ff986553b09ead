//! Every row of the public corpus' `expected.jsonl` is reproduced by `flowmesh replay`.

use crate::support::{corpus_dir, replay};
use serde_json::Value;
use std::collections::BTreeMap;

pub(crate) const CLIENT_FIELDS: [&str; 5] = ["sni", "alpn", "ja3", "ja3_hash", "ja4"];
pub(crate) const SERVER_FIELDS: [&str; 6] = [
    "ja3s",
    "ja3s_hash",
    "ja4s",
    "tls_version",
    "alpn_selected",
    "server_hello_is_hrr",
];

pub(crate) fn load_expected() -> Vec<Value> {
    let text = std::fs::read_to_string(corpus_dir().join("expected.jsonl"))
        .expect("expected.jsonl readable");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("valid row"))
        .collect()
}

pub(crate) fn record_matches(rec: &Value, row: &Value) -> bool {
    let transport_ok = match row["transport"].as_str() {
        Some("quic") => rec["transport"] == "udp" && rec["l7"] == "quic",
        Some(t) => rec["transport"] == t,
        None => false,
    };
    transport_ok
        && rec["client_ip"] == row["client_ip"]
        && rec["client_port"] == row["client_port"]
        && rec["server_ip"] == row["server_ip"]
        && rec["server_port"] == row["server_port"]
}

/// A field of the expected row, with JSON null/absent booleans read as false.
fn expected_value(row: &Value, field: &str) -> Value {
    match (field, &row[field]) {
        ("server_hello_is_hrr", Value::Null) => Value::Bool(false),
        (_, v) => v.clone(),
    }
}

fn is_absent(v: &Value) -> bool {
    v.is_null() || v.as_array().is_some_and(|a| a.is_empty()) || v == &Value::Bool(false)
}

/// Checks one side of one row; returns a list of mismatches.
pub(crate) fn check_side(
    row: &Value,
    hs: Option<&Value>,
    fields: &[&str],
    expect: &Value,
) -> Vec<String> {
    let mut bad = Vec::new();
    for f in fields {
        let got = hs.map_or(Value::Null, |h| h[*f].clone());
        let want = expected_value(row, f);
        let ok = match expect {
            Value::Bool(true) => got == want,
            Value::Bool(false) => is_absent(&got),
            Value::String(s) if s == "optional" => got == want || is_absent(&got),
            other => panic!("unknown expect value {other}"),
        };
        if !ok {
            bad.push(format!("{f}: got {got}, want {want} (expect {expect})"));
        }
    }
    bad
}

fn check_corpus(extra: &[&str]) {
    let rows = load_expected();
    assert_eq!(rows.len(), 48, "the public corpus has 48 rows");
    let mut by_file: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in &rows {
        by_file
            .entry(r["file"].as_str().expect("file").to_owned())
            .or_default()
            .push(r);
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    for (file, rows) in &by_file {
        let records = replay(&[corpus_dir().join("pcaps").join(file)], extra);
        for row in rows {
            let label = format!(
                "{file} {}:{} #{}",
                row["client_ip"], row["client_port"], row["client_hello_index"]
            );
            let Some(rec) = records.iter().find(|r| record_matches(r, row)) else {
                // No flow at all is acceptable only where nothing is expected.
                if row["expect_client_fp"] == Value::Bool(true)
                    || row["expect_server_fp"] == Value::Bool(true)
                {
                    failures.push(format!("{label}: no flow record"));
                }
                continue;
            };
            let idx = row["client_hello_index"].as_u64().unwrap_or(0) as usize;
            let hs = rec["handshakes"].as_array().and_then(|h| h.get(idx));
            let mut bad = check_side(row, hs, &CLIENT_FIELDS, &row["expect_client_fp"]);
            bad.extend(check_side(
                row,
                hs,
                &SERVER_FIELDS,
                &row["expect_server_fp"],
            ));
            if row["transport"] == "quic" && rec["l7"] != "quic" {
                bad.push(format!("l7 {} (want quic)", rec["l7"]));
            }
            if row["transport"] == "tcp"
                && row["expect_client_fp"] == Value::Bool(true)
                && rec["l7"] != "tls"
            {
                bad.push(format!("l7 {} (want tls)", rec["l7"]));
            }
            for b in bad {
                failures.push(format!("{label}: {b}"));
            }
            checked += 1;
        }
        // No handshake may appear on a flow the corpus does not list (DNS, HTTP, cleartext on 443).
        for rec in &records {
            let has_fp = rec["handshakes"]
                .as_array()
                .is_some_and(|h| h.iter().any(|x| !x["ja3"].is_null() || !x["ja4"].is_null()));
            if has_fp && !rows.iter().any(|row| record_matches(rec, row)) {
                failures.push(format!(
                    "{file}: unexpected handshake on {}:{} -> {}:{}",
                    rec["client_ip"], rec["client_port"], rec["server_ip"], rec["server_port"]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} rows differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, 48);
}

#[test]
fn every_corpus_row_is_reproduced() {
    check_corpus(&[]);
}

#[test]
fn every_corpus_row_is_reproduced_with_one_shard() {
    check_corpus(&["--shards", "1"]);
}

#[test]
fn every_corpus_row_is_reproduced_with_four_shards() {
    check_corpus(&["--shards", "4", "--workers", "3"]);
}

/// The records of a replay as sorted JSON lines.
fn sorted_lines(files: &[std::path::PathBuf], shards: usize) -> Vec<String> {
    let n = shards.to_string();
    let mut lines: Vec<String> = replay(files, &["--shards", &n])
        .iter()
        .map(Value::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn output_is_identical_for_one_to_eight_shards_on_every_corpus_file() {
    let dir = corpus_dir().join("pcaps");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus pcaps")
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut differing = Vec::new();
    for file in &files {
        let one = sorted_lines(std::slice::from_ref(file), 1);
        for shards in 2..=8 {
            let other = sorted_lines(std::slice::from_ref(file), shards);
            if other != one {
                let missing = one.iter().filter(|l| !other.contains(l)).count();
                let extra = other.iter().filter(|l| !one.contains(l)).count();
                differing.push(format!(
                    "{} with {shards} shards: {missing} records of the 1-shard run missing, {extra} differ or extra",
                    file.display()
                ));
            }
        }
    }
    // All files at once, too: flows of different files meet in the same shards.
    let one = sorted_lines(&files, 1);
    assert!(!one.is_empty());
    for shards in [2, 3, 8] {
        if sorted_lines(&files, shards) != one {
            differing.push(format!("all files with {shards} shards"));
        }
    }
    assert!(differing.is_empty(), "{}", differing.join("\n"));
}

#[test]
fn every_flow_record_has_the_documented_keys() {
    let dir = corpus_dir().join("pcaps");
    let records = replay(
        &[
            dir.join("pub_curl_vs_openssl_server.pcap"),
            dir.join("pub_ipv6_noise_ports.pcap"),
        ],
        &[],
    );
    assert!(records.len() >= 8, "expected flows, got {}", records.len());
    let keys = [
        "transport",
        "l7",
        "client_ip",
        "client_port",
        "server_ip",
        "server_port",
        "first_seen",
        "last_seen",
        "packets_c2s",
        "packets_s2c",
        "bytes_c2s",
        "bytes_s2c",
        "end_reason",
        "community_id",
        "handshakes",
    ];
    for r in &records {
        for k in keys {
            assert!(r.get(k).is_some(), "record lacks {k}: {r}");
        }
        assert!(
            r["community_id"]
                .as_str()
                .is_some_and(|c| c.starts_with("1:") && c.len() == 30),
            "{r}"
        );
        let first = r["first_seen"].as_str().expect("first_seen");
        assert!(
            first.ends_with('Z') && first.len() == 30,
            "RFC 3339 with nanoseconds: {first}"
        );
        assert!(["fin", "rst", "idle", "evicted", "end_of_input"]
            .contains(&r["end_reason"].as_str().expect("reason")));
        for h in r["handshakes"].as_array().expect("array") {
            for k in [
                "sni",
                "alpn",
                "alpn_selected",
                "tls_version",
                "server_hello_is_hrr",
                "ja3",
                "ja3_hash",
                "ja3s",
                "ja3s_hash",
                "ja4",
                "ja4s",
            ] {
                assert!(h.get(k).is_some(), "handshake lacks {k}: {h}");
            }
        }
    }
    // Zeek's codes: the curl connections closed normally on both sides.
    let curl: Vec<_> = records
        .iter()
        .filter(|r| r["server_port"] == 443 && r["l7"] == "tls")
        .collect();
    assert!(
        !curl.is_empty() && curl.iter().all(|r| r["conn_state"] == "SF"),
        "{curl:?}"
    );
    // The curl flows close with FIN or RST, and their ClientHello counts are right.
    let tls: Vec<_> = records.iter().filter(|r| r["l7"] == "tls").collect();
    assert!(
        tls.iter()
            .all(|r| r["end_reason"] == "fin" || r["end_reason"] == "rst"),
        "TLS flows closed: {tls:?}"
    );
    // DNS over UDP is a flow without l7.
    assert!(records
        .iter()
        .any(|r| r["transport"] == "udp" && r["server_port"] == 53 && r["l7"].is_null()));
}

#[test]
fn ja4s_is_off_by_default() {
    let file = corpus_dir().join("pcaps/pub_gnutls.pcap");
    let out = crate::support::flowmesh(&["replay", "--quiet", file.to_str().expect("utf-8 path")]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let recs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let hs: Vec<&Value> = recs
        .iter()
        .flat_map(|r| r["handshakes"].as_array().expect("array"))
        .collect();
    assert_eq!(hs.len(), 3);
    assert!(hs
        .iter()
        .all(|h| h["ja4s"].is_null() && h["ja4"].is_string() && h["ja3s"].is_string()));
}
