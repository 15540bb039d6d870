//! One presentation clock per viewer, across every session it watches: [`Timeline`].

use std::fmt;
use std::time::{Duration, Instant};

use super::{Continuity, classify_offset, ticks_to_duration};

/// How the first frame of a new session is placed on a [`Timeline`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GapMode {
    /// Right after the last frame of the previous session: the time spent reconnecting does
    /// not appear on the timeline (a recording plays on without a pause). The default.
    #[default]
    Continue,
    /// After the real time that passed since the last frame was received: a recording shows
    /// the outage as a pause, and presentation time tracks the wall clock.
    WallClock,
}

/// A session on a [`Timeline`]: numbered from 1 in the order they began.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(u64);

impl SessionId {
    /// The session's number: 1 for the first session of the timeline.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session {}", self.0)
    }
}

/// Where a frame goes on the [`Timeline`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Presentation time: on the viewer's one clock, which starts at zero and only moves
    /// forward. Strictly increasing per track.
    pub pts: Duration,
    /// The first frame of its track after a new session or a break in its timestamps: a
    /// decoder should be flushed (or reset) before it.
    pub discontinuity: bool,
    /// The session the frame belongs to.
    pub session: SessionId,
}

/// Frame spacing assumed for a track before two of its frames were seen (one 30 fps frame,
/// longer than a 20 ms audio packet, so a resumed timeline never overlaps the last frame).
const DEFAULT_STEP: Duration = Duration::from_nanos(33_333_333);
/// The longest frame spacing taken as a track's step (longer gaps are loss or silence).
const MAX_STEP: Duration = Duration::from_millis(100);
/// How far a frame whose timestamp does not advance is placed after the previous one, so that
/// presentation time stays strictly increasing per track.
const STILL_STEP: Duration = Duration::from_millis(1);

/// The viewer's presentation clock: maps each session's per-track RTP time onto one timeline
/// that only moves forward.
///
/// Each WebRTC session has its own media clocks: RTP timestamps that start at a random value,
/// one clock per track (90 kHz video, 48 kHz audio), wrapping every 13 hours at 90 kHz. A player
/// or a recorder wants one clock that only moves forward, however many times the viewer
/// reconnects. [`Timeline`] maps each frame's RTP timestamp onto that clock:
///
/// - Within a session, a track follows its RTP timestamps (unwrapped with signed 32-bit
///   differences), so frame spacing is the sender's.
/// - The first frame of a session (on any track) is placed where the last session stopped
///   ([`GapMode::Continue`]) or after the real time that passed ([`GapMode::WallClock`]). The
///   first frame of every other track of that session is placed by its arrival time relative to
///   that first frame, so audio and video stay in sync across a reconnect (RTP clocks of
///   different tracks share no base, and arrival is what the viewer saw).
/// - A track that was placed before goes on on its own frame grid: its new place is rounded
///   to a whole number of its frame steps after its last frame (a shift of at most half a
///   step), so a player or muxer that assumes a constant frame rate sees one grid throughout.
/// - A break inside a session — a timestamp that jumps back by more than
///   [`MAX_REWIND`](super::MAX_REWIND) or ahead by more than [`MAX_LEAP`](super::MAX_LEAP), the
///   crate's one continuity rule — is stepped over the same way as a new session.
/// - The first frame after a new session or a break carries `discontinuity`: a player flushes
///   its decoder there.
///
/// The rule is pure: no clock is read, the arrival time of each frame is an input. Every WebRTC
/// source of the crate (Millicast and WHEP) places its frames through it.
///
/// ```
/// use std::time::{Duration, Instant};
/// use relive::timeline::{GapMode, Timeline};
///
/// let t0 = Instant::now();
/// let ms = Duration::from_millis;
/// let mut timeline = Timeline::new(GapMode::Continue);
///
/// let first = timeline.begin_session();
/// let a = timeline.place(first, "0", 1_000, 90_000, t0).unwrap();
/// let b = timeline.place(first, "0", 4_000, 90_000, t0 + ms(33)).unwrap();
/// assert_eq!(a.pts, Duration::ZERO);
/// assert_eq!(b.pts, Duration::from_nanos(33_333_333)); // 3 000 ticks of 90 kHz
///
/// // The viewer reconnects 5 s later; the new session's RTP clock starts anywhere.
/// let second = timeline.begin_session();
/// let c = timeline.place(second, "0", 777, 90_000, t0 + ms(5_000)).unwrap();
/// assert_eq!(c.pts, b.pts * 2, "continues one frame after where it stopped");
/// assert!(c.discontinuity, "a player flushes its decoder here");
/// // A late frame of the old session is no longer placed.
/// assert_eq!(timeline.place(first, "0", 7_000, 90_000, t0 + ms(5_001)), None);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    mode: GapMode,
    /// The newest session; frames of older ones are not placed.
    current: Option<SessionId>,
    /// The first placement of the current session: where its other tracks are anchored.
    anchor: Option<(Duration, Instant)>,
    /// The session of the first frame ever placed (no discontinuity within it).
    first_session: Option<SessionId>,
    /// The furthest presentation time reached: the last frame of any track plus its step.
    end: Duration,
    /// The last placement and its arrival, for [`GapMode::WallClock`].
    last: Option<(Duration, Instant)>,
    tracks: Vec<TrackState>,
}

#[derive(Clone, Debug)]
struct TrackState {
    mid: String,
    /// The session of the track's last frame; `None` before its first.
    session: Option<SessionId>,
    clock_rate: u32,
    last_timestamp: u32,
    last_pts: Duration,
    /// Where the track's clock was anchored, and the ticks counted since: presentation time
    /// is computed from these, so it does not drift by rounding one frame at a time.
    anchor_pts: Duration,
    ticks: u64,
    /// The track's frame spacing, from its last two frames.
    step: Duration,
}

impl TrackState {
    /// Where a track that was placed before goes on, near `pts`: on its own frame grid (its
    /// last frame plus a whole number of its steps, at least one), at most half a step from
    /// `pts`. A player or muxer that assumes a constant frame rate then sees every session's
    /// frames on one grid, and the shift is too small to matter for sync.
    fn on_grid(&self, pts: Duration) -> Duration {
        if self.session.is_none() {
            return pts;
        }
        let step = self.step.as_nanos().max(1);
        let ahead = pts.saturating_sub(self.last_pts).as_nanos();
        let steps = ((ahead + step / 2) / step).max(1);
        let offset = u64::try_from(steps.saturating_mul(step)).unwrap_or(u64::MAX);
        self.last_pts.saturating_add(Duration::from_nanos(offset))
    }
}

impl Timeline {
    /// An empty timeline whose new sessions are placed by `mode`.
    pub fn new(mode: GapMode) -> Self {
        Timeline {
            mode,
            ..Timeline::default()
        }
    }

    /// How new sessions are placed.
    pub fn mode(&self) -> GapMode {
        self.mode
    }

    /// Starts a session: its frames go after everything placed so far, and frames of earlier
    /// sessions are no longer placed.
    pub fn begin_session(&mut self) -> SessionId {
        let next = SessionId(self.current.map_or(1, |s| s.0 + 1));
        self.current = Some(next);
        self.anchor = None;
        next
    }

    /// The newest session, if one began.
    pub fn current_session(&self) -> Option<SessionId> {
        self.current
    }

    /// The furthest point of the timeline: the last frame placed on any track plus that
    /// track's frame spacing. Zero before the first frame.
    pub fn end(&self) -> Duration {
        self.end
    }

    /// Places a frame of track `track` (its mid) of `session`, with RTP timestamp
    /// `rtp_timestamp` in a `clock_rate` Hz clock, received at `arrival`.
    ///
    /// `None` when the frame cannot be placed: its session is not the newest (a superseded
    /// session's late frame), or the clock rate is zero.
    pub fn place(
        &mut self,
        session: SessionId,
        track: &str,
        rtp_timestamp: u32,
        clock_rate: u32,
        arrival: Instant,
    ) -> Option<Placement> {
        if self.current != Some(session) || clock_rate == 0 {
            return None;
        }
        let index = self.track_index(track);
        let state = &self.tracks[index];
        let (pts, ticks, step, discontinuity) =
            if state.session == Some(session) && state.clock_rate == clock_rate {
                self.follow(index, rtp_timestamp, arrival)
            } else {
                let (pts, step, discontinuity) = self.enter(index, session, arrival);
                (pts, None, step, discontinuity)
            };
        self.first_session.get_or_insert(session);
        let state = &mut self.tracks[index];
        match ticks {
            Some(ticks) => state.ticks = ticks,
            None => (state.anchor_pts, state.ticks) = (pts, 0),
        }
        state.session = Some(session);
        state.clock_rate = clock_rate;
        state.last_timestamp = rtp_timestamp;
        state.last_pts = pts;
        state.step = step;
        self.end = self.end.max(pts + step);
        self.last = Some((pts, arrival));
        Some(Placement {
            pts,
            discontinuity,
            session,
        })
    }

    fn track_index(&mut self, mid: &str) -> usize {
        if let Some(index) = self.tracks.iter().position(|t| t.mid == mid) {
            return index;
        }
        self.tracks.push(TrackState {
            mid: mid.to_owned(),
            session: None,
            clock_rate: 0,
            last_timestamp: 0,
            last_pts: Duration::ZERO,
            anchor_pts: Duration::ZERO,
            ticks: 0,
            step: DEFAULT_STEP,
        });
        self.tracks.len() - 1
    }

    /// The next frame of a track already placed in this session, at the same clock rate:
    /// `(pts, ticks since the track's anchor or None to re-anchor at pts, step,
    /// discontinuity)`.
    fn follow(
        &self,
        index: usize,
        timestamp: u32,
        arrival: Instant,
    ) -> (Duration, Option<u64>, Duration, bool) {
        let state = &self.tracks[index];
        // Signed difference: a wrap forward is a small positive step.
        let delta = timestamp.wrapping_sub(state.last_timestamp) as i32;
        let by = ticks_to_duration(u64::from(delta.unsigned_abs()), state.clock_rate);
        match classify_offset(delta > 0, by) {
            Continuity::Forward => {
                let ticks = state.ticks + u64::from(delta.unsigned_abs());
                let pts = state.anchor_pts + ticks_to_duration(ticks, state.clock_rate);
                (pts, Some(ticks), by.min(MAX_STEP), false)
            }
            Continuity::Still => (state.last_pts + STILL_STEP, None, state.step, false),
            Continuity::Rewound | Continuity::Leaped => {
                let pts = state.on_grid(self.resume_at(arrival));
                (pts, None, state.step, true)
            }
        }
    }

    /// The first frame of a track in this session (or after its clock rate changed):
    /// `(pts, step, discontinuity)`. The session's first frame on any track is placed where
    /// the timeline resumes and anchors the session; later tracks are placed by their arrival
    /// relative to that anchor.
    fn enter(
        &mut self,
        index: usize,
        session: SessionId,
        arrival: Instant,
    ) -> (Duration, Duration, bool) {
        let state = &self.tracks[index];
        let pts = match self.anchor {
            Some((pts, at)) => state.on_grid(pts + arrival.saturating_duration_since(at)),
            None => {
                let pts = state.on_grid(self.resume_at(arrival));
                self.anchor = Some((pts, arrival));
                pts
            }
        };
        let discontinuity = self.first_session.is_some_and(|first| first != session)
            || state.session == Some(session);
        (pts, state.step, discontinuity)
    }

    /// Where the timeline goes on after a new session or a break, for a frame received at
    /// `arrival`: zero before anything was placed, else the end of the timeline, or in
    /// [`GapMode::WallClock`] the last placement plus the real time since it if that is later.
    fn resume_at(&self, arrival: Instant) -> Duration {
        let Some((last_pts, last_arrival)) = self.last else {
            return Duration::ZERO;
        };
        match self.mode {
            GapMode::Continue => self.end,
            GapMode::WallClock => self
                .end
                .max(last_pts + arrival.saturating_duration_since(last_arrival)),
        }
    }
}
