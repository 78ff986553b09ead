//! Fuzzes `CaptureReader` (pcap and pcapng) on a whole capture file, decoding every frame read.
//! Input format and invariants: see `run_capture_file` in `fuzz/src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flowmesh_fuzz::run_capture_file(data));
