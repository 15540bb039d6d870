//! One shard's timers: a min-heap of (deadline, viewer slot) with lazy re-arm.
//!
//! Each slot remembers the deadline it has in the heap (`armed`). A deadline
//! that moves later (every progress tick moves the stall deadline) leaves the
//! heap alone: the entry fires early, the machine's `handle_timeout` does
//! nothing, and the slot re-arms at its real deadline. So a viewer ticking 4×/s
//! costs one heap push per `stall_after`, not one per tick. An entry whose
//! deadline is no longer the slot's `armed` is stale and skipped when popped.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// The heap. Pure: it is fed `now` and the machines' wanted deadlines.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    heap: BinaryHeap<Reverse<(Instant, u32)>>,
}

impl Deadlines {
    /// Applies the lazy rule for slot `index` wanting `wanted`, given what it
    /// has `armed`: only an earlier (or a first) deadline is pushed.
    pub(crate) fn arm(&mut self, index: u32, armed: &mut Option<Instant>, wanted: Option<Instant>) {
        match (wanted, *armed) {
            (None, _) => *armed = None,
            (Some(w), Some(a)) if a <= w => {}
            (Some(w), _) => {
                self.heap.push(Reverse((w, index)));
                *armed = Some(w);
            }
        }
    }

    /// The earliest entry due at `now`, removed; the caller checks it against
    /// the slot's `armed` (a mismatch is a stale entry).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, u32)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// When the earliest entry is due.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// How many entries, stale ones included.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Keeps only the entries `live` accepts: stale entries pile up when
    /// deadlines keep moving earlier, so the shard compacts the heap when it
    /// holds far more entries than slots.
    pub(crate) fn retain(&mut self, live: impl Fn(u32, Instant) -> bool) {
        self.heap.retain(|Reverse((at, index))| live(*index, *at));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_later_deadline_keeps_the_armed_one_and_an_earlier_one_is_pushed() {
        let t0 = tokio::time::Instant::now().into_std();
        let s = Duration::from_secs;
        let mut d = Deadlines::default();
        let mut armed = None;
        d.arm(7, &mut armed, Some(t0 + s(2)));
        d.arm(7, &mut armed, Some(t0 + s(3)));
        assert_eq!((d.len(), armed), (1, Some(t0 + s(2))));
        d.arm(7, &mut armed, Some(t0 + s(1)));
        assert_eq!((d.len(), armed), (2, Some(t0 + s(1))));
        assert_eq!(d.pop_due(t0), None);
        assert_eq!(d.pop_due(t0 + s(5)), Some((t0 + s(1), 7)));
        // The entry at 2 s is stale now: not the slot's armed deadline.
        assert_eq!(d.pop_due(t0 + s(5)), Some((t0 + s(2), 7)));
        assert_ne!(armed, Some(t0 + s(2)));
        d.arm(7, &mut armed, None);
        assert_eq!(armed, None);
    }

    #[test]
    fn retain_drops_what_is_not_live() {
        let t0 = tokio::time::Instant::now().into_std();
        let mut d = Deadlines::default();
        for i in 0..10u32 {
            let mut armed = None;
            d.arm(
                i,
                &mut armed,
                Some(t0 + Duration::from_millis(u64::from(i))),
            );
        }
        d.retain(|index, _| index % 2 == 0);
        assert_eq!(d.len(), 5);
        assert_eq!(d.next(), Some(t0));
    }
}
