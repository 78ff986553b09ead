//! Fuzzes the capture-side `Router` (defragmentation and shard hashes) against a plain
//! `Decoder` fed the same frames.
//! Input format and invariants: see `run_route` in `fuzz/src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flowmesh_fuzz::run_route(data));
