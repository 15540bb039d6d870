//! The delay sequence between attempts: exponential, capped, jittered.
//!
//! Pure and seeded: the same seed gives the same delays, so tests and benchmarks
//! are reproducible; production seeds come from the process's hash keys.

use std::time::Duration;

use crate::policy::{MAX_DURATION, PolicyError};

/// How a delay is randomised, after "Exponential Backoff and Jitter" (AWS
/// Architecture Blog, 2015). With `d = min(cap, initial × multiplierⁿ⁻¹)`:
///
/// | kind | delay | bounds |
/// |---|---|---|
/// | `None` | `d` | exactly `d` |
/// | `Full` | uniform in `[0, d]` | `[0, d]` |
/// | `Equal` | `d/2` + uniform in `[0, d/2]` | `[d/2, d]` |
/// | `Decorrelated` | uniform in `[base, 3 × previous]`, at most `cap` | `[min(base, cap), cap]` |
///
/// `Decorrelated` ignores the multiplier (the study's formula grows by up to 3×)
/// and uses `base = max(initial, 1 ms)` so that a zero initial delay cannot pin
/// it at zero forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Jitter {
    /// No randomness: a dropped audience comes back in lock step.
    None,
    /// Uniform over the whole window: the least total work in the AWS study.
    Full,
    /// Half fixed, half random: never retries very early.
    Equal,
    /// Each delay drawn from the previous one; the default of [`Policy`](crate::Policy): in the
    /// herd benchmark it has the lowest peak and the fewest attempts.
    Decorrelated,
}

/// A small, fast, seedable generator (SplitMix64). Not for cryptography.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose whole future is fixed by `seed`.
    pub const fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration drawn uniformly from `[lo, hi]` (`lo` when `hi <= lo`).
    pub fn duration_between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let lo_ns = nanos(lo);
        let hi_ns = nanos(hi);
        if hi_ns <= lo_ns {
            return lo;
        }
        let span = u128::from(hi_ns - lo_ns) + 1;
        // Lemire's multiply-shift: unbiased enough for delays, no division.
        let offset = (u128::from(self.next_u64()) * span) >> 64;
        Duration::from_nanos(lo_ns + offset as u64)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The shape of a backoff schedule: first delay, growth, cap and jitter.
///
/// Plain `Copy` data, valid by construction: build one with
/// [`BackoffConfig::builder`] (checked by [`BackoffConfigBuilder::build`]) or take
/// [`BackoffConfig::default`] (1 s, ×2, capped at 10 s, decorrelated jitter: the
/// defaults of [`Policy`](crate::Policy)). A `Policy` owns one ([`Policy::backoff`](crate::Policy::backoff)); anything else
/// that reconnects (a relay client, a Redis link, your own loop) uses one on its
/// own through [`Backoff`], a seeded iterator of delays.
///
/// ```
/// use std::time::Duration;
/// use relive::{BackoffConfig, Jitter};
///
/// let config = BackoffConfig::builder()
///     .initial(Duration::from_millis(100))
///     .multiplier(3.0)
///     .cap(Duration::from_secs(5))
///     .jitter(Jitter::None)
///     .build()
///     .expect("a valid schedule");
/// let delays: Vec<Duration> = config.delays(7).take(5).collect();
/// assert_eq!(delays[0], Duration::from_millis(100));
/// assert_eq!(delays[1], Duration::from_millis(300));
/// assert_eq!(delays[4], Duration::from_secs(5)); // 8.1 s, capped
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffConfig {
    initial: Duration,
    multiplier: f64,
    cap: Duration,
    jitter: Jitter,
}

impl Default for BackoffConfig {
    /// 1 s, ×2, capped at 10 s, decorrelated jitter.
    fn default() -> Self {
        BackoffConfig::DEFAULT
    }
}

impl BackoffConfig {
    /// 1 s, ×2, capped at 10 s, decorrelated jitter: the viewer default.
    pub const DEFAULT: BackoffConfig = BackoffConfig {
        initial: Duration::from_secs(1),
        multiplier: 2.0,
        cap: Duration::from_secs(10),
        jitter: Jitter::Decorrelated,
    };

    /// A builder starting from [`DEFAULT`](BackoffConfig::DEFAULT).
    pub fn builder() -> BackoffConfigBuilder {
        BackoffConfigBuilder {
            config: BackoffConfig::DEFAULT,
        }
    }

    /// A schedule known valid at compile time: `initial ≤ cap`, `cap > 0`,
    /// multiplier 2, decorrelated jitter. For crate-internal constants.
    #[cfg_attr(not(feature = "relay"), allow(dead_code))]
    pub(crate) const fn exponential(initial: Duration, cap: Duration) -> Self {
        BackoffConfig {
            initial,
            multiplier: 2.0,
            cap,
            jitter: Jitter::Decorrelated,
        }
    }

    /// The same schedule with another jitter kind (every kind is valid).
    #[must_use]
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The first delay (before jitter).
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// How much each delay grows over the previous one; see [`Jitter`] for how
    /// each kind uses it.
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// No delay is ever longer.
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// How delays are randomised.
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The un-jittered delay after `failures` consecutive failures (≥ 1):
    /// `min(cap, initial × multiplier^(failures-1))`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        if secs.is_finite() && secs < self.cap.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            self.cap
        }
    }

    /// The delays of this schedule, drawn from `seed`: an endless iterator.
    pub fn delays(self, seed: u64) -> Backoff {
        Backoff::new(self, seed)
    }

    /// The memory a fresh decorrelated sequence starts from.
    pub(crate) fn first_previous(&self) -> Duration {
        decorrelated_base(self.initial).min(self.cap)
    }

    /// The delay after `failures` consecutive failures (≥ 1), within `[0, cap]`.
    /// `previous` is the sequence's memory (decorrelated jitter reads and
    /// updates it; the others ignore it): the one place delays are computed,
    /// for [`Backoff`] and the [`Machine`](crate::Machine) alike.
    pub(crate) fn next_delay(
        &self,
        failures: u32,
        previous: &mut Duration,
        rng: &mut Rng,
    ) -> Duration {
        match self.jitter {
            Jitter::None => self.ceiling(failures),
            Jitter::Full => rng.duration_between(Duration::ZERO, self.ceiling(failures)),
            Jitter::Equal => {
                let d = self.ceiling(failures);
                rng.duration_between(d / 2, d)
            }
            Jitter::Decorrelated => {
                let base = self.first_previous();
                let hi = previous.saturating_mul(3).min(self.cap);
                let d = rng.duration_between(base, hi);
                *previous = d;
                d
            }
        }
    }

    /// Checks the settings; `Ok` for every config a builder returns.
    pub(crate) fn check(&self) -> Result<(), PolicyError> {
        if self.cap.is_zero() {
            return Err(PolicyError::Zero("backoff cap"));
        }
        if self.cap < self.initial {
            return Err(PolicyError::CapBelowInitial {
                initial: self.initial,
                cap: self.cap,
            });
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(PolicyError::Multiplier(self.multiplier));
        }
        if self.cap > MAX_DURATION {
            return Err(PolicyError::TooLong);
        }
        Ok(())
    }
}

/// Builds a [`BackoffConfig`]; [`build`](BackoffConfigBuilder::build) checks it.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct BackoffConfigBuilder {
    config: BackoffConfig,
}

impl BackoffConfigBuilder {
    /// The first delay (default 1 s).
    pub fn initial(mut self, d: Duration) -> Self {
        self.config.initial = d;
        self
    }

    /// Growth per failure, a finite number ≥ 1 (default 2); see [`Jitter`] for
    /// how each kind uses it.
    pub fn multiplier(mut self, m: f64) -> Self {
        self.config.multiplier = m;
        self
    }

    /// The longest delay, positive and at least `initial` (default 10 s).
    pub fn cap(mut self, d: Duration) -> Self {
        self.config.cap = d;
        self
    }

    /// How delays are randomised (default [`Jitter::Decorrelated`]).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.config.jitter = jitter;
        self
    }

    /// The schedule, or why it makes no sense.
    pub fn build(self) -> Result<BackoffConfig, PolicyError> {
        self.config.check().map(|()| self.config)
    }

    /// The settings as they are, for a [`PolicyBuilder`](crate::PolicyBuilder)
    /// that checks them in its own `build`.
    pub(crate) fn unchecked(self) -> BackoffConfig {
        self.config
    }
}

impl From<BackoffConfig> for BackoffConfigBuilder {
    /// A builder starting from `config`, to change some of it.
    fn from(config: BackoffConfig) -> Self {
        BackoffConfigBuilder { config }
    }
}

/// A running backoff sequence: an endless, seeded iterator of delays for one
/// client that retries. `Copy`, allocation-free.
///
/// Each [`next`](Iterator::next) is the delay after one more consecutive
/// failure; [`reset`](Backoff::reset) starts over (after a success that held).
///
/// ```
/// use std::time::Duration;
/// use relive::{Backoff, BackoffConfig, Jitter};
///
/// let config = BackoffConfig::builder().jitter(Jitter::None).build().unwrap();
/// let mut backoff = Backoff::new(config, 7);
/// assert_eq!(backoff.next(), Some(Duration::from_secs(1)));
/// assert_eq!(backoff.next(), Some(Duration::from_secs(2)));
/// assert_eq!(backoff.failures(), 2);
/// backoff.reset();
/// assert_eq!(backoff.next(), Some(Duration::from_secs(1)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    config: BackoffConfig,
    previous: Duration,
    failures: u32,
    rng: Rng,
}

impl Backoff {
    /// The sequence `config` describes, at its start, with jitter drawn from `seed`.
    pub fn new(config: BackoffConfig, seed: u64) -> Self {
        Backoff {
            config,
            previous: config.first_previous(),
            failures: 0,
            rng: Rng::new(seed),
        }
    }

    /// The schedule followed.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// Delays handed out since the start or the last [`reset`](Backoff::reset).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The delay after one more failure (what [`next`](Iterator::next) gives).
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.config
            .next_delay(self.failures, &mut self.previous, &mut self.rng)
    }

    /// Starts the sequence over: the next delay is the first one again.
    pub fn reset(&mut self) {
        self.previous = self.config.first_previous();
        self.failures = 0;
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    /// The delay after one more failure; never `None`.
    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}

fn decorrelated_base(initial: Duration) -> Duration {
    initial.max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(jitter: Jitter) -> BackoffConfig {
        BackoffConfig::builder()
            .initial(Duration::from_millis(250))
            .multiplier(1.7)
            .cap(Duration::from_secs(12))
            .jitter(jitter)
            .build()
            .unwrap()
    }

    const KINDS: [Jitter; 4] = [
        Jitter::None,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
    ];

    #[test]
    fn every_kind_stays_within_its_formula_bounds() {
        for kind in KINDS {
            let c = config(kind);
            let mut rng = Rng::new(42);
            let mut memory = c.first_previous();
            let mut previous = Duration::from_millis(250);
            for n in 1..=2_000u32 {
                let failures = n % 40 + 1;
                let ceiling = c.ceiling(failures);
                let d = c.next_delay(failures, &mut memory, &mut rng);
                assert!(d <= c.cap(), "{kind:?} {d:?}");
                match kind {
                    Jitter::None => assert_eq!(d, ceiling),
                    Jitter::Full => assert!(d <= ceiling),
                    Jitter::Equal => assert!(d >= ceiling / 2 && d <= ceiling),
                    Jitter::Decorrelated => {
                        assert!(d >= Duration::from_millis(250));
                        assert!(d <= (previous * 3).min(c.cap()));
                        previous = d;
                    }
                }
            }
        }
    }

    #[test]
    fn a_seed_fixes_the_sequence() {
        for kind in KINDS {
            let run = |seed| config(kind).delays(seed).take(50).collect::<Vec<_>>();
            assert_eq!(run(9), run(9), "{kind:?}");
            if kind != Jitter::None {
                assert_ne!(run(9), run(10), "{kind:?}");
            }
        }
    }

    #[test]
    fn the_iterator_counts_failures_and_reset_starts_over() {
        let mut b = config(Jitter::None).delays(1);
        let first: Vec<_> = b.by_ref().take(4).collect();
        assert_eq!(b.failures(), 4);
        assert_eq!(first[0], Duration::from_millis(250));
        assert!(first[3] > first[2]);
        b.reset();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.next(), Some(Duration::from_millis(250)));
    }

    #[test]
    fn ceiling_grows_then_caps_without_overflow() {
        let c = config(Jitter::None);
        assert_eq!(c.ceiling(1), Duration::from_millis(250));
        assert!(c.ceiling(2) > c.ceiling(1));
        assert_eq!(c.ceiling(30), Duration::from_secs(12));
        assert_eq!(c.ceiling(u32::MAX), Duration::from_secs(12));
    }

    #[test]
    fn full_jitter_spreads_over_the_window() {
        let c = config(Jitter::Full);
        let mut rng = Rng::new(1);
        let mut memory = c.first_previous();
        let delays: Vec<_> = (0..1000)
            .map(|_| c.next_delay(30, &mut memory, &mut rng))
            .collect();
        let low = delays
            .iter()
            .filter(|d| **d < Duration::from_secs(3))
            .count();
        let high = delays
            .iter()
            .filter(|d| **d > Duration::from_secs(9))
            .count();
        // Each quarter of the window gets roughly a quarter of the draws.
        assert!((150..350).contains(&low), "{low}");
        assert!((150..350).contains(&high), "{high}");
    }

    #[test]
    fn zero_initial_delay_does_not_pin_decorrelated_at_zero() {
        let c = BackoffConfig::builder()
            .initial(Duration::ZERO)
            .cap(Duration::from_secs(5))
            .build()
            .unwrap();
        let last = c.delays(3).take(100).last().unwrap();
        assert!(last > Duration::from_millis(1));
    }

    #[test]
    fn the_builder_refuses_what_makes_no_sense() {
        let b = BackoffConfig::builder;
        let secs = Duration::from_secs;
        assert!(matches!(
            b().initial(secs(5)).cap(secs(1)).build(),
            Err(PolicyError::CapBelowInitial { .. })
        ));
        for m in [0.5, f64::NAN, f64::INFINITY, -2.0] {
            assert!(matches!(
                b().multiplier(m).build(),
                Err(PolicyError::Multiplier(_))
            ));
        }
        assert_eq!(
            b().initial(Duration::ZERO).cap(Duration::ZERO).build(),
            Err(PolicyError::Zero("backoff cap"))
        );
        assert_eq!(b().build(), Ok(BackoffConfig::DEFAULT));
        assert_eq!(
            BackoffConfig::exponential(secs(1), secs(10)),
            BackoffConfig::DEFAULT
        );
    }

    #[test]
    fn duration_between_handles_reversed_and_equal_bounds() {
        let mut rng = Rng::new(0);
        let s = Duration::from_secs(1);
        assert_eq!(rng.duration_between(s, s), s);
        assert_eq!(rng.duration_between(s, Duration::ZERO), s);
    }
}
