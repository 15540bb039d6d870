//! An in-memory live stream with a script: publish, freeze, drop, fail — for
//! tests, examples and benchmarks that need a [`StreamSource`] without a network.
//!
//! Sessions tick media time like a player would: every `tick` they report the
//! current media time, which advances only while the stream is live, not
//! frozen and offers at least one layer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;

use crate::source::{Classify, RepairFuture, Retry, Session, SourceEvent, StreamSource};

/// What the publisher side of a [`MemoryStream`] is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Script {
    live: bool,
    frozen: bool,
    stopped: bool,
    layers: u32,
    /// Bumped by `drop_sessions`: sessions of an older generation are lost.
    generation: u64,
    /// Bumped by `lose_paths`: sessions report their media path lost.
    path_generation: u64,
    viewer_count: u64,
}

/// A scripted live stream: the control side. Cheap to clone; every clone
/// controls the same stream.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use futures::{FutureExt, StreamExt};
/// use relive::testkit::MemoryStream;
/// use relive::{Event, Policy, Reconnector};
///
/// let stream = MemoryStream::new();
/// let mut viewer = Reconnector::new(stream.source(), Policy::default()).spawn();
/// stream.publish();
/// while let Some(event) = viewer.next().await {
///     if let Event::Session(_) = event {
///         break; // playing
///     }
/// }
/// assert_eq!(stream.sessions(), 1);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStream {
    script: Arc<watch::Sender<Script>>,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    failures: Mutex<VecDeque<Retry>>,
    connect_delay: Mutex<Duration>,
    connects: AtomicU64,
    sessions: AtomicUsize,
    next_id: AtomicU64,
    repair: Mutex<Option<MemoryRepair>>,
    repairs: AtomicU64,
}

/// What a repair of a [`MemoryStream`] session does, for
/// [`MemoryStream::set_repair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemoryRepair {
    /// The repair succeeds and heals the stream: media advances again (as
    /// [`MemoryStream::unfreeze`]).
    Heals,
    /// The repair succeeds but media stays frozen (a restarted path to a
    /// frozen publisher).
    Succeeds,
    /// The repair fails with [`MemoryError::RepairFailed`].
    Fails,
}

impl Default for MemoryStream {
    fn default() -> Self {
        MemoryStream::new()
    }
}

impl MemoryStream {
    /// A stream nobody publishes yet, with one active layer once published.
    pub fn new() -> Self {
        let (script, _) = watch::channel(Script {
            live: false,
            frozen: false,
            stopped: false,
            layers: 1,
            generation: 0,
            path_generation: 0,
            viewer_count: 0,
        });
        MemoryStream {
            script: Arc::new(script),
            shared: Arc::default(),
        }
    }

    /// A source for one viewer, ticking every 250 ms.
    pub fn source(&self) -> MemorySource {
        MemorySource {
            stream: self.clone(),
            tick: Duration::from_millis(250),
            progress: true,
        }
    }

    /// The publisher goes live: sessions see `Active` and layers; connects succeed.
    pub fn publish(&self) {
        self.script.send_modify(|s| {
            s.live = true;
            s.stopped = false;
        });
    }

    /// The publisher stops: sessions see `Inactive`; connects fail as not published.
    pub fn unpublish(&self) {
        self.script.send_modify(|s| s.live = false);
    }

    /// The stream is over: sessions see `StreamEnded`; connects fail as not published.
    pub fn end(&self) {
        self.script.send_modify(|s| {
            s.live = false;
            s.stopped = true;
        });
    }

    /// Media time stops advancing, but the stream stays "live" (a frozen encoder,
    /// a black-holed path).
    pub fn freeze(&self) {
        self.script.send_modify(|s| s.frozen = true);
    }

    /// Media time advances again.
    pub fn unfreeze(&self) {
        self.script.send_modify(|s| s.frozen = false);
    }

    /// The server now offers `active` layers (zero: the feed is gone).
    pub fn set_layers(&self, active: u32) {
        self.script.send_modify(|s| s.layers = active);
    }

    /// Reports a viewer count to every session.
    pub fn set_viewer_count(&self, n: u64) {
        self.script.send_modify(|s| s.viewer_count = n);
    }

    /// Every current session loses its transport (a network blink).
    pub fn drop_sessions(&self) {
        self.script.send_modify(|s| s.generation += 1);
    }

    /// Every current session reports its media path lost
    /// ([`SourceEvent::PathLost`]) and media stops advancing, as
    /// [`freeze`](MemoryStream::freeze): a session that cannot be repaired is
    /// lost; a repair that [heals](MemoryRepair::Heals) brings media back.
    pub fn lose_paths(&self) {
        self.script.send_modify(|s| {
            s.path_generation += 1;
            s.frozen = true;
        });
    }

    /// Whether sessions can be repaired in place, and what a repair does
    /// (`None`, the default: they cannot). Read by each session when it is
    /// kept and by each repair.
    pub fn set_repair(&self, repair: Option<MemoryRepair>) {
        if let Ok(mut r) = self.shared.repair.lock() {
            *r = repair;
        }
    }

    /// How many repairs were asked for, by every viewer.
    pub fn repairs(&self) -> u64 {
        self.shared.repairs.load(Ordering::Relaxed)
    }

    /// The next `n` connect attempts fail with an error of class `retry`.
    pub fn fail_next(&self, n: usize, retry: Retry) {
        if let Ok(mut failures) = self.shared.failures.lock() {
            failures.extend(std::iter::repeat_n(retry, n));
        }
    }

    /// Each connect attempt takes this long (virtual time in paused tests).
    pub fn set_connect_delay(&self, delay: Duration) {
        if let Ok(mut d) = self.shared.connect_delay.lock() {
            *d = delay;
        }
    }

    /// How many connect attempts were made, by every viewer.
    pub fn connects(&self) -> u64 {
        self.shared.connects.load(Ordering::Relaxed)
    }

    /// How many sessions are alive now (their event streams not yet dropped).
    pub fn sessions(&self) -> usize {
        self.shared.sessions.load(Ordering::Relaxed)
    }

    /// Whether the publisher is live.
    pub fn is_live(&self) -> bool {
        self.script.borrow().live
    }
}

/// One viewer's view of a [`MemoryStream`]: the [`StreamSource`].
#[derive(Clone, Debug)]
pub struct MemorySource {
    stream: MemoryStream,
    tick: Duration,
    progress: bool,
}

impl MemorySource {
    /// Sessions report media time every `tick` (must be > 0; 250 ms by default).
    #[must_use]
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick.max(Duration::from_millis(1));
        self
    }

    /// Whether sessions report progress themselves (the default) or leave it
    /// to the application's `report_progress`, like a signaling-only source.
    #[must_use]
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }
}

/// Why a [`MemorySource`] attempt or session failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// Nobody publishes the stream.
    #[error("stream not being published")]
    NotPublished,
    /// A failure scripted with [`MemoryStream::fail_next`].
    #[error("scripted failure ({0})")]
    Scripted(Retry),
    /// The session was dropped by [`MemoryStream::drop_sessions`].
    #[error("transport lost")]
    Dropped,
    /// The session's media path was lost ([`MemoryStream::lose_paths`]).
    #[error("media path lost")]
    PathLost,
    /// A repair failed ([`MemoryRepair::Fails`]).
    #[error("repair failed")]
    RepairFailed,
}

impl Classify for MemoryError {
    fn retry(&self) -> Retry {
        match self {
            MemoryError::NotPublished => Retry::WaitForPublisher,
            MemoryError::Scripted(retry) => *retry,
            MemoryError::Dropped | MemoryError::PathLost | MemoryError::RepairFailed => {
                Retry::Later
            }
        }
    }
}

/// The media handle of a memory session: which session it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryMedia {
    /// A number unique within the stream, counting from 1.
    pub id: u64,
}

impl StreamSource for MemorySource {
    type Media = MemoryMedia;
    type Events = BoxStream<'static, SourceEvent<MemoryMedia, MemoryError>>;
    type Error = MemoryError;

    fn connect(
        &mut self,
        _attempt: u32,
    ) -> impl Future<Output = Result<Session<MemoryMedia, Self::Events>, MemoryError>> + Send + 'static
    {
        let stream = self.stream.clone();
        let (tick, progress) = (self.tick, self.progress);
        async move {
            let shared = &stream.shared;
            shared.connects.fetch_add(1, Ordering::Relaxed);
            let delay = shared.connect_delay.lock().map(|d| *d).unwrap_or_default();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let scripted = shared.failures.lock().ok().and_then(|mut f| f.pop_front());
            if let Some(retry) = scripted {
                return Err(MemoryError::Scripted(retry));
            }
            let script = stream.script.subscribe();
            if !script.borrow().live {
                return Err(MemoryError::NotPublished);
            }
            let id = shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
            let events = session_events(stream.clone(), script, tick, progress);
            Ok(Session {
                media: MemoryMedia { id },
                events,
            })
        }
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }

    fn can_repair(&self, _events: &Self::Events) -> bool {
        self.stream.repair_mode().is_some()
    }

    fn repair(&mut self, _events: &mut Self::Events) -> Option<RepairFuture<MemoryError>> {
        let mode = self.stream.repair_mode()?;
        self.stream.shared.repairs.fetch_add(1, Ordering::Relaxed);
        let result = match mode {
            MemoryRepair::Heals => {
                self.stream.unfreeze();
                Ok(())
            }
            MemoryRepair::Succeeds => Ok(()),
            MemoryRepair::Fails => Err(MemoryError::RepairFailed),
        };
        Some(futures::future::ready(result).boxed())
    }
}

impl MemoryStream {
    fn repair_mode(&self) -> Option<MemoryRepair> {
        self.shared.repair.lock().ok().and_then(|r| *r)
    }
}

/// Counts a session alive until its events are dropped.
struct Alive(Arc<Shared>);

impl Alive {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.sessions.fetch_add(1, Ordering::Relaxed);
        Alive(shared.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Ticker {
    script: watch::Receiver<Script>,
    seen: Script,
    interval: tokio::time::Interval,
    media: Duration,
    tick: Duration,
    progress: bool,
    pending: VecDeque<SourceEvent<MemoryMedia, MemoryError>>,
    lost: bool,
    _alive: Alive,
}

fn session_events(
    stream: MemoryStream,
    mut script: watch::Receiver<Script>,
    tick: Duration,
    progress: bool,
) -> BoxStream<'static, SourceEvent<MemoryMedia, MemoryError>> {
    let seen = *script.borrow_and_update();
    let start = tokio::time::Instant::now() + tick;
    let mut interval = tokio::time::interval_at(start, tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ticker = Ticker {
        script,
        seen,
        interval,
        media: Duration::ZERO,
        tick,
        progress,
        pending: VecDeque::from([
            SourceEvent::Active,
            SourceEvent::Layers {
                active: seen.layers,
            },
        ]),
        lost: false,
        _alive: Alive::new(&stream.shared),
    };
    futures::stream::unfold(ticker, |mut t| async move {
        let event = t.next_event().await?;
        Some((event, t))
    })
    .boxed()
}

impl Ticker {
    async fn next_event(&mut self) -> Option<SourceEvent<MemoryMedia, MemoryError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.lost {
                return None;
            }
            tokio::select! {
                _ = self.interval.tick(), if self.progress => {
                    if self.seen.live && !self.seen.frozen && self.seen.layers > 0 {
                        self.media += self.tick;
                    }
                    return Some(SourceEvent::Progress(self.media));
                }
                changed = self.script.changed() => {
                    if changed.is_err() {
                        self.lost = true;
                        return Some(SourceEvent::Lost(MemoryError::Dropped));
                    }
                    let now = *self.script.borrow_and_update();
                    self.diff(now);
                }
            }
        }
    }

    fn diff(&mut self, now: Script) {
        let old = std::mem::replace(&mut self.seen, now);
        if now.generation != old.generation {
            self.lost = true;
            self.pending
                .push_back(SourceEvent::Lost(MemoryError::Dropped));
            return;
        }
        if now.path_generation != old.path_generation {
            self.pending
                .push_back(SourceEvent::PathLost(MemoryError::PathLost));
        }
        if now.live && !old.live {
            self.pending.push_back(SourceEvent::Active);
            self.pending
                .push_back(SourceEvent::Layers { active: now.layers });
        }
        if !now.live && old.live {
            self.pending.push_back(SourceEvent::Inactive);
        }
        if now.stopped && !old.stopped {
            self.pending.push_back(SourceEvent::StreamEnded);
        }
        if now.live && old.live && now.layers != old.layers {
            self.pending
                .push_back(SourceEvent::Layers { active: now.layers });
        }
        if now.viewer_count != old.viewer_count {
            self.pending
                .push_back(SourceEvent::ViewerCount(now.viewer_count));
        }
    }
}
