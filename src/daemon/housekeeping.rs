//! Housekeeping on its own thread: retention of the flow store (by age and by size, every
//! `storage.retention_interval_s`), RocksDB properties published as gauges, and the
//! Prometheus recorder's upkeep.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use flowmesh_actors::storage::FlowStore;
use metrics::{counter, gauge};
use metrics_exporter_prometheus::PrometheusHandle;

use super::background::{Background, StopFlag};
use crate::config::Config;

/// How often RocksDB properties are published.
const PROPERTIES_EVERY: Duration = Duration::from_secs(5);

/// Starts the housekeeping thread.
pub fn start(
    config: Arc<RwLock<Config>>,
    store: Arc<FlowStore>,
    prometheus: PrometheusHandle,
) -> std::io::Result<Background> {
    Background::spawn("housekeeping", move |stop| {
        run(&config, &store, &prometheus, stop)
    })
}

fn run(config: &RwLock<Config>, store: &FlowStore, prometheus: &PrometheusHandle, stop: &StopFlag) {
    // The store's index retention cutoff lives in memory: apply retention at once on start.
    let mut last_retention: Option<Instant> = None;
    while !stop.is_set() {
        let storage = config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .storage
            .clone();
        let interval = Duration::from_secs(storage.retention_interval_s);
        if last_retention.is_none_or(|t| t.elapsed() >= interval) {
            last_retention = Some(Instant::now());
            retention(store, storage.max_age_hours, storage.max_size_mb);
        }
        publish_properties(store);
        prometheus.run_upkeep();
        stop.sleep(PROPERTIES_EVERY);
    }
}

/// RocksDB's per-family properties and statistics tickers as gauges.
fn publish_properties(store: &FlowStore) {
    let Ok(props) = store.engine().properties() else {
        return;
    };
    for (family, p) in &props.families {
        for (name, value) in [
            ("estimate-num-keys", p.estimate_num_keys),
            ("total-sst-files-size", p.total_sst_files_size),
            ("live-sst-files-size", p.live_sst_files_size),
            ("cur-size-all-mem-tables", p.cur_size_all_mem_tables),
        ] {
            gauge!("flowmesh_rocksdb_property", "family" => family.name(), "name" => name)
                .set(value as f64);
        }
    }
    for (name, value) in &props.tickers {
        gauge!("flowmesh_rocksdb_property", "family" => "all", "name" => *name).set(*value as f64);
    }
}

fn retention(store: &FlowStore, max_age_hours: u64, max_size_mb: u64) {
    let max_age = (max_age_hours > 0).then(|| Duration::from_secs(max_age_hours * 3600));
    let max_bytes = (max_size_mb > 0).then_some(max_size_mb << 20);
    if max_age.is_none() && max_bytes.is_none() {
        return;
    }
    match store.apply_retention(flowmesh_schemas::Timestamp::now(), max_age, max_bytes) {
        Ok(report) => {
            if report.size_rounds > 0 {
                counter!("flowmesh_storage_retention_size_rounds_total")
                    .increment(u64::from(report.size_rounds));
            }
            tracing::debug!(?report, "retention");
        }
        Err(e) => tracing::error!(error = %e, "retention failed; will retry"),
    }
}
