//! The tokio shell around the [`Machine`]: one task per viewer that connects,
//! watches sessions, keeps one timer and reports every change.
//!
//! It decides nothing: it feeds the machine and carries out its outputs.

mod task;

use task::{Command, Driver};

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, oneshot, watch};
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
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut machine = Machine::with_shared_policy(self.policy, seed);
        if self.autostart {
            // Started here, so that the state says "connecting" as soon as
            // `spawn` returns; the task carries out the connect first thing.
            machine.handle_input(tokio::time::Instant::now().into_std(), Input::Start);
        }
        let (state_tx, state) = watch::channel(machine.state());
        let span = tracing::info_span!("viewer", stream = %self.source.describe());
        let driver = Driver::new(self.source, machine, commands, events_tx, state_tx);
        tokio::spawn(driver.run().instrument(span));
        Viewer {
            control: Control {
                commands: commands_tx,
                state: state.clone(),
            },
            events,
        }
    }
}

fn entropy_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// A running viewer: a [`Stream`] of [`Event`]s and the controls of its task.
///
/// It dereferences to its [`Control`], so every control method
/// ([`state`](Control::state), [`report_progress`](Control::report_progress),
/// [`pause`](Control::pause), [`live_hint`](Control::live_hint),
/// [`stop`](Control::stop), ...) is called on the viewer itself.
/// Dropping it stops the task and drops the session.
pub struct Viewer<S: StreamSource> {
    control: Control,
    events: mpsc::UnboundedReceiver<Event<S::Media, S::Error>>,
}

impl<S: StreamSource> Viewer<S> {
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

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
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
    commands: mpsc::UnboundedSender<Command>,
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
    pub fn report_progress(&self, media_time: Duration) {
        self.send(Command::Input(Input::Progress(media_time)));
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
    /// before a server's `Retry-After`), and a session stalled for lack of
    /// media is replaced at once; see [`Input::NetworkChanged`].
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
        // The task is gone only when the viewer was dropped: nothing to control.
        let _ = self.commands.send(command);
    }
}
