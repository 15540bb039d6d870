//! How patient a viewer is: stall detection, backoff, when to give up.
//!
//! A [`Policy`] is plain data, checked once by [`PolicyBuilder::build`]; the
//! [`Machine`](crate::Machine) reads it and never changes it.

use std::time::Duration;

use crate::backoff::{BackoffConfig, BackoffConfigBuilder, Jitter};

/// Everything the reconnect machine needs to know about timing and patience.
///
/// Build one with [`Policy::builder`], or take [`Policy::default`], whose values
/// suit a viewer of a live WebRTC stream (see each field for the reason).
///
/// ```
/// use std::time::Duration;
/// use relive::{Jitter, Policy};
///
/// let policy = Policy::builder()
///     .stall_after(Duration::from_secs(3))
///     .backoff(Duration::from_millis(500), 2.0, Duration::from_secs(20))
///     .jitter(Jitter::Decorrelated)
///     .give_up_after_attempts(50)
///     .build()
///     .expect("a valid policy");
/// assert_eq!(policy.stall_after(), Duration::from_secs(3));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    pub(crate) stall_after: Duration,
    pub(crate) first_media_within: Duration,
    pub(crate) stall_grace: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) backoff: BackoffConfig,
    pub(crate) reset_after: Duration,
    pub(crate) hint_spread: Duration,
    pub(crate) reconnect_spread: Duration,
    pub(crate) give_up: GiveUpRule,
    pub(crate) wait_for_publisher: Option<Duration>,
    pub(crate) progress_watchdog: bool,
    pub(crate) retry_after_max: Duration,
    pub(crate) make_before_break: bool,
    pub(crate) repair: bool,
    pub(crate) repair_within: Duration,
}

/// When a viewer stops trying: after some consecutive attempts, after some
/// time without stable playback, or never.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GiveUpRule {
    /// Give up when this many consecutive attempts have not led to stable
    /// playback. Attempts that found nobody publishing do not count: waiting for
    /// a publisher has its own limit, `wait_for_publisher`.
    pub max_attempts: Option<u32>,
    /// Give up when no session has been up for this long (a session counts
    /// once it was stable or showed media: one that never shows a frame ends
    /// no outage). Time spent waiting for a publisher (the service answering
    /// "not published") does not count.
    pub max_outage: Option<Duration>,
}

impl GiveUpRule {
    /// Never give up: the default for a viewer, who waits for its stream.
    pub const NEVER: GiveUpRule = GiveUpRule {
        max_attempts: None,
        max_outage: None,
    };
}

impl Default for Policy {
    /// Defaults for a viewer of a live, low-latency stream:
    ///
    /// | setting | default | why |
    /// |---|---|---|
    /// | `stall_after` | 2 s | a live WebRTC picture frozen for 2 s is broken, not buffering; str0m itself flags a paused stream after 1.5 s |
    /// | `first_media_within` | 5 s | ICE + DTLS + the first key frame take longer than a mid-stream gap |
    /// | `stall_grace` | 3 s | a publisher's encoder restart or a Wi-Fi hand-over often heals in a few seconds on the same session, which is cheaper than a new one |
    /// | `connect_timeout` | 10 s | a Director call plus a WebSocket and WebRTC handshake well above any healthy round trip |
    /// | backoff | 1 s, capped at 10 s; multiplier 2, unused by decorrelated jitter (each delay in `[1 s, 3 × previous]`) | the cap bounds resume time once the publisher is back |
    /// | `jitter` | decorrelated | in the herd benchmark: the lowest peak and the fewest attempts of all kinds |
    /// | `reconnect_spread` | 1.5 s | 10 000 viewers dropped together return at ≤ 1/10 of the no-jitter peak; a lone viewer waits 0.75 s on average, less than the JS SDK's fixed 1 s |
    /// | `reset_after` | 10 s | a session that keeps failing within seconds must keep backing off |
    /// | `hint_spread` | 0 | a live hint resumes at once; raise it to spread a huge audience |
    /// | give up | never | a viewer waits for its stream |
    /// | `wait_for_publisher` | forever | an app opened before the broadcast starts must still show it |
    /// | `progress_watchdog` | on | media time is the one stall signal that does not lie |
    /// | `make_before_break` | on | a picture frozen for `stall_after` gets a new session started beside it (after a random delay within `reconnect_spread`) instead of after `stall_grace`: in the herd benchmark 10 000 viewers frozen together peak at under 1/10 of the no-jitter attempts |
    /// | `repair` | on | a session that can be repaired in place (a WHEP ICE restart) is repaired first on a stall, a lost media path or a network change: on loopback media is back in a fraction of a new session's time, on the same server resource |
    /// | `repair_within` | 1 s | a repair takes two round trips (the request, then a connectivity check) and a key frame; beyond that a new session is the better bet |
    /// | `retry_after_max` | 60 s | a server's `Retry-After` is honoured as the least delay up to a minute, so a hostile or broken server cannot park a viewer for a day |
    fn default() -> Self {
        Policy {
            stall_after: Duration::from_secs(2),
            first_media_within: Duration::from_secs(5),
            stall_grace: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(10),
            backoff: BackoffConfig::DEFAULT,
            reset_after: Duration::from_secs(10),
            hint_spread: Duration::ZERO,
            reconnect_spread: Duration::from_millis(1500),
            give_up: GiveUpRule::NEVER,
            wait_for_publisher: None,
            progress_watchdog: true,
            retry_after_max: Duration::from_secs(60),
            make_before_break: true,
            repair: true,
            repair_within: Duration::from_secs(1),
        }
    }
}

impl Policy {
    /// Starts a builder from the [defaults](Policy::default).
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder {
            policy: Policy::default(),
        }
    }

    /// How long media time may stand still while playing before the stream counts as stalled.
    pub fn stall_after(&self) -> Duration {
        self.stall_after
    }

    /// How long a new session may take to show its first progress.
    pub fn first_media_within(&self) -> Duration {
        self.first_media_within
    }

    /// How long a stalled session is kept in the hope that it heals, before it is dropped.
    pub fn stall_grace(&self) -> Duration {
        self.stall_grace
    }

    /// How long one connect attempt may take before it is abandoned.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The backoff schedule between attempts: first delay, growth, cap, jitter.
    pub fn backoff(&self) -> &BackoffConfig {
        &self.backoff
    }

    /// The widest random delay before the first reconnect after a session drops.
    pub fn reconnect_spread(&self) -> Duration {
        self.reconnect_spread
    }

    /// How long playback must run without a stall before the attempt count starts over.
    pub fn reset_after(&self) -> Duration {
        self.reset_after
    }

    /// The widest random delay before acting on a live hint.
    pub fn hint_spread(&self) -> Duration {
        self.hint_spread
    }

    /// When to stop trying.
    pub fn give_up(&self) -> GiveUpRule {
        self.give_up
    }

    /// How long to wait for a publisher that is not live yet; `None` waits forever.
    pub fn wait_for_publisher(&self) -> Option<Duration> {
        self.wait_for_publisher
    }

    /// Whether media time standing still counts as a stall.
    pub fn progress_watchdog(&self) -> bool {
        self.progress_watchdog
    }

    /// Whether a session frozen for lack of media gets a second attempt started
    /// beside it (make-before-break).
    pub fn make_before_break(&self) -> bool {
        self.make_before_break
    }

    /// The longest server `Retry-After` honoured: a longer one counts as this long.
    pub fn retry_after_max(&self) -> Duration {
        self.retry_after_max
    }

    /// Whether a session that can be repaired in place is repaired before a
    /// new one is made.
    pub fn repair(&self) -> bool {
        self.repair
    }

    /// How long a repair may take to bring media back before the machine
    /// escalates to a new session.
    pub fn repair_within(&self) -> Duration {
        self.repair_within
    }
}

/// Builds a [`Policy`], checking it as a whole in [`build`](PolicyBuilder::build).
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct PolicyBuilder {
    policy: Policy,
}

impl PolicyBuilder {
    /// Media time standing still this long while playing is a stall (must be > 0).
    pub fn stall_after(mut self, d: Duration) -> Self {
        self.policy.stall_after = d;
        self
    }

    /// A new session must show progress within this time (must be > 0).
    pub fn first_media_within(mut self, d: Duration) -> Self {
        self.policy.first_media_within = d;
        self
    }

    /// Keep a stalled session this long before dropping it (zero drops at once).
    pub fn stall_grace(mut self, d: Duration) -> Self {
        self.policy.stall_grace = d;
        self
    }

    /// Abandon a connect attempt after this long (must be > 0).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.policy.connect_timeout = d;
        self
    }

    /// The backoff sequence: `initial`, growing by `multiplier` per attempt, never
    /// above `cap` (checked by [`build`](PolicyBuilder::build)). The jitter kind
    /// (set apart, [`jitter`](PolicyBuilder::jitter)) decides what the
    /// multiplier does: see [`Jitter`] — the default, decorrelated jitter, grows
    /// by up to 3× whatever the multiplier.
    pub fn backoff(mut self, initial: Duration, multiplier: f64, cap: Duration) -> Self {
        self.policy.backoff = BackoffConfigBuilder::from(self.policy.backoff)
            .initial(initial)
            .multiplier(multiplier)
            .cap(cap)
            .unchecked();
        self
    }

    /// The whole backoff schedule at once, e.g. one shared with other clients.
    pub fn backoff_config(mut self, config: BackoffConfig) -> Self {
        self.policy.backoff = config;
        self
    }

    /// How delays are randomised (keeps the rest of the backoff schedule).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.policy.backoff = BackoffConfigBuilder::from(self.policy.backoff)
            .jitter(jitter)
            .unchecked();
        self
    }

    /// Playback stable for this long resets the attempt count (must be > 0).
    pub fn reset_after(mut self, d: Duration) -> Self {
        self.policy.reset_after = d;
        self
    }

    /// Act on a live hint after a random delay in `[0, spread]` instead of at once.
    pub fn hint_spread(mut self, spread: Duration) -> Self {
        self.policy.hint_spread = spread;
        self
    }

    /// The first reconnect after a session drops (after stable playback) waits a
    /// random delay in `[0, spread]`; zero reconnects at once. A whole audience
    /// dropped by one server event then returns spread out instead of in one
    /// instant. It is independent of the backoff cap.
    pub fn reconnect_spread(mut self, spread: Duration) -> Self {
        self.policy.reconnect_spread = spread;
        self
    }

    /// Give up after `n` consecutive attempts without stable playback (must be ≥ 1).
    pub fn give_up_after_attempts(mut self, n: u32) -> Self {
        self.policy.give_up.max_attempts = Some(n);
        self
    }

    /// Give up when an outage lasts longer than `d` (must be > 0).
    pub fn give_up_after(mut self, d: Duration) -> Self {
        self.policy.give_up.max_outage = Some(d);
        self
    }

    /// Never give up (the default).
    pub fn never_give_up(mut self) -> Self {
        self.policy.give_up = GiveUpRule::NEVER;
        self
    }

    /// Wait at most `d` for a publisher that is not live yet; `None` waits forever.
    pub fn wait_for_publisher(mut self, d: Option<Duration>) -> Self {
        self.policy.wait_for_publisher = d;
        self
    }

    /// Whether media time standing still (or never starting) counts as a stall
    /// (default: yes). Turn it off only for a source that reports no progress
    /// and an application that does not call `report_progress`, such as a
    /// signaling-only Millicast viewer whose media is played elsewhere: layer
    /// and publisher events and transport loss still count.
    pub fn progress_watchdog(mut self, on: bool) -> Self {
        self.policy.progress_watchdog = on;
        self
    }

    /// Make-before-break (default: on). When the picture has stood still for
    /// `stall_after` (no progress, or no layers and no progress), a new connect
    /// attempt starts beside the frozen session, after a random delay within
    /// `reconnect_spread` so that an audience frozen together does not return
    /// in one instant. If the old session shows media first, the attempt is
    /// abandoned; if the attempt connects first, its session replaces the old
    /// one. One such attempt per stall; a publisher-side stall (`inactive`,
    /// `stopped`) never starts one, since no session would have media. Off,
    /// the frozen session waits out `stall_grace` before a new attempt.
    pub fn make_before_break(mut self, on: bool) -> Self {
        self.policy.make_before_break = on;
        self
    }

    /// In-session repair (default: on). A session whose source can repair it
    /// in place ([`StreamSource::can_repair`](crate::StreamSource::can_repair):
    /// a WHEP ICE restart) is repaired once per stall before any new session:
    /// when the picture has stood still for `stall_after` (after the same
    /// random delay within `reconnect_spread` as make-before-break), when its
    /// media path is lost, and at once on a network change, even while it
    /// plays. If the repair fails, or brings no media within `repair_within`,
    /// the machine escalates: the make-before-break attempt starts (or, with
    /// make-before-break off, the session is replaced at once). Sources that
    /// cannot repair (Millicast documents no ICE restart) are unaffected.
    pub fn repair(mut self, on: bool) -> Self {
        self.policy.repair = on;
        self
    }

    /// How long a repair may take to bring media back before the machine
    /// escalates to a new session (default 1 s; must be > 0).
    pub fn repair_within(mut self, d: Duration) -> Self {
        self.policy.repair_within = d;
        self
    }

    /// A server's `Retry-After` (HTTP 503 or 429) is the least delay before
    /// the next attempt, but never more than `max` (default 60 s): a server
    /// cannot park a viewer longer. Zero ignores `Retry-After`.
    pub fn retry_after_max(mut self, max: Duration) -> Self {
        self.policy.retry_after_max = max;
        self
    }

    /// Checks the policy as a whole.
    pub fn build(self) -> Result<Policy, PolicyError> {
        let p = self.policy;
        let positive = [
            ("stall_after", p.stall_after),
            ("first_media_within", p.first_media_within),
            ("connect_timeout", p.connect_timeout),
            ("reset_after", p.reset_after),
            ("repair_within", p.repair_within),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, d)| d.is_zero()) {
            return Err(PolicyError::Zero(name));
        }
        p.backoff.check()?;
        if p.give_up.max_attempts == Some(0) {
            return Err(PolicyError::Zero("give_up_after_attempts"));
        }
        if p.give_up.max_outage == Some(Duration::ZERO) {
            return Err(PolicyError::Zero("give_up_after"));
        }
        if p.wait_for_publisher == Some(Duration::ZERO) {
            return Err(PolicyError::Zero("wait_for_publisher"));
        }
        // Durations beyond ~100 years only risk overflow in `Instant + Duration`.
        let longest = [
            p.stall_after,
            p.first_media_within,
            p.stall_grace,
            p.connect_timeout,
            p.reset_after,
            p.hint_spread,
            p.reconnect_spread,
            p.retry_after_max,
            p.repair_within,
            p.give_up.max_outage.unwrap_or_default(),
            p.wait_for_publisher.unwrap_or_default(),
        ];
        if longest.iter().any(|d| *d > MAX_DURATION) {
            return Err(PolicyError::TooLong);
        }
        Ok(p)
    }
}

/// The longest duration a policy accepts (about 100 years).
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Why a [`PolicyBuilder`] refused its settings.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A duration or count that must be positive is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// The backoff cap is below the initial delay.
    #[error("backoff cap {cap:?} is below the initial delay {initial:?}")]
    CapBelowInitial {
        /// The initial delay given.
        initial: Duration,
        /// The cap given.
        cap: Duration,
    },
    /// The multiplier is below 1, infinite or NaN.
    #[error("backoff multiplier {0} must be a finite number ≥ 1")]
    Multiplier(f64),
    /// A duration is longer than [`MAX_DURATION`].
    #[error("a duration is longer than the 100 years a policy accepts")]
    TooLong,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_valid() {
        let built = Policy::builder().build();
        assert_eq!(built, Ok(Policy::default()));
    }

    #[test]
    fn cap_below_initial_is_refused() {
        let err = Policy::builder()
            .backoff(Duration::from_secs(5), 2.0, Duration::from_secs(1))
            .build();
        assert!(matches!(err, Err(PolicyError::CapBelowInitial { .. })));
    }

    #[test]
    fn nonsense_multipliers_are_refused() {
        for m in [0.5, f64::NAN, f64::INFINITY, -2.0] {
            let err = Policy::builder()
                .backoff(Duration::from_secs(1), m, Duration::from_secs(2))
                .build();
            assert!(matches!(err, Err(PolicyError::Multiplier(_))), "{m}");
        }
    }

    #[test]
    fn zero_durations_are_refused_where_they_make_no_sense() {
        let zero = Duration::ZERO;
        assert_eq!(
            Policy::builder().stall_after(zero).build(),
            Err(PolicyError::Zero("stall_after"))
        );
        assert_eq!(
            Policy::builder().connect_timeout(zero).build(),
            Err(PolicyError::Zero("connect_timeout"))
        );
        assert_eq!(
            Policy::builder().give_up_after_attempts(0).build(),
            Err(PolicyError::Zero("give_up_after_attempts"))
        );
        // A zero grace is fine: drop a stalled session at once.
        assert!(Policy::builder().stall_grace(zero).build().is_ok());
    }

    #[test]
    fn absurdly_long_durations_are_refused() {
        let err = Policy::builder().stall_grace(Duration::MAX).build();
        assert_eq!(err, Err(PolicyError::TooLong));
    }
}
