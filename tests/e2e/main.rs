//! End-to-end tests of the `flowmesh` binary: one test binary, a module per area.

mod corpus;
mod daemon;
mod live;
mod loadgen;
mod replay_cli;
mod support;
