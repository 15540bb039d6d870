//! The harness: runs one step on the machine, drains its outputs and keeps
//! the model of the outside world up to date.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use relive::{
    GiveUpReason, Input, Machine, Output, Policy, Reason, Retry, StallCause, State, Timer,
};

use crate::{Media, Setup, Step, ms};

/// A jump back in media time larger than this starts a new timeline (the crate's one
/// continuity threshold; the model reads the number, not the rule).
pub(crate) const NEW_TIMELINE: Duration = relive::timeline::MAX_REWIND;

/// Whether the publisher's side caused the stall: only `Active` or a live hint end it.
pub(crate) fn publisher_side(cause: StallCause) -> bool {
    matches!(cause, StallCause::Inactive | StallCause::StreamEnded)
}

/// What the outside world holds and what the machine should be doing, as
/// learnt from the outputs and the inputs fed.
#[derive(Debug)]
pub(crate) struct World {
    /// A `Connect` was carried out and neither answered nor aborted.
    pub(crate) attempt_in_flight: bool,
    /// A session came up and was not dropped yet.
    pub(crate) session_held: bool,
    /// The state the last `StateChanged` entered.
    pub(crate) state: State,
    /// The attempt number of the last `Connect` in this outage; 0 after a reset.
    pub(crate) attempts: u32,
    /// Attempts of this outage that failed for another reason than a missing
    /// publisher: what `give_up_after_attempts` counts.
    pub(crate) failures: u32,
    /// When the current outage began: `Start`, the last session lost, the
    /// last answer that nobody publishes.
    pub(crate) outage_since: Instant,
    /// The first "nobody publishes" answer since the last other failure.
    pub(crate) publisher_missing_since: Option<Instant>,
    pub(crate) paused: bool,
    /// The media time of the last progress tick fed (0 after `Connected`):
    /// what the generator moves from.
    pub(crate) last_tick_media: Duration,
    /// The furthest media time of this session's timeline (0 after `Connected`).
    pub(crate) furthest_media: Duration,
    /// Media advanced at least once since the session (re)started watching.
    pub(crate) seen_media: bool,
    /// Media advanced at least once on this session (since `Connected`).
    pub(crate) session_showed_media: bool,
    /// When media last advanced, playing began, or the user resumed. A tick
    /// records its own instant, and only when later than this one.
    pub(crate) last_progress: Instant,
    pub(crate) playing_since: Instant,
    /// A live hint came in `Connecting` or a no-progress stall and waits for
    /// the next `Backoff`.
    pub(crate) hint_pending: bool,
}

pub(crate) struct Harness {
    pub(crate) machine: Machine,
    pub(crate) policy: Policy,
    pub(crate) base: Instant,
    /// The caller's clock, in ms after `base` (never below 0 so `Instant` math holds).
    pub(crate) clock_ms: i64,
    /// The machine's clamped `now`: the latest instant of every input but
    /// progress ticks (which move it only when they heal a stall).
    pub(crate) latest: Option<Instant>,
    pub(crate) world: World,
    pub(crate) steps: usize,
    /// What happened, by label; kept only by the coverage test.
    pub(crate) seen: Option<BTreeSet<String>>,
    /// In the current call, a kept live hint acted on the `Backoff` entered.
    pub(crate) hint_fired: bool,
}

/// What one machine call looked like, for the checks.
pub(crate) struct Call {
    pub(crate) step: Step,
    /// The attempt count before the call.
    pub(crate) attempts: u32,
    pub(crate) before: State,
    pub(crate) before_deadline: Option<(Instant, Timer)>,
    /// The machine's `now` for this call: clamped, except for a progress
    /// tick that does not heal a stall, which is taken at its own instant.
    pub(crate) now: Instant,
    pub(crate) is_timeout: bool,
}

impl Call {
    /// The timer this call handles, if it is a timeout at or past the deadline.
    pub(crate) fn due(&self) -> Option<Timer> {
        let (deadline, timer) = self.before_deadline?;
        (self.is_timeout && deadline <= self.now).then_some(timer)
    }
}

/// What a call does to the outage, by the model: derived from the step and
/// the state before, never from the machine's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// Nothing that counts.
    Nothing,
    /// `Start` from `Idle`: a new outage.
    Started,
    /// Playback held for `reset_after`: the outage is over.
    Stable,
    /// A session lost after stable playback: the spread, then attempt 1.
    LostAfterStable(Retry),
    /// A failed attempt (or a lost session that had not been stable), and
    /// the give-up it must lead to.
    Failed {
        retry: Retry,
        give_up: Option<GiveUpReason>,
    },
    /// `Retry::Never` on a lost session.
    Fatal,
}

impl World {
    /// A session is gone. The outage starts now (the time played before it is
    /// none) if the session was stable or showed media: a session that never
    /// showed a frame ends no outage, or `give_up_after` would never fire for
    /// a viewer whose sessions connect but stay black.
    fn session_lost(&mut self, now: Instant, attempts: u32) {
        if attempts == 0 || self.session_showed_media {
            self.outage_since = now;
        }
    }
}

impl Harness {
    pub(crate) fn new(setup: &Setup) -> Self {
        #[allow(clippy::disallowed_methods)] // one real base; all else is offsets from it
        let base = Instant::now();
        Harness {
            machine: Machine::new(setup.policy, setup.seed),
            policy: setup.policy,
            base,
            // Start 5 s in, so that backwards steps can go before the machine's epoch.
            clock_ms: 5_000,
            latest: None,
            world: World {
                attempt_in_flight: false,
                session_held: false,
                state: State::Idle,
                attempts: 0,
                failures: 0,
                outage_since: base,
                publisher_missing_since: None,
                paused: false,
                last_tick_media: Duration::ZERO,
                furthest_media: Duration::ZERO,
                seen_media: false,
                session_showed_media: false,
                last_progress: base,
                playing_since: base,
                hint_pending: false,
            },
            steps: 0,
            seen: None,
            hint_fired: false,
        }
    }

    pub(crate) fn note(&mut self, label: impl FnOnce() -> String) {
        if let Some(seen) = &mut self.seen {
            seen.insert(label());
        }
    }

    fn clock(&self) -> Instant {
        self.at_ms(self.clock_ms)
    }

    fn at_ms(&self, offset: i64) -> Instant {
        self.base + ms(u64::try_from(offset.max(0)).unwrap_or(0))
    }

    /// The machine's `now` for a call at `t`: time never runs backwards inside.
    fn enter(&mut self, t: Instant) -> Instant {
        let now = self.latest.map_or(t, |latest| latest.max(t));
        if now > t {
            self.note(|| "now went backwards".into());
        } else if Some(t) == self.latest {
            self.note(|| "now stood still".into());
        }
        self.latest = Some(now);
        now
    }

    pub(crate) fn run(&mut self, step: Step) {
        self.steps += 1;
        match step {
            Step::Wait(delta) => self.clock_ms = (self.clock_ms + i64::from(delta)).max(0),
            Step::TimeoutAtDeadline => {
                if let Some(deadline) = self.machine.poll_timeout() {
                    self.timeout(step, deadline);
                }
            }
            Step::TimeoutAt(delta) => {
                let t = self.at_ms(self.clock_ms + i64::from(delta));
                self.timeout(step, t);
            }
            Step::FireDue => self.fire_due(),
            Step::Progress(change) => self.tick(step, change),
            _ => self.input(step),
        }
    }

    fn fire_due(&mut self) {
        let t = self.clock();
        for _ in 0..16 {
            let now = self.latest.map_or(t, |latest| latest.max(t));
            match self.machine.poll_timeout() {
                Some(deadline) if deadline <= now => self.timeout(Step::FireDue, t),
                _ => break,
            }
        }
        let now = self.latest.map_or(t, |latest| latest.max(t));
        assert!(
            self.machine.poll_timeout().is_none_or(|d| d > now),
            "deadlines keep coming due at one instant: {:?}",
            self.machine.poll_timeout_reason()
        );
        // Playing has lasted `reset_after` and every due deadline was handled:
        // the attempt count must have started over.
        if let State::Playing { since } = self.machine.state()
            && since + self.policy.reset_after() <= now
        {
            assert_eq!(self.machine.attempt(), 0, "stable playback did not reset");
        }
    }

    fn timeout(&mut self, step: Step, t: Instant) {
        let before = self.machine.state();
        let before_deadline = self.machine.poll_timeout_reason();
        let now = self.enter(t);
        self.machine.handle_timeout(t);
        let call = Call {
            step,
            attempts: self.world.attempts,
            before,
            before_deadline,
            now,
            is_timeout: true,
        };
        self.after(&call);
    }

    fn input(&mut self, step: Step) {
        let t = self.clock();
        let before = self.machine.state();
        let before_deadline = self.machine.poll_timeout_reason();
        let now = self.enter(t);
        let input = self.world_sees(step, before, now);
        self.machine.handle_input(t, input);
        let call = Call {
            step,
            attempts: self.world.attempts,
            before,
            before_deadline,
            now,
            is_timeout: false,
        };
        self.after(&call);
    }

    /// A progress tick: media time as a high-water mark per timeline, taken
    /// at its own instant (no clamping) unless it heals a stall.
    fn tick(&mut self, step: Step, change: Media) {
        let t = self.clock();
        let before = self.machine.state();
        let before_deadline = self.machine.poll_timeout_reason();
        let w = &mut self.world;
        let furthest = w.furthest_media;
        let media = match change {
            Media::Advance(d) => w.last_tick_media + ms(d.into()),
            Media::Same => w.last_tick_media,
            Media::Back(d) => w.last_tick_media.saturating_sub(ms(d.into())),
            Media::BelowFurthest(d) => furthest.saturating_sub(ms(d.into())),
            Media::Furthest => furthest,
            Media::Leap(d) => w.last_tick_media + ms(d.into()),
        };
        w.last_tick_media = media;
        let advanced = media > furthest;
        let new_timeline = !advanced && furthest.saturating_sub(media) > NEW_TIMELINE;
        if advanced || new_timeline {
            w.furthest_media = media;
        }
        let session = matches!(before, State::Playing { .. } | State::Stalled { .. });
        // A tick during a stall the publisher caused is a leftover of its
        // last packets: it ends nothing and shows nothing.
        let ignored = matches!(before, State::Stalled { cause, .. } if publisher_side(cause));
        if advanced && session && !ignored {
            self.world.session_showed_media = true;
        }
        if advanced && media - furthest > ms(10_000) && session {
            self.note(|| "tick: a leap forward is progress".into());
        }
        if advanced && ignored {
            self.note(|| "tick: a publisher-side stall does not end on progress".into());
        }
        let heals = advanced && matches!(before, State::Stalled { .. }) && !ignored;
        let label = match (advanced, new_timeline) {
            (true, _) => None,
            (false, true) => Some("tick: a jump back starts a new timeline"),
            (false, false) if media < furthest => Some("tick: back within a second, no progress"),
            (false, false) => Some("tick: at the furthest point, no progress"),
        };
        if let Some(label) = label.filter(|_| session) {
            self.note(|| label.into());
        }
        let now = if heals { self.enter(t) } else { t };
        if advanced && matches!(before, State::Playing { .. }) {
            let w = &mut self.world;
            w.seen_media = true;
            if t > w.last_progress {
                if self.latest.is_some_and(|latest| t > latest) {
                    self.note(|| "tick: ahead of the machine's clock".into());
                } else if self.latest.is_some_and(|latest| t < latest) {
                    self.note(|| "tick: behind the machine's clock, counted".into());
                }
                self.world.last_progress = t;
            } else {
                self.note(|| "tick: older than the last progress".into());
            }
        }
        self.machine.handle_input(t, Input::Progress(media));
        let call = Call {
            step,
            attempts: self.world.attempts,
            before,
            before_deadline,
            now,
            is_timeout: false,
        };
        self.after(&call);
    }

    /// The input for `step`, and what it changes in the world and the model
    /// before the machine answers.
    fn world_sees(&mut self, step: Step, before: State, now: Instant) -> Input {
        let w = &mut self.world;
        match step {
            Step::Start => {
                if before == State::Idle {
                    // A pause given before `Start` holds across it.
                    w.seen_media = false;
                    if w.paused {
                        self.note(|| "a pause held across start".into());
                    }
                }
                Input::Start
            }
            Step::Stop => Input::Stop,
            Step::Pause => {
                w.paused = true;
                Input::Pause
            }
            Step::Resume => {
                if w.paused {
                    w.paused = false;
                    w.last_progress = now;
                }
                Input::Resume
            }
            Step::Connected => {
                // The session is held once the machine says `KeepSession`.
                if w.attempt_in_flight {
                    w.attempt_in_flight = false;
                    w.last_tick_media = Duration::ZERO;
                    w.furthest_media = Duration::ZERO;
                    w.session_showed_media = false;
                }
                Input::Connected
            }
            Step::ConnectFailed(retry) => {
                w.attempt_in_flight = false;
                Input::ConnectFailed(retry)
            }
            Step::Layers(active) => Input::Layers { active },
            Step::Active => Input::Active,
            Step::Inactive => Input::Inactive,
            Step::StreamEnded => Input::StreamEnded,
            // The world's transport died; the driver still holds the session
            // until the machine says to drop it.
            Step::TransportLost(retry) => Input::TransportLost(retry),
            Step::SessionEnded => Input::SessionEnded,
            Step::LiveHint => {
                match before {
                    State::Connecting { .. }
                    | State::Stalled {
                        cause: StallCause::NoProgress,
                        ..
                    } => w.hint_pending = true,
                    State::Backoff { .. } | State::Stalled { .. } => w.hint_pending = false,
                    State::Playing { .. } | State::Idle => {}
                }
                Input::LiveHint
            }
            Step::LiveHintWithdrawn => {
                if w.hint_pending {
                    self.note(|| "a kept live hint was withdrawn".into());
                }
                self.world.hint_pending = false;
                Input::LiveHintWithdrawn
            }
            Step::Progress(_)
            | Step::Wait(_)
            | Step::TimeoutAtDeadline
            | Step::TimeoutAt(_)
            | Step::FireDue => {
                unreachable!("not an input")
            }
        }
    }

    /// The model's view of what the call does to the outage: updates the
    /// counters the give-up rules read, and says what must follow.
    fn outage_event(&mut self, call: &Call) -> Event {
        let now = call.now;
        let w = &mut self.world;
        let retry = match (call.step, call.before, call.due()) {
            (Step::Start, State::Idle, _) => {
                w.failures = 0;
                w.outage_since = now;
                w.publisher_missing_since = None;
                return Event::Started;
            }
            (_, State::Playing { .. }, Some(Timer::Stable)) => {
                w.attempts = 0;
                w.failures = 0;
                w.publisher_missing_since = None;
                return Event::Stable;
            }
            (Step::ConnectFailed(retry), State::Connecting { .. }, _) => retry,
            (_, State::Connecting { .. }, Some(Timer::ConnectTimeout)) => Retry::Later,
            (
                Step::TransportLost(_) | Step::SessionEnded,
                State::Playing { .. } | State::Stalled { .. },
                _,
            ) => {
                let retry = match call.step {
                    Step::TransportLost(retry) => retry,
                    _ => Retry::Later,
                };
                w.session_lost(now, call.attempts);
                if retry == Retry::Never {
                    return Event::Fatal;
                }
                if call.attempts == 0 {
                    return Event::LostAfterStable(retry);
                }
                retry
            }
            (_, State::Stalled { .. }, Some(Timer::StallGrace)) => {
                w.session_lost(now, call.attempts);
                if call.attempts == 0 {
                    return Event::LostAfterStable(Retry::Later);
                }
                Retry::Later
            }
            _ => return Event::Nothing,
        };
        if retry == Retry::WaitForPublisher {
            w.publisher_missing_since.get_or_insert(now);
            // The service answered: waiting for a publisher is not an outage.
            w.outage_since = now;
        } else {
            w.publisher_missing_since = None;
            w.failures = w.failures.saturating_add(1);
        }
        let rules = self.policy.give_up();
        let give_up = match retry {
            Retry::Never => Some(GiveUpReason::Fatal),
            Retry::WaitForPublisher => {
                let since = w.publisher_missing_since.unwrap_or(now);
                self.policy
                    .wait_for_publisher()
                    .filter(|wait| now.saturating_duration_since(since) >= *wait)
                    .map(|_| GiveUpReason::PublisherNeverCame)
            }
            _ if rules.max_attempts.is_some_and(|max| w.failures >= max) => {
                Some(GiveUpReason::MaxAttempts)
            }
            _ if rules
                .max_outage
                .is_some_and(|max| now.saturating_duration_since(w.outage_since) >= max) =>
            {
                Some(GiveUpReason::MaxOutage)
            }
            _ => None,
        };
        Event::Failed { retry, give_up }
    }

    fn after(&mut self, call: &Call) {
        self.hint_fired = false;
        let mut outputs = Vec::new();
        while let Some(output) = self.machine.poll_output() {
            outputs.push(output);
        }
        let event = self.outage_event(call);
        let ctx = &Ctx {
            step: self.steps,
            call,
            event,
            at: call.now.duration_since(self.base),
            outputs: &outputs,
        };
        self.check_quiet_calls(call, &outputs, ctx);
        let mut gave_up_pending = None;
        for output in &outputs {
            self.carry_out(call, *output, &mut gave_up_pending, ctx);
        }
        assert_eq!(
            gave_up_pending, None,
            "gave up without GaveUp output\n{ctx}"
        );
        self.check_give_up(event, &outputs, ctx);
        self.check_state(call, event, &outputs, ctx);
    }

    fn carry_out(
        &mut self,
        call: &Call,
        output: Output,
        gave_up_pending: &mut Option<GiveUpReason>,
        ctx: &Ctx<'_>,
    ) {
        match output {
            Output::Connect { attempt } => {
                let w = &mut self.world;
                assert!(!w.session_held, "Connect while a session is alive\n{ctx}");
                assert!(
                    !w.attempt_in_flight,
                    "Connect while an attempt is in flight\n{ctx}"
                );
                assert_eq!(attempt, w.attempts + 1, "attempts count up by one\n{ctx}");
                if let Some(max) = self.policy.give_up().max_attempts {
                    // Attempts that found nobody publishing do not count.
                    assert!(w.failures < max, "Connect past max failures\n{ctx}");
                    if attempt > max {
                        self.note(|| "attempt past max after waiting for a publisher".into());
                    }
                }
                let w = &mut self.world;
                w.attempts = attempt;
                w.attempt_in_flight = true;
                if let State::Backoff { until, .. } = call.before
                    && !matches!(call.step, Step::LiveHint | Step::Active)
                {
                    assert!(call.now >= until, "Connect before the backoff ended\n{ctx}");
                }
                if matches!(call.before, State::Backoff { until, .. } if call.now < until)
                    && !self.policy.hint_spread().is_zero()
                {
                    // A hint waits a random delay in [0, spread]: drawing exactly
                    // zero has a chance below one in a million (spread >= 1 ms).
                    panic!("a spread hint connected at once\n{ctx}");
                }
            }
            Output::KeepSession => {
                assert!(
                    matches!(call.step, Step::Connected)
                        && matches!(call.before, State::Connecting { .. }),
                    "KeepSession outside an answer to Connected while Connecting\n{ctx}"
                );
                assert!(!self.world.session_held, "two sessions kept\n{ctx}");
                self.world.session_held = true;
            }
            Output::AbortConnect { .. } => {
                assert!(self.world.attempt_in_flight, "abort without attempt\n{ctx}");
                self.world.attempt_in_flight = false;
            }
            Output::DropSession { .. } => {
                assert!(self.world.session_held, "drop without session\n{ctx}");
                self.world.session_held = false;
            }
            Output::StateChanged { from, to, reason } => {
                self.note(|| format!("{} -> {}: {reason}", from.name(), to.name()));
                if matches!(call.step, Step::Stop) {
                    self.note(|| format!("stop in {}", from.name()));
                }
                assert_eq!(from, self.world.state, "transitions chain\n{ctx}");
                if let Reason::GaveUp(why) = reason {
                    assert_eq!(to, State::Idle, "giving up goes Idle\n{ctx}");
                    *gave_up_pending = Some(why);
                }
                self.entered(call, from, to, reason, ctx);
                self.world.state = to;
            }
            Output::GaveUp { reason } => {
                assert_eq!(*gave_up_pending, Some(reason), "GaveUp without Idle\n{ctx}");
                *gave_up_pending = None;
            }
            _ => panic!("an output this harness does not know: {output:?}"),
        }
    }
}

/// Where a check failed; formatted only when it does.
pub(crate) struct Ctx<'a> {
    pub(crate) step: usize,
    pub(crate) call: &'a Call,
    pub(crate) event: Event,
    pub(crate) at: Duration,
    pub(crate) outputs: &'a [Output],
}

impl std::fmt::Display for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step #{} {:?} at +{:?} from {:?} ({:?})\noutputs: {:#?}",
            self.step, self.call.step, self.at, self.call.before, self.event, self.outputs
        )
    }
}
