//! `loadgen`: generate pcaps from traffic profiles.

fn main() {}
