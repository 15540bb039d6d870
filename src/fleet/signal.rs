//! How a shard's task learns that something needs it: one pending flag and one
//! waker for the whole shard, and a list of the slots whose futures woke.
//!
//! Every slot has one [`Waker`] made once when it joins (no allocation per
//! wake): waking it lists the slot once, until the shard polls it again, and
//! wakes the shard's task unless a wake is already pending.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use crate::driver::wakeup::Wakeup;

/// The shard's wake-up: pending flag, task waker, woken slots.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    wakeup: Wakeup,
    ready: Mutex<Vec<u32>>,
}

impl Signal {
    /// Wakes the shard's task unless a wake is pending already.
    pub(crate) fn notify(&self) {
        self.wakeup.notify();
    }

    /// Ready once [`notify`](Signal::notify) was called since the last call.
    pub(crate) fn poll_pending(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.wakeup.poll_pending(cx)
    }

    /// Swaps the woken slots into `into` (empty; its capacity is reused).
    pub(crate) fn take_ready(&self, into: &mut Vec<u32>) {
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut *ready, into);
    }

    /// The waker of slot `index`, and the flag that lists it once.
    pub(crate) fn slot_waker(self: &Arc<Self>, index: u32) -> (Waker, Arc<SlotWaker>) {
        let slot = Arc::new(SlotWaker {
            signal: Arc::clone(self),
            index,
            listed: AtomicBool::new(false),
        });
        (Waker::from(Arc::clone(&slot)), slot)
    }
}

/// One slot's waker.
#[derive(Debug)]
pub(crate) struct SlotWaker {
    signal: Arc<Signal>,
    index: u32,
    listed: AtomicBool,
}

impl SlotWaker {
    /// The shard is about to poll this slot: a wake from now on lists it again.
    pub(crate) fn unlist(&self) {
        self.listed.store(false, Ordering::Release);
    }
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.listed.swap(true, Ordering::AcqRel) {
            self.signal
                .ready
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self.index);
            self.signal.notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_listed_once_until_unlisted() {
        let signal = Arc::new(Signal::default());
        let (waker, slot) = signal.slot_waker(3);
        waker.wake_by_ref();
        waker.wake_by_ref();
        let mut ready = Vec::new();
        signal.take_ready(&mut ready);
        assert_eq!(ready, [3]);
        slot.unlist();
        waker.wake_by_ref();
        let mut again = Vec::new();
        signal.take_ready(&mut again);
        assert_eq!(again, [3]);
    }
}
