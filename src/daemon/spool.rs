//! The spool: a directory watched for capture files. Every pcap or pcapng file that appears
//! in it is ingested once its size and modification time have settled, then moved to
//! `done/` (or deleted); a file that cannot be read goes to `failed/` beside a `.error`
//! note. Files are taken oldest first. Names starting with `.` or ending in `.part` or
//! `.tmp` are still being written and are left alone.
//!
//! A file the daemon was stopped in the middle of goes to `interrupted/`: the records of the
//! part that was read are stored, so ingesting it again would store them twice; the log
//! says so and the operator decides.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use super::background::{Background, StopFlag};
use super::ingest::{Ingestor, Job, Origin};
use crate::config::{Config, SpoolAfter};

/// The spool directory's layout.
#[derive(Debug, Clone)]
pub struct SpoolDirs {
    /// Watched directory.
    pub inbox: PathBuf,
    /// Ingested files (`spool_after = "move"`).
    pub done: PathBuf,
    /// Files that could not be read.
    pub failed: PathBuf,
    /// Files whose ingest the shutdown cut short.
    pub interrupted: PathBuf,
}

impl SpoolDirs {
    /// The layout under `inbox`, creating the directories.
    pub fn create(inbox: PathBuf) -> std::io::Result<Self> {
        let dirs = SpoolDirs {
            done: inbox.join("done"),
            failed: inbox.join("failed"),
            interrupted: inbox.join("interrupted"),
            inbox,
        };
        for d in [&dirs.inbox, &dirs.done, &dirs.failed, &dirs.interrupted] {
            fs::create_dir_all(d)?;
        }
        Ok(dirs)
    }
}

/// Starts the watcher thread on `dirs.inbox`, handing files to `ingestor`. Stopping it
/// waits for the file being ingested, which the ingestor cuts short.
pub fn start(
    dirs: SpoolDirs,
    config: Arc<RwLock<Config>>,
    ingestor: Arc<Ingestor>,
) -> std::io::Result<Background> {
    Background::spawn("spool", move |stop| watch(&dirs, &config, &ingestor, stop))
}

/// A file's size and modification time, and since when they have not changed.
type Seen = HashMap<PathBuf, ((u64, SystemTime), Instant)>;

fn watch(dirs: &SpoolDirs, config: &RwLock<Config>, ingestor: &Ingestor, stop: &StopFlag) {
    let mut seen = Seen::new();
    while !stop.is_set() {
        let capture = config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .capture
            .clone();
        let settle = Duration::from_millis(capture.spool_settle_ms);
        for path in ready_files(&dirs.inbox, &mut seen, settle) {
            if stop.is_set() {
                return;
            }
            seen.remove(&path);
            ingest(dirs, &path, capture.spool_after, ingestor);
        }
        stop.sleep(Duration::from_millis(capture.spool_poll_ms));
    }
}

/// Whether a name marks a file still being written.
fn in_progress(name: &str) -> bool {
    name.starts_with('.') || name.ends_with(".part") || name.ends_with(".tmp")
}

/// Regular files of `dir` whose size and mtime have been stable for `settle`, oldest
/// first.
fn ready_files(dir: &Path, seen: &mut Seen, settle: Duration) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let now = Instant::now();
    let mut ready = Vec::new();
    let mut present = HashSet::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || in_progress(name) {
            continue;
        }
        let path = entry.path();
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let state = (meta.len(), mtime);
        present.insert(path.clone());
        let since = match seen.get(&path) {
            Some((s, since)) if *s == state => *since,
            _ => {
                seen.insert(path.clone(), (state, now));
                now
            }
        };
        if now.duration_since(since) >= settle {
            ready.push((mtime, path));
        }
    }
    seen.retain(|p, _| present.contains(p));
    ready.sort();
    ready.into_iter().map(|(_, p)| p).collect()
}

fn ingest(dirs: &SpoolDirs, path: &Path, after: SpoolAfter, ingestor: &Ingestor) {
    let (tx, rx) = oneshot::channel();
    let job = Job {
        path: path.to_path_buf(),
        origin: Origin::Spool,
        reply: tx,
    };
    ingestor.submit(job, true);
    let Some(name) = path.file_name() else { return };
    let result = match rx.blocking_recv() {
        Ok(r) => r,
        Err(_) => return,
    };
    let moved = match result {
        Ok(i) if i.interrupted => {
            tracing::warn!(
                file = %path.display(),
                flows = i.flows,
                "shutdown interrupted this spool file; the records of the part read are stored; moved to interrupted/ (ingesting it again would store that part twice)"
            );
            fs::rename(path, dirs.interrupted.join(name))
        }
        Ok(_) => match after {
            SpoolAfter::Move => fs::rename(path, dirs.done.join(name)),
            SpoolAfter::Delete => fs::remove_file(path),
        },
        Err(super::ingest::IngestError::ShuttingDown) => return,
        Err(e) => {
            let note = dirs
                .failed
                .join(format!("{}.error", name.to_string_lossy()));
            let _ = fs::write(&note, format!("{e}\n"));
            fs::rename(path, dirs.failed.join(name))
        }
    };
    if let Err(e) = moved {
        // Left in place it would be ingested again and again: hide it under a dot-name,
        // which the watcher skips.
        tracing::error!(file = %path.display(), error = %e, "cannot move the file out of the spool; renamed to .NAME.stuck so it is not ingested again");
        let hidden = dirs
            .inbox
            .join(format!(".{}.stuck", name.to_string_lossy()));
        let _ = fs::rename(path, hidden);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_being_written_are_skipped() {
        assert!(in_progress(".upload"));
        assert!(in_progress("a.pcap.part"));
        assert!(in_progress("a.pcap.tmp"));
        assert!(!in_progress("a.pcap"));
    }

    #[test]
    fn a_file_is_ready_only_after_it_settles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("a.pcap");
        fs::write(&f, b"x").expect("write");
        let mut seen = Seen::new();
        let settle = Duration::from_millis(100);
        assert!(ready_files(dir.path(), &mut seen, settle).is_empty());
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(ready_files(dir.path(), &mut seen, settle), vec![f.clone()]);
        fs::write(&f, b"xy").expect("grow");
        assert!(ready_files(dir.path(), &mut seen, settle).is_empty());
        assert!(ready_files(dir.path(), &mut seen, Duration::ZERO).contains(&f));
    }
}
