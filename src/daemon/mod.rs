//! `flowmesh run`: the long-running daemon.
//!
//! Threads: the HTTP server (actix-web, this thread's system plus its workers), the ingest
//! thread (one pipeline per capture file, whose writer stage commits to RocksDB on its own
//! thread), the spool watcher and housekeeping (retention, RocksDB metrics).
//!
//! Shutdown on SIGTERM or SIGINT, in order: not ready; the spool stops taking files; the
//! capture stops reading and the pipeline drains into the store; the HTTP server answers
//! what is in flight and stops; housekeeping stops; the store is flushed and closed. Exit
//! status 0. SIGHUP re-reads the configuration file.

pub mod background;
pub mod housekeeping;
pub mod ingest;
pub mod live;
pub mod spool;
pub mod telemetry;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use actix_web::{web, App, HttpServer};
use anyhow::{Context, Result};
use flowmesh_actors::storage::{FlowStore, OpenFlowStore, StorageOptions, SyncPolicy};
use tokio::signal::unix::{signal, SignalKind};

use crate::api::{self, AppState};
use crate::cli::RunArgs;
use crate::config::{Config, Source, Sync};
use crate::LogReload;
use ingest::Ingestor;
use spool::SpoolDirs;

/// The configuration `args` ask for: the file (or the embedded defaults), then the
/// command-line overrides.
fn load(args: &RunArgs) -> Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded(),
    };
    if let Some(dir) = &args.data_dir {
        config.daemon.data_dir = dir.clone();
    }
    if let Some(listen) = &args.listen {
        config.api.listen = listen.clone();
        config.listen_addr().with_context(|| {
            format!("--listen {listen}: expected an address like 127.0.0.1:8765")
        })?;
    }
    if let Some(source) = args.capture {
        config.capture.source = source;
    }
    if let Some(interface) = &args.interface {
        config.capture.interface = interface.clone();
    }
    if config.capture.source.is_live() && config.capture.interface.is_empty() {
        anyhow::bail!(
            "a live capture source needs an interface: --interface IFACE or capture.interface"
        );
    }
    Ok(config)
}

/// The store's options from `[storage]`.
fn storage_options(config: &Config) -> StorageOptions {
    StorageOptions {
        sync: match config.storage.sync {
            Sync::Wal => SyncPolicy::None,
            Sync::Fsync => SyncPolicy::EveryBatch,
        },
        block_cache_mb: config.storage.block_cache_mb,
        write_buffer_mb: config.storage.write_buffer_mb,
        ..StorageOptions::default()
    }
}

/// Creates `dir`, naming it in the error.
fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Queues `file` (`capture.file`) for ingest and logs its outcome when it is done.
fn submit_capture_file(ingestor: &Arc<Ingestor>, file: PathBuf) {
    let (reply, answer) = tokio::sync::oneshot::channel();
    ingestor.submit(
        ingest::Job {
            path: file.clone(),
            origin: ingest::Origin::Config,
            reply,
        },
        true,
    );
    // The ingest thread logs the outcome; this only keeps the answer channel open.
    std::thread::spawn(move || {
        if let Ok(Err(e)) = answer.blocking_recv() {
            tracing::error!(file = %file.display(), error = %e, "capture.file was not ingested");
        }
    });
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(args: &RunArgs, log: &LogReload) -> Result<()> {
    let config = load(args)?;
    log.set(&config.log.level);
    let data_dir = config.daemon.data_dir.clone();
    let incoming = data_dir.join("incoming");
    create_dir(&incoming)?;
    // Uploads of a daemon that was killed are no one's any more.
    if let Ok(entries) = std::fs::read_dir(&incoming) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let spool_dirs = SpoolDirs::create(data_dir.join("spool"))
        .with_context(|| format!("cannot create the spool under {}", data_dir.display()))?;
    let store_dir = data_dir.join("store");
    let store = Arc::new(FlowStore::open(&store_dir, &storage_options(&config))?);
    let interrupted = store.stats()?.interrupted_at_open;
    if interrupted > 0 {
        tracing::warn!(
            records = interrupted,
            "the last run stopped without ending some flows (killed or crashed): their \
             interim records are now final, with end_reason \"interrupted\""
        );
    }
    let prometheus = telemetry::install()?;
    tracing::info!(%config, "starting");

    let config = Arc::new(RwLock::new(config));
    let ingestor = Arc::new(Ingestor::start(Arc::clone(&config), Arc::clone(&store))?);
    let source = config
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .capture
        .clone();
    let mut spool = match source.source {
        Source::Spool => Some(spool::start(
            spool_dirs,
            Arc::clone(&config),
            Arc::clone(&ingestor),
        )?),
        _ => None,
    };
    if source.source == Source::Pcap {
        submit_capture_file(&ingestor, source.file.clone());
    }
    let live = if source.source.is_live() {
        let running = config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Some(Arc::new(live::LiveCapture::start(
            &running,
            Arc::clone(&store),
        )?))
    } else {
        None
    };
    let mut housekeeping =
        housekeeping::start(Arc::clone(&config), Arc::clone(&store), prometheus.clone())?;
    let ready = Arc::new(AtomicBool::new(false));
    let state = web::Data::new(AppState {
        store: Arc::clone(&store),
        ingestor: Arc::clone(&ingestor),
        config: Arc::clone(&config),
        prometheus,
        ready: Arc::clone(&ready),
        live: live.clone(),
        started: Instant::now(),
        incoming,
        uploads: AtomicU64::new(0),
    });

    let served = actix_web::rt::System::new().block_on(serve(
        state,
        args.config.clone(),
        Arc::clone(&config),
        Arc::clone(&ingestor),
        ready,
        data_dir.clone(),
        log,
    ));

    if let Some(spool) = spool.as_mut() {
        spool.stop();
    }
    if let Some(live) = &live {
        live.stop();
    }
    ingestor.stop();
    housekeeping.stop();
    let flushed = store
        .engine()
        .flush()
        .context("cannot flush the flow store");
    drop(store);
    tracing::info!("stopped");
    served.and(flushed)
}

async fn serve(
    state: web::Data<AppState>,
    config_path: Option<PathBuf>,
    config: Arc<RwLock<Config>>,
    ingestor: Arc<Ingestor>,
    ready: Arc<AtomicBool>,
    data_dir: PathBuf,
    log: &LogReload,
) -> Result<()> {
    // Handlers first: a SIGHUP that arrived before them would end the process (its
    // default action), and readiness promises that signals are handled.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let listen = config
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .listen_addr()?;
    let server =
        HttpServer::new(move || App::new().app_data(state.clone()).configure(api::configure))
            .disable_signals()
            .workers(2)
            .bind(listen)
            .with_context(|| format!("cannot listen on {listen} (api.listen)"))?;
    let bound = server.addrs().first().copied().unwrap_or(listen);
    let addr_file = data_dir.join("admin.addr");
    std::fs::write(&addr_file, format!("{bound}\n"))
        .with_context(|| format!("cannot write {}", addr_file.display()))?;
    let server = server.run();
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);
    ready.store(true, Ordering::Relaxed);
    tracing::info!(address = %bound, "admin API listening");
    eprintln!(
        "flowmesh: admin API on http://{bound}/api/v1, spool {}",
        data_dir.join("spool").display()
    );

    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(config_path.as_deref(), &config, log),
        }
    }
    tracing::info!("shutting down: draining the pipeline into the store");
    ready.store(false, Ordering::Relaxed);
    // Stop ingest first so waiting uploads get their answer, then the server.
    let stopper = Arc::clone(&ingestor);
    let _ = tokio::task::spawn_blocking(move || stopper.stop()).await;
    handle.stop(true).await;
    let _ = running.await;
    Ok(())
}

/// Re-reads the configuration file and applies what can change while running.
fn reload(path: Option<&Path>, config: &RwLock<Config>, log: &LogReload) {
    let Some(path) = path else {
        tracing::info!("SIGHUP: running on the embedded defaults; nothing to reload");
        return;
    };
    let mut new = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the configuration was not reloaded");
            return;
        }
    };
    let mut current = config.write().unwrap_or_else(PoisonError::into_inner);
    // Keys that need a restart keep their running value.
    if new.daemon != current.daemon {
        tracing::warn!("SIGHUP: daemon.data_dir changed; restart flowmesh to use it");
    }
    if new.api.listen != current.api.listen {
        tracing::warn!("SIGHUP: api.listen changed; restart flowmesh to use it");
    }
    let capture_fixed = |c: &crate::config::CaptureConfig| {
        let mut fixed = c.clone();
        fixed.spool_poll_ms = 0;
        fixed.spool_settle_ms = 0;
        fixed.spool_after = crate::config::SpoolAfter::Move;
        fixed
    };
    if capture_fixed(&new.capture) != capture_fixed(&current.capture) {
        tracing::warn!("SIGHUP: capture settings other than spool_* changed (source, interface, filter, rings, XDP); restart flowmesh to use them");
    }
    let storage_fixed =
        |s: &crate::config::StorageConfig| (s.sync, s.block_cache_mb, s.write_buffer_mb);
    if storage_fixed(&new.storage) != storage_fixed(&current.storage) {
        tracing::warn!("SIGHUP: storage.sync, block_cache_mb or write_buffer_mb changed; restart flowmesh to use them");
    }
    new.daemon = current.daemon.clone();
    new.api.listen = current.api.listen.clone();
    new.capture = crate::config::CaptureConfig {
        spool_poll_ms: new.capture.spool_poll_ms,
        spool_settle_ms: new.capture.spool_settle_ms,
        spool_after: new.capture.spool_after,
        ..current.capture.clone()
    };
    new.storage.sync = current.storage.sync;
    new.storage.block_cache_mb = current.storage.block_cache_mb;
    new.storage.write_buffer_mb = current.storage.write_buffer_mb;
    log.set(&new.log.level);
    *current = new;
    tracing::info!(config = %*current, "SIGHUP: configuration reloaded");
}
