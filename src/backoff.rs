//! The delay sequence between attempts: exponential, capped, jittered.
//!
//! Pure and seeded: the same seed gives the same delays, so tests and benchmarks
//! are reproducible; production seeds come from the process's hash keys.

use std::time::Duration;

use crate::Policy;

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
    /// Each delay drawn from the previous one; the default of [`Policy`]: in the
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

/// The backoff sequence of one viewer. `Copy`, allocation-free.
///
/// ```
/// use std::time::Duration;
/// use relive::{Backoff, Jitter, Policy, Rng};
///
/// let policy = Policy::builder().jitter(Jitter::None).build().unwrap();
/// let mut backoff = Backoff::new(&policy);
/// let mut rng = Rng::new(7);
/// let delays: Vec<_> = (1..=6).map(|n| backoff.delay(n, &mut rng)).collect();
/// assert_eq!(delays[0], Duration::from_secs(1));
/// assert_eq!(delays[1], Duration::from_secs(2));
/// assert_eq!(delays[4], Duration::from_secs(10)); // capped
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    initial: Duration,
    multiplier: f64,
    cap: Duration,
    jitter: Jitter,
    previous: Duration,
}

impl Backoff {
    /// The sequence a policy describes, at its start.
    pub fn new(policy: &Policy) -> Self {
        Backoff {
            initial: policy.initial,
            multiplier: policy.multiplier,
            cap: policy.cap,
            jitter: policy.jitter,
            previous: decorrelated_base(policy.initial).min(policy.cap),
        }
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

    /// The delay to wait after `failures` consecutive failures (≥ 1), within `[0, cap]`.
    pub fn delay(&mut self, failures: u32, rng: &mut Rng) -> Duration {
        match self.jitter {
            Jitter::None => self.ceiling(failures),
            Jitter::Full => rng.duration_between(Duration::ZERO, self.ceiling(failures)),
            Jitter::Equal => {
                let d = self.ceiling(failures);
                rng.duration_between(d / 2, d)
            }
            Jitter::Decorrelated => {
                let base = decorrelated_base(self.initial).min(self.cap);
                let hi = self.previous.saturating_mul(3).min(self.cap);
                let d = rng.duration_between(base, hi);
                self.previous = d;
                d
            }
        }
    }

    /// The previous decorrelated delay (the sequence's memory).
    pub(crate) fn previous(&self) -> Duration {
        self.previous
    }

    /// Restores the sequence's memory, as kept by a [`Machine`](crate::Machine).
    pub(crate) fn set_previous(&mut self, previous: Duration) {
        self.previous = previous;
    }

    /// Starts the sequence over (after stable playback).
    pub fn reset(&mut self) {
        self.previous = decorrelated_base(self.initial).min(self.cap);
    }
}

fn decorrelated_base(initial: Duration) -> Duration {
    initial.max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: Jitter) -> Policy {
        Policy::builder()
            .backoff(Duration::from_millis(250), 1.7, Duration::from_secs(12))
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
            let p = policy(kind);
            let mut b = Backoff::new(&p);
            let mut rng = Rng::new(42);
            let mut previous = Duration::from_millis(250);
            for n in 1..=2_000u32 {
                let failures = n % 40 + 1;
                let ceiling = b.ceiling(failures);
                let d = b.delay(failures, &mut rng);
                assert!(d <= p.cap, "{kind:?} {d:?}");
                match kind {
                    Jitter::None => assert_eq!(d, ceiling),
                    Jitter::Full => assert!(d <= ceiling),
                    Jitter::Equal => assert!(d >= ceiling / 2 && d <= ceiling),
                    Jitter::Decorrelated => {
                        assert!(d >= Duration::from_millis(250));
                        assert!(d <= (previous * 3).min(p.cap));
                        previous = d;
                    }
                }
            }
        }
    }

    #[test]
    fn a_seed_fixes_the_sequence() {
        for kind in KINDS {
            let run = |seed| {
                let mut b = Backoff::new(&policy(kind));
                let mut rng = Rng::new(seed);
                (1..50).map(|n| b.delay(n, &mut rng)).collect::<Vec<_>>()
            };
            assert_eq!(run(9), run(9), "{kind:?}");
            if kind != Jitter::None {
                assert_ne!(run(9), run(10), "{kind:?}");
            }
        }
    }

    #[test]
    fn ceiling_grows_then_caps_without_overflow() {
        let b = Backoff::new(&policy(Jitter::None));
        assert_eq!(b.ceiling(1), Duration::from_millis(250));
        assert!(b.ceiling(2) > b.ceiling(1));
        assert_eq!(b.ceiling(30), Duration::from_secs(12));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(12));
    }

    #[test]
    fn full_jitter_spreads_over_the_window() {
        let p = policy(Jitter::Full);
        let mut b = Backoff::new(&p);
        let mut rng = Rng::new(1);
        let delays: Vec<_> = (0..1000).map(|_| b.delay(30, &mut rng)).collect();
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
        let p = Policy::builder()
            .backoff(Duration::ZERO, 2.0, Duration::from_secs(5))
            .jitter(Jitter::Decorrelated)
            .build()
            .unwrap();
        let mut b = Backoff::new(&p);
        let mut rng = Rng::new(3);
        let last = (1..100).map(|n| b.delay(n, &mut rng)).last().unwrap();
        assert!(last > Duration::from_millis(1));
    }

    #[test]
    fn duration_between_handles_reversed_and_equal_bounds() {
        let mut rng = Rng::new(0);
        let s = Duration::from_secs(1);
        assert_eq!(rng.duration_between(s, s), s);
        assert_eq!(rng.duration_between(s, Duration::ZERO), s);
    }
}
