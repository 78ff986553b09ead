//! `POST /ingest/pcap`, `GET /stats`, `GET /actors`, the health probes and `/metrics`.

use std::io::Write;
use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use flowmesh_actors::runtime::{QueueCounters, StageCounters};
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::oneshot;

use super::error::ApiError;
use super::AppState;
use crate::daemon::ingest::{IngestError, Job, Origin};
use crate::daemon::live::LiveStatus;

/// Removes an upload's file when the request ends, however it ends.
struct Upload(std::path::PathBuf);

impl Drop for Upload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `POST /api/v1/ingest/pcap`: the body is a pcap or pcapng file. Answers once every record
/// of it is stored.
pub async fn ingest(
    state: web::Data<AppState>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limit = state.api().max_upload_mb.saturating_mul(1 << 20);
    let n = state.uploads.fetch_add(1, Ordering::Relaxed);
    let upload = Upload(
        state
            .incoming
            .join(format!(".upload-{}-{n}", std::process::id())),
    );
    let mut file = std::fs::File::create(&upload.0)
        .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", upload.0.display())))?;
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request("bad_body", format!("the upload broke off: {e}")))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(ApiError {
                status: actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                code: "too_large",
                message: format!(
                    "the capture is larger than api.max_upload_mb ({} MiB); split it or drop it into the spool directory",
                    limit >> 20
                ),
            });
        }
        file.write_all(&chunk)
            .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
    }
    file.flush()
        .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
    drop(file);
    if size == 0 {
        return Err(ApiError::bad_request(
            "bad_body",
            "the body is empty; send a pcap or pcapng file (Content-Type: application/vnd.tcpdump.pcap)",
        ));
    }
    let (tx, rx) = oneshot::channel();
    let job = Job {
        path: upload.0.clone(),
        origin: Origin::Upload,
        reply: tx,
    };
    state.ingestor.submit(job, false);
    let result = rx
        .await
        .map_err(|_| ApiError::internal("the ingest thread stopped"))?;
    match result {
        Ok(ingested) if ingested.interrupted => Err(ApiError::unavailable(
            "interrupted",
            format!(
                "flowmesh is shutting down: {} flows of the start of this capture were stored; the rest was not read",
                ingested.flows
            ),
        )),
        Ok(ingested) => Ok(HttpResponse::Ok().json(ingested)),
        Err(IngestError::Input(m)) => Err(ApiError::bad_request(
            "bad_capture",
            m.replace(&upload.0.display().to_string(), "the uploaded file"),
        )),
        Err(e @ IngestError::Busy) => Err(ApiError::unavailable("busy", e.to_string())),
        Err(e @ IngestError::ShuttingDown) => {
            Err(ApiError::unavailable("shutting_down", e.to_string()))
        }
        Err(e @ IngestError::Pipeline(_)) => Err(ApiError::internal(e)),
    }
}

/// `GET /api/v1/stats`.
pub async fn stats(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let stored = web::block(move || store.stats())
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let status = state.ingestor.status();
    let families: serde_json::Map<String, serde_json::Value> = stored
        .families
        .iter()
        .map(|(family, size)| {
            (
                family.name().to_string(),
                json!({ "keys": size.keys, "bytes": size.bytes }),
            )
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        "ingest": {
            "files": status.files,
            "failed_files": status.failed,
            "current": status.current.as_ref().map(|(path, origin)| json!({
                "file": path.file_name().map(|n| n.to_string_lossy().into_owned()),
                "origin": origin,
            })),
            "packets": status.totals.packets,
            "flows": status.totals.flows,
            "handshakes": status.totals.handshakes,
        },
        "capture": state.live.as_ref().map(|l| live(&l.status())),
        "process": process_memory(),
        "store": {
            "records_written": stored.records_written,
            "open_records": stored.open_records,
            "open_limit": stored.open_limit,
            "open_evicted": stored.open_evicted,
            "interrupted_at_open": stored.interrupted_at_open,
            "next_seq": stored.next_seq,
            "families": families,
        },
    })))
}

/// The daemon's process id, and its resident memory now and at its peak (`VmRSS`,
/// `VmHWM`), in bytes; `null` where /proc does not say. A benchmark on the same host
/// resets the peak through `/proc/<pid>/clear_refs` to measure one run.
fn process_memory() -> serde_json::Value {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|k| k * 1024)
    };
    json!({
        "pid": std::process::id(),
        "rss_bytes": kib("VmRSS:"),
        "peak_rss_bytes": kib("VmHWM:"),
    })
}

fn queue(q: &QueueCounters) -> serde_json::Value {
    let dropped: serde_json::Map<String, serde_json::Value> = q
        .dropped
        .iter()
        .map(|(r, n)| (r.to_string(), json!(n)))
        .collect();
    json!({
        "capacity": q.capacity,
        "depth": q.depth,
        "enqueued": q.enqueued,
        "served": q.served,
        "dropped": dropped,
    })
}

fn stage(s: &StageCounters) -> serde_json::Value {
    json!({
        "stage": s.stage,
        "high": queue(&s.high),
        "low": queue(&s.low),
        "restarts": s.restarts,
        "panics": s.panics,
        "errors": s.errors,
        "failed": s.failed,
    })
}

/// The live capture's counters: frames, drops by reason (user space and kernel).
fn live(s: &LiveStatus) -> serde_json::Value {
    let c = &s.capture;
    let readers: Vec<_> = c
        .readers
        .iter()
        .map(|r| {
            json!({
                "frames": r.frames,
                "filtered": r.filtered,
                "sent": r.frames_sent,
                "kernel_received": r.kernel.received,
                "kernel_dropped": r.kernel.dropped,
            })
        })
        .collect();
    json!({
        "source": s.source,
        "interface": s.interface,
        "filter": s.filter,
        "frames": c.readers.iter().map(|r| r.frames).sum::<u64>(),
        "frames_sent": c.frames_sent,
        "frames_filtered": c.frames_filtered,
        "dropped": {
            "shard_queue_full": c.dropped_queue_full,
            "shard_unavailable": c.dropped_shard_unavailable,
            "kernel_ring_full": c.kernel.dropped,
            // The XDP program found no socket for the frame's queue and passed it on.
            "xdp_no_socket": s.xdp.map_or(0, |x| x.redirect_failed),
            "decode": c.decode.dropped_total(),
        },
        "kernel_received": c.kernel.received,
        "records": s.records,
        "interim_records": s.interim_records,
        "handshakes": s.handshakes,
        "readers": readers,
        "xdp": s.xdp.map(|x| json!({
            "seen": x.seen,
            "redirected": x.redirected,
            "redirect_failed": x.redirect_failed,
            "bypassed_packets": x.bypass_packets,
            "bypassed_bytes": x.bypass_bytes,
            "bypass_fin_rst": x.bypass_fin_rst,
            "unparsed": x.unparsed,
            "fragments": x.fragments,
        })),
        "error": s.error,
        "running": s.running,
        "restarts": s.restarts,
    })
}

/// `GET /api/v1/actors`: the stages of the pipeline ingesting now, or of the last one, and
/// of the live capture pipeline when there is one.
pub async fn actors(state: web::Data<AppState>) -> HttpResponse {
    let status = state.ingestor.status();
    let live = state.live.as_ref().map(|l| l.status());
    HttpResponse::Ok().json(json!({
        "running": status.current.is_some(),
        "stages": status.stages.iter().map(stage).collect::<Vec<_>>(),
        "live_stages": live.map(|l| l.stages.iter().map(stage).collect::<Vec<_>>()),
    }))
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the store is open and ingest accepts work (not while shutting down), and
/// the live capture, if there is one, is reading its interface (not while it is being
/// reopened after a failure).
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !state.ready.load(Ordering::Relaxed) {
        return Err(ApiError::unavailable(
            "not_ready",
            "flowmesh is starting or shutting down",
        ));
    }
    if let Some(s) = state.live.as_ref().map(|l| l.status()) {
        if !s.running {
            let why = s.error.unwrap_or_else(|| "no reason given".into());
            return Err(ApiError::unavailable(
                "capture_down",
                format!(
                    "the live capture on {} is being reopened: {why}",
                    s.interface
                ),
            ));
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.prometheus.render())
}
