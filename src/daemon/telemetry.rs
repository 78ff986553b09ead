//! Prometheus metrics of the daemon (ARCHITECTURE §7): names `flowmesh_<stage>_<what>_<unit>`,
//! counters ending in `_total`. Pipeline counters are published as deltas of the stats
//! board on each progress tick and at the end of each capture file, never per packet.

use std::collections::HashMap;

use flowmesh_actors::capture::xdp::XdpCounters;
use flowmesh_actors::runtime::StageCounters;
use flowmesh_actors::stats::Board;
use flowmesh_core::stats::ReasonCounts;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Bucket bounds of `flowmesh_handshake_record_latency_seconds`, fine enough (steps of
/// 1.5-2x) for percentiles read from them: a record reaches the store within milliseconds
/// of its flow's end, a long flow's handshake only when the flow ends.
const RECORD_LATENCY_BUCKETS: [f64; 30] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15,
    0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0,
];

/// Installs the process-wide Prometheus recorder and describes every metric.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(
                "flowmesh_handshake_record_latency_seconds".into(),
            ),
            &RECORD_LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
            &[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ],
        )?
        .install_recorder()?;
    describe();
    Ok(handle)
}

fn describe() {
    describe_counter!(
        "flowmesh_capture_packets_total",
        Unit::Count,
        "Frames read from capture sources."
    );
    describe_counter!(
        "flowmesh_capture_bytes_total",
        Unit::Bytes,
        "Bytes of frames (on the wire) the shards counted."
    );
    describe_counter!(
        "flowmesh_capture_dropped_packets_total",
        Unit::Count,
        "Frames dropped, by reason: in the kernel (kernel_ring_full; xdp_no_socket: the XDP program found no socket for the frame's receive queue and passed it to the kernel), by live capture on a full or failed shard (shard_queue_full, shard_unavailable), or while decoding."
    );
    describe_counter!(
        "flowmesh_capture_filtered_packets_total",
        Unit::Count,
        "Frames a capture filter run in user space rejected (AF_XDP; on AF_PACKET the kernel filters)."
    );
    describe_counter!(
        "flowmesh_capture_restarts_total",
        Unit::Count,
        "Times the live capture ended on its own (a reader failed) and was reopened."
    );
    describe_counter!(
        "flowmesh_xdp_packets_total",
        Unit::Count,
        "Packets the XDP program handled, by path: redirected (to flowmesh), redirect_failed (no socket on the queue; passed), bypassed (counted in the kernel), unparsed (not IP; passed)."
    );
    describe_counter!(
        "flowmesh_xdp_bypassed_bytes_total",
        Unit::Bytes,
        "Bytes of packets the XDP program counted for bypassed flows."
    );
    describe_counter!(
        "flowmesh_bypass_flows_total",
        Unit::Count,
        "Flows handed to the kernel's bypass map (bypassed), refused because the map was full (refused; they stay in user space), or gone from the map when they ended (lost)."
    );
    describe_counter!(
        "flowmesh_flows_total",
        Unit::Count,
        "Flow records emitted by the shards."
    );
    describe_counter!(
        "flowmesh_handshakes_total",
        Unit::Count,
        "TLS/QUIC handshakes fingerprinted."
    );
    describe_counter!(
        "flowmesh_handshake_errors_total",
        Unit::Count,
        "Malformed or incomplete handshakes, by kind and reason."
    );
    describe_gauge!(
        "flowmesh_stage_queue_depth",
        Unit::Count,
        "Items waiting in a stage's queue (stage, queue=high|low)."
    );
    describe_counter!(
        "flowmesh_stage_dropped_total",
        Unit::Count,
        "Items a stage's queue dropped, by stage, queue and reason."
    );
    describe_counter!(
        "flowmesh_stage_restarts_total",
        Unit::Count,
        "Supervisor restarts of a stage."
    );
    describe_counter!(
        "flowmesh_ingest_files_total",
        Unit::Count,
        "Capture files ingested, by origin (spool|upload) and result (ok|failed|interrupted)."
    );
    describe_counter!(
        "flowmesh_storage_records_total",
        Unit::Count,
        "Flow records committed to the store."
    );
    describe_histogram!(
        "flowmesh_storage_write_seconds",
        Unit::Seconds,
        "Time to commit one batch of records (one RocksDB WriteBatch)."
    );
    describe_histogram!(
        "flowmesh_handshake_record_latency_seconds",
        Unit::Seconds,
        "Live capture: time from the packet that completed a ClientHello to the commit of its flow's record (records are stored when their flow ends)."
    );
    describe_counter!(
        "flowmesh_storage_retention_size_rounds_total",
        Unit::Count,
        "Rounds in which retention dropped the oldest flows because the store was over storage.max_size_mb."
    );
    describe_gauge!(
        "flowmesh_rocksdb_property",
        Unit::Count,
        "RocksDB properties and statistics tickers by family and name."
    );
}

/// What one capture file's pipeline has published so far, to turn cumulative board and
/// stage counters into metric increments.
#[derive(Debug, Default)]
pub struct JobMetrics {
    last: HashMap<String, u64>,
}

impl JobMetrics {
    /// How much `key` grew since it was last seen at a value (counters only grow).
    fn delta(&mut self, key: String, now: u64) -> u64 {
        let last = self.last.entry(key).or_insert(0);
        let d = now.saturating_sub(*last);
        *last = now.max(*last);
        d
    }

    /// Publishes what `board` and `stages` counted since the last call.
    pub fn publish(&mut self, board: &Board, stages: &[StageCounters]) {
        let s = board.shards_total();
        let w = board.workers_total();
        for (name, now) in [
            (
                "flowmesh_capture_packets_total",
                board.capture.decode.frames,
            ),
            ("flowmesh_capture_bytes_total", s.bytes),
            ("flowmesh_flows_total", s.records_total()),
            ("flowmesh_handshakes_total", w.handshakes),
            (
                "flowmesh_capture_filtered_packets_total",
                board.capture.frames_filtered,
            ),
        ] {
            counter!(name).increment(self.delta(name.to_string(), now));
        }

        let mut drops = ReasonCounts::default();
        for (reason, n) in board.capture.decode.drops() {
            drops.add(reason.as_str(), n);
        }
        drops.merge(&s.decode_drops);
        let c = &board.capture;
        drops.add("shard_queue_full", c.dropped_queue_full);
        drops.add("shard_unavailable", c.dropped_shard_unavailable);
        drops.add("kernel_ring_full", c.kernel.dropped);
        for (reason, n) in drops.sorted() {
            let d = self.delta(format!("drop/{reason}"), n);
            counter!("flowmesh_capture_dropped_packets_total", "reason" => reason).increment(d);
        }

        for (result, now) in [
            ("bypassed", s.bypass.flows),
            ("refused", s.bypass.refused),
            ("lost", s.bypass.lost),
        ] {
            let d = self.delta(format!("bypass/{result}"), now);
            counter!("flowmesh_bypass_flows_total", "result" => result).increment(d);
        }

        let mut sessions = s.sessions.clone();
        sessions.merge(&w.sessions);
        for (kind, counts) in [
            ("malformed", &sessions.malformed),
            ("incomplete", &sessions.incomplete),
        ] {
            for (reason, n) in counts.sorted() {
                let d = self.delta(format!("{kind}/{reason}"), n);
                counter!("flowmesh_handshake_errors_total", "kind" => kind, "reason" => reason)
                    .increment(d);
            }
        }

        for st in stages {
            for (queue, q) in [("high", &st.high), ("low", &st.low)] {
                gauge!("flowmesh_stage_queue_depth", "stage" => st.stage, "queue" => queue)
                    .set(q.depth as f64);
                for (reason, n) in q.dropped.iter() {
                    let d = self.delta(format!("{}/{queue}/{reason}", st.stage), n);
                    counter!("flowmesh_stage_dropped_total", "stage" => st.stage, "queue" => queue, "reason" => reason)
                        .increment(d);
                }
            }
            let d = self.delta(format!("{}/restarts", st.stage), st.restarts);
            counter!("flowmesh_stage_restarts_total", "stage" => st.stage).increment(d);
        }
    }

    /// Publishes what the XDP program counted since the last call.
    pub fn publish_xdp(&mut self, c: &XdpCounters) {
        for (path, now) in [
            ("redirected", c.redirected),
            ("redirect_failed", c.redirect_failed),
            ("bypassed", c.bypass_packets),
            ("unparsed", c.unparsed),
        ] {
            let d = self.delta(format!("xdp/{path}"), now);
            counter!("flowmesh_xdp_packets_total", "path" => path).increment(d);
            if path == "redirect_failed" {
                // Frames the capture never saw: a drop, as far as the capture goes.
                counter!("flowmesh_capture_dropped_packets_total", "reason" => "xdp_no_socket")
                    .increment(d);
            }
        }
        let d = self.delta("xdp/bypass_bytes".into(), c.bypass_bytes);
        counter!("flowmesh_xdp_bypassed_bytes_total").increment(d);
    }

    /// The end of a file: its stages are gone, so their queues are empty.
    pub fn finish(&self, stages: &[StageCounters]) {
        for st in stages {
            for queue in ["high", "low"] {
                gauge!("flowmesh_stage_queue_depth", "stage" => st.stage, "queue" => queue)
                    .set(0.0);
            }
        }
    }
}
