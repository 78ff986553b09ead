//! Replays saved inputs without libFuzzer: `FUZZ_TARGET=<target> FUZZ_INPUT=<file>
//! cargo test --manifest-path fuzz/Cargo.toml --test replay -- --nocapture`.

#[test]
fn replay() {
    let (Ok(target), Ok(input)) = (std::env::var("FUZZ_TARGET"), std::env::var("FUZZ_INPUT"))
    else {
        return;
    };
    let data = std::fs::read(input).expect("input");
    match target.as_str() {
        "decode_frame" => flowmesh_fuzz::run_decode_frame(&data),
        "capture_file" => flowmesh_fuzz::run_capture_file(&data),
        "defrag" => flowmesh_fuzz::run_defrag(&data),
        "reassembly" => flowmesh_fuzz::run_reassembly(&data),
        "tls_hello" => flowmesh_fuzz::run_tls_hello(&data),
        "quic_initial" => flowmesh_fuzz::run_quic_initial(&data),
        "shard" => flowmesh_fuzz::run_shard(&data),
        "route" => flowmesh_fuzz::run_route(&data),
        t => panic!("unknown target {t}"),
    }
}
