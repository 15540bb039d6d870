//! The harness: runs one step on the machine, drains its outputs and keeps
//! the model of the outside world up to date.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use relive::{GiveUpReason, Input, Machine, Output, Policy, Reason, Retry, State};

use crate::{Media, Setup, Step, ms};

/// What the outside world holds and what the machine should be doing, as
/// learnt from the outputs only.
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
    pub(crate) paused: bool,
    /// The media time of the last progress tick fed (0 after `Connected`).
    pub(crate) last_media: Duration,
    /// Media advanced at least once since the session (re)started watching.
    pub(crate) seen_media: bool,
    /// When media last advanced, playing began, or the user resumed.
    pub(crate) last_progress: Instant,
    pub(crate) playing_since: Instant,
    /// The retry class of the latest failure (a timeout or grace counts as `Later`).
    pub(crate) last_failure: Retry,
}

pub(crate) struct Harness {
    pub(crate) machine: Machine,
    pub(crate) policy: Policy,
    pub(crate) base: Instant,
    /// The caller's clock, in ms after `base` (never below 0 so `Instant` math holds).
    pub(crate) clock_ms: i64,
    /// The latest instant handed to the machine: its clamped `now`.
    pub(crate) latest: Option<Instant>,
    pub(crate) world: World,
    pub(crate) steps: usize,
    /// What happened, by label; kept only by the coverage test.
    pub(crate) seen: Option<BTreeSet<String>>,
}

/// What one machine call looked like, for the checks.
pub(crate) struct Call {
    pub(crate) step: Step,
    /// The attempt count before the call.
    pub(crate) attempts: u32,
    pub(crate) before: State,
    pub(crate) before_deadline: Option<Instant>,
    pub(crate) now: Instant,
    pub(crate) is_timeout: bool,
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
                paused: false,
                last_media: Duration::ZERO,
                seen_media: false,
                last_progress: base,
                playing_since: base,
                last_failure: Retry::Later,
            },
            steps: 0,
            seen: None,
        }
    }

    fn note(&mut self, label: impl FnOnce() -> String) {
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
        let before_deadline = self.machine.poll_timeout();
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
        let before_deadline = self.machine.poll_timeout();
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

    /// The input for `step`, and what it changes in the world and the model
    /// before the machine answers.
    fn world_sees(&mut self, step: Step, before: State, now: Instant) -> Input {
        let w = &mut self.world;
        match step {
            Step::Start => {
                if before == State::Idle {
                    w.paused = false;
                    w.seen_media = false;
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
                if w.attempt_in_flight {
                    w.attempt_in_flight = false;
                    w.session_held = true;
                    w.last_media = Duration::ZERO;
                }
                Input::Connected
            }
            Step::ConnectFailed(retry) => {
                if w.attempt_in_flight {
                    w.last_failure = retry;
                }
                w.attempt_in_flight = false;
                Input::ConnectFailed(retry)
            }
            Step::Progress(change) => {
                let media = match change {
                    Media::Advance(d) => w.last_media + ms(d.into()),
                    Media::Same => w.last_media,
                    Media::Back(d) => w.last_media.saturating_sub(ms(d.into())),
                };
                if media > w.last_media && matches!(before, State::Playing { .. }) {
                    w.last_progress = now;
                    w.seen_media = true;
                }
                w.last_media = media;
                Input::Progress(media)
            }
            Step::Layers(active) => Input::Layers { active },
            Step::Active => Input::Active,
            Step::Inactive => Input::Inactive,
            Step::Stopped => Input::Stopped,
            // The world's transport died; the driver still holds the session
            // until the machine says to drop it.
            Step::TransportLost(retry) => {
                if w.session_held {
                    w.last_failure = retry;
                }
                Input::TransportLost(retry)
            }
            Step::LiveHint => Input::LiveHint,
            Step::Wait(_) | Step::TimeoutAtDeadline | Step::TimeoutAt(_) | Step::FireDue => {
                unreachable!("not an input")
            }
        }
    }

    fn after(&mut self, call: &Call) {
        let mut outputs = Vec::new();
        while let Some(output) = self.machine.poll_output() {
            outputs.push(output);
        }
        let ctx = &Ctx {
            step: self.steps,
            call,
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
        self.check_state(call, &outputs, ctx);
    }

    /// Calls that must do nothing.
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
                if let Some(max) = self.policy.give_up().max_attempts
                    && attempt > max
                {
                    // Only waiting for a publisher goes past the attempt limit.
                    assert_eq!(w.last_failure, Retry::WaitForPublisher, "past max\n{ctx}");
                }
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
            Output::AbortConnect { reason } => {
                if reason == Reason::ConnectTimedOut {
                    self.world.last_failure = Retry::Later;
                }
                assert!(self.world.attempt_in_flight, "abort without attempt\n{ctx}");
                self.world.attempt_in_flight = false;
            }
            Output::DropSession { reason } => {
                if let Reason::GraceExpired(_) = reason {
                    self.world.last_failure = Retry::Later;
                }
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
                    self.check_give_up_reason(call, why, ctx);
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
    pub(crate) at: Duration,
    pub(crate) outputs: &'a [Output],
}

impl std::fmt::Display for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step #{} {:?} at +{:?} from {:?}\noutputs: {:#?}",
            self.step, self.call.step, self.at, self.call.before, self.outputs
        )
    }
}
