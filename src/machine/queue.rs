//! The inline output queue: a fixed ring, no allocation.
//!
//! A transition stores only the phase it left; the phase it entered is the
//! `from` of the next queued transition, or the machine's current phase. That
//! halves the size of the queue and cannot disagree with the machine.

use crate::machine::state::Phase;
use crate::machine::{GiveUpReason, Reason};

/// Room for one input's outputs: at most four (an abort or drop, a transition
/// into `Backoff`, then, when a kept live hint fires at once, a transition into
/// `Connecting` and the connect).
pub(crate) const CAPACITY: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    Connect(u32),
    Keep,
    Abort(Reason),
    Drop(Reason),
    Repair(Reason),
    Transition { from: Phase, reason: Reason },
    GaveUp(GiveUpReason),
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Queue {
    slots: [Option<Pending>; CAPACITY],
    head: u8,
    len: u8,
    overwritten: u32,
}

impl Queue {
    pub(crate) const fn new() -> Self {
        Queue {
            slots: [None; CAPACITY],
            head: 0,
            len: 0,
            overwritten: 0,
        }
    }

    /// Appends; when the caller has not drained, the oldest entry makes room.
    pub(crate) fn push(&mut self, p: Pending) {
        if usize::from(self.len) == CAPACITY {
            self.pop();
            self.overwritten = self.overwritten.saturating_add(1);
        }
        let tail = (usize::from(self.head) + usize::from(self.len)) % CAPACITY;
        self.slots[tail] = Some(p);
        self.len += 1;
    }

    pub(crate) fn pop(&mut self) -> Option<Pending> {
        if self.len == 0 {
            return None;
        }
        let p = self.slots[usize::from(self.head)].take();
        self.head = ((usize::from(self.head) + 1) % CAPACITY) as u8;
        self.len -= 1;
        p
    }

    /// The phase left by the first queued transition, if any.
    pub(crate) fn next_transition_from(&self) -> Option<Phase> {
        (0..usize::from(self.len)).find_map(|i| {
            match self.slots[(usize::from(self.head) + i) % CAPACITY] {
                Some(Pending::Transition { from, .. }) => Some(from),
                _ => None,
            }
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many outputs were lost because the caller did not drain.
    pub(crate) fn overwritten(&self) -> u32 {
        self.overwritten
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_and_wraparound() {
        let mut q = Queue::new();
        for round in 0..10u32 {
            q.push(Pending::Connect(round));
            q.push(Pending::Connect(round + 100));
            assert_eq!(q.pop(), Some(Pending::Connect(round)));
            assert_eq!(q.pop(), Some(Pending::Connect(round + 100)));
            assert_eq!(q.pop(), None);
        }
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts_it() {
        let mut q = Queue::new();
        for n in 0..(CAPACITY as u32 + 2) {
            q.push(Pending::Connect(n));
        }
        assert_eq!(q.overwritten(), 2);
        assert_eq!(q.pop(), Some(Pending::Connect(2)));
    }
}
