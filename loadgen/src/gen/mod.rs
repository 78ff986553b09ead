//! Generation: profiles, the flow scheduler, and the pcap + manifest outputs.

pub mod burst;
pub mod ctx;
pub mod emit;
pub mod manifest;
pub mod payload;
pub mod tcp;

mod run;

pub use emit::Impairments;
pub use run::{generate, generate_pcap_bytes, parse_size, GenError, GenOptions, Profile, Report};
