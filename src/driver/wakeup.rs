//! One task's wake-up: a pending flag and the task's waker, so that any number of notifications
//! between two polls are one wake. Shared by a viewer's [inbox](super::inbox) and a fleet
//! shard's signal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;

/// A pending flag and a task waker.
#[derive(Debug, Default)]
pub(crate) struct Wakeup {
    pending: AtomicBool,
    task: AtomicWaker,
}

impl Wakeup {
    /// Wakes the task unless a wake is pending already.
    pub(crate) fn notify(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.task.wake();
        }
    }

    /// Ready once [`notify`](Wakeup::notify) was called since the last call.
    pub(crate) fn poll_pending(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.task.register(cx.waker());
        if self.pending.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}
