//! At scale: loadgen writes a `handshakes` pcap with more than 10,000 TLS and QUIC
//! handshakes and a manifest of the fingerprints it chose; `flowmesh replay` must
//! reproduce every one of them, keyed by 5-tuple.
//!
//! loadgen builds its packets, hellos, QUIC encryption and fingerprints with its own
//! code, so agreement here means two independent implementations agree.

use crate::support::replay;
use flowmesh_loadgen::gen::manifest::{HandshakeEntry, Manifest};
use flowmesh_loadgen::gen::{generate, GenOptions, Profile};
use serde_json::Value;
use std::collections::HashMap;

type Key = (String, String, u16, String, u16);

fn key_of_record(r: &Value) -> Key {
    let transport = if r["l7"] == "quic" {
        "quic"
    } else {
        r["transport"].as_str().unwrap_or("")
    };
    (
        transport.to_string(),
        r["client_ip"].as_str().unwrap_or("").to_string(),
        r["client_port"].as_u64().unwrap_or(0) as u16,
        r["server_ip"].as_str().unwrap_or("").to_string(),
        r["server_port"].as_u64().unwrap_or(0) as u16,
    )
}

fn key_of_entry(h: &HandshakeEntry) -> Key {
    (
        h.transport.clone(),
        h.client_ip.clone(),
        h.client_port,
        h.server_ip.clone(),
        h.server_port,
    )
}

/// Field-by-field comparison of one handshake; returns the mismatches.
fn compare(h: &HandshakeEntry, got: &Value) -> Vec<String> {
    let want: [(&str, Value); 9] = [
        ("sni", serde_json::json!(h.sni)),
        ("alpn", serde_json::json!(h.alpn)),
        ("tls_version", serde_json::json!(h.tls_version)),
        ("ja3", serde_json::json!(h.ja3)),
        ("ja3_hash", serde_json::json!(h.ja3_hash)),
        ("ja4", serde_json::json!(h.ja4)),
        ("ja3s", serde_json::json!(h.ja3s)),
        ("ja3s_hash", serde_json::json!(h.ja3s_hash)),
        ("ja4s", serde_json::json!(h.ja4s)),
    ];
    want.iter()
        .filter(|(f, w)| &got[*f] != w)
        .map(|(f, w)| format!("{f}: got {}, want {w}", got[*f]))
        .collect()
}

#[test]
fn every_generated_handshake_is_fingerprinted_as_loadgen_expects() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("handshakes.pcap");
    let report = generate(&GenOptions {
        profile: Profile::Handshakes,
        flows: Some(12_000),
        bytes: None,
        seed: 20_260_101,
        out: out.clone(),
        impairments: None, // the profile's own loss, reordering and duplication
        nanos: false,
    })
    .expect("loadgen generates");
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(&report.manifest).expect("manifest readable"))
            .expect("manifest parses");
    assert!(
        manifest.handshakes.len() >= 10_000,
        "{} handshakes",
        manifest.handshakes.len()
    );
    assert!(
        manifest.totals.quic_handshakes > 1000,
        "QUIC is part of the mix"
    );

    let records = replay(&[out], &[]);
    let mut by_key: HashMap<Key, &Value> = HashMap::with_capacity(records.len());
    for r in &records {
        if r["handshakes"].as_array().is_some_and(|h| !h.is_empty()) {
            assert!(
                by_key.insert(key_of_record(r), r).is_none(),
                "one record per flow: {r}"
            );
        }
    }
    assert_eq!(
        by_key.len(),
        manifest.handshakes.len(),
        "flows with a handshake: the daemon saw {}, loadgen made {}",
        by_key.len(),
        manifest.handshakes.len()
    );
    let mut failures = Vec::new();
    let mut matched = 0usize;
    for h in &manifest.handshakes {
        let Some(rec) = by_key.get(&key_of_entry(h)) else {
            failures.push(format!(
                "{:?}: no flow record with a handshake",
                key_of_entry(h)
            ));
            continue;
        };
        let hs = &rec["handshakes"][0];
        let bad = compare(h, hs);
        if bad.is_empty() {
            matched += 1;
        } else {
            failures.push(format!(
                "{:?} ({}): {}",
                key_of_entry(h),
                h.stack,
                bad.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} handshakes differ; first ones:\n{}",
        failures.len(),
        manifest.handshakes.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(matched, manifest.handshakes.len());
}

#[test]
fn same_seed_same_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = |name: &str| {
        let out = dir.path().join(name);
        generate(&GenOptions {
            profile: Profile::OooHeavy,
            flows: Some(300),
            bytes: None,
            seed: 7,
            out: out.clone(),
            impairments: None,
            nanos: true,
        })
        .expect("loadgen generates");
        let manifest =
            std::fs::read_to_string(format!("{}.manifest.json", out.display())).expect("manifest");
        (std::fs::read(&out).expect("pcap"), manifest)
    };
    let (a, ma) = run("a.pcap");
    let (b, mb) = run("b.pcap");
    assert!(a == b, "pcaps differ for one seed");
    assert_eq!(ma, mb);
}
