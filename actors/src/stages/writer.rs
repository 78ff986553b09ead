//! The writer stage: the one place output is written — JSON lines to a stream for
//! `replay`, whole records to a [`RecordSink`] (the daemon's flow store). Runs on its own
//! thread, since writing can block (ARCHITECTURE §3: blocking work never shares a packet
//! arbiter).
//!
//! Owns the output (shared with its restarts) and the completion signal: once every encoder
//! has sent its `EndOfInput`, it flushes and reports how writing went.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use flowmesh_schemas::FlowRecord;

use thiserror::Error;
use tokio::sync::oneshot;

use crate::runtime::{Outbox, Stage};
use crate::stats::StatsBoard;

/// What the writer's queue carries (see the table in [`crate::stages`]).
#[derive(Debug)]
pub enum WriterItem {
    /// Encoded records.
    Bytes {
        /// JSON lines.
        bytes: Vec<u8>,
        /// How many records they hold.
        records: u64,
    },
    /// Records for a [`RecordSink`], a flow's interim record (end reason `open`) ahead of
    /// its final one.
    Records(Vec<FlowRecord>),
    /// One encoder has sent everything.
    EndOfInput,
}

/// A writer failure (none: write errors end the run through the completion signal).
#[derive(Debug, Error)]
#[error("writer failed")]
pub struct WriterError;

/// Stores whole flow records (the daemon's flow store).
pub trait RecordSink: Send {
    /// Stores `records`; returns once they are committed. A flow's interim record comes
    /// before its final one, in this batch or an earlier one.
    fn write(&mut self, records: &[FlowRecord]) -> io::Result<()>;
}

/// Where a pipeline's records go.
pub enum Output {
    /// JSON lines to a byte stream; the encoders produce the lines.
    JsonLines(Box<dyn Write + Send>),
    /// Whole records to a sink; the encoders pass them through.
    Records(Box<dyn RecordSink>),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Output::JsonLines(_) => "Output::JsonLines",
            Output::Records(_) => "Output::Records",
        })
    }
}

impl Output {
    /// Encoders turn records into JSON lines for this output.
    pub fn wants_json(&self) -> bool {
        matches!(self, Output::JsonLines(_))
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Output::JsonLines(w) => w.write_all(bytes),
            Output::Records(_) => Err(io::Error::other("JSON lines sent to a record sink")),
        }
    }

    fn write_records(&mut self, records: &[FlowRecord]) -> io::Result<()> {
        match self {
            Output::Records(sink) => sink.write(records),
            Output::JsonLines(_) => Err(io::Error::other("records sent to a JSON-lines output")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::JsonLines(w) => w.flush(),
            Output::Records(_) => Ok(()),
        }
    }
}

/// The output and the completion signal, shared by the writer's lives.
pub struct WriterShared {
    output: Mutex<Output>,
    done: Mutex<Option<oneshot::Sender<std::io::Result<()>>>>,
}

impl std::fmt::Debug for WriterShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterShared").finish_non_exhaustive()
    }
}

impl WriterShared {
    /// Writes to `output`; the result of the run goes to `done`.
    pub fn new(output: Output, done: oneshot::Sender<std::io::Result<()>>) -> Arc<Self> {
        Arc::new(WriterShared {
            output: Mutex::new(output),
            done: Mutex::new(Some(done)),
        })
    }

    fn finish(&self, result: std::io::Result<()>) {
        let tx = self
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(tx) = tx {
            let _ = tx.send(result);
        }
    }
}

/// The writer stage. See the module docs.
#[derive(Debug)]
pub struct WriterStage {
    shared: Arc<WriterShared>,
    encoders: usize,
    ended: usize,
    records: u64,
    interim: u64,
    failed: bool,
    board: StatsBoard,
}

impl WriterStage {
    /// A writer fed by `encoders` encoders.
    pub fn new(shared: Arc<WriterShared>, encoders: usize, board: StatsBoard) -> Self {
        WriterStage {
            shared,
            encoders,
            ended: 0,
            records: 0,
            interim: 0,
            failed: false,
            board,
        }
    }

    /// Shows the records written so far on the stats board.
    fn publish(&self) {
        let mut board = self.board.lock();
        board.records_written = self.records;
        board.interim_written = self.interim;
    }
}

impl Stage for WriterStage {
    type Item = WriterItem;
    type Error = WriterError;

    fn handle(&mut self, item: WriterItem, _out: &mut Outbox) -> Result<(), WriterError> {
        if self.failed {
            return Ok(());
        }
        let mut output = self
            .shared
            .output
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let result = match item {
            WriterItem::Bytes { bytes, records } => {
                self.records += records;
                output.write_bytes(&bytes)
            }
            WriterItem::Records(records) => {
                let interim = records.iter().filter(|r| r.is_interim()).count() as u64;
                self.interim += interim;
                self.records += records.len() as u64 - interim;
                output.write_records(&records)
            }
            WriterItem::EndOfInput => {
                self.ended += 1;
                if self.ended < self.encoders {
                    return Ok(());
                }
                self.publish();
                let flushed = output.flush();
                drop(output);
                self.shared.finish(flushed);
                return Ok(());
            }
        };
        drop(output);
        match result {
            // Per batch, so a live pipeline (which never ends) shows what it has stored.
            Ok(()) => self.publish(),
            Err(e) => {
                self.failed = true;
                self.shared.finish(Err(e));
            }
        }
        Ok(())
    }
}
