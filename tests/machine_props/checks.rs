//! The invariants, checked after every step against the model.

use std::time::Duration;

use relive::{GiveUpReason, Jitter, Output, Reason, Retry, StallCause, State, Timer};

use crate::harness::{Call, Ctx, Event, Harness, publisher_side};
use crate::{Step, ms};

/// A stall the source told of (no layers, `inactive`, `stopped`), not one seen from
/// media time: a live hint or `Active` heals it.
fn told_by_source(cause: StallCause) -> bool {
    cause != StallCause::NoProgress
}

impl Harness {
    pub(crate) fn check_quiet_calls(&self, call: &Call, outputs: &[Output], ctx: &Ctx<'_>) {
        if call.before == State::Idle && !matches!(call.step, Step::Start) {
            assert!(outputs.is_empty(), "an idle machine acted\n{ctx}");
        }
        if call.is_timeout && call.due().is_none() {
            assert!(
                outputs.is_empty(),
                "timeout before the deadline acted\n{ctx}"
            );
            assert_eq!(self.machine.state(), call.before, "{ctx}");
        }
        let stale_hint = match call.before {
            State::Backoff { .. } => false,
            State::Stalled { cause, .. } => !told_by_source(cause),
            _ => true,
        };
        if matches!(call.step, Step::LiveHint | Step::Active) && stale_hint {
            assert!(outputs.is_empty(), "a hint acted outside its states\n{ctx}");
        }
    }

    /// The machine gives up exactly when the model's rules say so, and for
    /// the model's reason.
    pub(crate) fn check_give_up(&mut self, event: Event, outputs: &[Output], ctx: &Ctx<'_>) {
        let gave_up = outputs.iter().find_map(|o| match o {
            Output::GaveUp { reason } => Some(*reason),
            _ => None,
        });
        let expected = match event {
            Event::Failed { give_up, .. } => give_up,
            Event::Fatal => Some(GiveUpReason::Fatal),
            _ => None,
        };
        assert_eq!(gave_up, expected, "give-up against the model\n{ctx}");
        if let Some(why) = gave_up {
            assert_eq!(self.machine.state(), State::Idle, "{ctx}");
            self.note(|| format!("gave up: {why:?}"));
            let max = self.policy.give_up().max_attempts;
            if why == GiveUpReason::MaxAttempts && max.is_some_and(|n| ctx.call.attempts > n) {
                self.note(|| "gave up on attempts after waiting for a publisher".into());
            }
        }
    }

    /// Checks one entered state and updates the timer model.
    pub(crate) fn entered(
        &mut self,
        call: &Call,
        from: State,
        to: State,
        reason: Reason,
        ctx: &Ctx<'_>,
    ) {
        let now = call.now;
        match to {
            State::Playing { since } => {
                assert_eq!(since, now, "{ctx}");
                let allowed = match (reason, from) {
                    (Reason::Connected, State::Connecting { .. }) => true,
                    (Reason::ProgressResumed, State::Stalled { cause, .. }) => {
                        matches!(call.step, Step::Progress(_)) && !publisher_side(cause)
                    }
                    (Reason::UserPaused, State::Stalled { cause, .. }) => {
                        cause == StallCause::NoProgress && matches!(call.step, Step::Pause)
                    }
                    (Reason::LayersBack, State::Stalled { cause, .. }) => {
                        cause == StallCause::NoLayers
                    }
                    (Reason::PublisherActive, State::Stalled { cause, .. }) => {
                        told_by_source(cause) && matches!(call.step, Step::Active)
                    }
                    (Reason::LiveHint, State::Stalled { cause, .. }) => {
                        told_by_source(cause) && matches!(call.step, Step::LiveHint)
                    }
                    _ => false,
                };
                assert!(
                    allowed,
                    "Playing entered by {reason:?} from {from:?}\n{ctx}"
                );
                let w = &mut self.world;
                w.playing_since = since;
                w.last_progress = since;
                // Playing makes a kept hint moot.
                w.hint_pending = false;
                match reason {
                    Reason::ProgressResumed => w.seen_media = true,
                    Reason::UserPaused => {}
                    // A returning feed (and a new session) gets first_media_within.
                    _ => w.seen_media = false,
                }
            }
            State::Stalled { since, cause } => {
                if cause == StallCause::NoProgress {
                    assert!(!self.world.paused, "a paused viewer stalled\n{ctx}");
                }
                match from {
                    State::Stalled { since: first, .. } => assert_eq!(since, first, "{ctx}"),
                    _ => assert_eq!(since, now, "{ctx}"),
                }
            }
            State::Connecting { since, attempt } => {
                assert_eq!(since, now, "{ctx}");
                assert_eq!(attempt, self.world.attempts + 1, "{ctx}");
            }
            State::Backoff {
                until,
                attempt,
                waiting_for_publisher,
            } => {
                assert!(until >= now, "backoff ends in the past\n{ctx}");
                let delay = until - now;
                assert_eq!(attempt, self.world.attempts + 1, "{ctx}");
                match reason {
                    Reason::LiveHint => {
                        let State::Backoff {
                            until: old,
                            attempt: old_attempt,
                            waiting_for_publisher: old_waiting,
                        } = from
                        else {
                            panic!("a live hint entered Backoff from elsewhere\n{ctx}");
                        };
                        assert!(until < old, "a hint delayed the attempt\n{ctx}");
                        assert!(delay <= self.policy.hint_spread(), "{ctx}");
                        assert_eq!(attempt, old_attempt, "{ctx}");
                        assert_eq!(waiting_for_publisher, old_waiting, "{ctx}");
                    }
                    Reason::TransportLost(_) | Reason::SessionEnded | Reason::GraceExpired(_)
                        if call.attempts == 0 =>
                    {
                        // The first reconnect after stable play: the spread.
                        assert!(matches!(ctx.event, Event::LostAfterStable(_)), "{ctx}");
                        assert_eq!(attempt, 1, "{ctx}");
                        assert!(!waiting_for_publisher, "{ctx}");
                        assert!(
                            !delay.is_zero(),
                            "a zero spread must connect at once\n{ctx}"
                        );
                        assert!(
                            delay <= self.policy.reconnect_spread(),
                            "delay above the spread\n{ctx}"
                        );
                        self.note(|| format!("spread after {reason}"));
                        self.note_kept_hint();
                    }
                    _ => {
                        let Event::Failed { retry, .. } = ctx.event else {
                            panic!("a backoff without a failure\n{ctx}");
                        };
                        self.note_kept_hint();
                        assert_eq!(
                            waiting_for_publisher,
                            retry == Retry::WaitForPublisher,
                            "{ctx}"
                        );
                        assert!(
                            delay <= self.policy.backoff().cap(),
                            "delay above cap\n{ctx}"
                        );
                        self.check_delay(attempt, delay, ctx);
                    }
                }
            }
            State::Idle => {
                let w = &mut self.world;
                w.attempts = 0;
                w.failures = 0;
                w.publisher_missing_since = None;
                w.hint_pending = false;
            }
        }
    }

    /// A `Backoff` entered after a failure or a loss: a live hint kept from
    /// before acts on it now, in the same call.
    fn note_kept_hint(&mut self) {
        if self.world.hint_pending {
            self.world.hint_pending = false;
            self.hint_fired = true;
            self.note(|| "a kept live hint acted on the next backoff".into());
        }
    }

    /// A fresh backoff's delay, against its jitter kind's formula.
    pub(crate) fn check_delay(&self, attempt: u32, delay: Duration, ctx: &Ctx<'_>) {
        assert!(attempt >= 2, "backoff before attempt {attempt}\n{ctx}");
        let p = &self.policy;
        let ceiling = p.backoff().ceiling(attempt - 1);
        assert!(!delay.is_zero(), "a zero delay must connect at once\n{ctx}");
        match p.backoff().jitter() {
            Jitter::None => assert_eq!(delay, ceiling, "{ctx}"),
            Jitter::Full => assert!(delay <= ceiling, "{ctx}"),
            Jitter::Equal => assert!(delay >= ceiling / 2 && delay <= ceiling, "{ctx}"),
            Jitter::Decorrelated => {
                let base = p.backoff().initial().max(ms(1)).min(p.backoff().cap());
                assert!(delay >= base, "{ctx}");
            }
            _ => {}
        }
    }

    /// After the outputs: the world, the model and the machine agree.
    pub(crate) fn check_state(
        &mut self,
        call: &Call,
        event: Event,
        outputs: &[Output],
        ctx: &Ctx<'_>,
    ) {
        let m = &self.machine;
        let state = m.state();
        assert_eq!(
            self.world.state, state,
            "last transition is the state\n{ctx}"
        );
        assert_eq!(m.outputs_overwritten(), 0, "{ctx}");
        assert_eq!(m.is_paused(), self.world.paused, "{ctx}");
        let connecting = matches!(state, State::Connecting { .. });
        let session = matches!(state, State::Playing { .. } | State::Stalled { .. });
        assert_eq!(self.world.attempt_in_flight, connecting, "attempt\n{ctx}");
        assert_eq!(self.world.session_held, session, "session\n{ctx}");

        self.check_attempt_counter(call, event, ctx);
        match (call.step, call.before) {
            (Step::Stop, _) => assert_eq!(state, State::Idle, "stop reaches Idle\n{ctx}"),
            (Step::Pause, _) => assert!(
                !matches!(
                    state,
                    State::Stalled {
                        cause: StallCause::NoProgress,
                        ..
                    }
                ),
                "still stalled after a pause\n{ctx}"
            ),
            (Step::LiveHint | Step::Active, State::Stalled { cause, .. })
                if told_by_source(cause) =>
            {
                // The publisher is back: the same session watches again.
                assert!(state.is_playing(), "a hint left a {cause:?} stall\n{ctx}");
            }
            _ => {}
        }
        self.check_reconnect_pace(call, event, outputs, ctx);
        self.check_timer(ctx);
    }

    /// A session lost after stable play comes back within `reconnect_spread`
    /// (at once without one); `Retry::Now` is honoured on the first attempt
    /// of an outage; any other failure backs off unless its delay may be zero.
    pub(crate) fn check_reconnect_pace(
        &mut self,
        call: &Call,
        event: Event,
        outputs: &[Output],
        ctx: &Ctx<'_>,
    ) {
        let state = self.machine.state();
        let connected_at_once = outputs.iter().any(|o| matches!(o, Output::Connect { .. }));
        if self.hint_fired {
            // The kept hint acted on the backoff just entered: at once without
            // a hint spread, else within it (a `Backoff → Backoff` by the hint,
            // or none when the drawn delay is not sooner).
            if self.policy.hint_spread().is_zero() {
                assert!(
                    matches!(state, State::Connecting { .. }) && connected_at_once,
                    "a kept live hint did not connect at once\n{ctx}"
                );
            } else {
                assert!(matches!(state, State::Backoff { .. }), "{ctx}");
            }
            return;
        }
        match event {
            Event::LostAfterStable(_) => {
                let dropped = outputs
                    .iter()
                    .any(|o| matches!(o, Output::DropSession { .. }));
                assert!(dropped, "a lost session was not dropped\n{ctx}");
                if self.policy.reconnect_spread().is_zero() {
                    assert!(
                        matches!(state, State::Connecting { attempt: 1, .. }),
                        "without a spread the first loss reconnects at once\n{ctx}"
                    );
                    self.note(|| "at once after a stable session was lost".into());
                } else {
                    // A zero draw from [0, spread] (spread >= 1 ms) has a chance
                    // below one in a million: a spread means a backoff.
                    assert!(
                        matches!(state, State::Backoff { attempt: 1, .. }),
                        "a stable session lost must wait within the spread\n{ctx}"
                    );
                    assert!(!connected_at_once, "{ctx}");
                }
            }
            Event::Failed {
                retry,
                give_up: None,
            } => {
                let now_again = retry == Retry::Now && call.attempts <= 1;
                let may_be_zero = self.policy.backoff().initial().is_zero()
                    || self.policy.backoff().jitter() == Jitter::Full;
                if now_again {
                    assert!(connected_at_once, "Retry::Now not honoured\n{ctx}");
                    assert!(
                        matches!(state, State::Connecting { attempt, .. } if attempt == call.attempts + 1),
                        "{ctx}"
                    );
                } else if !may_be_zero {
                    assert!(!connected_at_once, "a failure must back off\n{ctx}");
                    assert!(matches!(state, State::Backoff { .. }), "{ctx}");
                } else {
                    assert!(
                        matches!(state, State::Backoff { .. } | State::Connecting { .. }),
                        "{ctx}"
                    );
                }
                if retry == Retry::WaitForPublisher && self.policy.give_up().max_outage.is_some() {
                    self.note(|| "a publisher answer restarted the outage clock".into());
                }
            }
            _ => {}
        }
    }

    /// The machine's attempt count is the model's: it moves by `Connect`,
    /// and starts over on `Idle` and after `reset_after` of stable playback.
    pub(crate) fn check_attempt_counter(&mut self, call: &Call, event: Event, ctx: &Ctx<'_>) {
        let m = &self.machine;
        let state = m.state();
        assert_eq!(m.attempt(), self.world.attempts, "attempt count\n{ctx}");
        if event == Event::Stable {
            let State::Playing { since } = call.before else {
                unreachable!("a stable timer outside Playing");
            };
            assert!(
                since + self.policy.reset_after() <= call.now,
                "attempt count reset before reset_after of stable play\n{ctx}"
            );
        }
        match state {
            State::Connecting { attempt, .. } => assert_eq!(attempt, m.attempt(), "{ctx}"),
            State::Backoff { attempt, .. } => assert_eq!(attempt, m.attempt() + 1, "{ctx}"),
            State::Idle => assert_eq!(m.attempt(), 0, "{ctx}"),
            _ => {}
        }
    }

    /// The deadline the machine asks for is the one the model expects.
    pub(crate) fn check_timer(&self, ctx: &Ctx<'_>) {
        let p = &self.policy;
        let w = &self.world;
        let expected = match w.state {
            State::Idle => None,
            State::Connecting { since, .. } => {
                Some((since + p.connect_timeout(), Timer::ConnectTimeout))
            }
            State::Stalled { since, .. } => Some((since + p.stall_grace(), Timer::StallGrace)),
            State::Backoff { until, .. } => Some((until, Timer::Backoff)),
            State::Playing { .. } => {
                let window = if w.seen_media {
                    p.stall_after()
                } else {
                    p.first_media_within()
                };
                let stall = (!w.paused).then(|| (w.last_progress + window, Timer::Stall));
                let stable =
                    (w.attempts > 0).then(|| (w.playing_since + p.reset_after(), Timer::Stable));
                match (stall, stable) {
                    (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
                    (a, b) => a.or(b),
                }
            }
        };
        let actual = self.machine.poll_timeout_reason();
        assert_eq!(actual, expected, "deadline\n{ctx}");
        if actual.is_none() {
            // Only Idle, or a paused Playing with nothing left to time.
            let paused_and_stable = w.paused && w.attempts == 0;
            assert!(
                w.state == State::Idle
                    || (matches!(w.state, State::Playing { .. }) && paused_and_stable),
                "no deadline in {:?}\n{ctx}",
                w.state
            );
        }
    }
}
