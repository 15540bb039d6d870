//! The sans-IO core: one viewer's reconnect logic as a pure value.
//!
//! No tokio, no sockets, no clock: every call brings its `now`, and the machine
//! answers with [`Output`]s to carry out and the next time it needs waking.

mod input;
mod output;
mod queue;
mod state;
mod step;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backoff::Rng;
use crate::policy::Policy;
use crate::source::Retry;

pub use input::Input;
pub use output::{GiveUpReason, Output, Reason, Timer};
use queue::{Pending, Queue};
use state::{Nanos, Phase, at, nanos};
pub use state::{StallCause, State};

/// One viewer's reconnect logic: decides when to connect, when a stall is real,
/// how long to back off and when to give up.
///
/// # The contract
///
/// Methods come in four kinds, like `quinn_proto::Connection`:
/// - getters: [`state`](Machine::state), [`attempt`](Machine::attempt),
///   [`policy`](Machine::policy), [`is_paused`](Machine::is_paused);
/// - `handle_*`: [`handle_input`](Machine::handle_input) and
///   [`handle_timeout`](Machine::handle_timeout) feed what happened, with the
///   time it happened;
/// - `poll_*`: after **each** `handle_*` call, drain
///   [`poll_output`](Machine::poll_output) until it returns `None` and carry out
///   each output in order, then read [`poll_timeout`](Machine::poll_timeout)
///   and call `handle_timeout` once that instant is reached.
///
/// Calling `handle_timeout` early, late or twice is harmless: the machine acts
/// on the earliest deadline that has passed at `now` (one per call, so that
/// each call's outputs fit the queue), and nothing else. Time never
/// runs backwards inside: each `now` is raised to the latest one seen by a
/// `handle_timeout` or a non-tick input. A progress tick, the hot path, is
/// taken at its own instant and only ever moves the stall watchdog forward
/// (an older tick moves nothing); feed inputs in the order they happened.
///
/// # Size
///
/// `size_of::<Machine>()` is at most 256 bytes on 64-bit targets (checked by a
/// test): times are stored as nanosecond offsets from the first `now`, the
/// policy is shared behind an [`Arc`], and the output queue is an inline ring of
/// four (one input yields at most four outputs: a drop or abort, a transition
/// into `Backoff`, and when a kept live hint fires at once, a transition into
/// `Connecting` and the connect; or, with make-before-break, a drop and an
/// abort, a transition and a connect or a give-up). A progress tick while
/// playing writes two fields and allocates nothing.
///
/// # Example
///
/// ```
/// use std::time::{Duration, Instant};
/// use relive::{Input, Machine, Output, Policy, State};
///
/// let mut m = Machine::new(Policy::default(), 7);
/// let t0 = Instant::now();
/// m.handle_input(t0, Input::Start);
/// assert_eq!(m.poll_output().map(|o| matches!(o, Output::StateChanged { .. })), Some(true));
/// assert_eq!(m.poll_output(), Some(Output::Connect { attempt: 1 }));
/// assert_eq!(m.poll_output(), None);
///
/// m.handle_input(t0, Input::Connected);
/// while m.poll_output().is_some() {}
/// m.handle_input(t0 + Duration::from_millis(250), Input::Progress(Duration::from_millis(250)));
/// assert!(m.state().is_playing());
///
/// // Media stops advancing: the machine wants waking when it would be a stall.
/// let wake = m.poll_timeout().unwrap();
/// assert_eq!(wake, t0 + Duration::from_millis(250) + m.policy().stall_after());
/// m.handle_timeout(wake);
/// assert!(matches!(m.state(), State::Stalled { .. }));
/// ```
#[derive(Clone, Debug)]
pub struct Machine {
    policy: Arc<Policy>,
    epoch: Option<Instant>,
    /// The latest `now` seen, as an offset from `epoch`.
    now: Nanos,
    phase: Phase,
    /// When media time last advanced (or the session started, or the user
    /// resumed). An `Instant`, so that a tick stores it without arithmetic.
    last_progress: Option<Instant>,
    /// The furthest media time of this session's timeline.
    last_media: Duration,
    /// When the current outage began: the last session lost that was stable
    /// or showed media, or the last answer that nobody publishes (waiting is
    /// not an outage).
    outage_since: Nanos,
    /// When an attempt first found nobody publishing, in this outage; `NEVER` if not.
    publisher_missing_since: Nanos,
    /// The previous decorrelated-jitter delay.
    backoff_previous: Nanos,
    /// No attempt before this offset: a server's `Retry-After`, capped by the
    /// policy; zero when none holds. Cleared by the next attempt.
    not_before: Nanos,
    /// Make-before-break in a stall: when the first remedy of the frozen
    /// session (its repair or the attempt beside it) starts (`flags.racing`
    /// and `flags.repair` not in flight), or when the attempt (`flags.racing`) or
    /// the repair (`RepairStage::InFlight`) started; `NEVER` when none is planned.
    race_at: Nanos,
    rng: Rng,
    /// Attempts in the current outage; zero once playback has been stable.
    attempt: u32,
    /// Attempts of this outage that failed for another reason than a missing
    /// publisher: what `give_up_after_attempts` counts.
    failures: u32,
    flags: Flags,
    queue: Queue,
}

const NEVER: Nanos = Nanos::MAX;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Flags {
    paused: bool,
    seen_media: bool,
    /// Playing has not yet lasted `reset_after` since it began.
    stable_pending: bool,
    /// Media advanced at least once on this session (since `Connected`).
    session_showed_media: bool,
    /// A live hint came while it could not act (an attempt in flight, a
    /// stalled session): it acts on the next `Backoff`.
    hint_pending: bool,
    /// A make-before-break attempt is in flight beside the stalled session.
    racing: bool,
    /// The session can be repaired in place (`Input::Repairable`).
    repairable: bool,
    /// Where the repair of this stall is.
    repair: RepairStage,
}

/// The repair of one stall: not tried yet, in flight since `race_at`, or
/// tried (the next remedy is a new session).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum RepairStage {
    #[default]
    Fresh,
    InFlight,
    Spent,
}

impl Machine {
    /// A machine in `Idle`. `seed` fixes its jitter: pass a fixed seed in tests,
    /// and a random one in production (the driver does).
    pub fn new(policy: Policy, seed: u64) -> Self {
        Machine::with_shared_policy(Arc::new(policy), seed)
    }

    /// Like [`new`](Machine::new), sharing one policy among many machines.
    pub fn with_shared_policy(policy: Arc<Policy>, seed: u64) -> Self {
        let backoff_previous = nanos(policy.backoff.first_previous());
        Machine {
            policy,
            epoch: None,
            now: 0,
            phase: Phase::Idle,
            last_progress: None,
            last_media: Duration::ZERO,
            outage_since: 0,
            publisher_missing_since: NEVER,
            backoff_previous,
            not_before: 0,
            race_at: NEVER,
            rng: Rng::new(seed),
            attempt: 0,
            failures: 0,
            flags: Flags::default(),
            queue: Queue::new(),
        }
    }

    /// The policy this machine follows.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.view(self.phase)
    }

    /// Attempts made in the current outage (zero once playback was stable for `reset_after`).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether a make-before-break attempt is in flight beside a stalled
    /// session: the one time the caller holds a session and an attempt at once.
    pub fn is_racing(&self) -> bool {
        self.flags.racing
    }

    /// Whether a repair of the session in place is in flight
    /// ([`Output::Repair`] was the last word on it).
    pub fn is_repairing(&self) -> bool {
        self.flags.repair == RepairStage::InFlight
    }

    /// Whether the user has paused playback.
    pub fn is_paused(&self) -> bool {
        self.flags.paused
    }

    /// How many outputs were lost because they were not drained after a
    /// `handle_*` call. Always zero for a caller that follows the contract.
    pub fn outputs_overwritten(&self) -> u32 {
        self.queue.overwritten()
    }

    /// Feeds one input, observed at `now`.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        // The hot path takes `now` as it comes: no offset arithmetic per tick.
        if let Input::Progress(media) = input {
            return self.on_tick(now, media);
        }
        let now = self.clock(now);
        match input {
            Input::Progress(_) => {}
            Input::Start => self.on_start(now),
            Input::Stop => self.on_stop(),
            Input::Pause => self.on_pause(),
            Input::Resume => self.on_resume(now),
            Input::Connected => self.on_connected(now),
            Input::ConnectFailed(retry) => self.on_connect_failed(now, retry, Duration::ZERO),
            Input::ConnectFailedRetryAfter { retry, retry_after } => {
                self.on_connect_failed(now, retry, retry_after);
            }
            Input::Layers { active } => self.on_layers(now, active),
            Input::Active => self.on_active(now),
            Input::Inactive => self.on_source_ended(now, StallCause::Inactive),
            Input::StreamEnded => self.on_source_ended(now, StallCause::StreamEnded),
            Input::TransportLost(retry) => {
                self.on_transport_lost(now, Reason::TransportLost(retry), retry);
            }
            Input::SessionEnded => self.on_transport_lost(now, Reason::SessionEnded, Retry::Later),
            Input::LiveHint => self.on_live_hint(now),
            Input::LiveHintWithdrawn => self.flags.hint_pending = false,
            Input::NetworkChanged => self.on_network_changed(now),
            Input::PathLost => self.on_path_lost(now),
            Input::Repairable => self.on_repairable(),
            Input::RepairFailed => self.on_repair_failed(now),
        }
    }

    /// Acts on the earliest deadline if it has passed at `now`. Early or extra
    /// calls do nothing. One deadline per call: if another one is already due,
    /// [`poll_timeout`](Machine::poll_timeout) returns an instant `<= now`, and
    /// the caller calls again after draining the outputs.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock(now);
        // One deadline per call keeps each call's outputs within the queue; a
        // further deadline already due shows in `poll_timeout` as `<= now`.
        if let Some((deadline, timer)) = self.next_timer()
            && deadline <= now
        {
            self.on_timer(now, timer);
        }
    }

    /// The next output to carry out, in order; `None` when drained.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        let out = match self.queue.pop()? {
            Pending::Connect(attempt) => Output::Connect { attempt },
            Pending::Keep => Output::KeepSession,
            Pending::Abort(reason) => Output::AbortConnect { reason },
            Pending::Drop(reason) => Output::DropSession { reason },
            Pending::Repair(reason) => Output::Repair { reason },
            Pending::GaveUp(reason) => Output::GaveUp { reason },
            Pending::Transition { from, reason } => {
                let to = self.queue.next_transition_from().unwrap_or(self.phase);
                Output::StateChanged {
                    from: self.view(from),
                    to: self.view(to),
                    reason,
                }
            }
        };
        Some(out)
    }

    /// When the machine next needs [`handle_timeout`](Machine::handle_timeout);
    /// `None` when only an input can change anything.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.poll_timeout_reason().map(|(at, _)| at)
    }

    /// Like [`poll_timeout`](Machine::poll_timeout), with which deadline it is.
    #[must_use]
    pub fn poll_timeout_reason(&self) -> Option<(Instant, Timer)> {
        let epoch = self.epoch?;
        self.next_timer().map(|(n, timer)| (at(epoch, n), timer))
    }

    /// Whether outputs are waiting to be polled.
    pub fn has_output(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Converts `now` to an offset, raising it to the latest seen.
    fn clock(&mut self, now: Instant) -> Nanos {
        let epoch = *self.epoch.get_or_insert(now);
        let offset = now.checked_duration_since(epoch).map_or(0, nanos);
        self.now = self.now.max(offset);
        self.now
    }

    /// `last_progress` as an offset from the epoch.
    fn progress_offset(&self) -> Nanos {
        match (self.last_progress, self.epoch) {
            (Some(at), Some(epoch)) => nanos(at.saturating_duration_since(epoch)),
            _ => self.now,
        }
    }

    /// Records progress at offset `now`.
    fn mark_progress(&mut self, now: Nanos) {
        self.last_progress = self.epoch.map(|epoch| at(epoch, now));
    }

    /// The public view of a phase. Before the first input the machine is
    /// `Idle` and no phase carries a time, so a missing epoch only meets `Idle`.
    fn view(&self, phase: Phase) -> State {
        match self.epoch {
            Some(epoch) => phase.to_state(epoch),
            None => State::Idle,
        }
    }

    /// The earliest pending deadline and what it is.
    fn next_timer(&self) -> Option<(Nanos, Timer)> {
        let p = &self.policy;
        match self.phase {
            Phase::Idle => None,
            Phase::Connecting { since, .. } => Some((
                since.saturating_add(nanos(p.connect_timeout)),
                Timer::ConnectTimeout,
            )),
            Phase::Stalled { since, .. } => {
                let grace = (
                    since.saturating_add(nanos(p.stall_grace)),
                    Timer::StallGrace,
                );
                let race = if self.flags.racing {
                    Some((
                        self.race_at.saturating_add(nanos(p.connect_timeout)),
                        Timer::ConnectTimeout,
                    ))
                } else if self.flags.repair == RepairStage::InFlight {
                    Some((
                        self.race_at.saturating_add(nanos(p.repair_within)),
                        Timer::Repair,
                    ))
                } else {
                    (self.race_at != NEVER).then_some((self.race_at, Timer::MakeBeforeBreak))
                };
                Some(match race {
                    Some(race) if race.0 < grace.0 => race,
                    _ => grace,
                })
            }
            Phase::Backoff { until, .. } => Some((until, Timer::Backoff)),
            Phase::Playing { since } => {
                let stall = (p.progress_watchdog && !self.flags.paused).then(|| {
                    let window = if self.flags.seen_media {
                        p.stall_after
                    } else {
                        p.first_media_within
                    };
                    (
                        self.progress_offset().saturating_add(nanos(window)),
                        Timer::Stall,
                    )
                });
                let stable = self
                    .flags
                    .stable_pending
                    .then(|| (since.saturating_add(nanos(p.reset_after)), Timer::Stable));
                match (stall, stable) {
                    (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
                    (a, b) => a.or(b),
                }
            }
        }
    }
}

/// `size_of::<Machine>()`: 248 bytes on 64-bit Linux, and never above 256
/// there (a compile-time check).
pub const MACHINE_SIZE: usize = std::mem::size_of::<Machine>();

#[cfg(target_pointer_width = "64")]
const _: () = assert!(MACHINE_SIZE <= 256, "Machine outgrew its 256-byte budget");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_survive_the_offset_round_trip() {
        let d = Duration::from_millis(1234);
        assert_eq!(Duration::from_nanos(nanos(d)), d);
    }
}
