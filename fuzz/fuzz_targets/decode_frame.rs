//! Fuzzes `Decoder::decode` on one frame of a fuzzer-chosen link type (every `LinkType`).
//! Input format and invariants: see `run_decode_frame` in `fuzz/src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flowmesh_fuzz::run_decode_frame(data));
