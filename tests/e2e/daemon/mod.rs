//! End-to-end tests of `flowmesh run`: a real daemon process on 127.0.0.1 with its own data
//! directory, driven over HTTP and through its spool.

mod api;
mod durability;
mod ingest;

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Every fingerprint on, so the corpus' JA4S values are checked too.
pub const ALL_FINGERPRINTS: &str =
    "[pipeline]\nfingerprints = [\"ja3\", \"ja3s\", \"ja4\", \"ja4s\"]\n";

/// A running daemon. Killed (SIGKILL) when dropped if it is still running.
pub struct Daemon {
    child: Child,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    agent: ureq::Agent,
}

/// An HTTP answer: status and JSON body (or the text, as a JSON string).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Value,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn answer(mut resp: ureq::http::Response<ureq::Body>) -> Answer {
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, body }
}

impl Daemon {
    /// Starts `flowmesh run` on `data_dir` with `config` (TOML text, over the defaults) and
    /// waits until it is ready.
    pub fn start(data_dir: &Path, config: &str) -> Daemon {
        std::fs::create_dir_all(data_dir).expect("data dir");
        let config_file = data_dir.join("test.toml");
        std::fs::write(&config_file, config).expect("config file");
        let addr_file = data_dir.join("admin.addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::File::create(data_dir.join("daemon.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_flowmesh"))
            .args(["run", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config_file)
            .arg("--data-dir")
            .arg(data_dir)
            .env("FLOWMESH_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("flowmesh run starts");
        let mut daemon = Daemon {
            child,
            data_dir: data_dir.to_path_buf(),
            base: String::new(),
            agent: agent(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = daemon.child.try_wait().expect("wait") {
                panic!("flowmesh run exited early ({status}):\n{}", daemon.log());
            }
            if let Ok(addr) = std::fs::read_to_string(&addr_file) {
                daemon.base = format!("http://{}", addr.trim());
                if daemon.get("/readyz").status == 200 {
                    return daemon;
                }
            }
            assert!(
                Instant::now() < deadline,
                "not ready in 60 s:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.data_dir.join("daemon.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET path` (with its query string).
    pub fn get(&self, path: &str) -> Answer {
        answer(
            self.agent
                .get(format!("{}{path}", self.base))
                .call()
                .expect("GET answers"),
        )
    }

    /// `method path` with no body.
    pub fn request(&self, method: &str, path: &str) -> Answer {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .body(())
            .expect("request");
        answer(self.agent.run(req).expect("answers"))
    }

    /// `POST /api/v1/ingest/pcap` with `bytes`.
    pub fn ingest(&self, bytes: &[u8]) -> Answer {
        self.try_ingest(bytes).expect("POST answers")
    }

    /// `POST /api/v1/ingest/pcap` with `bytes`; `None` when the connection fails.
    pub fn try_ingest(&self, bytes: &[u8]) -> Option<Answer> {
        self.agent
            .post(format!("{}/api/v1/ingest/pcap", self.base))
            .header("Content-Type", "application/vnd.tcpdump.pcap")
            .send(bytes)
            .ok()
            .map(answer)
    }

    /// Every flow matching `query` (`k=v&...`, may be empty), following cursors.
    pub fn flows(&self, query: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/flows?limit=1000&{query}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let a = self.get(&path);
            assert_eq!(a.status, 200, "GET {path}: {}", a.body);
            all.extend(a.body["flows"].as_array().expect("flows").iter().cloned());
            match a.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return all,
            }
        }
    }

    /// Sends `signal` (SIGTERM, SIGHUP, SIGKILL) with kill(1).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -s {signal} failed");
    }

    /// SIGTERM, then the exit status (within 60 s).
    pub fn stop(mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait(Duration::from_secs(60))
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A flow as `replay` prints it: the API's object without `flow_id`.
pub fn without_id(flow: &Value) -> Value {
    let mut v = flow.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("flow_id");
    }
    v
}

/// Records sorted by their JSON text, for comparing sets.
pub fn sorted(records: impl IntoIterator<Item = Value>) -> Vec<String> {
    let mut v: Vec<String> = records.into_iter().map(|r| r.to_string()).collect();
    v.sort();
    v
}

/// The corpus' capture files.
pub fn corpus_pcaps() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(crate::support::corpus_dir().join("pcaps"))
        .expect("corpus pcaps")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}
