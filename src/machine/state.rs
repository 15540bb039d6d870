//! The five states of a viewer, as the application sees them ([`State`]) and as
//! the machine stores them ([`Phase`]: times as offsets, 16 bytes).

use std::fmt;
use std::time::{Duration, Instant};

/// Where a viewer is, with the data each state needs.
///
/// | state | meaning |
/// |---|---|
/// | `Idle` | not started, stopped by the user, or given up |
/// | `Connecting` | one connect attempt is in flight, bounded by `connect_timeout` |
/// | `Playing` | a session is up and media time advances |
/// | `Stalled` | a session is up but media is not advancing, or the feed is gone |
/// | `Backoff` | waiting before the next attempt |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Not started, stopped by the user, or given up.
    Idle,
    /// A connect attempt is in flight.
    Connecting {
        /// Attempt number within the current outage, from 1.
        attempt: u32,
        /// When the attempt started.
        since: Instant,
    },
    /// A session is up and media time advances.
    Playing {
        /// When the session reached (or returned to) Playing.
        since: Instant,
    },
    /// A session is up but not healthy; it is dropped when `stall_grace` runs out.
    Stalled {
        /// When the stall began.
        since: Instant,
        /// What the machine saw.
        cause: StallCause,
    },
    /// Waiting before the next attempt.
    Backoff {
        /// The attempt this wait leads to.
        attempt: u32,
        /// When that attempt starts (sooner on a live hint).
        until: Instant,
        /// The last attempt found nobody publishing.
        waiting_for_publisher: bool,
    },
}

impl State {
    /// The state's name: `"idle"`, `"connecting"`, `"playing"`, `"stalled"`, `"backoff"`.
    pub fn name(&self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connecting { .. } => "connecting",
            State::Playing { .. } => "playing",
            State::Stalled { .. } => "stalled",
            State::Backoff { .. } => "backoff",
        }
    }

    /// Whether media is being shown.
    pub fn is_playing(&self) -> bool {
        matches!(self, State::Playing { .. })
    }

    /// Whether the viewer is stopped (never started, stopped, or given up).
    pub fn is_idle(&self) -> bool {
        matches!(self, State::Idle)
    }

    /// How long until the next attempt, seen from `now`, when in `Backoff`.
    ///
    /// `now` must come from the clock the machine was fed: for a
    /// [`Reconnector`](crate::Reconnector), tokio's
    /// (`tokio::time::Instant::now().into_std()`), or use
    /// [`Control::retry_in`](crate::Control::retry_in).
    pub fn retry_in(&self, now: Instant) -> Option<Duration> {
        match self {
            State::Backoff { until, .. } => Some(until.saturating_duration_since(now)),
            _ => None,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Connecting { attempt, .. } => write!(f, "connecting (attempt {attempt})"),
            State::Stalled { cause, .. } => write!(f, "stalled ({cause})"),
            State::Backoff {
                attempt,
                waiting_for_publisher: true,
                ..
            } => write!(f, "waiting for the publisher (attempt {attempt} next)"),
            State::Backoff { attempt, .. } => write!(f, "backoff (attempt {attempt} next)"),
            other => f.write_str(other.name()),
        }
    }
}

/// What made a session count as stalled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StallCause {
    /// Media time stood still for `stall_after` (or no first media within `first_media_within`).
    NoProgress,
    /// The server offers no active layer: the feed is gone.
    NoLayers,
    /// The source said its publisher stopped (Millicast `inactive`).
    Inactive,
    /// The source said the stream is over (Millicast `stopped`).
    StreamEnded,
}

impl StallCause {
    /// Whether the publisher's side said so (`Inactive`, `StreamEnded`): such a
    /// stall ends only when the source says the publisher is back (`Active`) or
    /// a live hint comes, never on a stray progress tick.
    pub fn is_publisher_side(self) -> bool {
        matches!(self, StallCause::Inactive | StallCause::StreamEnded)
    }
}

impl fmt::Display for StallCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StallCause::NoProgress => "no progress",
            StallCause::NoLayers => "no active layers",
            StallCause::Inactive => "publisher inactive",
            StallCause::StreamEnded => "stream ended",
        })
    }
}

/// Nanoseconds since the machine's epoch (the first `now` it saw).
pub(crate) type Nanos = u64;

/// A [`State`] as stored inside the machine: 16 bytes instead of 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Idle,
    Connecting {
        attempt: u32,
        since: Nanos,
    },
    Playing {
        since: Nanos,
    },
    Stalled {
        cause: StallCause,
        since: Nanos,
    },
    Backoff {
        attempt: u32,
        publisher: bool,
        until: Nanos,
    },
}

impl Phase {
    /// The public view of this phase, given the machine's epoch.
    pub(crate) fn to_state(self, epoch: Instant) -> State {
        let at = |n: Nanos| at(epoch, n);
        match self {
            Phase::Idle => State::Idle,
            Phase::Connecting { attempt, since } => State::Connecting {
                attempt,
                since: at(since),
            },
            Phase::Playing { since } => State::Playing { since: at(since) },
            Phase::Stalled { cause, since } => State::Stalled {
                since: at(since),
                cause,
            },
            Phase::Backoff {
                attempt,
                publisher,
                until,
            } => State::Backoff {
                attempt,
                until: at(until),
                waiting_for_publisher: publisher,
            },
        }
    }
}

/// `epoch + n` nanoseconds, saturating far in the future instead of panicking.
pub(crate) fn at(epoch: Instant, n: Nanos) -> Instant {
    let d = Duration::from_nanos(n);
    epoch
        .checked_add(d)
        .or_else(|| epoch.checked_add(crate::policy::MAX_DURATION))
        .unwrap_or(epoch)
}

/// A duration as nanoseconds, saturating.
pub(crate) fn nanos(d: Duration) -> Nanos {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
