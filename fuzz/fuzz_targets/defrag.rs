//! Fuzzes IPv4/IPv6 defragmentation through `Decoder::decode` with structured fragment trains.
//! Input format and invariants: see `run_defrag` in `fuzz/src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flowmesh_fuzz::run_defrag(data));
