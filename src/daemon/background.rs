//! A named background thread with a stop flag: the spool watcher and housekeeping loop on
//! it, sleeping in short steps so a stop is seen within 50 ms.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a sleeping loop looks at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// The stop flag a background loop watches.
#[derive(Debug, Default)]
pub struct StopFlag(AtomicBool);

impl StopFlag {
    /// Whether the thread was told to stop.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Sleeps `total`, or less if told to stop meanwhile.
    pub fn sleep(&self, total: Duration) {
        sleep_unless(&self.0, total);
    }
}

/// Sleeps `total`, or less if `stop` turns true meanwhile; returns whether it did.
pub fn sleep_unless(stop: &AtomicBool, total: Duration) -> bool {
    let end = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(left.min(STOP_CHECK));
    }
    true
}

/// A running background thread.
#[derive(Debug)]
pub struct Background {
    stop: Arc<StopFlag>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Runs `body` on a thread called `name`; it should return once its flag is set.
    pub fn spawn(
        name: &str,
        body: impl FnOnce(&StopFlag) + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(StopFlag::default());
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || body(&stop))?
        };
        Ok(Background {
            stop,
            thread: Some(thread),
        })
    }

    /// Sets the flag and waits for the thread.
    pub fn stop(&mut self) {
        self.stop.0.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
