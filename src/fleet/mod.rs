//! Many viewers per task: the fleet driver, for a process that keeps tens of
//! thousands of viewers watching (a relay edge, a monitoring probe, a test rig).
//!
//! A [`Fleet`] runs the same [`Machine`] per viewer and carries out the same
//! outputs as a [`Reconnector`](crate::Reconnector) (both drivers share that
//! code), but shards its viewers over a few tasks, one per runtime worker by
//! default. Each shard owns its viewers, one deadline heap with lazy re-arm
//! and one `Sleep`, takes its inputs in batches, and polls only the attempts and
//! sessions that woke. An attempt or a session exists only while the machine
//! wants it. Progress can be fed in bulk: [`Fleet::report_progress`] takes a
//! slice of `(viewer, media time)`, one lock per shard and no message per tick.
//!
//! The application gets one stream of `(ViewerId, Event)` (the fleet is that
//! [`Stream`]) rather than a handle per viewer: a handle per viewer would cost
//! each viewer a queue and a waker even when nothing happens. Events are the
//! same [`Event`]s, with the same bounded coalescing per viewer as a
//! [`Viewer`](crate::Viewer)'s (one undelivered session, one viewer count, at most
//! [`EVENT_QUEUE_CAPACITY`](crate::EVENT_QUEUE_CAPACITY) events); viewers with
//! events take turns. States and controls are per viewer, through
//! [`Fleet::state`] and a [`FleetControl`] (the methods of
//! [`Control`](crate::Control)).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use futures::StreamExt;
//! use relive::testkit::MemoryStream;
//! use relive::{Event, Fleet, Policy};
//!
//! let stream = MemoryStream::new();
//! stream.publish();
//! let mut fleet = Fleet::new(Policy::default());
//! let ids: Vec<_> = (0..3).map(|_| fleet.add(stream.source())).collect();
//! let mut sessions = 0;
//! while let Some((id, event)) = fleet.next().await {
//!     if let Event::Session(_media) = event {
//!         assert!(ids.contains(&id));
//!         sessions += 1;
//!         if sessions == 3 {
//!             break;
//!         }
//!     }
//! }
//! assert!(ids.iter().all(|id| fleet.state(*id).is_some_and(|s| s.is_playing())));
//! # }
//! ```

mod deadlines;
mod events;
mod shard;
mod shared;
mod signal;

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::driver::Event;
use crate::driver::inbox::Command;
use crate::driver::queue::Dropped;
use crate::driver::runner::Runner;
use crate::machine::{Input, Machine, State};
use crate::policy::Policy;
use crate::source::StreamSource;
use events::Outbox;
use shard::Shard;
use shared::{Handle, ShardShared};

/// What the fleet's stream yields: which viewer, and its event.
pub type FleetEvent<S> = (
    ViewerId,
    Event<<S as StreamSource>::Media, <S as StreamSource>::Error>,
);

/// One viewer of a [`Fleet`]: which shard, which slot, which occupant of it
/// (a slot freed by [`Fleet::remove`] is reused under a new generation, so an
/// old id never reaches a new viewer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViewerId {
    shard: u16,
    generation: u16,
    index: u32,
}

impl ViewerId {
    /// The id as one number (unique within its fleet), for logs and maps.
    pub fn as_u64(self) -> u64 {
        (u64::from(self.shard) << 48) | (u64::from(self.generation) << 32) | u64::from(self.index)
    }
}

impl fmt::Display for ViewerId {
    /// `shard.slot`, with the generation when a slot was reused: `1.42`, `1.42g3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.shard, self.index)?;
        if self.generation > 0 {
            write!(f, "g{}", self.generation)?;
        }
        Ok(())
    }
}

/// Builds a [`Fleet`]: the policy its viewers share and how many shards.
#[derive(Debug)]
pub struct FleetBuilder {
    policy: Arc<Policy>,
    shards: Option<usize>,
}

impl FleetBuilder {
    /// A fleet of viewers following `policy`:
    /// `FleetBuilder::new(policy).shards(4).spawn::<MySource>()`.
    pub fn new(policy: Policy) -> Self {
        FleetBuilder::with_shared_policy(Arc::new(policy))
    }

    /// Like [`new`](FleetBuilder::new), with a policy shared elsewhere too.
    pub fn with_shared_policy(policy: Arc<Policy>) -> Self {
        FleetBuilder {
            policy,
            shards: None,
        }
    }

    /// How many shards (tasks) to spread the viewers over; by default one per
    /// worker of the runtime `spawn` is called on. At least one, at most 65 536.
    #[must_use]
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = Some(n.clamp(1, usize::from(u16::MAX) + 1));
        self
    }

    /// Spawns the shards on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like [`tokio::spawn`].
    pub fn spawn<S: StreamSource>(self) -> Fleet<S> {
        let n = self.shards.unwrap_or_else(|| {
            tokio::runtime::Handle::current()
                .metrics()
                .num_workers()
                .max(1)
        });
        let outbox = Arc::new(Outbox::new());
        let shards = (0..n)
            .map(|i| {
                let number = u16::try_from(i).unwrap_or(u16::MAX);
                let shared = Arc::new(ShardShared::new(number));
                let span = tracing::info_span!("fleet_shard", shard = number);
                let task = Shard::new(Arc::clone(&shared), Arc::clone(&outbox));
                tokio::spawn(task.run().instrument(span));
                shared
            })
            .collect();
        Fleet {
            shards,
            outbox,
            policy: self.policy,
            next_shard: AtomicUsize::new(0),
        }
    }
}

/// Many viewers on a few tasks; see the [module docs](crate::fleet).
///
/// The fleet is the [`Stream`] of every viewer's `(ViewerId, Event)`.
/// Dropping it stops every viewer and drops their sessions.
pub struct Fleet<S: StreamSource> {
    shards: Vec<Arc<ShardShared<S>>>,
    outbox: Arc<Outbox<S::Media, S::Error>>,
    policy: Arc<Policy>,
    next_shard: AtomicUsize,
}

impl<S: StreamSource> Fleet<S> {
    /// A fleet whose viewers follow `policy`, one shard per runtime worker.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like [`tokio::spawn`].
    pub fn new(policy: Policy) -> Self {
        FleetBuilder::new(policy).spawn()
    }

    /// Adds a viewer of `source` and starts it: it is `Connecting` when this
    /// returns, like a spawned [`Reconnector`](crate::Reconnector).
    pub fn add(&self, source: S) -> ViewerId {
        self.add_with(source, None, true)
    }

    /// Adds a viewer with a fixed jitter `seed` (reproducible tests; `None`
    /// draws one), started now or, without `autostart`, on
    /// [`FleetControl::start`].
    pub fn add_with(&self, source: S, seed: Option<u64>, autostart: bool) -> ViewerId {
        let seed = seed.unwrap_or_else(crate::driver::entropy_seed);
        let mut machine = Machine::with_shared_policy(Arc::clone(&self.policy), seed);
        if autostart {
            machine.handle_input(tokio::time::Instant::now().into_std(), Input::Start);
        }
        let turn = self.next_shard.fetch_add(1, Ordering::Relaxed);
        let shard = &self.shards[turn % self.shards.len()];
        shard.join(Runner::new(source, machine))
    }

    /// Removes a viewer: its attempt or session is dropped. Its undelivered
    /// events stay in the stream; its id is never reused.
    pub fn remove(&self, id: ViewerId) {
        if let Some(shard) = self.shard(id) {
            shard.leave(id);
        }
    }

    /// The current state of a viewer; `None` once removed.
    pub fn state(&self, id: ViewerId) -> Option<State> {
        self.shard(id)?.state(id)
    }

    /// A cloneable handle to control one viewer, with the methods of a
    /// [`Control`](crate::Control).
    pub fn control(&self, id: ViewerId) -> FleetControl {
        let shard: Arc<dyn Handle> = match self.shard(id) {
            Some(shard) => Arc::clone(shard) as Arc<dyn Handle>,
            None => Arc::clone(&self.shards[0]) as Arc<dyn Handle>,
        };
        FleetControl { shard, id }
    }

    /// Reports many viewers' media time at once (their players' clocks), all
    /// at this instant: one lock per shard and one wake, no message per tick.
    /// A shard that has not yet taken four ticks per viewer refuses more (see
    /// [`ticks_refused`](Fleet::ticks_refused)).
    pub fn report_progress(&self, batch: &[(ViewerId, Duration)]) {
        let at = tokio::time::Instant::now().into_std();
        for shard in &self.shards {
            shard.report_batch(batch, at);
        }
    }

    /// Progress ticks refused because a shard had not taken the ones before
    /// (a shard starved of CPU): bounded memory rather than a growing queue.
    pub fn ticks_refused(&self) -> u64 {
        self.shards.iter().map(|s| s.ticks_refused()).sum()
    }

    /// What the viewers' event queues coalesced while the application had not
    /// read them (see [`Viewer`](crate::Viewer) for the rules).
    pub fn dropped(&self) -> Dropped {
        self.outbox.dropped()
    }

    /// How many events wait to be read, over every viewer.
    pub fn queued(&self) -> usize {
        self.outbox.queued()
    }

    /// How many shards the viewers are spread over.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    fn shard(&self, id: ViewerId) -> Option<&Arc<ShardShared<S>>> {
        self.shards
            .get(usize::from(id.shard))
            .filter(|s| s.number() == id.shard)
    }
}

impl<S: StreamSource> Fleet<S> {
    fn poll_event(&self, cx: &mut Context<'_>) -> Poll<Option<FleetEvent<S>>> {
        if let Some(item) = self.outbox.pop() {
            return Poll::Ready(Some(item));
        }
        self.outbox.register(cx.waker());
        match self.outbox.pop() {
            Some(item) => Poll::Ready(Some(item)),
            None => Poll::Pending,
        }
    }
}

impl<S: StreamSource> Stream for Fleet<S> {
    type Item = FleetEvent<S>;

    /// The next event of some viewer. The stream never ends while the fleet lives.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_event(cx)
    }
}

/// The same stream through a shared reference, for a fleet shared behind an
/// [`Arc`] (one task reads the events, others add viewers and report progress).
impl<S: StreamSource> Stream for &Fleet<S> {
    type Item = FleetEvent<S>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_event(cx)
    }
}

impl<S: StreamSource> Drop for Fleet<S> {
    /// Ends every shard, which drops every attempt and session.
    fn drop(&mut self) {
        for shard in &self.shards {
            shard.close();
        }
    }
}

impl<S: StreamSource> fmt::Debug for Fleet<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// Controls one viewer of a [`Fleet`]: the same methods, with the same
/// meaning, as [`Control`](crate::Control). Cheap to clone; after the viewer
/// is removed (or the fleet dropped) they do nothing.
#[derive(Clone)]
pub struct FleetControl {
    shard: Arc<dyn Handle>,
    id: ViewerId,
}

impl fmt::Debug for FleetControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetControl")
            .field("id", &self.id)
            .field("state", &self.state())
            .finish()
    }
}

impl FleetControl {
    /// Which viewer this controls.
    pub fn id(&self) -> ViewerId {
        self.id
    }

    /// The current state (`Idle` once the viewer is removed).
    pub fn state(&self) -> State {
        self.shard.state(self.id).unwrap_or(State::Idle)
    }

    /// How long until the next attempt, when backing off, on the runtime's
    /// clock (see [`Control::retry_in`](crate::Control::retry_in)).
    pub fn retry_in(&self) -> Option<Duration> {
        self.state()
            .retry_in(tokio::time::Instant::now().into_std())
    }

    /// Reports the player's media time; for many viewers at once,
    /// [`Fleet::report_progress`] takes a slice.
    pub fn report_progress(&self, media_time: Duration) {
        let at = tokio::time::Instant::now().into_std();
        self.shard.report(self.id, media_time, at);
    }

    /// The user paused playback: standing media time is not a stall until
    /// [`resume`](FleetControl::resume).
    pub fn pause(&self) {
        self.send(Command::Input(Input::Pause));
    }

    /// The user resumed playback.
    pub fn resume(&self) {
        self.send(Command::Input(Input::Resume));
    }

    /// The publisher is live now; see [`Control::live_hint`](crate::Control::live_hint).
    pub fn live_hint(&self) {
        self.send(Command::Input(Input::LiveHint));
    }

    /// The publisher left again: forget a live hint kept for later.
    pub fn withdraw_live_hint(&self) {
        self.send(Command::Input(Input::LiveHintWithdrawn));
    }

    /// The device's network changed; see
    /// [`Control::network_changed`](crate::Control::network_changed).
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
        // An error means the viewer or its shard is gone, which is stopped too.
        let _ = rx.await;
    }

    fn send(&self, command: Command) {
        self.shard.send(self.id, command);
    }
}
