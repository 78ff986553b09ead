//! Interim records (live capture stores a flow's handshakes before the flow ends): on every
//! corpus capture, a shard with `interim_records` emits exactly the final records of a
//! shard without, plus an `open` record each time a flow's ClientHellos are all answered,
//! ahead of that flow's final record, with the handshakes known then and counters no
//! larger.

use flowmesh_core::capture::CaptureReader;
use flowmesh_core::handshake::{FingerprintSet, WorkerConfig};
use flowmesh_core::shard::{Inline, ShardConfig};
use flowmesh_schemas::{EndReason, FlowRecord, Handshake};

mod common;
use common::corpus_captures;

fn records(bytes: &[u8], interim_records: bool) -> Vec<FlowRecord> {
    let worker = WorkerConfig {
        fingerprints: "ja3,ja3s,ja4,ja4s"
            .parse::<FingerprintSet>()
            .expect("names"),
        ..WorkerConfig::default()
    };
    let shard = ShardConfig {
        interim_records,
        ..ShardConfig::default()
    };
    let mut inline = Inline::new(shard, worker);
    let mut out = Vec::new();
    for frame in CaptureReader::new(bytes).expect("capture") {
        inline.process_frame(&frame.expect("frame"), &mut out);
    }
    inline.finish(&mut out);
    out
}

/// The same flow: first packet time and Community ID.
fn same_flow(a: &FlowRecord, b: &FlowRecord) -> bool {
    a.first_seen == b.first_seen && a.community_id == b.community_id && a.vlan == b.vlan
}

#[test]
fn every_answered_flow_gets_interim_records_before_its_final_one() {
    let mut interims = 0;
    for path in corpus_captures() {
        let name = path.display();
        let bytes = std::fs::read(&path).expect("read");
        let plain = records(&bytes, false);
        assert!(plain.iter().all(|r| r.end_reason != EndReason::Open));
        let with = records(&bytes, true);
        let mut matched = 0;
        let finals: Vec<&FlowRecord> = with
            .iter()
            .filter(|r| r.end_reason != EndReason::Open)
            .collect();
        assert_eq!(
            finals,
            plain.iter().collect::<Vec<_>>(),
            "{name}: final records"
        );
        for (at, last) in with.iter().enumerate() {
            if last.end_reason == EndReason::Open {
                continue;
            }
            let opens: Vec<&FlowRecord> = with[..at]
                .iter()
                .filter(|r| r.end_reason == EndReason::Open && same_flow(r, last))
                .collect();
            // A flow whose every ClientHello was answered had its handshakes stored early.
            let answered = !last.handshakes.is_empty()
                && last.handshakes.iter().all(|h| h.ja3s_hash.is_some());
            assert!(
                !answered || !opens.is_empty(),
                "{name}: no interim record for {last:?}"
            );
            matched += opens.len();
            let mut stored = 0;
            for open in opens {
                assert!(
                    open.handshakes.len() > stored,
                    "{name}: an interim record adds nothing"
                );
                stored = open.handshakes.len();
                assert!(stored <= last.handshakes.len(), "{name}");
                // What is known when the server answers; certificates may come later.
                for (a, b) in open.handshakes.iter().zip(&last.handshakes) {
                    let known = |h: &Handshake| Handshake {
                        certificates: Vec::new(),
                        ..h.clone()
                    };
                    assert_eq!(known(a), known(b), "{name}: handshakes");
                }
                assert_eq!(
                    (open.client_ip, open.client_port, open.l7),
                    (last.client_ip, last.client_port, last.l7),
                    "{name}: orientation"
                );
                assert!(open.packets_c2s + open.packets_s2c <= last.packets_c2s + last.packets_s2c);
                assert!(open.bytes_c2s <= last.bytes_c2s && open.bytes_s2c <= last.bytes_s2c);
                assert!(open.last_seen <= last.last_seen);
                assert!(
                    open.handshakes
                        .iter()
                        .filter_map(|h| h.ts)
                        .all(|ts| ts <= open.last_seen),
                    "{name}: a handshake after the interim record's last packet"
                );
            }
        }
        assert_eq!(
            matched,
            with.len() - finals.len(),
            "{name}: an interim record after its final one"
        );
        interims += matched;
    }
    assert!(interims > 0, "no corpus flow got an interim record");
}
