//! The transitions: one method per input, each a `match` on the phase that
//! reads like the table in the crate docs. An input that does not fit the
//! phase is stale and ignored.

use std::time::{Duration, Instant};

use crate::machine::queue::Pending;
use crate::machine::state::{Nanos, Phase, nanos};
use crate::machine::{Flags, GiveUpReason, Machine, NEVER, Reason, RepairStage, StallCause, Timer};
use crate::source::Retry;
use crate::timeline::{Continuity, classify, is_ahead};

impl Machine {
    /// The hot path: a compare and two stores while playing, nothing allocated,
    /// no time arithmetic. Whether media moved is the one rule of
    /// [`timeline::classify`](crate::timeline::classify): only a reading past
    /// the furthest point of this timeline is progress (a frozen picture whose
    /// clock flickers back and forth is still a stall), and a rewind starts a
    /// new timeline (a publisher restart, a migrated media path).
    #[inline]
    pub(super) fn on_tick(&mut self, now: Instant, media: Duration) {
        // Ahead (`Forward` or `Leaped`) is progress: one compare on the hot path;
        // only what is not ahead is classified further.
        if !is_ahead(self.last_media, media) {
            if classify(self.last_media, media) == Continuity::Rewound {
                self.last_media = media;
            }
            return;
        }
        self.last_media = media;
        match self.phase {
            Phase::Playing { .. } => {
                // Time never runs backwards: an older tick moves nothing.
                if self.last_progress.is_none_or(|last| now > last) {
                    self.last_progress = Some(now);
                }
                self.flags.seen_media = true;
                self.flags.session_showed_media = true;
            }
            // The publisher's side said it stopped: a tick still in flight from
            // its last packets is not the stream coming back.
            Phase::Stalled { cause, .. } if !cause.is_publisher_side() => {
                let now = self.clock(now);
                self.flags.seen_media = true;
                self.flags.session_showed_media = true;
                let reason = if self.flags.repair == RepairStage::InFlight {
                    Reason::Repaired
                } else {
                    Reason::ProgressResumed
                };
                self.enter_playing(now, reason);
            }
            _ => {}
        }
    }

    pub(super) fn on_start(&mut self, now: Nanos) {
        if self.phase != Phase::Idle {
            return;
        }
        self.attempt = 0;
        self.failures = 0;
        self.outage_since = now;
        self.publisher_missing_since = NEVER;
        // A pause the user made before starting still holds; nothing else does.
        self.flags = Flags {
            paused: self.flags.paused,
            ..Flags::default()
        };
        self.reset_backoff();
        self.connect(now, Reason::Started);
    }

    pub(super) fn on_stop(&mut self) {
        match self.phase {
            Phase::Idle => return,
            Phase::Connecting { .. } => self.queue.push(Pending::Abort(Reason::UserStopped)),
            Phase::Playing { .. } | Phase::Stalled { .. } => {
                self.end_race(Reason::UserStopped);
                self.queue.push(Pending::Drop(Reason::UserStopped));
            }
            Phase::Backoff { .. } => {}
        }
        self.go_idle(Reason::UserStopped);
    }

    pub(super) fn on_pause(&mut self) {
        self.flags.paused = true;
        // A pause is never a stall: a session frozen for lack of progress is
        // simply paused now, and watched again from `Resume`.
        if let Phase::Stalled {
            cause: StallCause::NoProgress,
            ..
        } = self.phase
        {
            self.enter_playing(self.now, Reason::UserPaused);
        }
    }

    pub(super) fn on_resume(&mut self, now: Nanos) {
        if self.flags.paused {
            self.flags.paused = false;
            self.mark_progress(now);
        }
    }

    pub(super) fn on_connected(&mut self, now: Nanos) {
        let racing = matches!(self.phase, Phase::Stalled { .. }) && self.flags.racing;
        if racing {
            // Make-before-break: the new session connected before the frozen
            // one showed media again, and replaces it.
            self.flags.racing = false;
            self.race_at = NEVER;
            self.queue.push(Pending::Drop(Reason::Replaced));
        }
        if racing || matches!(self.phase, Phase::Connecting { .. }) {
            self.last_media = Duration::ZERO;
            self.flags.seen_media = false;
            self.flags.session_showed_media = false;
            // A new session: repairable only once the driver says so.
            self.flags.repairable = false;
            self.flags.repair = RepairStage::Fresh;
            self.queue.push(Pending::Keep);
            self.enter_playing(now, Reason::Connected);
        }
    }

    pub(super) fn on_connect_failed(&mut self, now: Nanos, retry: Retry, retry_after: Duration) {
        let racing = matches!(self.phase, Phase::Stalled { .. }) && self.flags.racing;
        if !racing && !matches!(self.phase, Phase::Connecting { .. }) {
            return;
        }
        // The server's word is a floor under the next delay, within the
        // policy's cap: a hostile `Retry-After` cannot park the viewer.
        let floor = retry_after.min(self.policy.retry_after_max);
        if !floor.is_zero() {
            self.not_before = now.saturating_add(nanos(floor));
        }
        let reason = Reason::ConnectFailed(retry);
        if !racing {
            return self.retry_later(now, reason, retry);
        }
        // The attempt beside a frozen session failed: the session waits out
        // its grace (a `Retry-After` holds for the attempt after it), unless
        // retrying cannot help at all.
        self.flags.racing = false;
        self.race_at = NEVER;
        if retry == Retry::Never {
            self.queue.push(Pending::Drop(reason));
            self.give_up(GiveUpReason::Fatal);
        }
    }

    pub(super) fn on_network_changed(&mut self, now: Nanos) {
        match self.phase {
            Phase::Backoff {
                attempt,
                publisher,
                until,
            } => {
                // A delay was waiting for the path to heal: a new path is
                // worth trying now, but never before a server's `Retry-After`.
                let at = now.max(self.not_before);
                if at <= now {
                    self.connect(now, Reason::NetworkChanged);
                } else if at < until {
                    let phase = Phase::Backoff {
                        attempt,
                        publisher,
                        until: at,
                    };
                    self.transition(phase, Reason::NetworkChanged);
                }
            }
            // A session that can be repaired gets a repair on the new path at
            // once, playing or frozen (an attempt beside it started on the
            // old path); a repair already in flight started on the old path
            // too, and is started over.
            Phase::Playing { .. } if self.can_repair() => {
                self.start_repair(now, Reason::NetworkChanged);
            }
            Phase::Stalled { cause, .. } if !cause.is_publisher_side() && self.can_repair() => {
                self.end_race(Reason::NetworkChanged);
                self.start_repair(now, Reason::NetworkChanged);
            }
            // A session frozen on the old path will not heal by waiting out
            // its grace; a publisher-side stall is not the network's doing.
            Phase::Stalled { cause, .. } if !cause.is_publisher_side() => {
                // An attempt beside it started on the old path too.
                self.end_race(Reason::NetworkChanged);
                self.queue.push(Pending::Drop(Reason::NetworkChanged));
                self.note_session_lost(now);
                self.connect(now, Reason::NetworkChanged);
            }
            _ => {}
        }
    }

    pub(super) fn on_path_lost(&mut self, now: Nanos) {
        match self.phase {
            // No picture without a path: a stall at once, whose first remedy
            // (spread like any other) is the repair.
            Phase::Playing { .. } if self.can_repair() => {
                self.stall_with(now, StallCause::NoProgress, Reason::PathLost, now);
            }
            // Frozen already: the remedy planned or in flight goes on.
            Phase::Stalled { cause, .. } if !cause.is_publisher_side() && self.can_repair() => {}
            _ => {
                let reason = Reason::TransportLost(Retry::Later);
                self.on_transport_lost(now, reason, Retry::Later);
            }
        }
    }

    pub(super) fn on_repairable(&mut self) {
        if let Phase::Playing { .. } | Phase::Stalled { .. } = self.phase {
            self.flags.repairable = true;
        }
    }

    pub(super) fn on_repair_failed(&mut self, now: Nanos) {
        if self.flags.repair != RepairStage::InFlight {
            return;
        }
        self.flags.repair = RepairStage::Spent;
        match self.phase {
            Phase::Stalled { cause, .. } if !cause.is_publisher_side() => self.escalate(now),
            // Media still flows: nothing to escalate.
            _ => self.race_at = NEVER,
        }
    }

    pub(super) fn on_layers(&mut self, now: Nanos, active: u32) {
        match self.phase {
            Phase::Playing { .. } if active == 0 => self.stall(now, StallCause::NoLayers),
            Phase::Stalled {
                cause: StallCause::NoLayers,
                ..
            } if active > 0 => {
                self.flags.seen_media = false;
                self.enter_playing(now, Reason::LayersBack);
            }
            _ => {}
        }
    }

    pub(super) fn on_active(&mut self, now: Nanos) {
        match self.phase {
            Phase::Backoff { .. } => self.on_live_hint(now),
            Phase::Stalled { cause, .. } if cause != StallCause::NoProgress => {
                self.flags.seen_media = false;
                self.enter_playing(now, Reason::PublisherActive);
            }
            _ => {}
        }
    }

    pub(super) fn on_source_ended(&mut self, now: Nanos, cause: StallCause) {
        match self.phase {
            Phase::Playing { .. } => self.stall(now, cause),
            // The grace keeps running from the first sign of trouble. No
            // session would have media now: an attempt beside it is moot.
            Phase::Stalled { cause: old, since } if old != cause => {
                self.end_race(Reason::Stall(cause));
                self.flags.repair = RepairStage::Fresh;
                self.transition(Phase::Stalled { cause, since }, Reason::Stall(cause));
            }
            _ => {}
        }
    }

    pub(super) fn on_transport_lost(&mut self, now: Nanos, reason: Reason, retry: Retry) {
        if let Phase::Playing { .. } | Phase::Stalled { .. } = self.phase {
            self.queue.push(Pending::Drop(reason));
            if self.flags.racing && retry != Retry::Never {
                return self.race_goes_on(now, reason);
            }
            self.end_race(reason);
            self.session_lost(now, reason, retry);
        }
    }

    pub(super) fn on_live_hint(&mut self, now: Nanos) {
        let (attempt, publisher, until) = match self.phase {
            Phase::Backoff {
                attempt,
                publisher,
                until,
            } => (attempt, publisher, until),
            Phase::Stalled { cause, .. } if cause != StallCause::NoProgress => {
                // The publisher is back: media should follow on this session.
                self.flags.seen_media = false;
                return self.enter_playing(now, Reason::LiveHint);
            }
            // An attempt in flight was started before the news and may well
            // fail; a session stalled for lack of progress may be dropped.
            // Either way the news holds for the `Backoff` that follows.
            Phase::Connecting { .. } | Phase::Stalled { .. } => {
                self.flags.hint_pending = true;
                return;
            }
            Phase::Playing { .. } | Phase::Idle => return,
        };
        self.flags.hint_pending = false;
        let spread = self.policy.hint_spread;
        let delay = self.rng.duration_between(Duration::ZERO, spread);
        // A server's `Retry-After` holds even against good news.
        let hinted = now.saturating_add(nanos(delay)).max(self.not_before);
        if hinted <= now {
            self.connect(now, Reason::LiveHint);
        } else if hinted < until {
            let phase = Phase::Backoff {
                attempt,
                publisher,
                until: hinted,
            };
            self.transition(phase, Reason::LiveHint);
        }
    }

    pub(super) fn on_timer(&mut self, now: Nanos, timer: Timer) {
        match (self.phase, timer) {
            (Phase::Connecting { .. }, Timer::ConnectTimeout) => {
                self.queue.push(Pending::Abort(Reason::ConnectTimedOut));
                self.retry_later(now, Reason::ConnectTimedOut, Retry::Later);
            }
            (Phase::Playing { .. }, Timer::Stall) => self.stall(now, StallCause::NoProgress),
            (Phase::Playing { .. }, Timer::Stable) => {
                // Playback held for `reset_after`: this outage is over.
                self.flags.stable_pending = false;
                self.attempt = 0;
                self.failures = 0;
                self.publisher_missing_since = NEVER;
                self.reset_backoff();
            }
            (Phase::Stalled { cause, .. }, Timer::StallGrace) => {
                let reason = Reason::GraceExpired(cause);
                self.queue.push(Pending::Drop(reason));
                if self.flags.racing {
                    return self.race_goes_on(now, reason);
                }
                self.race_at = NEVER;
                self.session_lost(now, reason, Retry::Later);
            }
            (Phase::Stalled { cause, .. }, Timer::MakeBeforeBreak) => {
                if self.can_repair() && self.flags.repair == RepairStage::Fresh {
                    self.start_repair(now, Reason::Stall(cause));
                } else if self.policy.make_before_break {
                    self.start_race(now);
                } else {
                    self.race_at = NEVER;
                }
            }
            (Phase::Stalled { .. }, Timer::Repair) => {
                // The repair brought no media in time.
                self.flags.repair = RepairStage::Spent;
                self.escalate(now);
            }
            (Phase::Stalled { .. }, Timer::ConnectTimeout) => {
                // The attempt beside the frozen session took too long; the
                // session waits out its grace.
                self.end_race(Reason::ConnectTimedOut);
            }
            (Phase::Backoff { .. }, Timer::Backoff) => self.connect(now, Reason::BackoffElapsed),
            _ => {}
        }
    }

    /// A session that was up is gone: the first drop after stable playback
    /// reconnects at once; a session that keeps dropping backs off.
    fn session_lost(&mut self, now: Nanos, reason: Reason, retry: Retry) {
        self.note_session_lost(now);
        match retry {
            Retry::Never => self.give_up(GiveUpReason::Fatal),
            _ if self.attempt == 0 => self.reconnect_soon(now, reason),
            _ => self.retry_later(now, reason, retry),
        }
    }

    /// Whether the session can be repaired in place now.
    fn can_repair(&self) -> bool {
        self.policy.repair && self.flags.repairable
    }

    /// Asks for a repair of the session in place; its bound runs from now.
    fn start_repair(&mut self, now: Nanos, reason: Reason) {
        self.flags.repair = RepairStage::InFlight;
        self.race_at = now;
        self.queue.push(Pending::Repair(reason));
    }

    /// The repair failed or brought no media in time: a new session, beside
    /// the frozen one with make-before-break, else in its place at once.
    fn escalate(&mut self, now: Nanos) {
        if self.policy.make_before_break {
            return self.start_race(now);
        }
        self.race_at = NEVER;
        self.queue.push(Pending::Drop(Reason::RepairFailed));
        self.note_session_lost(now);
        self.connect(now, Reason::RepairFailed);
    }

    /// Make-before-break: starts the attempt beside the frozen session. The
    /// session stays; whichever comes first decides: media on the old one
    /// abandons the attempt, the attempt connecting replaces the old one.
    fn start_race(&mut self, now: Nanos) {
        self.not_before = 0;
        self.attempt = self.attempt.saturating_add(1);
        self.flags.racing = true;
        self.race_at = now;
        self.queue.push(Pending::Connect(self.attempt));
    }

    /// Abandons the make-before-break attempt, in flight or planned.
    fn end_race(&mut self, reason: Reason) {
        if self.flags.racing {
            self.queue.push(Pending::Abort(reason));
            self.flags.racing = false;
        }
        self.race_at = NEVER;
    }

    /// The frozen session is gone while its make-before-break attempt is in
    /// flight: the attempt goes on, timed from its start, as `Connecting`.
    fn race_goes_on(&mut self, now: Nanos, reason: Reason) {
        let since = self.race_at;
        self.flags.racing = false;
        self.race_at = NEVER;
        self.note_session_lost(now);
        let attempt = self.attempt;
        self.transition(Phase::Connecting { attempt, since }, reason);
    }

    /// The outage bookkeeping of a session that is gone.
    fn note_session_lost(&mut self, now: Nanos) {
        // Its repair went with it.
        self.flags.repairable = false;
        self.flags.repair = RepairStage::Fresh;
        // The outage starts now: the time played before it is no outage. A
        // session that never showed a frame played nothing and ends no outage,
        // or a viewer whose sessions connect but stay black never gives up.
        if self.attempt == 0 || self.flags.session_showed_media {
            self.outage_since = now;
        }
    }

    /// The first reconnect after stable playback: at once, or after a random
    /// delay within `reconnect_spread` so that an audience dropped together
    /// does not return in one instant.
    fn reconnect_soon(&mut self, now: Nanos, reason: Reason) {
        let spread = self.policy.reconnect_spread;
        let delay = self.rng.duration_between(Duration::ZERO, spread);
        if delay.is_zero() {
            return self.connect(now, reason);
        }
        let phase = Phase::Backoff {
            attempt: 1,
            publisher: false,
            until: now.saturating_add(nanos(delay)),
        };
        self.enter_backoff(now, phase, reason);
    }

    /// Enters `Backoff`; a live hint kept from before acts on it now.
    fn enter_backoff(&mut self, now: Nanos, phase: Phase, reason: Reason) {
        self.transition(phase, reason);
        if self.flags.hint_pending {
            self.on_live_hint(now);
        }
    }

    /// After a failed attempt (or a dropped, unstable session): give up or back off.
    fn retry_later(&mut self, now: Nanos, reason: Reason, retry: Retry) {
        let limits = self.policy.give_up;
        let since = |t: Nanos| now.saturating_sub(t);
        let publisher = retry == Retry::WaitForPublisher;
        if publisher {
            if self.publisher_missing_since == NEVER {
                self.publisher_missing_since = now;
            }
            // The service answered: waiting for a publisher is not an outage.
            self.outage_since = now;
        } else {
            self.publisher_missing_since = NEVER;
            self.failures = self.failures.saturating_add(1);
        }
        let gave_up = match retry {
            Retry::Never => Some(GiveUpReason::Fatal),
            // Waiting for a publisher has its own limit: an app opened before the
            // broadcast starts is not failing.
            Retry::WaitForPublisher => self
                .policy
                .wait_for_publisher
                .filter(|w| since(self.publisher_missing_since) >= nanos(*w))
                .map(|_| GiveUpReason::PublisherNeverCame),
            Retry::Now | Retry::Later => {
                if limits.max_attempts.is_some_and(|max| self.failures >= max) {
                    Some(GiveUpReason::MaxAttempts)
                } else if limits
                    .max_outage
                    .is_some_and(|max| since(self.outage_since) >= nanos(max))
                {
                    Some(GiveUpReason::MaxOutage)
                } else {
                    None
                }
            }
        };
        if let Some(why) = gave_up {
            return self.give_up(why);
        }
        // `Now` is honoured once per outage, so a source that always says
        // "now" cannot spin.
        if retry == Retry::Now && self.attempt <= 1 && self.not_before <= now {
            return self.connect(now, reason);
        }
        let delay = self.next_delay();
        // The delay is the backoff's, or the server's `Retry-After` if longer.
        let until = now.saturating_add(nanos(delay)).max(self.not_before);
        if until <= now {
            return self.connect(now, reason);
        }
        let phase = Phase::Backoff {
            attempt: self.attempt.saturating_add(1),
            publisher,
            until,
        };
        self.enter_backoff(now, phase, reason);
    }

    fn next_delay(&mut self) -> Duration {
        let mut previous = Duration::from_nanos(self.backoff_previous);
        let delay =
            self.policy
                .backoff
                .next_delay(self.attempt.max(1), &mut previous, &mut self.rng);
        self.backoff_previous = nanos(previous);
        delay
    }

    fn reset_backoff(&mut self) {
        self.backoff_previous = nanos(self.policy.backoff.first_previous());
    }

    fn connect(&mut self, now: Nanos, reason: Reason) {
        // A `Retry-After` is about the attempt that follows it, not the next ones.
        self.not_before = 0;
        self.attempt = self.attempt.saturating_add(1);
        let attempt = self.attempt;
        self.transition(
            Phase::Connecting {
                attempt,
                since: now,
            },
            reason,
        );
        self.queue.push(Pending::Connect(attempt));
    }

    fn enter_playing(&mut self, now: Nanos, reason: Reason) {
        // The session plays again: an attempt beside it is moot, and the next
        // stall may be repaired again.
        self.end_race(reason);
        self.flags.repair = RepairStage::Fresh;
        // Playing makes any kept live hint moot.
        self.flags.hint_pending = false;
        self.mark_progress(now);
        self.flags.stable_pending = self.attempt > 0;
        self.transition(Phase::Playing { since: now }, reason);
    }

    fn stall(&mut self, now: Nanos, cause: StallCause) {
        // Once the picture has stood still for `stall_after` (at once for a
        // no-progress stall).
        let frozen = self
            .progress_offset()
            .saturating_add(nanos(self.policy.stall_after))
            .max(now);
        self.stall_with(now, cause, Reason::Stall(cause), frozen);
    }

    /// Enters `Stalled`; the first remedy (a repair, else make-before-break)
    /// is planned for `frozen`, spread like the first reconnect of an
    /// audience dropped together. A repair still in flight within its bound
    /// (a network change while playing) is the remedy already.
    fn stall_with(&mut self, now: Nanos, cause: StallCause, reason: Reason, frozen: Nanos) {
        self.transition(Phase::Stalled { cause, since: now }, reason);
        if self.flags.repair == RepairStage::InFlight && !cause.is_publisher_side() {
            let bound = self
                .race_at
                .saturating_add(nanos(self.policy.repair_within));
            if bound > now {
                return;
            }
        }
        // A new stall: its own repair.
        self.flags.repair = RepairStage::Fresh;
        self.race_at = NEVER;
        if cause.is_publisher_side() {
            return;
        }
        if self.policy.make_before_break || self.can_repair() {
            let spread = self.policy.reconnect_spread;
            let delay = self.rng.duration_between(Duration::ZERO, spread);
            self.race_at = frozen.saturating_add(nanos(delay));
        }
    }

    fn give_up(&mut self, why: GiveUpReason) {
        self.go_idle(Reason::GaveUp(why));
        self.queue.push(Pending::GaveUp(why));
    }

    fn go_idle(&mut self, reason: Reason) {
        self.attempt = 0;
        self.failures = 0;
        self.publisher_missing_since = NEVER;
        self.flags.stable_pending = false;
        self.flags.hint_pending = false;
        self.flags.racing = false;
        self.flags.repair = RepairStage::Fresh;
        self.race_at = NEVER;
        self.transition(Phase::Idle, reason);
    }

    fn transition(&mut self, to: Phase, reason: Reason) {
        let from = std::mem::replace(&mut self.phase, to);
        self.queue.push(Pending::Transition { from, reason });
    }
}
