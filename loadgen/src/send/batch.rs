//! Collects frames into `sendmmsg` batches and sends each batch until the kernel has taken
//! every frame of it, counting what went out.

use super::socket::{PacketSocket, BATCH};
use super::SendError;
use std::io;
use std::time::Duration;

/// Longest single wait for room in the socket or device.
const ROOM_WAIT: Duration = Duration::from_millis(10);

/// A batch of borrowed frames on its way to one socket, and the run's counters.
#[derive(Debug)]
pub(super) struct Batcher<'s, 'a> {
    sock: &'s PacketSocket,
    pending: Vec<&'a [u8]>,
    /// Frames sent.
    pub frames: u64,
    /// Bytes of the frames sent.
    pub bytes: u64,
    /// Frames skipped as too long (by the caller, or refused by the kernel with EMSGSIZE).
    pub oversize: u64,
    /// ENOBUFS/EAGAIN pushbacks.
    pub retries: u64,
}

impl<'s, 'a> Batcher<'s, 'a> {
    /// An empty batch for `sock`.
    pub fn new(sock: &'s PacketSocket) -> Self {
        Self {
            sock,
            pending: Vec::with_capacity(BATCH),
            frames: 0,
            bytes: 0,
            oversize: 0,
            retries: 0,
        }
    }

    /// Adds `frame`; sends the batch when it is full.
    pub fn push(&mut self, frame: &'a [u8]) -> Result<(), SendError> {
        self.pending.push(frame);
        if self.pending.len() == BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends every pending frame, waiting and retrying while the kernel has no room.
    pub fn flush(&mut self) -> Result<(), SendError> {
        let mut done = 0;
        while done < self.pending.len() {
            match self.sock.send_batch(&self.pending[done..]) {
                Ok(n) => {
                    let sent = &self.pending[done..done + n];
                    self.frames += n as u64;
                    self.bytes += sent.iter().map(|f| f.len() as u64).sum::<u64>();
                    done += n;
                }
                Err(e) => match e.raw_os_error() {
                    Some(libc::ENOBUFS | libc::EAGAIN) => {
                        self.retries += 1;
                        self.wait_for_room()?;
                    }
                    Some(libc::EINTR) => {}
                    // longer than the device allows after all (e.g. a second VLAN tag)
                    Some(libc::EMSGSIZE) => {
                        self.oversize += 1;
                        done += 1;
                    }
                    _ => return Err(self.error(e)),
                },
            }
        }
        self.pending.clear();
        Ok(())
    }

    /// Waits for the socket buffer, then yields so the receive side (softirq, ksoftirqd)
    /// can drain a full device backlog: ENOBUFS with the qdisc bypassed means the device
    /// dropped, which the socket's writability does not show.
    fn wait_for_room(&self) -> Result<(), SendError> {
        self.sock
            .wait_writable(ROOM_WAIT)
            .map_err(|e| self.error(e))?;
        std::thread::yield_now();
        Ok(())
    }

    fn error(&self, source: io::Error) -> SendError {
        SendError::Send {
            sent: self.frames,
            source,
        }
    }
}
