//! The encoder stage: turns flow records into JSON lines for the writer (or passes them
//! through whole when the output stores records). Several run side by side (the scheduler
//! balances them), so encoding scales with the shards while the one writer only copies
//! bytes.

use std::time::Instant;

use flowmesh_schemas::FlowRecord;
use thiserror::Error;

use super::scheduler::SchedulerItem;
use super::writer::WriterItem;
use crate::runtime::{Edge, Outbox, Stage};

/// What an encoder's queue carries (see the table in [`crate::stages`]).
#[derive(Debug)]
pub enum EncoderItem {
    /// Records to encode.
    Records(Vec<FlowRecord>),
    /// No more records will come.
    EndOfInput,
}

/// A record that cannot be encoded (a bug: every field is plain data).
#[derive(Debug, Error)]
#[error("cannot encode a flow record: {0}")]
pub struct EncodeError(#[from] serde_json::Error);

/// The encoder stage. See the module docs.
#[derive(Debug)]
pub struct EncoderStage {
    index: usize,
    /// Encode to JSON lines (else pass records through).
    json: bool,
    writer: Edge<WriterItem>,
    /// The scheduler's high queue, droppable (service reports).
    reports: Edge<SchedulerItem>,
    served: u64,
}

impl EncoderStage {
    /// Encoder `index`, writing JSON lines (`json`) or whole records to `writer` and
    /// reporting to `reports`.
    pub fn new(
        index: usize,
        json: bool,
        writer: Edge<WriterItem>,
        reports: Edge<SchedulerItem>,
    ) -> Self {
        EncoderStage {
            index,
            json,
            writer,
            reports,
            served: 0,
        }
    }
}

impl Stage for EncoderStage {
    type Item = EncoderItem;
    type Error = EncodeError;

    fn handle(&mut self, item: EncoderItem, out: &mut Outbox) -> Result<(), EncodeError> {
        match item {
            EncoderItem::Records(records) => {
                let started = Instant::now();
                let items = records.len() as u64;
                let item = if self.json {
                    let mut buf = Vec::with_capacity(records.len() * 512);
                    for r in &records {
                        serde_json::to_writer(&mut buf, r)?;
                        buf.push(b'\n');
                    }
                    WriterItem::Bytes {
                        bytes: buf,
                        records: items,
                    }
                } else {
                    WriterItem::Records(records)
                };
                out.send(&self.writer, item);
                self.served += 1;
                out.send(
                    &self.reports,
                    SchedulerItem::Service {
                        encoder: self.index,
                        served: self.served,
                        items,
                        elapsed_ns: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
                    },
                );
            }
            EncoderItem::EndOfInput => {
                out.send(&self.writer, WriterItem::EndOfInput);
            }
        }
        Ok(())
    }
}
