//! A burst: the packets one flow step produced, held until impairments are applied and
//! they are written. The arena is reused, so bursts allocate nothing in the steady state.

/// Frames of one flow step, in send order.
#[derive(Debug, Default)]
pub struct Burst {
    arena: Vec<u8>,
    frames: Vec<(usize, usize)>,
}

impl Burst {
    /// An empty burst.
    pub fn new() -> Self {
        Self {
            arena: Vec::with_capacity(64 * 1024),
            frames: Vec::with_capacity(64),
        }
    }

    /// Appends a copy of `frame`.
    pub fn push(&mut self, frame: &[u8]) {
        let at = self.arena.len();
        self.arena.extend_from_slice(frame);
        self.frames.push((at, frame.len()));
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when no frame was pushed.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frame `i`.
    pub fn frame(&self, i: usize) -> &[u8] {
        let (at, len) = self.frames[i];
        &self.arena[at..at + len]
    }

    /// Forgets all frames, keeping capacity.
    pub fn clear(&mut self) {
        self.arena.clear();
        self.frames.clear();
    }
}
