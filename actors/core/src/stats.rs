//! Small counter types shared by the stages.

use std::fmt;

/// Counts by reason name, for drops and incomplete handshakes. Reasons are few and
/// `&'static str`, so a short vector beats a map and allocates only for a new reason.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ReasonCounts {
    counts: Vec<(&'static str, u64)>,
}

impl ReasonCounts {
    /// Adds `n` to `reason`.
    pub fn add(&mut self, reason: &'static str, n: u64) {
        match self.counts.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, c)) => *c += n,
            None => self.counts.push((reason, n)),
        }
    }

    /// Adds one to `reason`.
    pub fn bump(&mut self, reason: &'static str) {
        self.add(reason, 1);
    }

    /// The count of `reason` (0 if never seen).
    pub fn get(&self, reason: &str) -> u64 {
        self.counts
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, c)| *c)
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, c)| c).sum()
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &ReasonCounts) {
        for (r, c) in &other.counts {
            self.add(r, *c);
        }
    }

    /// (reason, count) pairs sorted by reason.
    pub fn sorted(&self) -> Vec<(&'static str, u64)> {
        let mut v = self.counts.clone();
        v.sort_unstable();
        v
    }
}

impl fmt::Debug for ReasonCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.sorted()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_merges() {
        let mut a = ReasonCounts::default();
        a.bump("x");
        a.add("y", 3);
        a.bump("x");
        let mut b = ReasonCounts::default();
        b.add("x", 5);
        b.merge(&a);
        assert_eq!(b.get("x"), 7);
        assert_eq!(b.get("y"), 3);
        assert_eq!(b.get("z"), 0);
        assert_eq!(b.total(), 10);
        assert_eq!(b.sorted(), vec![("x", 7), ("y", 3)]);
    }
}
