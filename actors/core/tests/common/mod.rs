//! Shared by the core's corpus tests: where the public corpus is, and a counting allocator
//! for the tests that assert a path does not allocate. Each test binary uses a part.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

/// The corpus root (holding `pcaps/` and `expected.jsonl`): `$FLOWMESH_CORPUS`, else
/// `shared/corpus` beside the workspace. Panics with what to set when it is absent.
pub fn corpus_root() -> PathBuf {
    let dir = std::env::var_os("FLOWMESH_CORPUS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
        PathBuf::from,
    );
    assert!(
        dir.join("pcaps").is_dir() && dir.join("expected.jsonl").is_file(),
        "corpus not found at {}: set FLOWMESH_CORPUS to the folder holding pcaps/ and expected.jsonl",
        dir.display()
    );
    dir
}

/// The corpus captures folder.
pub fn pcaps_dir() -> PathBuf {
    corpus_root().join("pcaps")
}

/// Every capture (pcap, pcapng) of the corpus, by name; panics if there is none.
pub fn corpus_captures() -> Vec<PathBuf> {
    let mut names: Vec<_> = std::fs::read_dir(pcaps_dir())
        .expect("corpus")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "the corpus holds no captures");
    names
}

thread_local! {
    /// Heap allocations made by this thread (no destructor, so safe inside the allocator).
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

/// Counts allocations per thread; a test binary installs it with `#[global_allocator]`.
pub struct CountingAlloc;

fn count_alloc() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to the system allocator unchanged; counting touches only
// a const-initialised thread-local Cell.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_alloc();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations this thread has made so far (with [`CountingAlloc`] installed).
pub fn allocations() -> u64 {
    ALLOCS.with(Cell::get)
}
