//! Compiles the Cap'n Proto schemas. Needs the `capnp` tool (Debian: `capnproto`).
fn main() {
    println!("cargo:rerun-if-changed=capnp/flow.capnp");
    if let Err(e) = capnpc::CompilerCommand::new()
        .src_prefix("capnp")
        .output_path(
            std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR set by cargo"))
                .join("capnp"),
        )
        .file("capnp/flow.capnp")
        .run()
    {
        panic!("compiling capnp/flow.capnp failed: {e}. Install the `capnp` tool (Debian: apt-get install capnproto).");
    }
}
