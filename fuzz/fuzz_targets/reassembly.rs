//! Fuzzes `StreamReassembler::insert`/`take_new` with fuzzer-chosen segments; checks depth, budget and prefix invariants.
//! Input format and invariants: see `run_reassembly` in `fuzz/src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flowmesh_fuzz::run_reassembly(data));
