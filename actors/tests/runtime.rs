//! Runtime tests through real actors: exact-count backpressure on droppable and lossless
//! edges, priority in the drain step, bounded drain turns, and supervision (restart with
//! fresh state, isolation, restart budget escalation).
//!
//! A held consumer runs on its own arbiter (thread) and blocks inside its handler on a gate
//! the test opens, so the producers on the test's thread see a consumer that is really busy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use actix::Arbiter;
use flowmesh_actors::runtime::{
    failure_channel, reason, start_stage, start_stage_in_arbiter, Delivered, Delivery, Outbox,
    Priority, RestartPolicy, SendError, Stage, StageConfig, StageConfigError, StageFailed,
    StageHandle, TrySendError,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(3);

/// Items of the test stage. `Data` values are recorded with the stage's own count of items
/// handled since it was built, which shows whether a restart gave it fresh state.
#[derive(Debug)]
enum Item {
    Data(u32),
    /// Blocks the stage (and its thread) until `gate` is opened or dropped.
    Hold {
        entered: oneshot::Sender<()>,
        gate: std_mpsc::Receiver<()>,
    },
    /// Replies once everything queued before it (in its queue) was handled.
    Done(oneshot::Sender<()>),
    /// Test-only fault hook: the handler panics.
    Panic,
    /// Test-only fault hook: the handler returns an error.
    Fail,
}

#[derive(Debug, thiserror::Error)]
#[error("injected error")]
struct Injected;

type Seen = Arc<Mutex<Vec<(u32, u32)>>>;

struct Recorder {
    seen: Seen,
    handled: u32,
}

impl Stage for Recorder {
    type Item = Item;
    type Error = Injected;

    fn handle(&mut self, item: Item, _out: &mut Outbox) -> Result<(), Injected> {
        match item {
            Item::Data(v) => {
                self.handled += 1;
                self.seen.lock().expect("seen lock").push((self.handled, v));
            }
            Item::Hold { entered, gate } => {
                let _ = entered.send(());
                let _ = gate.recv();
            }
            Item::Done(tx) => {
                let _ = tx.send(());
            }
            Item::Panic => panic!("injected fault"),
            Item::Fail => return Err(Injected),
        }
        Ok(())
    }
}

fn recorder(seen: &Seen) -> impl Fn() -> Recorder + Send + 'static {
    let seen = Arc::clone(seen);
    move || Recorder {
        seen: Arc::clone(&seen),
        handled: 0,
    }
}

fn values(seen: &Seen) -> Vec<u32> {
    seen.lock()
        .expect("seen lock")
        .iter()
        .map(|&(_, v)| v)
        .collect()
}

fn config(name: &'static str, low_capacity: usize) -> StageConfig {
    StageConfig {
        low_capacity,
        ..StageConfig::new(name)
    }
}

/// Blocks the stage inside its handler; returns the gate that releases it.
async fn hold(stage: &StageHandle<Recorder>) -> std_mpsc::Sender<()> {
    let (entered_tx, entered_rx) = oneshot::channel();
    let (gate_tx, gate_rx) = std_mpsc::channel();
    stage
        .sender(Priority::High)
        .send(Item::Hold {
            entered: entered_tx,
            gate: gate_rx,
        })
        .await
        .expect("stage open");
    timeout(LIMIT, entered_rx)
        .await
        .expect("stage entered the hold in time")
        .expect("hold reply");
    gate_tx
}

/// A consumer stage on its own arbiter, blocked inside its handler until `gate` is sent.
struct Held {
    arbiter: Arbiter,
    seen: Seen,
    stage: StageHandle<Recorder>,
    gate: std_mpsc::Sender<()>,
    /// Kept alive so the stage's failure recipient stays connected.
    _failures: mpsc::UnboundedReceiver<StageFailed>,
}

async fn held_consumer(low_capacity: usize) -> Held {
    let arbiter = Arbiter::new();
    let seen = Seen::default();
    let (on_failure, failures) = failure_channel();
    let stage = start_stage_in_arbiter(
        &arbiter.handle(),
        config("consumer", low_capacity),
        recorder(&seen),
        on_failure,
    )
    .expect("valid config");
    let gate = hold(&stage).await;
    Held {
        arbiter,
        seen,
        stage,
        gate,
        _failures: failures,
    }
}

/// Waits until everything queued on `priority` before this call was handled.
async fn done(stage: &StageHandle<Recorder>, priority: Priority) {
    let (tx, rx) = oneshot::channel();
    timeout(LIMIT, stage.sender(priority).send(Item::Done(tx)))
        .await
        .expect("room for Done in time")
        .expect("stage open");
    timeout(LIMIT, rx)
        .await
        .expect("Done handled in time")
        .expect("Done reply");
}

#[actix::test]
async fn droppable_edge_drops_exactly_n_minus_c_and_counts_them() {
    const N: u32 = 10;
    const C: usize = 4;
    let Held {
        arbiter,
        seen,
        stage,
        gate,
        _failures,
    } = held_consumer(C).await;

    let edge = stage.edge(Priority::Low, Delivery::Droppable);
    let mut outcomes = Vec::new();
    for i in 0..N {
        outcomes.push(
            edge.deliver(Item::Data(i))
                .await
                .expect("droppable never fails"),
        );
    }
    let expected: Vec<Delivered> = (0..N)
        .map(|i| {
            if (i as usize) < C {
                Delivered::Enqueued
            } else {
                Delivered::Dropped(reason::QUEUE_FULL)
            }
        })
        .collect();
    assert_eq!(outcomes, expected);
    // try_send on the same full queue hands the item back.
    match stage.sender(Priority::Low).try_send(Item::Data(99)) {
        Err(TrySendError::Full(Item::Data(99))) => {}
        other => panic!("expected Full(Data(99)), got {other:?}"),
    }

    gate.send(()).expect("stage holds the gate");
    done(&stage, Priority::Low).await;
    assert_eq!(values(&seen), (0..C as u32).collect::<Vec<_>>());
    let c = stage.counters().await.expect("counters");
    assert_eq!(
        c.low.dropped.get(reason::QUEUE_FULL),
        u64::from(N) - C as u64 + 1
    );
    assert_eq!(c.low.dropped.total(), u64::from(N) - C as u64 + 1);
    assert_eq!(c.low.enqueued, C as u64 + 1, "C data items and Done");
    assert_eq!(c.low.served, C as u64 + 1);
    assert_eq!((c.low.depth, c.high.depth), (0, 0));
    assert_eq!((c.high.enqueued, c.high.served), (1, 1), "the hold");
    arbiter.stop();
}

#[actix::test]
async fn lossless_edge_accepts_exactly_c_then_waits_and_delivers_all_in_order() {
    const N: u32 = 12;
    const C: usize = 5;
    let Held {
        arbiter,
        seen,
        stage,
        gate,
        _failures,
    } = held_consumer(C).await;

    let accepted = Arc::new(AtomicUsize::new(0));
    let producer = {
        let edge = stage.edge(Priority::Low, Delivery::Lossless);
        let accepted = Arc::clone(&accepted);
        actix::spawn(async move {
            for i in 0..N {
                let sent = edge.deliver(Item::Data(i)).await;
                assert_eq!(sent.ok(), Some(Delivered::Enqueued));
                accepted.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        C,
        "exactly C accepted while held"
    );
    assert!(!producer.is_finished(), "send number C+1 is pending");

    gate.send(()).expect("stage holds the gate");
    timeout(LIMIT, producer)
        .await
        .expect("producer finished in time")
        .expect("producer task");
    assert_eq!(accepted.load(Ordering::SeqCst), N as usize);
    done(&stage, Priority::Low).await;
    assert_eq!(values(&seen), (0..N).collect::<Vec<_>>(), "all N, in order");
    let c = stage.counters().await.expect("counters");
    assert_eq!(c.low.dropped.total(), 0);
    assert_eq!(c.low.enqueued, u64::from(N) + 1);
    arbiter.stop();
}

#[actix::test]
async fn turns_ending_in_a_panic_or_an_error_give_all_capacity_back() {
    const C: usize = 4;
    let arbiter = Arbiter::new();
    let seen = Seen::default();
    let (on_failure, _failures) = failure_channel();
    let stage = start_stage_in_arbiter(
        &arbiter.handle(),
        config("consumer", C),
        recorder(&seen),
        on_failure,
    )
    .expect("valid config");
    // Every served item's room goes back at once, also on a turn cut short by a failure: a
    // lost permit would shrink the queue for good, and room handed back only at the end of a
    // turn would leave `Done`'s slot taken while the hold below blocks that same turn.
    let low = stage.sender(Priority::Low);
    for item in [
        Item::Data(1),
        Item::Panic,
        Item::Data(2),
        Item::Fail,
        Item::Data(3),
        Item::Panic,
    ] {
        timeout(LIMIT, low.send(item))
            .await
            .expect("room in time")
            .expect("stage open");
    }
    done(&stage, Priority::Low).await;

    let gate = hold(&stage).await;
    for i in 0..C as u32 {
        low.try_send(Item::Data(10 + i))
            .expect("the whole capacity is free again");
    }
    assert!(matches!(
        low.try_send(Item::Data(99)),
        Err(TrySendError::Full(Item::Data(99)))
    ));
    gate.send(()).expect("stage holds the gate");
    done(&stage, Priority::Low).await;
    assert_eq!(values(&seen), vec![1, 2, 3, 10, 11, 12, 13]);
    let c = stage.counters().await.expect("counters");
    assert_eq!((c.restarts, c.panics, c.errors), (3, 2, 1));
    assert_eq!(c.low.dropped.get(reason::QUEUE_FULL), 1);
    assert_eq!((c.low.depth, c.high.depth), (0, 0));
    arbiter.stop();
}

#[actix::test]
async fn high_item_behind_a_full_low_queue_is_served_next() {
    let Held {
        arbiter,
        seen,
        stage,
        gate,
        _failures,
    } = held_consumer(1000).await;
    let low = stage.sender(Priority::Low);
    for i in 0..1000 {
        low.try_send(Item::Data(i)).expect("room");
    }
    stage
        .sender(Priority::High)
        .try_send(Item::Data(5000))
        .expect("room");
    gate.send(()).expect("stage holds the gate");
    done(&stage, Priority::Low).await;
    let v = values(&seen);
    assert_eq!(v.len(), 1001);
    assert_eq!(v[0], 5000, "the high item went first");
    assert_eq!(&v[1..], (0..1000).collect::<Vec<_>>().as_slice());
    arbiter.stop();
}

#[actix::test]
async fn drain_turns_are_bounded_so_queries_are_answered_during_a_backlog() {
    let seen = Seen::default();
    let (on_failure, _failures) = failure_channel();
    let cfg = StageConfig {
        turn: 4,
        ..config("consumer", 1000)
    };
    let stage = start_stage(cfg, recorder(&seen), on_failure).expect("valid config");
    let low = stage.sender(Priority::Low);
    for i in 0..1000 {
        low.try_send(Item::Data(i)).expect("room");
    }
    let mid = stage.counters().await.expect("counters");
    assert!(
        mid.low.served < 1000 && mid.low.depth > 0,
        "query answered mid-backlog: {mid:?}"
    );
    done(&stage, Priority::Low).await;
    assert_eq!(values(&seen), (0..1000).collect::<Vec<_>>());
}

#[actix::test]
async fn panic_restarts_only_that_stage_with_fresh_state() {
    let (on_failure, mut failures) = failure_channel();
    let seen_a = Seen::default();
    let seen_b = Seen::default();
    let a =
        start_stage(config("a", 64), recorder(&seen_a), on_failure.clone()).expect("valid config");
    let b = start_stage(config("b", 64), recorder(&seen_b), on_failure).expect("valid config");
    let (to_a, to_b) = (a.sender(Priority::Low), b.sender(Priority::Low));
    for item in [Item::Data(1), Item::Data(2), Item::Panic, Item::Data(3)] {
        to_a.send(item).await.expect("a open");
    }
    for i in 10..20 {
        to_b.send(Item::Data(i)).await.expect("b open");
    }
    done(&a, Priority::Low).await;
    done(&b, Priority::Low).await;

    let a_seen = seen_a.lock().expect("seen lock").clone();
    assert_eq!(
        a_seen,
        vec![(1, 1), (2, 2), (1, 3)],
        "fresh state after restart"
    );
    let ca = a.counters().await.expect("counters");
    assert_eq!(
        (ca.restarts, ca.panics, ca.errors, ca.failed),
        (1, 1, 0, false)
    );
    assert_eq!(ca.low.dropped.get(reason::HANDLER_PANIC), 1);
    assert_eq!(ca.low.dropped.total(), 1);

    assert_eq!(values(&seen_b), (10..20).collect::<Vec<_>>());
    let cb = b.counters().await.expect("counters");
    assert_eq!((cb.restarts, cb.panics), (0, 0));
    assert!(failures.try_recv().is_err(), "no escalation within budget");

    // Still serving after the restart.
    to_a.send(Item::Data(4)).await.expect("a open");
    done(&a, Priority::Low).await;
    assert_eq!(values(&seen_a), vec![1, 2, 3, 4]);
}

#[actix::test]
async fn handler_error_restarts_the_stage() {
    let (on_failure, mut failures) = failure_channel();
    let seen = Seen::default();
    let a = start_stage(config("a", 8), recorder(&seen), on_failure).expect("valid config");
    let to_a = a.sender(Priority::High);
    for item in [Item::Data(1), Item::Fail, Item::Data(2)] {
        to_a.send(item).await.expect("a open");
    }
    done(&a, Priority::High).await;
    assert_eq!(
        seen.lock().expect("seen lock").clone(),
        vec![(1, 1), (1, 2)]
    );
    let c = a.counters().await.expect("counters");
    assert_eq!((c.restarts, c.panics, c.errors), (1, 0, 1));
    assert_eq!(c.high.dropped.get(reason::HANDLER_ERROR), 1);
    assert!(failures.try_recv().is_err());
}

#[actix::test]
async fn exceeding_the_restart_budget_escalates_and_closes_the_stage() {
    let (on_failure, mut failures) = failure_channel();
    let seen_a = Seen::default();
    let seen_b = Seen::default();
    let cfg = StageConfig {
        restart: RestartPolicy {
            max_restarts: 2,
            window: Duration::from_secs(10),
        },
        ..config("a", 8)
    };
    let a = start_stage(cfg, recorder(&seen_a), on_failure.clone()).expect("valid config");
    let b = start_stage(config("b", 8), recorder(&seen_b), on_failure).expect("valid config");
    let to_a = a.sender(Priority::Low);
    for item in [Item::Panic, Item::Panic, Item::Panic, Item::Data(7)] {
        to_a.send(item).await.expect("a open while queueing");
    }

    let failed = timeout(LIMIT, failures.recv())
        .await
        .expect("escalation in time")
        .expect("failure sink open");
    assert_eq!(failed.stage, "a");
    assert_eq!(failed.restarts, 2);
    assert_eq!(failed.window, Duration::from_secs(10));
    assert_eq!(failed.cause, "panic: injected fault");

    let c = a.counters().await.expect("a still answers queries");
    assert!(c.failed);
    assert_eq!((c.restarts, c.panics), (2, 3));
    assert_eq!(c.low.dropped.get(reason::HANDLER_PANIC), 3);
    assert_eq!(c.low.dropped.get(reason::STAGE_FAILED), 1, "queued Data(7)");
    assert!(values(&seen_a).is_empty());

    // A failed stage refuses new work: lossless sends fail, droppable ones are counted.
    match to_a.send(Item::Data(8)).await {
        Err(SendError(Item::Data(8))) => {}
        other => panic!("expected SendError(Data(8)), got {other:?}"),
    }
    assert!(matches!(
        to_a.try_send(Item::Data(9)),
        Err(TrySendError::Closed(Item::Data(9)))
    ));
    let c = a.counters().await.expect("counters");
    assert_eq!(c.low.dropped.get(reason::CLOSED), 1);
    assert!(failures.try_recv().is_err(), "escalated exactly once");

    // The other stage is unaffected.
    b.sender(Priority::Low)
        .send(Item::Data(1))
        .await
        .expect("b open");
    done(&b, Priority::Low).await;
    assert_eq!(values(&seen_b), vec![1]);
}

#[actix::test]
async fn invalid_configs_are_typed_errors() {
    let (on_failure, _failures) = failure_channel();
    let seen = Seen::default();
    let zero_turn = StageConfig {
        turn: 0,
        ..StageConfig::new("x")
    };
    assert_eq!(
        start_stage(zero_turn, recorder(&seen), on_failure.clone()).err(),
        Some(StageConfigError::ZeroTurn("x"))
    );
    let zero_low = config("y", 0);
    let err =
        start_stage(zero_low, recorder(&seen), on_failure).expect_err("zero capacity rejected");
    assert_eq!(
        err.to_string(),
        "stage y: Low queue capacity must be at least 1"
    );
}

/// Forwards `Data` items losslessly to the next stage through its outbox.
struct Forwarder {
    next: flowmesh_actors::runtime::Edge<Item>,
}

impl Stage for Forwarder {
    type Item = Item;
    type Error = Injected;

    fn handle(&mut self, item: Item, out: &mut Outbox) -> Result<(), Injected> {
        out.send(&self.next, item);
        Ok(())
    }
}

#[actix::test]
async fn a_full_downstream_stalls_the_forwarder_which_then_blocks_its_producer_exactly() {
    const CONSUMER: usize = 2;
    const FORWARDER: usize = 3;
    let held = held_consumer(CONSUMER).await;
    let (on_failure, _failures) = failure_channel();
    let next = held.stage.edge(Priority::Low, Delivery::Lossless);
    let fwd = start_stage(
        config("forwarder", FORWARDER),
        move || Forwarder { next: next.clone() },
        on_failure,
    )
    .expect("valid config");
    let input = fwd.sender(Priority::Low);
    let mut accepted = 0u32;
    for i in 0..20 {
        match timeout(Duration::from_millis(300), input.send(Item::Data(i))).await {
            Ok(res) => {
                res.expect("forwarder open");
                accepted += 1;
            }
            Err(_) => break,
        }
    }
    // The consumer's queue holds CONSUMER items, the forwarder holds one parked send, and
    // its own queue holds FORWARDER more: then the producer waits.
    assert_eq!(accepted as usize, CONSUMER + 1 + FORWARDER);
    held.gate.send(()).expect("release the consumer");
    for i in accepted..20 {
        timeout(LIMIT, input.send(Item::Data(i)))
            .await
            .expect("room once the consumer runs")
            .expect("forwarder open");
    }
    // Wait for the last item to pass through the forwarder and the consumer.
    let deadline = std::time::Instant::now() + LIMIT;
    while values(&held.seen).len() < 20 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        values(&held.seen),
        (0..20).collect::<Vec<_>>(),
        "all delivered, in order"
    );
    held.arbiter.stop();
}
