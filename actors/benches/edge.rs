//! Messages per second through one edge of the runtime: a producer task on the System
//! arbiter (the bench thread) pushes into the low queue of one consumer stage running on its
//! own `Arbiter` (thread). The consumer counts what it is handed; a `Flush` item sent
//! lossless after the data replies with that count, so a measured iteration ends only when
//! the consumer has handled everything (FIFO queue) and the figure is end-to-end: semaphore,
//! inbox lock, `Drain` wake-ups, the drain turns and the cross-thread hand-off.
//!
//! The stage uses the default [`StageConfig`] sizes (low capacity 256, turn 32). One
//! measured iteration sends a fixed number of messages; the System and the stage are built
//! once per bench function.
//!
//! - `edge/lossless/1`: `send().await` of `u64` items; the raw per-message cost.
//! - `edge/lossless_batch/256`: `send().await` of `Vec<u64>` batches of 256, as the pipeline
//!   batches packets; throughput in elements, so the figure is the per-element cost. It
//!   includes allocating each batch on the producer and freeing it on the consumer.
//! - `edge/droppable`: `try_send` of `u64` items by a producer that keeps up with the
//!   consumer: it never has more unhandled items outstanding than the queue holds, and when it
//!   has, it spins on the consumer's progress counter instead of parking on the semaphore. So
//!   nothing should drop; the drops the stage counted (`queue_full`) are printed after the
//!   run, since criterion reports only time. Unpaced, a burst of 100 000 `try_send`s lasts
//!   less than a scheduler time slice and the drop rate would measure the OS scheduler
//!   (whether the consumer thread got a CPU during the burst), not the edge.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, Arbiter, Context, Handler, Recipient, System, SystemRunner};
use criterion::{
    black_box, criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use flowmesh_actors::runtime::{
    reason, start_stage_in_arbiter, Outbox, Priority, Stage, StageConfig, StageFailed, StageHandle,
    StageSender,
};
use tokio::sync::oneshot;

/// Messages per measured iteration for the single-item benches.
const N: u64 = 100_000;
/// Batches per measured iteration for the batch bench.
const N_BATCHES: u64 = 10_000;
/// Elements per batch.
const BATCH: usize = 256;

/// What a queue item carries: its number of elements.
trait Payload: Send + std::fmt::Debug + 'static {
    fn elements(&self) -> u64;
}

impl Payload for u64 {
    fn elements(&self) -> u64 {
        1
    }
}

impl Payload for Vec<u64> {
    fn elements(&self) -> u64 {
        self.len() as u64
    }
}

/// The consumer's items: data, or a request for the count seen since the last flush.
#[derive(Debug)]
enum Msg<P> {
    Data(P),
    Flush(oneshot::Sender<u64>),
}

/// Counts the elements it is handed.
struct Counter<P> {
    seen: u64,
    /// Elements handled since the stage was built, published for a pacing producer.
    progress: Option<Arc<AtomicU64>>,
    _payload: PhantomData<fn() -> P>,
}

impl<P: Payload> Stage for Counter<P> {
    type Item = Msg<P>;
    type Error = Infallible;

    fn handle(&mut self, item: Msg<P>, _out: &mut Outbox) -> Result<(), Infallible> {
        match item {
            Msg::Data(p) => {
                let n = black_box(&p).elements();
                self.seen += n;
                if let Some(progress) = &self.progress {
                    progress.fetch_add(n, Ordering::Release);
                }
            }
            Msg::Flush(tx) => {
                // The bench stops waiting only if it panicked; nothing to report then.
                let _ = tx.send(std::mem::take(&mut self.seen));
            }
        }
        Ok(())
    }
}

/// Stands in for the daemon's failure handling; the bench's flush then fails loudly.
struct FailureLog;

impl Actor for FailureLog {
    type Context = Context<Self>;
}

impl Handler<StageFailed> for FailureLog {
    type Result = ();
    fn handle(&mut self, msg: StageFailed, _: &mut Context<Self>) {
        eprintln!("consumer stage failed: {msg}");
    }
}

/// One System, one consumer stage on its own arbiter.
struct Rig<P: Payload> {
    sys: SystemRunner,
    arbiter: Arbiter,
    stage: StageHandle<Counter<P>>,
}

impl<P: Payload> Rig<P> {
    /// The consumer publishes its progress into `progress` when given one.
    fn new(progress: Option<Arc<AtomicU64>>) -> Self {
        let sys = System::new();
        let (arbiter, stage) = sys.block_on(async {
            let arbiter = Arbiter::new();
            let on_failure: Recipient<StageFailed> = FailureLog.start().recipient();
            let stage = start_stage_in_arbiter(
                &arbiter.handle(),
                StageConfig::new("consumer"),
                move || Counter {
                    seen: 0,
                    progress: progress.clone(),
                    _payload: PhantomData,
                },
                on_failure,
            )
            .expect("valid config");
            (arbiter, stage)
        });
        Self {
            sys,
            arbiter,
            stage,
        }
    }

    fn sender(&self) -> StageSender<Msg<P>> {
        self.stage.sender(Priority::Low)
    }

    fn stop(self) {
        self.arbiter.stop();
        self.arbiter.join().expect("consumer arbiter thread");
    }
}

/// Waits until the consumer has handled everything sent before; returns what it counted.
async fn flush<P: Payload>(tx: &StageSender<Msg<P>>) -> u64 {
    let (reply, seen) = oneshot::channel();
    tx.send(Msg::Flush(reply)).await.expect("consumer open");
    seen.await.expect("consumer replied to the flush")
}

fn lossless(c: &mut Criterion) {
    let rig = Rig::<u64>::new(None);
    let tx = rig.sender();
    let mut g = c.benchmark_group("edge");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(N));
    g.bench_function(BenchmarkId::new("lossless", 1), |b| {
        b.iter_custom(|iters| {
            rig.sys.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    for i in 0..N {
                        tx.send(Msg::Data(i)).await.expect("consumer open");
                    }
                    assert_eq!(flush(&tx).await, N);
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    rig.stop();
}

fn lossless_batch(c: &mut Criterion) {
    let rig = Rig::<Vec<u64>>::new(None);
    let tx = rig.sender();
    let mut g = c.benchmark_group("edge");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(N_BATCHES * BATCH as u64));
    g.bench_function(BenchmarkId::new("lossless_batch", BATCH), |b| {
        b.iter_custom(|iters| {
            rig.sys.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    for i in 0..N_BATCHES {
                        tx.send(Msg::Data(vec![i; BATCH]))
                            .await
                            .expect("consumer open");
                    }
                    assert_eq!(flush(&tx).await, N_BATCHES * BATCH as u64);
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    rig.stop();
}

fn droppable(c: &mut Criterion) {
    let progress = Arc::new(AtomicU64::new(0));
    let rig = Rig::<u64>::new(Some(Arc::clone(&progress)));
    let tx = rig.sender();
    // Never more outstanding than the queue holds, so a refusal would be an accounting bug.
    let window = StageConfig::new("consumer").low_capacity as u64;
    // Accepted by the edge, over the stage's life (comparable with `progress`).
    let mut accepted = 0u64;
    let mut handled = 0u64;
    let mut dropped = 0u64;
    let mut g = c.benchmark_group("edge");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(N));
    g.bench_function("droppable", |b| {
        b.iter_custom(|iters| {
            rig.sys.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut refused = 0;
                    for i in 0..N {
                        let mut spins = 0u32;
                        while accepted - handled >= window {
                            handled = progress.load(Ordering::Acquire);
                            spins += 1;
                            if spins.is_multiple_of(64) {
                                // Let the consumer run if it shares our CPU.
                                std::thread::yield_now();
                            } else {
                                std::hint::spin_loop();
                            }
                        }
                        match tx.try_send(Msg::Data(i)) {
                            Ok(()) => accepted += 1,
                            Err(_) => refused += 1,
                        }
                    }
                    assert_eq!(flush(&tx).await + refused, N);
                    dropped += refused;
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    let counters = rig.sys.block_on(rig.stage.counters()).expect("counters");
    assert_eq!(counters.low.dropped.get(reason::QUEUE_FULL), dropped);
    if accepted + dropped > 0 {
        eprintln!(
            "edge/droppable: {} offered, {dropped} dropped ({})",
            accepted + dropped,
            reason::QUEUE_FULL,
        );
    }
    rig.stop();
}

criterion_group!(benches, lossless, lossless_batch, droppable);
criterion_main!(benches);
