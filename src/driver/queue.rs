//! The bounded event queue between a driver and its application: what an
//! application that reads slowly (or never) is owed, in bounded memory.
//!
//! Three rules, applied on every push, so that memory never grows with what
//! happened while nobody read:
//! - at most one undelivered [`Event::Session`]: a newer one supersedes it, and
//!   the superseded media is dropped (which closes it) and counted;
//! - at most one undelivered [`Event::ViewerCount`]: a count is a level, the
//!   newer one replaces it;
//! - at most [`CAPACITY`] events: a full queue makes room by merging its oldest
//!   state change into the next one (`A → B`, `B → C` become `A → C`, with the
//!   later reason), or, when no two state changes are left, by dropping its
//!   oldest error or an older give-up. Each is counted.
//!
//! An application that reads as events come sees every event, in order: the
//! third rule only acts on a queue that is full.

use std::collections::VecDeque;

use crate::driver::Event;

/// How many undelivered events one viewer's queue holds at most.
pub const CAPACITY: usize = 16;

/// What a viewer's queue coalesced or dropped because its application had not
/// read the events yet: see [`Viewer::dropped`](crate::Viewer::dropped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dropped {
    /// Sessions superseded before delivery; their media was dropped, closing it.
    pub sessions: u64,
    /// Viewer counts replaced by a newer count before delivery.
    pub viewer_counts: u64,
    /// State changes merged into the next one.
    pub states: u64,
    /// Errors (and older give-ups) dropped from a full queue.
    pub errors: u64,
}

impl Dropped {
    /// Adds `other`'s counts to these.
    pub(crate) fn add(&mut self, other: Dropped) {
        self.sessions += other.sessions;
        self.viewer_counts += other.viewer_counts;
        self.states += other.states;
        self.errors += other.errors;
    }
}

/// A bounded, coalescing FIFO of one viewer's events.
pub(crate) struct EventQueue<M, E> {
    events: VecDeque<Event<M, E>>,
    dropped: Dropped,
}

impl<M, E> EventQueue<M, E> {
    pub(crate) fn new() -> Self {
        EventQueue {
            events: VecDeque::new(),
            dropped: Dropped::default(),
        }
    }

    pub(crate) fn pop(&mut self) -> Option<Event<M, E>> {
        self.events.pop_front()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    pub(crate) fn dropped(&self) -> Dropped {
        self.dropped
    }

    /// Appends `event`, coalescing by the module's rules. Returns the media of
    /// a superseded session, for the caller to drop outside any lock.
    pub(crate) fn push(&mut self, event: Event<M, E>) -> Option<M> {
        let mut superseded = None;
        match &event {
            Event::Session(_) => {
                if let Some(i) = self.position(|e| matches!(e, Event::Session(_)))
                    && let Some(Event::Session(media)) = self.events.remove(i)
                {
                    self.dropped.sessions += 1;
                    superseded = Some(media);
                }
            }
            Event::ViewerCount(_) => {
                if let Some(i) = self.position(|e| matches!(e, Event::ViewerCount(_))) {
                    self.events.remove(i);
                    self.dropped.viewer_counts += 1;
                }
            }
            Event::State { .. } | Event::Error(_) | Event::GaveUp(_) => {}
        }
        if self.events.len() >= CAPACITY {
            self.make_room();
        }
        self.events.push_back(event);
        superseded
    }

    fn position(&self, f: impl Fn(&Event<M, E>) -> bool) -> Option<usize> {
        self.events.iter().position(f)
    }

    /// Frees one slot of a full queue. With at most one session and one count
    /// queued, a full queue holds at least `CAPACITY - 2` state changes, errors
    /// and give-ups, so one of the three moves below always applies.
    fn make_room(&mut self) {
        let first_state = self.position(|e| matches!(e, Event::State { .. }));
        let second_state = first_state.and_then(|i| {
            (i + 1..self.events.len()).find(|&j| matches!(self.events[j], Event::State { .. }))
        });
        if let (Some(i), Some(j)) = (first_state, second_state)
            && let Some(Event::State { from, .. }) = self.events.remove(i)
        {
            // `j` moved down by one with the removal.
            if let Some(Event::State {
                from: next_from, ..
            }) = self.events.get_mut(j - 1)
            {
                *next_from = from;
            }
            self.dropped.states += 1;
            return;
        }
        if let Some(i) = self.position(|e| matches!(e, Event::Error(_))) {
            self.events.remove(i);
            self.dropped.errors += 1;
            return;
        }
        if let Some(i) = self.position(|e| matches!(e, Event::GaveUp(_))) {
            self.events.remove(i);
            self.dropped.errors += 1;
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::machine::{Reason, State};

    type Q = EventQueue<u32, &'static str>;

    fn state(from: State, to: State) -> Event<u32, &'static str> {
        Event::State {
            from,
            to,
            reason: Reason::Connected,
            retry_in: None,
        }
    }

    #[test]
    fn a_newer_session_supersedes_an_undelivered_one() {
        let mut q = Q::new();
        assert_eq!(q.push(Event::Session(1)), None);
        assert_eq!(q.push(Event::Error("lost")), None);
        assert_eq!(q.push(Event::Session(2)), Some(1));
        assert!(matches!(q.pop(), Some(Event::Error("lost"))));
        assert!(matches!(q.pop(), Some(Event::Session(2))));
        assert_eq!(q.dropped().sessions, 1);
    }

    #[test]
    fn a_viewer_count_replaces_an_undelivered_one() {
        let mut q = Q::new();
        q.push(Event::ViewerCount(1));
        q.push(Event::ViewerCount(2));
        assert!(matches!(q.pop(), Some(Event::ViewerCount(2))));
        assert!(q.is_empty());
    }

    #[test]
    fn a_full_queue_merges_state_changes_into_one_chain() {
        let t0 = tokio::time::Instant::now().into_std();
        let playing = State::Playing { since: t0 };
        let mut q = Q::new();
        q.push(state(State::Idle, playing));
        for _ in 1..CAPACITY + 10 {
            q.push(state(playing, State::Idle));
            q.push(Event::Error("e"));
        }
        assert_eq!(q.len(), CAPACITY);
        // The first state change still starts where the application last was.
        let first = q.position(|e| matches!(e, Event::State { .. }));
        assert!(matches!(
            first.and_then(|i| q.events.get(i)),
            Some(Event::State {
                from: State::Idle,
                ..
            })
        ));
        assert!(q.dropped().states > 0);
    }

    #[test]
    fn a_queue_of_errors_stays_bounded() {
        let mut q = Q::new();
        for _ in 0..1000 {
            q.push(Event::Error("e"));
        }
        assert_eq!(q.len(), CAPACITY);
        assert_eq!(q.dropped().errors, 1000 - CAPACITY as u64);
    }
}
