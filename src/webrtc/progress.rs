//! Media time from RTP timestamps, and the rate limit of progress ticks. Pure: no I/O, no clock.
//!
//! Each track (mid) has a [`TrackClock`] that unwraps the 32-bit RTP timestamp and counts the
//! media time played since its first packet. The session's media time is the largest over its
//! tracks ([`MediaClocks`]), and a [`ProgressTicker`] turns that stream of values into at most
//! one tick per period, without losing the last value.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::timeline::{classify_offset, ticks_to_duration};

/// The media time of one track, from its RTP timestamps.
///
/// Timestamps are unwrapped with signed 32-bit differences, so a wrap (every 13 h at 90 kHz)
/// or a reordered packet is handled. A new SSRC, or a timestamp that breaks the timeline by the
/// crate's one continuity rule ([`timeline::classify`](crate::timeline::classify): back by more
/// than `MAX_REWIND`, ahead by more than `MAX_LEAP`), continues from the time reached so far.
/// Media time never goes backwards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TrackClock {
    /// SSRC and RTP timestamp of the newest packet.
    last: Option<(u32, u32)>,
    /// Ticks since the first packet, at the newest packet.
    ticks: i64,
    /// The largest `ticks` seen (reordered packets do not move time back).
    max_ticks: i64,
    clock_rate: u32,
}

impl TrackClock {
    /// Feeds one packet; returns the track's media time after it.
    pub(crate) fn on_packet(&mut self, ssrc: u32, timestamp: u32, clock_rate: u32) -> Duration {
        if clock_rate == 0 {
            return self.media_time();
        }
        if clock_rate != self.clock_rate && self.clock_rate != 0 {
            // A codec change with another clock: keep the time reached, count on in the new rate.
            self.max_ticks = rescale(self.max_ticks, self.clock_rate, clock_rate);
            self.ticks = self.max_ticks;
            self.last = None;
        }
        self.clock_rate = clock_rate;
        match self.last {
            Some((last_ssrc, last_ts)) if last_ssrc == ssrc => {
                // Signed difference: a wrap forward is a small positive step, a reordered packet
                // a small negative one.
                let delta = i64::from(timestamp.wrapping_sub(last_ts) as i32);
                let candidate = self.ticks.saturating_add(delta);
                let gap = candidate.saturating_sub(self.max_ticks);
                let by = ticks_to_duration(gap.unsigned_abs(), clock_rate);
                self.ticks = if classify_offset(gap > 0, by).is_break() {
                    // A discontinuity: stay at the time reached and count on from here.
                    self.max_ticks
                } else {
                    candidate
                };
            }
            // First packet, or a new SSRC on this track: media time continues from here.
            _ => self.ticks = self.max_ticks,
        }
        self.last = Some((ssrc, timestamp));
        self.max_ticks = self.max_ticks.max(self.ticks);
        self.media_time()
    }

    /// Media time played on this track so far.
    pub(crate) fn media_time(&self) -> Duration {
        if self.clock_rate == 0 || self.max_ticks <= 0 {
            return Duration::ZERO;
        }
        ticks_to_duration(self.max_ticks.unsigned_abs(), self.clock_rate)
    }
}

fn rescale(ticks: i64, from: u32, to: u32) -> i64 {
    if from == 0 {
        return 0;
    }
    let scaled = i128::from(ticks) * i128::from(to) / i128::from(from);
    i64::try_from(scaled).unwrap_or(i64::MAX)
}

/// The media time of a session: the largest over its tracks.
#[derive(Debug, Default)]
pub(crate) struct MediaClocks {
    tracks: HashMap<String, TrackClock>,
    max: Duration,
}

impl MediaClocks {
    /// Feeds one packet of track `mid`; returns `(track media time, session media time)`.
    pub(crate) fn on_packet(
        &mut self,
        mid: &str,
        ssrc: u32,
        timestamp: u32,
        clock_rate: u32,
    ) -> (Duration, Duration) {
        let clock = match self.tracks.get_mut(mid) {
            Some(clock) => clock,
            None => self.tracks.entry(mid.to_owned()).or_default(),
        };
        let track = clock.on_packet(ssrc, timestamp, clock_rate);
        self.max = self.max.max(track);
        (track, self.max)
    }
}

/// Turns media time updates into progress ticks: at most one per `period`, and the latest
/// value always goes out (a value held back is due at the end of the period).
#[derive(Debug, Clone)]
pub(crate) struct ProgressTicker {
    period: Duration,
    last_emit: Option<Instant>,
    emitted: Option<Duration>,
    held: Option<Duration>,
}

impl ProgressTicker {
    /// A ticker emitting at most once per `period`.
    pub(crate) fn new(period: Duration) -> Self {
        ProgressTicker {
            period,
            last_emit: None,
            emitted: None,
            held: None,
        }
    }

    /// Media time is now `media`: the tick to send now, if one is due.
    pub(crate) fn on_media(&mut self, now: Instant, media: Duration) -> Option<Duration> {
        if self.emitted.is_some_and(|e| media <= e) {
            return None;
        }
        self.held = Some(media);
        match self.last_emit {
            Some(last) if now.saturating_duration_since(last) < self.period => None,
            _ => self.emit(now),
        }
    }

    /// When the held value is due, if any.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.held?;
        // A value is only held back after a tick (the first goes out at once).
        self.last_emit.map(|last| last + self.period)
    }

    /// The tick due at `now`, if any. An early call does nothing.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Option<Duration> {
        let due = self.poll_timeout()?;
        (now >= due).then(|| self.emit(now)).flatten()
    }

    fn emit(&mut self, now: Instant) -> Option<Duration> {
        let media = self.held.take()?;
        self.last_emit = Some(now);
        self.emitted = Some(media);
        Some(media)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIDEO: u32 = 90_000;

    #[test]
    fn media_time_counts_from_the_first_timestamp() {
        let mut clock = TrackClock::default();
        assert_eq!(clock.on_packet(1, 1_000_000, VIDEO), Duration::ZERO);
        assert_eq!(clock.on_packet(1, 1_090_000, VIDEO), Duration::from_secs(1));
        assert_eq!(
            clock.on_packet(1, 1_093_000, VIDEO),
            Duration::from_millis(1033) + Duration::from_nanos(333_333)
        );
    }

    #[test]
    fn a_32_bit_wrap_keeps_counting_forward() {
        let mut clock = TrackClock::default();
        clock.on_packet(1, u32::MAX - 44_999, VIDEO);
        // 45 000 ticks before the wrap, 45 000 after: one second.
        assert_eq!(clock.on_packet(1, 45_000, VIDEO), Duration::from_secs(1));
        assert_eq!(clock.on_packet(1, 135_000, VIDEO), Duration::from_secs(2));
    }

    #[test]
    fn reordered_packets_never_move_time_back() {
        let mut clock = TrackClock::default();
        clock.on_packet(1, 0, VIDEO);
        clock.on_packet(1, 9_000, VIDEO);
        assert_eq!(clock.on_packet(1, 6_000, VIDEO), Duration::from_millis(100));
        assert_eq!(
            clock.on_packet(1, 18_000, VIDEO),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn a_new_ssrc_or_a_huge_jump_continues_from_the_time_reached() {
        let mut clock = TrackClock::default();
        clock.on_packet(1, 0, VIDEO);
        clock.on_packet(1, 90_000, VIDEO);
        // The encoder restarts with a new SSRC and a random base.
        assert_eq!(clock.on_packet(2, 777_777, VIDEO), Duration::from_secs(1));
        assert_eq!(
            clock.on_packet(2, 777_777 + 9_000, VIDEO),
            Duration::from_millis(1100)
        );
        // Same SSRC, a jump of an hour: a discontinuity, not an hour of media.
        let far = 777_777u32 + 9_000 + 3_600 * VIDEO;
        assert_eq!(clock.on_packet(2, far, VIDEO), Duration::from_millis(1100));
        assert_eq!(
            clock.on_packet(2, far + 9_000, VIDEO),
            Duration::from_millis(1200)
        );
    }

    #[test]
    fn a_rewind_past_the_continuity_limit_continues_from_the_time_reached() {
        let mut clock = TrackClock::default();
        clock.on_packet(1, 0, VIDEO);
        clock.on_packet(1, 5 * VIDEO, VIDEO);
        // The same SSRC restarts 3 s back: a new timeline, not 3 s of waiting.
        assert_eq!(clock.on_packet(1, 2 * VIDEO, VIDEO), Duration::from_secs(5));
        assert_eq!(
            clock.on_packet(1, 2 * VIDEO + 9_000, VIDEO),
            Duration::from_millis(5100)
        );
    }

    #[test]
    fn a_zero_clock_rate_is_ignored() {
        let mut clock = TrackClock::default();
        assert_eq!(clock.on_packet(1, 5, 0), Duration::ZERO);
        assert_eq!(clock.on_packet(1, 50, 0), Duration::ZERO);
    }

    #[test]
    fn session_time_is_the_largest_track_time() {
        let mut clocks = MediaClocks::default();
        clocks.on_packet("0", 1, 0, VIDEO);
        clocks.on_packet("1", 2, 0, 48_000);
        clocks.on_packet("1", 2, 48_000, 48_000);
        let (video, session) = clocks.on_packet("0", 1, 45_000, VIDEO);
        assert_eq!(video, Duration::from_millis(500));
        assert_eq!(session, Duration::from_secs(1));
    }

    #[test]
    fn ticks_are_rate_limited_and_the_last_value_is_never_lost() {
        let t0 = tokio::time::Instant::now().into_std();
        let ms = Duration::from_millis;
        let mut ticker = ProgressTicker::new(ms(100));
        assert_eq!(ticker.on_media(t0, ms(0)), Some(ms(0)));
        assert_eq!(ticker.poll_timeout(), None);
        // Packets every 20 ms: held back until the period ends.
        for k in 1..5u64 {
            assert_eq!(ticker.on_media(t0 + ms(20 * k), ms(20 * k)), None);
        }
        assert_eq!(ticker.poll_timeout(), Some(t0 + ms(100)));
        assert_eq!(ticker.handle_timeout(t0 + ms(99)), None, "early: nothing");
        assert_eq!(ticker.handle_timeout(t0 + ms(100)), Some(ms(80)));
        assert_eq!(ticker.poll_timeout(), None);
        // A value that does not advance is no tick.
        assert_eq!(ticker.on_media(t0 + ms(300), ms(80)), None);
        assert_eq!(ticker.on_media(t0 + ms(300), ms(90)), Some(ms(90)));
    }
}
