//! Flows: the per-shard flow table, TCP connection state, timeouts, and Community ID.

pub mod community_id;
mod conn_state;
mod table;

pub use conn_state::conn_state;
pub use table::{
    FlowEntry, FlowEvents, FlowMeta, FlowTable, FlowTableConfig, FlowTableStats, PacketView, Side,
};
