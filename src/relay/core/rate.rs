//! A token bucket per connection: `burst` frames at once, `rate` per second on average. Pure:
//! the caller brings the time.

use std::time::Instant;

/// Frames a connection may still send; refilled continuously.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenBucket {
    capacity: f64,
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `rate` per second.
    pub(crate) fn new(rate: f64, burst: u32, now: Instant) -> Self {
        let capacity = f64::from(burst.max(1));
        TokenBucket {
            capacity,
            tokens: capacity,
            rate: if rate.is_finite() { rate.max(0.0) } else { 0.0 },
            last: now,
        }
    }

    /// Takes one token if there is one. Time going backwards refills nothing.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        #[allow(clippy::disallowed_methods)] // a fixed origin; the test moves time by hand
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(2.0, 3, t0);
        assert_eq!((0..5).filter(|_| bucket.take(t0)).count(), 3);
        assert!(!bucket.take(t0 + Duration::from_millis(400)));
        assert!(bucket.take(t0 + Duration::from_millis(500)));
        // Ten idle seconds refill only up to the burst.
        let later = t0 + Duration::from_secs(10);
        assert_eq!((0..10).filter(|_| bucket.take(later)).count(), 3);
        // Backwards time refills nothing and does not panic.
        assert!(!bucket.take(t0));
    }
}
