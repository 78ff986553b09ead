//! Fuzzes `TlsDirectionParser` (both framings, chunked feeds), the hello/certificate parsers, and JA3/JA4.
//! Input format and invariants: see `run_tls_hello` in `fuzz/src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flowmesh_fuzz::run_tls_hello(data));
