//! Fan-out: how one serialized frame reaches every viewer of a stream without the node's lock.
//!
//! Under the lock, the [`Node`](crate::relay::core::Node) only queues a frame in its stream's
//! [`Outbox`] with who gets it — a copy-on-write snapshot of the stream's viewers (an `Arc`
//! clone, O(1)) or a single peer — and hands the outbox back as [`Deliveries`]. After the lock
//! is released, [`Deliveries::deliver`] drains each outbox: one caller at a time per stream
//! delivers its frames in the order they were queued (a caller that finds another one
//! draining leaves its frames to it), so viewers see a stream's events in order while no lock
//! is held for more than a queue push or pop. Every viewer gets the same [`Frame`] — its bytes
//! written to the viewer's socket by the delivering caller itself (no task woken per viewer),
//! or a refcounted clone queued in the viewer's [`Outlet`](crate::relay::outlet::Outlet) when
//! the socket is full; [`fan_out`] is that loop.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::relay::broker::{Frame, Peer};

/// The viewers of one stream by connection id, shared copy-on-write with the fan-outs in flight.
///
/// Ordered by id, which is the order the relay accepted the connections in: a fan-out then
/// walks the viewers' sockets (and the kernel's file table and socket structures behind them)
/// in about the order they were allocated, which the CPU's caches and prefetchers reward —
/// walked in hash order, the same writes cost measurably more.
pub(crate) type Viewers = BTreeMap<u64, Peer>;

/// Writes `frame` to every viewer in `viewers` (the same bytes, never a copy), without waiting;
/// a viewer whose queue is full is kicked by [`Peer::deliver`]. Returns how many took it. The
/// relay's hot path: one call per event and stream.
pub(crate) fn fan_out(frame: &Frame, viewers: &Viewers) -> usize {
    viewers
        .values()
        .filter(|viewer| viewer.deliver(frame))
        .count()
}

/// Who a queued frame is for.
#[derive(Debug)]
enum Audience {
    /// The stream's viewers when the frame was queued.
    Viewers(Arc<Viewers>),
    /// One connection (a snapshot for a new viewer, `replaced` for a publisher).
    One(Peer),
}

#[derive(Debug, Default)]
struct Pending {
    frames: VecDeque<(Frame, Audience)>,
    /// A caller is delivering this outbox's frames.
    draining: bool,
}

/// The frames of one stream waiting to be delivered, in order.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pending: Mutex<Pending>,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Each update is one push or pop: a panic elsewhere leaves the queue whole.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `frame` for every viewer in `viewers` (a snapshot: later joins do not get it).
    pub(crate) fn to_viewers(&self, frame: Frame, viewers: &Arc<Viewers>) {
        if !viewers.is_empty() {
            let audience = Audience::Viewers(Arc::clone(viewers));
            self.lock().frames.push_back((frame, audience));
        }
    }

    /// Queues `frame` for one connection, after what is already queued for the stream.
    pub(crate) fn to_one(&self, frame: Frame, peer: Peer) {
        self.lock().frames.push_back((frame, Audience::One(peer)));
    }

    /// Delivers what is queued, unless another caller is at it (it delivers ours too).
    fn drain(&self) {
        let mut pending = self.lock();
        if pending.draining {
            return;
        }
        loop {
            let Some((frame, audience)) = pending.frames.pop_front() else {
                pending.draining = false;
                return;
            };
            pending.draining = true;
            drop(pending);
            match audience {
                Audience::Viewers(viewers) => {
                    fan_out(&frame, &viewers);
                }
                Audience::One(peer) => {
                    peer.deliver(&frame);
                }
            }
            pending = self.lock();
        }
    }
}

/// Outboxes that got frames under a lock, to drain once every lock is released: by
/// [`deliver`](Deliveries::deliver), or when dropped — so declare it before the lock guards
/// of the scope that fills it (locals drop in reverse order: the guards go first).
#[derive(Debug, Default)]
#[must_use = "frames queued under the lock reach nobody until delivered"]
pub(crate) struct Deliveries(Vec<Arc<Outbox>>);

impl Drop for Deliveries {
    fn drop(&mut self) {
        for outbox in self.0.drain(..) {
            outbox.drain();
        }
    }
}

impl Deliveries {
    /// Notes that `outbox` got frames.
    pub(crate) fn push(&mut self, outbox: &Arc<Outbox>) {
        if !self.0.iter().any(|o| Arc::ptr_eq(o, outbox)) {
            self.0.push(Arc::clone(outbox));
        }
    }

    /// Takes `other`'s outboxes into these (`other` then delivers nothing).
    pub(crate) fn append(&mut self, mut other: Deliveries) {
        for outbox in std::mem::take(&mut other.0) {
            self.push(&outbox);
        }
    }

    /// Delivers every frame queued: call it with no lock held.
    pub(crate) fn deliver(self) {
        drop(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::outlet::Outlet;

    fn peer(id: u64) -> (Peer, Arc<Outlet>) {
        Peer::detached(id, 8)
    }

    #[test]
    fn every_viewer_gets_the_same_bytes_in_the_order_queued() {
        let (a, ra) = peer(1);
        let (b, rb) = peer(2);
        let viewers = Arc::new(Viewers::from([(1, a.clone()), (2, b)]));
        let outbox = Arc::new(Outbox::default());
        outbox.to_viewers(Frame::from("one"), &viewers);
        outbox.to_one(Frame::from("only a"), a);
        outbox.to_viewers(Frame::from("two"), &viewers);
        let mut deliveries = Deliveries::default();
        deliveries.push(&outbox);
        deliveries.push(&outbox);
        assert_eq!(deliveries.0.len(), 1, "one outbox, drained once");
        deliveries.deliver();
        let (got_a, got_b) = (ra.take_frames(), rb.take_frames());
        assert_eq!(got_a, ["one", "only a", "two"]);
        assert_eq!(got_b, ["one", "two"]);
        // Shared, not copied: both queues hold the same allocation.
        assert_eq!(got_a[0].as_str().as_ptr(), got_b[0].as_str().as_ptr());
    }

    #[test]
    fn a_caller_that_finds_the_outbox_draining_leaves_its_frames_to_the_drainer() {
        let (a, ra) = peer(1);
        let outbox = Outbox::default();
        outbox.lock().draining = true;
        outbox.to_one(Frame::from("later"), a);
        outbox.drain();
        assert!(
            ra.take_frames().is_empty(),
            "the drainer in progress delivers it"
        );
        outbox.lock().draining = false;
        outbox.drain();
        assert_eq!(ra.take_frames(), ["later"]);
    }
}
