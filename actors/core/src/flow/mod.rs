//! Flows: the per-shard flow table, TCP connection state, timeouts, and Community ID.

pub mod community_id;
mod table;

pub use table::{
    FlowEntry, FlowMeta, FlowTable, FlowTableConfig, FlowTableStats, PacketView, Side, TcpFlags,
};
