//! Fuzzes `QuicInitialTracker::on_datagram` with raw datagrams and with validly protected Initials around fuzzer-chosen frames.
//! Input format and invariants: see `run_quic_initial` in `fuzz/src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flowmesh_fuzz::run_quic_initial(data));
