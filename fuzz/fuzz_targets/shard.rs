//! Fuzzes a whole `Shard`: `process_frame` over frames split from the input, then `finish`.
//! Input format and invariants: see `run_shard` in `fuzz/src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flowmesh_fuzz::run_shard(data));
