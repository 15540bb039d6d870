//! What reaches a viewer's task from its handles: commands in order, the
//! latest progress report in one cell, and whether the viewer was dropped.
//!
//! A progress report never allocates and never queues: it overwrites the cell
//! with the media time and the instant it was reported, and wakes the task
//! unless a wake is already pending. Many reports between two polls of the task
//! are one wake and one tick (the latest: media time is a level, and a tick is
//! fed at the instant it was reported, so the stall watchdog sees it as it was).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::wakeup::Wakeup;
use crate::machine::Input;

/// A command for a viewer's task (one more control is one more variant, or
/// one more [`Input`]).
#[derive(Debug)]
pub(crate) enum Command {
    /// Feed this input now.
    Input(Input),
    /// Stop, and say so once `Idle`.
    Stop(oneshot::Sender<()>),
}

#[derive(Debug, Default)]
struct Inner {
    progress: Option<(Duration, Instant)>,
    commands: VecDeque<Command>,
    closed: bool,
}

/// The handles' side of one viewer's task.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    inner: Mutex<Inner>,
    wakeup: Wakeup,
}

/// What the task takes out on a wake.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    pub(crate) progress: Option<(Duration, Instant)>,
    pub(crate) closed: bool,
}

impl Inbox {
    /// Queues `command`; once the viewer is gone it is dropped instead (a
    /// `Stop`'s waiter hears at once).
    pub(crate) fn send(&self, command: Command) {
        self.with(|inner| {
            if !inner.closed {
                inner.commands.push_back(command);
            }
        });
    }

    pub(crate) fn report_progress(&self, media: Duration, at: Instant) {
        self.with(|inner| inner.progress = Some((media, at)));
    }

    /// The viewer is gone: the task ends on its next wake.
    pub(crate) fn close(&self) {
        self.with(|inner| inner.closed = true);
    }

    fn with(&self, f: impl FnOnce(&mut Inner)) {
        // A poisoned lock means a panic elsewhere; the data is still whole.
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()));
        self.wakeup.notify();
    }

    /// Ready once something was sent since the last call.
    pub(crate) fn poll_pending(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.wakeup.poll_pending(cx)
    }

    /// Takes the progress cell and every command, in order, into `commands`
    /// (whose capacity is kept from wake to wake).
    pub(crate) fn take(&self, commands: &mut VecDeque<Command>) -> Taken {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut inner.commands, commands);
        Taken {
            progress: inner.progress.take(),
            closed: inner.closed,
        }
    }
}
