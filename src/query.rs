//! `flowmesh query`: the filters of `GET /api/v1/flows` from the command line, against a
//! running daemon; follows `next_cursor` until `--limit` flows are printed.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::Write;

use crate::cli::{QueryArgs, QueryFormat};

/// Flows asked for per request.
const PAGE: usize = 500;

/// The query parameters the arguments set.
fn params(args: &QueryArgs) -> Vec<(&'static str, String)> {
    let mut p = Vec::new();
    let mut add = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            p.push((k, v));
        }
    };
    add("from", args.from.clone());
    add("to", args.to.clone());
    add("ip", args.ip.clone());
    add("cidr", args.cidr.clone());
    add("port", args.port.map(|p| p.to_string()));
    add("transport", args.transport.clone());
    add("sni", args.sni.clone());
    add("ja3", args.ja3.clone());
    add("ja4", args.ja4.clone());
    add("community_id", args.community_id.clone());
    p
}

/// Runs `flowmesh query`.
pub fn run(args: &QueryArgs) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}/api/v1/flows", args.server.trim_end_matches('/'));
    let filters = params(args);
    let mut cursor: Option<String> = None;
    let mut printed = 0usize;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.format == QueryFormat::Table {
        writeln!(out, "{}", row_header())?;
    }
    while printed < args.limit {
        let mut req = agent.get(&url);
        for (k, v) in &filters {
            req = req.query(*k, v);
        }
        req = req.query("limit", (args.limit - printed).min(PAGE).to_string());
        if let Some(c) = &cursor {
            req = req.query("cursor", c);
        }
        let mut resp = req.call().with_context(|| {
            format!(
                "cannot reach flowmesh at {} (is `flowmesh run` up?)",
                args.server
            )
        })?;
        let status = resp.status();
        let body: Value = resp
            .body_mut()
            .read_json()
            .with_context(|| format!("{url} did not answer JSON (status {status})"))?;
        if !status.is_success() {
            bail!(
                "{} ({})",
                body["message"].as_str().unwrap_or("request failed"),
                body["code"].as_str().unwrap_or("error")
            );
        }
        for flow in body["flows"].as_array().into_iter().flatten() {
            match args.format {
                QueryFormat::Json => writeln!(out, "{flow}")?,
                QueryFormat::Table => writeln!(out, "{}", row(flow))?,
            }
            printed += 1;
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    Ok(())
}

fn row_header() -> String {
    format!(
        "{:<32} {:<30} {:<5} {:<41} {:<41} {:<30} {:<36} {:>8} {:>10} {}",
        "FLOW_ID",
        "FIRST_SEEN",
        "PROTO",
        "CLIENT",
        "SERVER",
        "SNI",
        "JA4",
        "PACKETS",
        "BYTES",
        "END"
    )
}

fn endpoint(ip: &Value, port: &Value) -> String {
    let ip = ip.as_str().unwrap_or("?");
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn row(f: &Value) -> String {
    let first = f["handshakes"].as_array().and_then(|h| h.first());
    let hs = |k: &str| first.and_then(|h| h[k].as_str()).unwrap_or("-").to_string();
    let packets = f["packets_c2s"].as_u64().unwrap_or(0) + f["packets_s2c"].as_u64().unwrap_or(0);
    let bytes = f["bytes_c2s"].as_u64().unwrap_or(0) + f["bytes_s2c"].as_u64().unwrap_or(0);
    format!(
        "{:<32} {:<30} {:<5} {:<41} {:<41} {:<30} {:<36} {:>8} {:>10} {}",
        f["flow_id"].as_str().unwrap_or("?"),
        f["first_seen"].as_str().unwrap_or("?"),
        f["transport"].as_str().unwrap_or("?"),
        endpoint(&f["client_ip"], &f["client_port"]),
        endpoint(&f["server_ip"], &f["server_port"]),
        hs("sni"),
        hs("ja4"),
        packets,
        bytes,
        f["end_reason"].as_str().unwrap_or("?"),
    )
}
