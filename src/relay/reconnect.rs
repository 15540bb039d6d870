//! [`Reconnect`]: when a relay client or the Redis link tries again — the crate's [`Backoff`]
//! with the machine's `reset_after` rule. Pure: the caller brings the time.
//!
//! The delays start over only once a connection stayed up for `reset_after` (a relay that
//! accepts and drops at once keeps being backed off from), and an error whose
//! [`Retry`] class is `Never` is not retried at all.

use std::time::{Duration, Instant};

use crate::{Backoff, BackoffConfig, Retry};

/// The reconnect schedule of one long-lived connection.
#[derive(Clone, Debug)]
pub(crate) struct Reconnect {
    backoff: Backoff,
    reset_after: Duration,
    up_since: Option<Instant>,
}

impl Reconnect {
    /// Delays from `config` (drawn from `seed`); a connection that held `reset_after` starts
    /// them over.
    pub(crate) fn new(config: BackoffConfig, reset_after: Duration, seed: u64) -> Self {
        Reconnect {
            backoff: Backoff::new(config, seed),
            reset_after,
            up_since: None,
        }
    }

    /// A connection is up since `now`.
    pub(crate) fn connected(&mut self, now: Instant) {
        self.up_since = Some(now);
    }

    /// The connection or the attempt failed at `now`, classified `retry`: how long to wait
    /// before the next attempt, or `None` to give up.
    pub(crate) fn failed(&mut self, now: Instant, retry: Retry) -> Option<Duration> {
        if let Some(since) = self.up_since.take()
            && now.saturating_duration_since(since) >= self.reset_after
        {
            self.backoff.reset();
        }
        match retry {
            Retry::Never => None,
            Retry::Now | Retry::Later | Retry::WaitForPublisher => Some(self.backoff.next_delay()),
        }
    }

    /// Failures since the start or the last reset.
    #[cfg_attr(not(feature = "relay-redis"), allow(dead_code))]
    pub(crate) fn failures(&self) -> u32 {
        self.backoff.failures()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Jitter;

    fn schedule() -> Reconnect {
        let config = BackoffConfig::builder()
            .initial(Duration::from_millis(100))
            .cap(Duration::from_secs(10))
            .jitter(Jitter::None)
            .build()
            .expect("a valid schedule");
        Reconnect::new(config, Duration::from_secs(10), 1)
    }

    fn origin() -> Instant {
        #[allow(clippy::disallowed_methods)] // a fixed origin; the tests move time by hand
        Instant::now()
    }

    #[test]
    fn a_connection_that_drops_before_reset_after_keeps_backing_off() {
        let (mut r, t0) = (schedule(), origin());
        let mut delays = Vec::new();
        let mut now = t0;
        for _ in 0..4 {
            now += Duration::from_secs(1);
            r.connected(now);
            now += Duration::from_secs(9); // up for 9 s < 10 s
            delays.push(r.failed(now, Retry::Later).unwrap().as_millis());
        }
        assert_eq!(delays, [100, 200, 400, 800]);
        assert_eq!(r.failures(), 4);
    }

    #[test]
    fn a_connection_that_held_reset_after_starts_the_delays_over() {
        let (mut r, t0) = (schedule(), origin());
        assert_eq!(r.failed(t0, Retry::Later), Some(Duration::from_millis(100)));
        assert_eq!(r.failed(t0, Retry::Later), Some(Duration::from_millis(200)));
        r.connected(t0);
        let held = t0 + Duration::from_secs(10);
        assert_eq!(
            r.failed(held, Retry::Later),
            Some(Duration::from_millis(100))
        );
        // Failed attempts without a connection do not reset.
        assert_eq!(
            r.failed(held + Duration::from_secs(60), Retry::Later),
            Some(Duration::from_millis(200))
        );
    }

    #[test]
    fn a_fatal_error_is_not_retried_and_time_backwards_does_not_reset() {
        let (mut r, t0) = (schedule(), origin());
        r.failed(t0, Retry::Later);
        r.connected(t0 + Duration::from_secs(30));
        assert_eq!(r.failed(t0, Retry::Later), Some(Duration::from_millis(200)));
        assert_eq!(r.failed(t0, Retry::Never), None);
    }
}
