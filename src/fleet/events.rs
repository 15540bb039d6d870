//! The fleet's one stream of `(viewer, event)`: each viewer's undelivered
//! events wait in its own bounded queue (the same coalescing queue as a
//! [`Viewer`](crate::Viewer)'s), which exists only while it holds events, and
//! viewers with events take turns, one event each.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use futures::task::AtomicWaker;

use crate::driver::Event;
use crate::driver::queue::{Dropped, EventQueue};
use crate::fleet::ViewerId;

struct Queues<M, E> {
    /// Viewers with undelivered events, each once, in turn order.
    turns: VecDeque<ViewerId>,
    queues: HashMap<ViewerId, EventQueue<M, E>>,
    /// What the queues that emptied had coalesced.
    dropped: Dropped,
}

/// Shared by the shards (writers) and the [`Fleet`](crate::Fleet) (reader).
pub(crate) struct Outbox<M, E> {
    queues: Mutex<Queues<M, E>>,
    reader: AtomicWaker,
}

impl<M, E> Outbox<M, E> {
    pub(crate) fn new() -> Self {
        Outbox {
            queues: Mutex::new(Queues {
                turns: VecDeque::new(),
                queues: HashMap::new(),
                dropped: Dropped::default(),
            }),
            reader: AtomicWaker::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues<M, E>> {
        // A poisoned lock means a panic elsewhere; the queues are still whole.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `event` for `id`; returns a superseded session's media, for
    /// the caller to drop outside the lock.
    pub(crate) fn push(&self, id: ViewerId, event: Event<M, E>) -> Option<M> {
        let superseded = {
            let mut q = self.lock();
            let queue = q.queues.entry(id).or_insert_with(EventQueue::new);
            let was_empty = queue.is_empty();
            let superseded = queue.push(event);
            if was_empty {
                q.turns.push_back(id);
            }
            superseded
        };
        self.reader.wake();
        superseded
    }

    /// The next event of the viewer whose turn it is.
    pub(crate) fn pop(&self) -> Option<(ViewerId, Event<M, E>)> {
        let mut q = self.lock();
        let q = &mut *q;
        while let Some(id) = q.turns.pop_front() {
            let Some(queue) = q.queues.get_mut(&id) else {
                continue;
            };
            let event = queue.pop();
            if queue.is_empty() {
                if let Some(queue) = q.queues.remove(&id) {
                    q.dropped.add(queue.dropped());
                }
            } else {
                q.turns.push_back(id);
            }
            if let Some(event) = event {
                return Some((id, event));
            }
        }
        // Everything was read: give back what a burst of events (a start of
        // 100 000 viewers) made the map and the turns grow to.
        if q.queues.capacity() > 1024 {
            q.queues.shrink_to(64);
            q.turns.shrink_to(64);
        }
        None
    }

    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.reader.register(waker);
    }

    /// Everything coalesced so far, over every viewer.
    pub(crate) fn dropped(&self) -> Dropped {
        let q = self.lock();
        let mut total = q.dropped;
        for queue in q.queues.values() {
            total.add(queue.dropped());
        }
        total
    }

    /// How many events wait, over every viewer.
    pub(crate) fn queued(&self) -> usize {
        self.lock().queues.values().map(EventQueue::len).sum()
    }
}
