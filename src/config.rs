//! The daemon's configuration: `config/flowmesh.toml`, embedded as the default, overlaid
//! key by key with the file given by `--config`.
//!
//! The embedded file is the schema: a key it does not have is unknown, and a value must
//! have the type of its default. Both are checked on the user's file before anything is
//! merged, so every error names the file, the line and the key.

use flowmesh_actors::capture::filter::CaptureFilter;
use flowmesh_actors::pipeline::ReplayConfig;
use flowmesh_core::flow::FlowTableConfig;
use flowmesh_core::handshake::{FingerprintSet, WorkerConfig};
use flowmesh_core::reassembly::ReassemblyConfig;
use flowmesh_core::shard::ShardConfig;
use flowmesh_schemas::Timestamp;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;
use toml::de::{DeTable, DeValue};

/// The default configuration, every key commented.
pub const EMBEDDED: &str = include_str!("../config/flowmesh.toml");

/// A configuration that cannot be used, with where and why.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message (it names the line).
        message: String,
    },
    /// A key or value the daemon does not accept.
    #[error("{path}:{line}:{column}: `{key}`: {message}")]
    Key {
        /// The file.
        path: String,
        /// 1-based line of the key.
        line: usize,
        /// 1-based column of the key.
        column: usize,
        /// Dotted path of the key.
        key: String,
        /// What is wrong and what would be right.
        message: String,
    },
}

/// `[daemon]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// State directory.
    pub data_dir: PathBuf,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// tracing filter directive.
    pub level: String,
}

/// `[api]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address.
    pub listen: String,
    /// Upload limit in MiB.
    pub max_upload_mb: u64,
    /// Largest page of flows.
    pub max_page: usize,
}

/// Where packets come from (in the file and as `flowmesh run --capture`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Capture files dropped into the spool directory.
    Spool,
    /// One capture file (`capture.file`), ingested at start.
    Pcap,
    /// Live: AF_PACKET TPACKET_V3 rings.
    Afpacket,
    /// Live: AF_XDP sockets fed by the XDP program.
    Afxdp,
}

impl Source {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Spool => "spool",
            Source::Pcap => "pcap",
            Source::Afpacket => "afpacket",
            Source::Afxdp => "afxdp",
        }
    }

    /// Captures from an interface.
    pub fn is_live(self) -> bool {
        matches!(self, Source::Afpacket | Source::Afxdp)
    }
}

/// How the XDP program is attached.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeSetting {
    /// Native where the driver supports it, else generic.
    Auto,
    /// In the driver.
    Native,
    /// In the generic (skb) path.
    Generic,
}

/// What the kernel does with a bypassed packet.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BypassActionSetting {
    /// On to the host's stack.
    Pass,
    /// Dropped.
    Drop,
}

/// What happens to an ingested spool file.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SpoolAfter {
    /// Moved to `spool/done/`.
    Move,
    /// Deleted.
    Delete,
}

/// `[capture]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Packet source.
    pub source: Source,
    /// Live capture interface.
    pub interface: String,
    /// Capture filter (tcpdump syntax), empty for none.
    pub filter: String,
    /// The file of `source = "pcap"`.
    pub file: PathBuf,
    /// AF_PACKET sockets in the fanout group.
    pub readers: u16,
    /// AF_PACKET ring per socket, MiB.
    pub ring_mb: u32,
    /// AF_PACKET block timeout, ms.
    pub block_timeout_ms: u32,
    /// XDP attach mode.
    pub xdp_mode: XdpModeSetting,
    /// UMEM frames per queue.
    pub xdp_frames: u32,
    /// Busy polling on AF_XDP sockets.
    pub busy_poll: bool,
    /// In-kernel bypass of inspected flows.
    pub bypass: bool,
    /// Fate of bypassed packets.
    pub bypass_action: BypassActionSetting,
    /// Bypass map capacity.
    pub bypass_capacity: u32,
    /// Spool scan interval.
    pub spool_poll_ms: u64,
    /// Quiet time before a spool file is read.
    pub spool_settle_ms: u64,
    /// Fate of an ingested spool file.
    pub spool_after: SpoolAfter,
    /// Live capture stores interim records at handshake time.
    pub interim_records: bool,
}

/// `[pipeline]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Shards (0: one per core).
    pub shards: u16,
    /// Workers (0: one per shard).
    pub workers: u16,
    /// Flow table capacity over all shards.
    pub max_flows: usize,
    /// Reassembly memory cap over all shards, MiB.
    pub reassembly_memcap_mb: usize,
    /// Reassembly depth per direction.
    pub depth: u32,
    /// Fingerprints computed.
    pub fingerprints: Vec<String>,
    /// `[pipeline.timeouts]`.
    pub timeouts: FlowTimeouts,
}

/// `[pipeline.timeouts]`: seconds without a packet before a flow ends and its record is
/// stored, by protocol and state.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FlowTimeouts {
    /// TCP seen one way only.
    pub tcp_new_s: u32,
    /// TCP with traffic both ways.
    pub tcp_established_s: u32,
    /// TCP after FIN both ways or RST.
    pub tcp_closed_s: u32,
    /// UDP seen one way only.
    pub udp_new_s: u32,
    /// UDP with traffic both ways.
    pub udp_established_s: u32,
    /// Any other protocol.
    pub other_s: u32,
}

impl Default for FlowTimeouts {
    /// The flow table's own defaults (what `replay` uses).
    fn default() -> Self {
        let t = FlowTableConfig::default();
        let s = |ns: i64| u32::try_from(ns / Timestamp::NANOS_PER_SEC).unwrap_or(u32::MAX);
        FlowTimeouts {
            tcp_new_s: s(t.tcp_new_timeout_ns),
            tcp_established_s: s(t.tcp_established_timeout_ns),
            tcp_closed_s: s(t.tcp_closed_timeout_ns),
            udp_new_s: s(t.udp_new_timeout_ns),
            udp_established_s: s(t.udp_established_timeout_ns),
            other_s: s(t.other_timeout_ns),
        }
    }
}

impl FlowTimeouts {
    /// A flow table of `capacity` flows with these timeouts.
    fn table(&self, capacity: usize) -> FlowTableConfig {
        let ns = |s: u32| i64::from(s) * Timestamp::NANOS_PER_SEC;
        FlowTableConfig {
            capacity,
            tcp_new_timeout_ns: ns(self.tcp_new_s),
            tcp_established_timeout_ns: ns(self.tcp_established_s),
            tcp_closed_timeout_ns: ns(self.tcp_closed_s),
            udp_new_timeout_ns: ns(self.udp_new_s),
            udp_established_timeout_ns: ns(self.udp_established_s),
            other_timeout_ns: ns(self.other_s),
        }
    }
}

impl PipelineConfig {
    /// The fingerprint set the names ask for.
    pub fn fingerprint_set(&self) -> Result<FingerprintSet, String> {
        self.fingerprints.join(",").parse()
    }

    /// The pipeline these settings describe, computing `fingerprints`. Table and memory
    /// caps are totals, split evenly over the shards.
    pub fn replay_config(&self, fingerprints: FingerprintSet) -> ReplayConfig {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shards = match self.shards {
            0 => cores,
            n => usize::from(n),
        };
        let workers = match self.workers {
            0 => shards,
            n => usize::from(n),
        };
        let per_shard = |total: usize| total.div_ceil(shards).max(1);
        ReplayConfig {
            shards,
            workers,
            encoders: shards,
            shard: ShardConfig {
                flows: self.timeouts.table(per_shard(self.max_flows)),
                reassembly: ReassemblyConfig {
                    depth: self.depth,
                    ..ReassemblyConfig::default()
                },
                reassembly_memcap: per_shard(self.reassembly_memcap_mb.saturating_mul(1 << 20)),
                ..ShardConfig::default()
            },
            worker: WorkerConfig {
                fingerprints,
                ..WorkerConfig::default()
            },
            ..ReplayConfig::default()
        }
    }
}

/// When a write counts as stored.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Sync {
    /// In the write-ahead log (survives a process crash).
    Wal,
    /// In the write-ahead log, synced to disk (survives power loss).
    Fsync,
}

/// `[storage]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Sync policy.
    pub sync: Sync,
    /// Block cache, MiB.
    pub block_cache_mb: usize,
    /// Memtable size per family, MiB.
    pub write_buffer_mb: usize,
    /// Age limit in hours (0: none).
    pub max_age_hours: u64,
    /// Size limit in MiB (0: none).
    pub max_size_mb: u64,
    /// Retention interval.
    pub retention_interval_s: u64,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[daemon]`.
    pub daemon: DaemonConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[api]`.
    pub api: ApiConfig,
    /// `[capture]`.
    pub capture: CaptureConfig,
    /// `[pipeline]`.
    pub pipeline: PipelineConfig,
    /// `[storage]`.
    pub storage: StorageConfig,
}

impl Config {
    /// The embedded defaults.
    pub fn embedded() -> Self {
        Self::parse(EMBEDDED, "<embedded flowmesh.toml>")
            .unwrap_or_else(|e| panic!("the embedded configuration is invalid: {e}"))
    }

    /// Reads `path` over the embedded defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses `text` (named `name` in errors) over the embedded defaults.
    pub fn parse(text: &str, name: &str) -> Result<Self, ConfigError> {
        let syntax = |e: toml::de::Error| ConfigError::Syntax {
            path: name.to_string(),
            message: e.to_string().trim_end().to_string(),
        };
        let defaults: toml::Table = EMBEDDED.parse().map_err(syntax)?;
        let user = DeTable::parse(text).map_err(syntax)?;
        let mut keys = Vec::new();
        check_keys(user.get_ref(), &defaults, "", &mut keys).map_err(|(span, key, message)| {
            let (line, column) = line_column(text, span.start);
            ConfigError::Key {
                path: name.to_string(),
                line,
                column,
                key,
                message,
            }
        })?;
        let overlay: toml::Table = text.parse().map_err(syntax)?;
        let mut merged = defaults;
        merge(&mut merged, overlay);
        let config: Config = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| locate(text, name, &keys, &e.to_string()))?;
        config
            .validate()
            .map_err(|(key, message)| locate_key(text, name, &keys, key, message))?;
        Ok(config)
    }

    /// Semantic checks the types cannot express; `(key, message)` on failure.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        self.listen_addr().map_err(|e| {
            (
                "api.listen",
                format!("{e}; expected an address like 127.0.0.1:8765"),
            )
        })?;
        self.pipeline
            .fingerprint_set()
            .map_err(|e| ("pipeline.fingerprints", e))?;
        if self.api.max_page == 0 {
            return Err(("api.max_page", "must be at least 1".into()));
        }
        let c = &self.capture;
        if c.source.is_live() && c.interface.is_empty() {
            return Err((
                "capture.source",
                "a live source needs `capture.interface` (or `--interface`)".into(),
            ));
        }
        if c.source == Source::Pcap && c.file.as_os_str().is_empty() {
            return Err(("capture.source", "`pcap` needs `capture.file`".into()));
        }
        if c.readers == 0 {
            return Err(("capture.readers", "must be at least 1".into()));
        }
        if c.ring_mb == 0 {
            return Err(("capture.ring_mb", "must be at least 1".into()));
        }
        if c.block_timeout_ms == 0 {
            return Err(("capture.block_timeout_ms", "must be at least 1".into()));
        }
        if c.bypass_capacity == 0 {
            return Err(("capture.bypass_capacity", "must be at least 1".into()));
        }
        if !c.xdp_frames.is_power_of_two() || c.xdp_frames < 64 {
            return Err((
                "capture.xdp_frames",
                "must be a power of two of at least 64".into(),
            ));
        }
        if !c.filter.is_empty() {
            CaptureFilter::compile(&c.filter).map_err(|e| ("capture.filter", e.message))?;
        }
        if self.capture.spool_poll_ms == 0 {
            return Err(("capture.spool_poll_ms", "must be at least 1".into()));
        }
        if self.storage.retention_interval_s == 0 {
            return Err(("storage.retention_interval_s", "must be at least 1".into()));
        }
        if self.daemon.data_dir.as_os_str().is_empty() {
            return Err(("daemon.data_dir", "must not be empty".into()));
        }
        Ok(())
    }

    /// The API's listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, std::net::AddrParseError> {
        self.api.listen.parse()
    }
}

/// A key path and the byte span where the user's file sets it.
type KeySpan = (String, std::ops::Range<usize>);

/// Checks every key of `user` against `defaults`: it must exist there, with a value of the
/// same kind. Records each key's span. On failure: `(span, key, message)`.
fn check_keys(
    user: &DeTable<'_>,
    defaults: &toml::Table,
    prefix: &str,
    keys: &mut Vec<KeySpan>,
) -> Result<(), (std::ops::Range<usize>, String, String)> {
    for (k, v) in user {
        let key = format!("{prefix}{}", k.get_ref());
        keys.push((key.clone(), k.span()));
        let Some(default) = defaults.get(k.get_ref().as_ref()) else {
            let known: Vec<&str> = defaults.keys().map(String::as_str).collect();
            let place = if prefix.is_empty() {
                "sections are".to_string()
            } else {
                format!("keys of [{}] are", prefix.trim_end_matches('.'))
            };
            return Err((
                k.span(),
                key,
                format!("unknown key; the {place}: {}", known.join(", ")),
            ));
        };
        match (v.get_ref(), default) {
            (DeValue::Table(t), toml::Value::Table(d)) => {
                check_keys(t, d, &format!("{key}."), keys)?;
            }
            (value, default) if !same_kind(value, default) => {
                return Err((
                    v.span(),
                    key,
                    format!(
                        "expected {} (like the default, {default}), found {}",
                        default.type_str(),
                        value.type_str()
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn same_kind(value: &DeValue<'_>, default: &toml::Value) -> bool {
    matches!(
        (value, default),
        (DeValue::String(_), toml::Value::String(_))
            | (DeValue::Integer(_), toml::Value::Integer(_))
            | (DeValue::Float(_), toml::Value::Float(_))
            | (DeValue::Boolean(_), toml::Value::Boolean(_))
            | (DeValue::Datetime(_), toml::Value::Datetime(_))
            | (DeValue::Array(_), toml::Value::Array(_))
            | (DeValue::Table(_), toml::Value::Table(_))
    )
}

/// Overlays `top` on `base`, table by table.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (k, v) in top {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// An error about `key`, placed at the key's line when the user's file sets it.
fn locate_key(text: &str, name: &str, keys: &[KeySpan], key: &str, message: String) -> ConfigError {
    let (line, column) = keys
        .iter()
        .find(|(k, _)| k == key)
        .map_or((0, 0), |(_, span)| line_column(text, span.start));
    ConfigError::Key {
        path: name.to_string(),
        line,
        column,
        key: key.to_string(),
        message,
    }
}

/// A deserialization error of the merged table: placed at the first user key its message
/// names (the values that fail there are the user's: the defaults deserialize).
fn locate(text: &str, name: &str, keys: &[KeySpan], message: &str) -> ConfigError {
    let message = message.trim_end().to_string();
    let key = keys
        .iter()
        .rev()
        .map(|(k, _)| k.as_str())
        .find(|k| {
            let leaf = k.rsplit('.').next().unwrap_or(k);
            message.contains(&format!("`{leaf}`")) || message.contains(k)
        })
        .or_else(|| keys.last().map(|(k, _)| k.as_str()))
        .unwrap_or("")
        .to_string();
    locate_key(text, name, keys, &key, message)
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "data_dir={} listen={} source={:?} shards={} workers={} sync={:?} max_age_hours={} max_size_mb={}",
            self.daemon.data_dir.display(),
            self.api.listen,
            self.capture.source,
            self.pipeline.shards,
            self.pipeline.workers,
            self.storage.sync,
            self.storage.max_age_hours,
            self.storage.max_size_mb
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_error(text: &str) -> (usize, String, String) {
        match Config::parse(text, "test.toml") {
            Err(ConfigError::Key {
                line, key, message, ..
            }) => (line, key, message),
            other => panic!("expected a key error, got {other:?}"),
        }
    }

    #[test]
    fn embedded_defaults_parse_and_validate() {
        let c = Config::embedded();
        assert_eq!(c.capture.source, Source::Spool);
        assert_eq!(c.storage.sync, Sync::Wal);
        assert!(c.pipeline.fingerprint_set().is_ok());
    }

    #[test]
    fn embedded_flow_timeouts_are_the_flow_tables_so_run_and_replay_agree() {
        let t = Config::embedded().pipeline.timeouts;
        assert_eq!(t, FlowTimeouts::default());
        assert_eq!(
            t.table(7),
            FlowTableConfig {
                capacity: 7,
                ..FlowTableConfig::default()
            }
        );
    }

    #[test]
    fn an_empty_file_is_the_defaults_and_a_key_overrides_only_itself() {
        assert_eq!(
            Config::parse("", "empty.toml").expect("empty file"),
            Config::embedded()
        );
        let c = Config::parse("[pipeline]\nshards = 3\n", "t.toml").expect("valid");
        assert_eq!(c.pipeline.shards, 3);
        assert_eq!(c.pipeline.depth, Config::embedded().pipeline.depth);
        assert_eq!(c.api, Config::embedded().api);
    }

    #[test]
    fn unknown_keys_and_sections_name_file_line_and_key() {
        let (line, key, message) = key_error("[pipeline]\nshards = 2\nshard = 3\n");
        assert_eq!((line, key.as_str()), (3, "pipeline.shard"));
        assert!(message.contains("shards"), "{message}");
        let (line, key, _) = key_error("\n\n[pipelin]\nshards = 2\n");
        assert_eq!((line, key.as_str()), (3, "pipelin"));
        let err = Config::parse("[api]\nlistne = \"x\"\n", "my.toml")
            .expect_err("unknown")
            .to_string();
        assert!(err.starts_with("my.toml:2:1: `api.listne`"), "{err}");
    }

    #[test]
    fn wrong_types_and_bad_values_are_placed_at_their_line() {
        let (line, key, message) = key_error("[pipeline]\n\nshards = \"four\"\n");
        assert_eq!((line, key.as_str()), (3, "pipeline.shards"));
        assert!(message.contains("integer"), "{message}");
        let (line, key, _) = key_error("[capture]\nspool_after = \"keep\"\n");
        assert_eq!((line, key.as_str()), (2, "capture.spool_after"));
        let (line, key, _) = key_error("[api]\nlisten = \"localhost\"\n");
        assert_eq!((line, key.as_str()), (2, "api.listen"));
        let (line, key, message) = key_error("[pipeline]\nfingerprints = [\"ja5\"]\n");
        assert_eq!((line, key.as_str()), (2, "pipeline.fingerprints"));
        assert!(message.contains("ja5"), "{message}");
        let (line, key, _) = key_error("[pipeline]\nshards = -1\n");
        assert_eq!((line, key.as_str()), (2, "pipeline.shards"));
    }

    #[test]
    fn syntax_errors_name_the_file() {
        let err = Config::parse("[api\n", "bad.toml")
            .expect_err("syntax")
            .to_string();
        assert!(err.starts_with("bad.toml: "), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }
}
