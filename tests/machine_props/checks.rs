//! The invariants, checked after every step against the model.

use std::time::Duration;

use relive::{Backoff, GiveUpReason, Jitter, Output, Reason, Retry, StallCause, State, Timer};

use crate::harness::{Call, Ctx, Harness};
use crate::{Step, ms};

impl Harness {
    pub(crate) fn check_quiet_calls(&self, call: &Call, outputs: &[Output], ctx: &Ctx<'_>) {
        if call.before == State::Idle && !matches!(call.step, Step::Start) {
            assert!(outputs.is_empty(), "an idle machine acted\n{ctx}");
        }
        if call.is_timeout && call.before_deadline.is_none_or(|d| call.now < d) {
            assert!(
                outputs.is_empty(),
                "timeout before the deadline acted\n{ctx}"
            );
            assert_eq!(self.machine.state(), call.before, "{ctx}");
        }
    }

    pub(crate) fn check_give_up_reason(&self, call: &Call, reason: GiveUpReason, ctx: &Ctx<'_>) {
        let rules = self.policy.give_up();
        let allowed = match reason {
            GiveUpReason::Fatal => matches!(
                call.step,
                Step::ConnectFailed(Retry::Never) | Step::TransportLost(Retry::Never)
            ),
            GiveUpReason::MaxAttempts => {
                rules.max_attempts.is_some_and(|n| self.world.attempts >= n)
            }
            GiveUpReason::MaxOutage => rules.max_outage.is_some(),
            GiveUpReason::PublisherNeverCame => {
                matches!(
                    call.step,
                    Step::ConnectFailed(Retry::WaitForPublisher)
                        | Step::TransportLost(Retry::WaitForPublisher)
                ) && self.policy.wait_for_publisher().is_some()
            }
            _ => false,
        };
        assert!(allowed, "gave up for {reason:?} against the policy\n{ctx}");
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
                let w = &mut self.world;
                w.playing_since = since;
                w.last_progress = since;
                match reason {
                    Reason::ProgressResumed => w.seen_media = true,
                    Reason::UserPaused => {}
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
            State::Backoff { until, attempt, .. } => {
                assert!(until >= now, "backoff ends in the past\n{ctx}");
                let delay = until - now;
                assert!(delay <= self.policy.backoff_cap(), "delay above cap\n{ctx}");
                if reason == Reason::LiveHint {
                    let State::Backoff { until: old, .. } = from else {
                        panic!("a live hint entered Backoff from elsewhere\n{ctx}");
                    };
                    assert!(until < old, "a hint delayed the attempt\n{ctx}");
                    assert!(delay <= self.policy.hint_spread(), "{ctx}");
                } else {
                    self.check_delay(attempt, delay, ctx);
                }
            }
            State::Idle => self.world.attempts = 0,
        }
    }

    /// A fresh backoff's delay, against its jitter kind's formula.
    pub(crate) fn check_delay(&self, attempt: u32, delay: Duration, ctx: &Ctx<'_>) {
        assert!(attempt >= 2, "backoff before attempt {attempt}\n{ctx}");
        let p = &self.policy;
        let ceiling = Backoff::new(p).ceiling(attempt - 1);
        assert!(!delay.is_zero(), "a zero delay must connect at once\n{ctx}");
        match p.jitter() {
            Jitter::None => assert_eq!(delay, ceiling, "{ctx}"),
            Jitter::Full => assert!(delay <= ceiling, "{ctx}"),
            Jitter::Equal => assert!(delay >= ceiling / 2 && delay <= ceiling, "{ctx}"),
            Jitter::Decorrelated => {
                let base = p.initial_backoff().max(ms(1)).min(p.backoff_cap());
                assert!(delay >= base, "{ctx}");
            }
            _ => {}
        }
    }

    /// After the outputs: the world, the model and the machine agree.
    pub(crate) fn check_state(&mut self, call: &Call, outputs: &[Output], ctx: &Ctx<'_>) {
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

        self.check_attempt_counter(call, ctx);
        match call.step {
            Step::Stop => assert_eq!(state, State::Idle, "stop reaches Idle\n{ctx}"),
            Step::Pause => assert!(
                !matches!(
                    state,
                    State::Stalled {
                        cause: StallCause::NoProgress,
                        ..
                    }
                ),
                "still stalled after a pause\n{ctx}"
            ),
            Step::ConnectFailed(Retry::Never) | Step::TransportLost(Retry::Never)
                if !outputs.is_empty() =>
            {
                assert!(
                    outputs.contains(&Output::GaveUp {
                        reason: GiveUpReason::Fatal
                    }),
                    "Retry::Never did not give up\n{ctx}"
                );
            }
            _ => {}
        }
        self.check_reconnect_pace(call, outputs, ctx);
        self.check_timer(ctx);
    }

    /// A session lost after stable play comes back at once; `Retry::Now` is
    /// honoured on the first attempt of an outage; a repeated loss backs off
    /// unless its delay may be zero.
    pub(crate) fn check_reconnect_pace(&self, call: &Call, outputs: &[Output], ctx: &Ctx<'_>) {
        let state = self.machine.state();
        let connected_at_once = outputs.iter().any(|o| matches!(o, Output::Connect { .. }));
        let session_lost = outputs.iter().any(|o| {
            matches!(
                o,
                Output::DropSession {
                    reason: Reason::TransportLost(_) | Reason::GraceExpired(_)
                }
            )
        });
        let retry = match call.step {
            Step::TransportLost(r) | Step::ConnectFailed(r) => r,
            _ => Retry::Later,
        };
        if retry == Retry::Never {
            return;
        }
        if session_lost && call.attempts == 0 {
            assert!(
                matches!(state, State::Connecting { attempt: 1, .. }),
                "first loss after stable play must reconnect at once\n{ctx}"
            );
        }
        let failed_now = matches!(call.step, Step::ConnectFailed(Retry::Now))
            && matches!(call.before, State::Connecting { attempt: 1, .. });
        if failed_now && state != State::Idle {
            assert!(connected_at_once, "Retry::Now not honoured\n{ctx}");
        }
        let may_be_zero =
            self.policy.initial_backoff().is_zero() || self.policy.jitter() == Jitter::Full;
        let lost_again = session_lost && call.attempts > 0;
        let now_again = retry == Retry::Now && call.attempts <= 1;
        if lost_again && !now_again && !may_be_zero {
            assert!(
                !connected_at_once,
                "a flapping session must back off\n{ctx}"
            );
        }
    }

    pub(crate) fn check_attempt_counter(&mut self, call: &Call, ctx: &Ctx<'_>) {
        let m = &self.machine;
        let state = m.state();
        if m.attempt() != self.world.attempts {
            let State::Playing { since } = state else {
                panic!("attempt counter changed outside Playing\n{ctx}");
            };
            assert_eq!(m.attempt(), 0, "{ctx}");
            assert!(call.is_timeout, "{ctx}");
            assert!(
                since + self.policy.reset_after() <= call.now,
                "attempt count reset before reset_after of stable play\n{ctx}"
            );
            self.world.attempts = 0;
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
