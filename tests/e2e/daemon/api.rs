//! The API's contract: every documented route answers, errors are JSON with a code and a
//! message that says what was wrong, configuration reloads on SIGHUP.

use super::{corpus_pcaps, Daemon};
use crate::support::flowmesh;
use std::time::{Duration, Instant};

fn assert_error(daemon: &Daemon, method: &str, path: &str, status: u16, code: &str, says: &str) {
    let a = daemon.request(method, path);
    assert_eq!(a.status, status, "{method} {path}: {}", a.body);
    assert_eq!(a.body["code"], code, "{method} {path}: {}", a.body);
    let message = a.body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(says),
        "{method} {path}: {message:?} should mention {says:?}"
    );
}

#[test]
fn every_documented_route_answers_and_bad_requests_get_json_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start(dir.path(), "");
    let doc = daemon.get("/api/v1/openapi.json");
    assert_eq!(doc.status, 200);
    let paths = doc.body["paths"].as_object().expect("paths").clone();
    assert!(paths.len() >= 10);
    for (path, ops) in &paths {
        let concrete = path.replace("{id}", "00000000000000000000000000000000");
        for method in ops.as_object().expect("ops").keys() {
            let a = daemon.request(&method.to_uppercase(), &concrete);
            assert!(
                a.body["code"] != "not_found" || path.contains("{id}"),
                "{method} {path} is documented but not routed: {}",
                a.body
            );
            assert_ne!(a.status, 405, "{method} {path}");
        }
    }

    assert_error(
        &daemon,
        "GET",
        "/api/v1/nothing",
        404,
        "not_found",
        "/api/v1/nothing",
    );
    assert_error(
        &daemon,
        "DELETE",
        "/api/v1/flows",
        405,
        "method_not_allowed",
        "GET",
    );
    assert_error(
        &daemon,
        "GET",
        "/api/v1/flows?ip=10.1",
        400,
        "bad_parameter",
        "`ip`",
    );
    assert_error(
        &daemon,
        "GET",
        "/api/v1/flows?cidr=10.0.0.0/40",
        400,
        "bad_parameter",
        "`cidr`",
    );
    assert_error(
        &daemon,
        "GET",
        "/api/v1/flows?port=http",
        400,
        "bad_parameter",
        "`port`",
    );
    assert_error(
        &daemon,
        "GET",
        "/api/v1/flows?from=tomorrow",
        400,
        "bad_parameter",
        "RFC 3339",
    );
    assert_error(
        &daemon,
        "GET",
        "/api/v1/flows?limit=100000",
        400,
        "bad_parameter",
        "`limit`",
    );
    assert_error(
        &daemon,
        "GET",
        "/api/v1/flows?cursor=nope",
        400,
        "bad_parameter",
        "`cursor`",
    );
    assert_error(
        &daemon,
        "GET",
        "/api/v1/flows?ja4x=1",
        400,
        "bad_parameter",
        "ja4x",
    );
    assert_error(
        &daemon,
        "GET",
        "/api/v1/flows/xyz",
        400,
        "bad_parameter",
        "`id`",
    );
    assert_error(
        &daemon,
        "GET",
        "/api/v1/flows/00000000000000000000000000000001",
        404,
        "not_found",
        "00000000000000000000000000000001",
    );
    assert_error(
        &daemon,
        "GET",
        "/api/v1/fingerprints/top",
        400,
        "bad_parameter",
        "`field`",
    );
    assert_error(
        &daemon,
        "GET",
        "/api/v1/fingerprints/top?field=md5",
        400,
        "bad_parameter",
        "md5",
    );
    assert_error(
        &daemon,
        "POST",
        "/api/v1/ingest/pcap",
        400,
        "bad_body",
        "empty",
    );
    let junk = daemon.ingest(b"GET / HTTP/1.1\r\n\r\nthis is not a capture file at all");
    assert_eq!(junk.status, 400, "{}", junk.body);
    assert_eq!(junk.body["code"], "bad_capture");
    assert!(
        !junk.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains(".upload"),
        "{}",
        junk.body
    );

    assert_eq!(daemon.get("/healthz").status, 200);
    assert_eq!(daemon.get("/readyz").status, 200);
    let actors = daemon.get("/api/v1/actors");
    assert_eq!(actors.status, 200);
    assert!(actors.body["stages"].is_array());
    assert!(daemon.stop().success());
}

#[test]
fn actors_show_the_stages_and_stats_the_totals_after_an_ingest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start(dir.path(), "[pipeline]\nshards = 2\nworkers = 1\n");
    let file = &corpus_pcaps()[0];
    let a = daemon.ingest(&std::fs::read(file).expect("pcap"));
    assert_eq!(a.status, 200, "{}", a.body);
    let actors = daemon.get("/api/v1/actors").body;
    let names: Vec<&str> = actors["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .filter_map(|s| s["stage"].as_str())
        .collect();
    for want in ["shard-0", "shard-1", "worker-0", "scheduler", "writer"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for s in actors["stages"].as_array().expect("stages") {
        assert_eq!(s["restarts"], 0, "{s}");
        assert_eq!(s["low"]["depth"], 0, "{s}");
    }
    let stats = daemon.get("/api/v1/stats").body;
    assert_eq!(stats["ingest"]["files"], 1);
    assert_eq!(stats["ingest"]["flows"], a.body["flows"]);
    assert_eq!(stats["store"]["records_written"], a.body["flows"]);
    assert!(daemon.stop().success());
}

#[test]
fn sighup_reloads_what_can_change_and_keeps_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start(dir.path(), "[api]\nmax_page = 1000\n");
    assert_eq!(daemon.get("/api/v1/flows?limit=500").status, 200);
    std::fs::write(
        dir.path().join("test.toml"),
        "[api]\nmax_page = 10\nlisten = \"127.0.0.1:1\"\n",
    )
    .expect("rewrite config");
    daemon.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon.get("/api/v1/flows?limit=500").status != 400 {
        assert!(
            Instant::now() < deadline,
            "max_page not reloaded:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Still serving on the address it bound: listen needs a restart.
    assert_eq!(daemon.get("/api/v1/flows?limit=10").status, 200);
    assert!(daemon.log().contains("api.listen changed"));
    // A broken file is refused and the running configuration kept.
    std::fs::write(dir.path().join("test.toml"), "[api]\nmax_pgae = 5\n").expect("rewrite");
    daemon.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon.log().contains("was not reloaded") {
        assert!(
            Instant::now() < deadline,
            "bad config not reported:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(daemon.get("/api/v1/flows?limit=10").status, 200);
    assert!(daemon.stop().success());
}

#[test]
fn check_config_accepts_the_defaults_and_names_file_and_line_of_an_unknown_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let defaults = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flowmesh.toml");
    let ok = flowmesh(&["check-config", defaults.to_str().expect("path")]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[storage]\nsync = \"wal\"\nmax_age_days = 3\n").expect("write");
    let out = flowmesh(&["check-config", bad.to_str().expect("path")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:3:1") && err.contains("storage.max_age_days"),
        "{err}"
    );
    let run = flowmesh(&["run", "--config", bad.to_str().expect("path")]);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("bad.toml:3:1"));
}
