//! In-kernel bypass, with a stand-in for the XDP program: once the shard hands a flow to
//! the "kernel", the driver counts that flow's packets itself (as the XDP program would)
//! instead of passing them on — except TCP segments with FIN or RST and IP fragments,
//! which the XDP program also lets through. On every corpus capture the records must equal,
//! field for field, those of a run without bypass: packets, bytes, flags, last seen and the
//! connection state stay exact although most packets never reach the shard.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use flowmesh_core::capture::CaptureReader;
use flowmesh_core::decode::{DecodeConfig, Decoder};
use flowmesh_core::handshake::{FingerprintSet, WorkerConfig};
use flowmesh_core::shard::{Inline, KernelBypass, KernelCounts, ShardConfig};
use flowmesh_schemas::{FlowKey, FlowRecord, Timestamp};

mod common;
use common::corpus_captures;

type Kernel = Arc<Mutex<HashMap<FlowKey, KernelCounts>>>;

/// The shard's view of the stand-in kernel map, with a capacity.
#[derive(Debug)]
struct FakeMap {
    kernel: Kernel,
    capacity: usize,
}

impl KernelBypass for FakeMap {
    fn insert(&mut self, key: &FlowKey) -> bool {
        let mut k = self.kernel.lock().expect("kernel map");
        if k.len() >= self.capacity {
            return false;
        }
        k.entry(*key).or_default();
        true
    }

    fn last_seen(&mut self, key: &FlowKey) -> Option<Timestamp> {
        self.kernel.lock().expect("kernel map").get(key)?.last_seen
    }

    fn take(&mut self, key: &FlowKey) -> Option<KernelCounts> {
        self.kernel.lock().expect("kernel map").remove(key)
    }
}

fn worker() -> WorkerConfig {
    WorkerConfig {
        fingerprints: "ja3,ja3s,ja4,ja4s"
            .parse::<FingerprintSet>()
            .expect("names"),
        ..WorkerConfig::default()
    }
}

/// Records of `bytes` with bypass into a map of `capacity` flows; also the packets the
/// stand-in kernel counted.
fn run(bytes: &[u8], capacity: Option<usize>) -> (Vec<FlowRecord>, u64) {
    let kernel: Kernel = Arc::default();
    let mut inline = Inline::new(ShardConfig::default(), worker());
    if let Some(capacity) = capacity {
        inline = inline.with_bypass(Box::new(FakeMap {
            kernel: Arc::clone(&kernel),
            capacity,
        }));
    }
    let mut decoder = Decoder::new(DecodeConfig::default());
    let mut records = Vec::new();
    let mut counted = 0;
    for frame in CaptureReader::new(bytes).expect("capture") {
        let frame = frame.expect("frame");
        // What the XDP program does: key the packet, count it if its flow is bypassed.
        if let Ok(Some(p)) = decoder.decode(frame.ts, frame.link, frame.data, frame.orig_len) {
            let fin_or_rst = p.tcp.is_some_and(|t| t.flags & 0x05 != 0);
            if !p.fragmented && !fin_or_rst {
                let (key, from_lo) = p.flow_key();
                if let Some(c) = kernel.lock().expect("kernel map").get_mut(&key) {
                    let side = usize::from(!from_lo);
                    c.packets[side] += 1;
                    c.bytes[side] += u64::from(frame.orig_len);
                    c.tcp_flags[side] |= p.tcp.map_or(0, |t| t.flags);
                    c.last_seen = Some(frame.ts);
                    counted += 1;
                    continue;
                }
            }
        }
        inline.process_frame(&frame, &mut records);
    }
    inline.finish(&mut records);
    let stats = inline.shard_stats().bypass;
    if capacity.is_some() {
        assert_eq!(
            stats.packets, counted,
            "every kernel-counted packet is in a record"
        );
        assert!(
            kernel.lock().expect("kernel map").is_empty(),
            "every bypassed flow was taken back"
        );
    }
    (records, counted)
}

fn sorted(mut r: Vec<FlowRecord>) -> Vec<String> {
    let mut s: Vec<String> = r.drain(..).map(|r| format!("{r:?}")).collect();
    s.sort();
    s
}

#[test]
fn bypassed_flows_keep_exact_records_on_every_capture() {
    let mut total_bypassed = 0;
    for path in corpus_captures() {
        let bytes = std::fs::read(&path).expect("read");
        let (plain, none) = run(&bytes, None);
        assert_eq!(none, 0);
        let (bypassed, counted) = run(&bytes, Some(usize::MAX));
        assert_eq!(
            sorted(bypassed),
            sorted(plain.clone()),
            "{}",
            path.display()
        );
        // A map with no room refuses every flow: the same records again.
        let (refused, zero) = run(&bytes, Some(0));
        assert_eq!(zero, 0);
        assert_eq!(sorted(refused), sorted(plain), "{}", path.display());
        total_bypassed += counted;
    }
    assert!(total_bypassed > 0, "no packet of the corpus was bypassed");
}
