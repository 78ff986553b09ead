//! The pipeline's stages, each a thin [`Stage`](crate::runtime::Stage) over flowmesh-core,
//! and the items their queues carry.
//!
//! | item | queue | kind |
//! |---|---|---|
//! | [`ShardItem::Packets`] | low | must-deliver from files, droppable from live sources |
//! | [`ShardItem::Updates`] | high | droppable (hints: a lost one only delays early discard) |
//! | [`ShardItem::EndOfInput`] | low | must-deliver, after the source's last batch |
//! | [`ShardItem::FinishMore`] | low | must-deliver (the shard to itself, ending its flows a chunk at a time) |
//! | [`WorkerItem::Work`] | low | must-deliver (carries records of flows with a session) |
//! | [`WorkerItem::Tick`] | low | must-deliver (flushes gathered records) |
//! | [`WorkerItem::EndOfInput`] | low | must-deliver |
//! | [`SchedulerItem::Records`] | low | must-deliver |
//! | [`SchedulerItem::Events`] | high | must-deliver |
//! | [`SchedulerItem::Service`] | high | droppable (a lost report only ages the estimate) |
//! | [`SchedulerItem::EndOfInput`] | low | must-deliver |
//! | [`EncoderItem::Records`] / [`EncoderItem::EndOfInput`] | low | must-deliver |
//! | [`WriterItem::Bytes`] / [`WriterItem::Records`] / [`WriterItem::EndOfInput`] | low | must-deliver |
//!
//! End of input travels the same queues as the data before it, so a stage that has seen
//! an `EndOfInput` from every producer has seen all their data.

pub mod encoder;
pub mod scheduler;
pub mod shard;
pub mod worker;
pub mod writer;

pub use encoder::{EncoderItem, EncoderStage};
pub use scheduler::{SchedulerItem, SchedulerStage};
pub use shard::{Fault, ShardItem, ShardStage};
pub use worker::{WorkerItem, WorkerStage};
pub use writer::{Output, RecordSink, WriterItem, WriterStage};
