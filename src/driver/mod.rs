//! The tokio shell around the [`Machine`]: one task per viewer that connects,
//! watches sessions, keeps one timer and reports every change.
//!
//! It decides nothing: it feeds the machine and carries out its outputs. The
//! carrying out ([`runner`]) and the bounded event queue ([`queue`]) are shared
//! with the fleet driver ([`Fleet`](crate::Fleet)), which runs many viewers per task.

pub(crate) mod inbox;
pub(crate) mod queue;
pub(crate) mod runner;
mod task;
pub(crate) mod wakeup;

use inbox::{Command, Inbox};
pub use queue::{CAPACITY as EVENT_QUEUE_CAPACITY, Dropped};
use runner::Runner;
use task::{Driver, Outbox};

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{oneshot, watch};
use tracing::Instrument;

use crate::machine::{GiveUpReason, Input, Machine, Reason, State};
use crate::policy::Policy;
use crate::source::StreamSource;

/// What a [`Viewer`] reports, in order.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<M, E> {
    /// A new live session: attach its media to the player. The previous
    /// session's media is dead by now.
    Session(M),
    /// The state changed.
    State {
        /// The state left.
        from: State,
        /// The state entered.
        to: State,
        /// Why.
        reason: Reason,
        /// When `to` is `Backoff`: how long until the next attempt.
        retry_in: Option<Duration>,
    },
    /// A connect attempt failed or the session was lost, with this error. The
    /// state change that follows says what happens next.
    Error(E),
    /// How many viewers the stream has, as the source reports it.
    ViewerCount(u64),
    /// The viewer stopped trying and is `Idle`; [`Control::start`] tries again.
    GaveUp(GiveUpReason),
}

impl<M, E: fmt::Display> fmt::Display for Event<M, E> {
    /// One line for a log or a status display, e.g.
    /// `backoff (attempt 3 next) — connect failed (retry later), next attempt in 1.84s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Session(_) => f.write_str("new session"),
            Event::State {
                to,
                reason,
                retry_in,
                ..
            } => {
                write!(f, "{to} — {reason}")?;
                match retry_in {
                    Some(d) => write!(f, ", next attempt in {:.2}s", d.as_secs_f64()),
                    None => Ok(()),
                }
            }
            Event::Error(e) => write!(f, "error: {e}"),
            Event::ViewerCount(n) => write!(f, "{n} viewers"),
            Event::GaveUp(reason) => write!(f, "gave up: {reason}"),
        }
    }
}

/// Keeps one viewer of a [`StreamSource`] watching: a builder for the task
/// that runs the reconnect [`Machine`].
///
/// ```
/// # use relive::{Policy, Reconnector, Event, StreamSource};
/// # async fn demo<S: StreamSource>(source: S) {
/// use futures::StreamExt;
///
/// let mut viewer = Reconnector::new(source, Policy::default()).spawn();
/// while let Some(event) = viewer.next().await {
///     match event {
///         Event::Session(_media) => { /* attach to the player */ }
///         Event::State { to, retry_in, .. } => println!("{to} {retry_in:?}"),
///         Event::GaveUp(_) => break,
///         _ => {}
///     }
/// }
/// # }
/// ```
pub struct Reconnector<S> {
    source: S,
    policy: Arc<Policy>,
    seed: Option<u64>,
    autostart: bool,
}

impl<S: StreamSource> Reconnector<S> {
    /// A reconnector for `source` following `policy`.
    pub fn new(source: S, policy: Policy) -> Self {
        Reconnector::with_shared_policy(source, Arc::new(policy))
    }

    /// Like [`new`](Reconnector::new), sharing one policy among many viewers.
    pub fn with_shared_policy(source: S, policy: Arc<Policy>) -> Self {
        Reconnector {
            source,
            policy,
            seed: None,
            autostart: true,
        }
    }

    /// Fixes the jitter seed (reproducible tests); by default each viewer draws its own.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Whether [`spawn`](Reconnector::spawn) starts connecting at once (the
    /// default) or waits for [`Control::start`].
    #[must_use]
    pub fn autostart(mut self, autostart: bool) -> Self {
        self.autostart = autostart;
        self
    }

    /// Spawns the viewer's task on the current tokio runtime. With
    /// [`autostart`](Reconnector::autostart) (the default) the viewer is
    /// `Connecting` when this returns.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like [`tokio::spawn`].
    pub fn spawn(self) -> Viewer<S> {
        let seed = self.seed.unwrap_or_else(entropy_seed);
        let mut machine = Machine::with_shared_policy(self.policy, seed);
        if self.autostart {
            // Started here, so that the state says "connecting" as soon as
            // `spawn` returns; the task carries out the connect first thing.
            machine.handle_input(tokio::time::Instant::now().into_std(), Input::Start);
        }
        let (state_tx, state) = watch::channel(machine.state());
        let span = tracing::info_span!("viewer", stream = %self.source.describe());
        let inbox = Arc::new(Inbox::default());
        let outbox = Arc::new(Outbox::new());
        let runner = Runner::new(self.source, machine);
        let driver = Driver::new(runner, inbox.clone(), outbox.clone(), state_tx);
        tokio::spawn(driver.run().instrument(span));
        Viewer {
            control: Control { inbox, state },
            events: outbox,
        }
    }
}

pub(crate) fn entropy_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// A running viewer: a [`Stream`] of [`Event`]s and the controls of its task.
///
/// Events wait in a bounded queue until read, so a viewer whose application
/// never reads them (one that only watches [`state`](Control::state)) keeps
/// bounded memory: at most one undelivered [`Event::Session`] (a newer one
/// supersedes it, and the superseded media is dropped, closing it), one
/// undelivered [`Event::ViewerCount`], and at most [`EVENT_QUEUE_CAPACITY`]
/// events, a full queue merging its oldest state changes (`A → B`, `B → C`
/// become `A → C`) and then dropping its oldest errors. An application that
/// reads events as they come sees every one; [`dropped`](Viewer::dropped)
/// counts what was coalesced.
///
/// It dereferences to its [`Control`], so every control method
/// ([`state`](Control::state), [`report_progress`](Control::report_progress),
/// [`pause`](Control::pause), [`live_hint`](Control::live_hint),
/// [`stop`](Control::stop), ...) is called on the viewer itself.
/// Dropping it stops the task and drops the session.
pub struct Viewer<S: StreamSource> {
    control: Control,
    events: Arc<Outbox<S::Media, S::Error>>,
}

impl<S: StreamSource> Viewer<S> {
    /// What the event queue coalesced or dropped while the application had
    /// not read it (all zero for an application that keeps up).
    pub fn dropped(&self) -> Dropped {
        self.events.lock().dropped()
    }

    /// How many events wait to be read (at most [`EVENT_QUEUE_CAPACITY`]).
    pub fn queued(&self) -> usize {
        self.events.lock().len()
    }

    /// A cloneable handle to control this viewer from other tasks (a player
    /// thread reporting progress, a relay client sending live hints).
    pub fn control(&self) -> Control {
        self.control.clone()
    }
}

impl<S: StreamSource> std::ops::Deref for Viewer<S> {
    type Target = Control;

    /// A viewer is its [`Control`] plus the event stream: `viewer.state()`,
    /// `viewer.report_progress(t)`, `viewer.stop().await` are `Control`'s.
    fn deref(&self) -> &Control {
        &self.control
    }
}

impl<S: StreamSource> Stream for Viewer<S> {
    type Item = Event<S::Media, S::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // The task ends when the viewer is dropped, so the stream ends only
        // if the task died (a panic in a source): then after the last event.
        if let Some(event) = self.events.lock().pop() {
            return Poll::Ready(Some(event));
        }
        self.events.reader.register(cx.waker());
        let ended = self.events.ended.load(Ordering::Acquire);
        match self.events.lock().pop() {
            Some(event) => Poll::Ready(Some(event)),
            None if ended => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

impl<S: StreamSource> Drop for Viewer<S> {
    /// Ends the task, which drops the attempt or session.
    fn drop(&mut self) {
        self.control.inbox.close();
    }
}

impl<S: StreamSource> fmt::Debug for Viewer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Viewer")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// A cloneable control handle for a [`Viewer`]'s task. Every method is cheap
/// and never blocks; after the viewer is gone they do nothing.
#[derive(Clone, Debug)]
pub struct Control {
    inbox: Arc<Inbox>,
    state: watch::Receiver<State>,
}

impl Control {
    /// The current state.
    pub fn state(&self) -> State {
        *self.state.borrow()
    }

    /// A receiver that always holds the current state.
    pub fn watch_state(&self) -> watch::Receiver<State> {
        self.state.clone()
    }

    /// How long until the next attempt, when backing off, on the runtime's
    /// clock: `tokio::time::Instant::now()`, which a paused test
    /// (`start_paused`) controls. [`State`]'s instants are on that clock too,
    /// so [`State::retry_in`] needs `tokio::time::Instant::now().into_std()`,
    /// not `std::time::Instant::now()`.
    pub fn retry_in(&self) -> Option<Duration> {
        self.state()
            .retry_in(tokio::time::Instant::now().into_std())
    }

    /// Reports the player's media time (its playback clock). Call it on every
    /// frame or a few times a second: media time that stops advancing for
    /// `stall_after` is a stall.
    ///
    /// It allocates nothing and queues nothing: the report overwrites a cell
    /// that the task reads when it next runs (reports in between are one
    /// wake), stamped with the instant of the report.
    pub fn report_progress(&self, media_time: Duration) {
        let at = tokio::time::Instant::now().into_std();
        self.inbox.report_progress(media_time, at);
    }

    /// The user paused playback: standing media time is not a stall until
    /// [`resume`](Control::resume). The pause is the user's and outlives
    /// `stop()`/`start()`.
    pub fn pause(&self) {
        self.send(Command::Input(Input::Pause));
    }

    /// The user resumed playback.
    pub fn resume(&self) {
        self.send(Command::Input(Input::Resume));
    }

    /// The publisher is live now (a relay `publish` event, a push): a viewer
    /// backing off or waiting for its publisher connects at once (within the
    /// policy's `hint_spread`). News that comes while an attempt is in flight
    /// is kept for the backoff that may follow; see [`Input::LiveHint`].
    pub fn live_hint(&self) {
        self.send(Command::Input(Input::LiveHint));
    }

    /// The publisher left again: forget a live hint kept for later.
    pub fn withdraw_live_hint(&self) {
        self.send(Command::Input(Input::LiveHintWithdrawn));
    }

    /// The device's network changed (an address or route came or went, the
    /// platform said "online"): a viewer backing off tries at once (never
    /// before a server's `Retry-After`), a session that can be repaired in
    /// place (a WHEP ICE restart) is repaired on the new path at once, and any
    /// other session stalled for lack of media is replaced at once; see
    /// [`Input::NetworkChanged`].
    pub fn network_changed(&self) {
        self.send(Command::Input(Input::NetworkChanged));
    }

    /// Starts watching (after a stop or a give-up).
    pub fn start(&self) {
        self.send(Command::Input(Input::Start));
    }

    /// Stops: the attempt or session is dropped and the state is `Idle` when this returns.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Stop(tx));
        // An error means the task is gone, which is stopped too.
        let _ = rx.await;
    }

    fn send(&self, command: Command) {
        // Once the viewer was dropped nobody reads this: nothing to control.
        self.inbox.send(command);
    }
}
