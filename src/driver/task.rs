//! The viewer's task: one `select!` loop over its inbox (commands, the
//! progress cell, the viewer dropped), the attempt or session, and one timer,
//! feeding the [`Runner`] and handing events to the bounded queue.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::sync::{oneshot, watch};

use crate::driver::Event;
use crate::driver::inbox::{Command, Inbox};
use crate::driver::queue::EventQueue;
use crate::driver::runner::{Io, Runner, Sink};
use crate::machine::{Input, State};
use crate::source::StreamSource;

/// The application's side of the events: the bounded queue and who waits on it.
pub(crate) struct Outbox<M, E> {
    pub(crate) queue: Mutex<EventQueue<M, E>>,
    pub(crate) reader: AtomicWaker,
    /// The task is gone (only if it panicked while the viewer lives): the
    /// stream ends once the queue is read.
    pub(crate) ended: AtomicBool,
}

impl<M, E> Outbox<M, E> {
    pub(crate) fn new() -> Self {
        Outbox {
            queue: Mutex::new(EventQueue::new()),
            reader: AtomicWaker::new(),
            ended: AtomicBool::new(false),
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, EventQueue<M, E>> {
        // A poisoned lock means a panic elsewhere; the queue is still whole.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(super) struct Driver<S: StreamSource> {
    runner: Runner<S>,
    inbox: Arc<Inbox>,
    sink: TaskSink<S>,
    commands: VecDeque<Command>,
    stop_waiters: Vec<oneshot::Sender<()>>,
}

struct TaskSink<S: StreamSource> {
    outbox: Arc<Outbox<S::Media, S::Error>>,
    state: watch::Sender<State>,
}

impl<S: StreamSource> Drop for TaskSink<S> {
    /// The task ends (or unwinds): the application's stream ends too.
    fn drop(&mut self) {
        self.outbox.ended.store(true, Ordering::Release);
        self.outbox.reader.wake();
    }
}

impl<S: StreamSource> Sink<S> for TaskSink<S> {
    fn emit(&mut self, event: Event<S::Media, S::Error>) {
        let superseded = self.outbox.lock().push(event);
        // Dropped outside the lock: dropping media may close a transport.
        drop(superseded);
        self.outbox.reader.wake();
    }

    fn state(&mut self, state: State) {
        self.state.send_replace(state);
    }
}

enum Wake<S: StreamSource> {
    Inbox,
    Io(Io<S>),
    Timer,
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl<S: StreamSource> Driver<S> {
    pub(super) fn new(
        runner: Runner<S>,
        inbox: Arc<Inbox>,
        outbox: Arc<Outbox<S::Media, S::Error>>,
        state: watch::Sender<State>,
    ) -> Self {
        Driver {
            runner,
            inbox,
            sink: TaskSink { outbox, state },
            commands: VecDeque::new(),
            stop_waiters: Vec::new(),
        }
    }

    pub(super) async fn run(mut self) {
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        let mut armed: Option<std::time::Instant> = None;
        // The connect that `spawn`'s `Start` asked for.
        self.runner.carry_out(now(), &mut self.sink);
        loop {
            self.answer_stops();
            armed = self.rearm(sleep.as_mut(), armed);
            // In this order (biased): the handles, the attempt or session, the timer.
            let wake = std::future::poll_fn(|cx| {
                if self.inbox.poll_pending(cx).is_ready() {
                    return Poll::Ready(Wake::Inbox);
                }
                if let Poll::Ready(io) = self.runner.poll_io(cx) {
                    return Poll::Ready(Wake::Io(io));
                }
                if armed.is_some() && sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Timer);
                }
                Poll::Pending
            })
            .await;
            match wake {
                Wake::Inbox => {
                    if !self.on_inbox() {
                        break;
                    }
                }
                Wake::Io(io) => {
                    self.runner.on_io(now(), io, &mut self.sink);
                }
                Wake::Timer => {
                    armed = None;
                    self.runner.timeout(now(), &mut self.sink);
                }
            }
        }
        tracing::debug!("viewer dropped; task ends");
    }

    /// Feeds the latest progress report, then every command. False once the
    /// viewer is gone.
    fn on_inbox(&mut self) -> bool {
        let taken = self.inbox.take(&mut self.commands);
        if taken.closed {
            return false;
        }
        if let Some((media, at)) = taken.progress {
            self.runner.progress(at, media, &mut self.sink);
        }
        while let Some(command) = self.commands.pop_front() {
            match command {
                Command::Input(input) => {
                    self.runner.input(now(), input, &mut self.sink);
                }
                Command::Stop(done) => {
                    self.runner.input(now(), Input::Stop, &mut self.sink);
                    self.stop_waiters.push(done);
                }
            }
        }
        true
    }

    fn answer_stops(&mut self) {
        if !self.stop_waiters.is_empty() && self.runner.machine().state().is_idle() {
            for done in self.stop_waiters.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// Keeps one timer. A deadline that moved later (every progress tick moves
    /// the stall deadline) does not reset it: it fires early, `handle_timeout`
    /// does nothing, and the loop re-arms at the real deadline. That is one
    /// timer reset per `stall_after` instead of one per tick.
    fn rearm(
        &self,
        sleep: Pin<&mut tokio::time::Sleep>,
        armed: Option<std::time::Instant>,
    ) -> Option<std::time::Instant> {
        let wanted = self.runner.machine().poll_timeout();
        match (wanted, armed) {
            (None, _) => None,
            (Some(w), Some(a)) if a <= w => Some(a),
            (Some(w), _) => {
                sleep.reset(tokio::time::Instant::from_std(w));
                Some(w)
            }
        }
    }
}
