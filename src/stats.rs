//! What a viewer lived through, added up from its [`Event`]s: time playing,
//! stalls, reconnects and time to resume — for status lines, summaries and metrics.

use std::fmt;
use std::time::{Duration, Instant};

use crate::driver::Event;
use crate::machine::State;

/// Counters over a viewer's events. Feed it every event with the time it was
/// seen; it reads no clock.
///
/// ```
/// use std::time::{Duration, Instant};
/// use relive::{Event, Reason, State, Stats};
///
/// let t0 = Instant::now();
/// let mut stats = Stats::default();
/// let playing = State::Playing { since: t0 };
/// let stalled = State::Stalled { since: t0, cause: relive::StallCause::NoProgress };
/// let ev = |from, to| Event::<(), ()>::State { from, to, reason: Reason::Connected, retry_in: None };
/// stats.record(&ev(State::Idle, playing), t0);
/// stats.record(&ev(playing, stalled), t0 + Duration::from_secs(10));
/// stats.record(&ev(stalled, playing), t0 + Duration::from_secs(12));
/// assert_eq!(stats.stalls(), 1);
/// assert_eq!(stats.mean_time_to_resume(), Some(Duration::from_secs(2)));
/// assert_eq!(stats.playing_time(t0 + Duration::from_secs(13)), Duration::from_secs(11));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    playing: Duration,
    playing_since: Option<Instant>,
    interrupted_at: Option<Instant>,
    stalls: u32,
    sessions: u32,
    errors: u32,
    resumes: u32,
    resume_total: Duration,
    resume_max: Duration,
    state: Option<State>,
}

impl Stats {
    /// Adds one event, seen at `now`.
    pub fn record<M, E>(&mut self, event: &Event<M, E>, now: Instant) {
        match event {
            Event::Session(_) => self.sessions += 1,
            Event::Error(_) => self.errors += 1,
            Event::State { from, to, .. } => self.transition(*from, *to, now),
            _ => {}
        }
    }

    fn transition(&mut self, from: State, to: State, now: Instant) {
        self.state = Some(to);
        if let Some(since) = self.playing_since.take() {
            self.playing += now.saturating_duration_since(since);
        }
        if matches!(to, State::Stalled { .. }) {
            self.stalls += 1;
        }
        if to.is_playing() {
            self.playing_since = Some(now);
            if let Some(lost) = self.interrupted_at.take() {
                let gap = now.saturating_duration_since(lost);
                self.resumes += 1;
                self.resume_total += gap;
                self.resume_max = self.resume_max.max(gap);
            }
        } else if from.is_playing() && !to.is_idle() {
            self.interrupted_at = Some(now);
        } else if to.is_idle() {
            self.interrupted_at = None;
        }
    }

    /// Time spent playing, up to `now`.
    pub fn playing_time(&self, now: Instant) -> Duration {
        let current = self
            .playing_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        self.playing + current
    }

    /// How many times playback stalled.
    pub fn stalls(&self) -> u32 {
        self.stalls
    }

    /// How many sessions were handed out (a migration counts as one).
    pub fn sessions(&self) -> u32 {
        self.sessions
    }

    /// Sessions after the first.
    pub fn reconnects(&self) -> u32 {
        self.sessions.saturating_sub(1)
    }

    /// Failed attempts and lost sessions.
    pub fn errors(&self) -> u32 {
        self.errors
    }

    /// How many interruptions ended in playback again.
    pub fn resumes(&self) -> u32 {
        self.resumes
    }

    /// Mean time from leaving `Playing` to being back, over resumed interruptions.
    pub fn mean_time_to_resume(&self) -> Option<Duration> {
        (self.resumes > 0).then(|| self.resume_total / self.resumes)
    }

    /// Longest time from leaving `Playing` to being back.
    pub fn max_time_to_resume(&self) -> Option<Duration> {
        (self.resumes > 0).then_some(self.resume_max)
    }

    /// The latest state seen.
    pub fn state(&self) -> Option<State> {
        self.state
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} · {} · {}",
            Count(self.stalls.into(), "stall"),
            Count(self.reconnects().into(), "reconnect"),
            Count(self.errors.into(), "error"),
        )?;
        if let (Some(mean), Some(max)) = (self.mean_time_to_resume(), self.max_time_to_resume()) {
            write!(
                f,
                " · time to resume: mean {:.2}s, max {:.2}s over {}",
                mean.as_secs_f64(),
                max.as_secs_f64(),
                Count(self.resumes.into(), "interruption")
            )?;
        }
        Ok(())
    }
}

/// `n` things, with the plural where English wants one: `1 stall`, `2 stalls`.
struct Count(u64, &'static str);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.0 == 1 { "" } else { "s" };
        write!(f, "{} {}{plural}", self.0, self.1)
    }
}
