//! The runtime every stage actor shares: priority inboxes, bounded edges, supervision and
//! counters.
//!
//! Owns no stage logic. A stage is a pure [`Stage`] (state + synchronous handler over
//! flowmesh-core); this module runs it as a supervised actix actor:
//!
//! - [`inbox`]: the two bounded queues (high first, with a budget so low progresses);
//! - [`edge`]: producers push into a stage's inbox through [`StageSender`] / [`Edge`],
//!   waiting for room (lossless) or dropping and counting (droppable);
//! - [`outbox`]: onward sends from a synchronous handler, parked while a target is full;
//! - [`stage`]: the actor shell that drains the inbox in bounded turns and catches panics;
//! - [`supervisor`]: restart with fresh state, restart budget, escalation;
//! - [`counters`]: the per-stage counter snapshot.
//!
//! Message kinds, as ARCHITECTURE §3 requires each to be declared:
//!
//! | message | kind | how it travels |
//! |---|---|---|
//! | stage items (`Stage::Item`) | per edge: must-deliver ([`Delivery::Lossless`]) or droppable ([`Delivery::Droppable`]) | pushed into the inbox, never through the actix mailbox |
//! | [`Drain`] | control (a wake-up; at most one outstanding) | `Recipient::do_send` / `ctx.notify` |
//! | [`GetCounters`] | query, must-deliver | `Addr::send` |
//! | [`StageFailed`] | control, must-deliver, sent once | `Recipient::do_send` |

pub mod counters;
pub mod edge;
pub mod inbox;
pub mod outbox;
pub mod stage;
pub mod supervisor;

pub use counters::{reason, DropCounts, QueueCounters, StageCounters};
pub use edge::{Delivered, Delivery, Drain, Edge, SendError, StageSender, TrySendError};
pub use inbox::{Full, InboxConfigError, Priority, PriorityInbox};
pub use outbox::Outbox;
pub use stage::{GetCounters, Stage, StageActor, StageConfig, StageConfigError, StageHandle};
pub use supervisor::{
    failure_channel, start_stage, start_stage_in_arbiter, RestartPolicy, StageFailed,
};
