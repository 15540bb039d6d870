//! The viewer's presentation timeline (`relive::timeline::Timeline`) on virtual time: frames
//! are fed with the arrival instants a test chooses, so reconnects, migrations, wraps and
//! jumps are replayed exactly.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use relive::timeline::{GapMode, Placement, SessionId, Timeline};

const VIDEO: u32 = 90_000;
const AUDIO: u32 = 48_000;
/// 30 fps video and 20 ms audio packets, in their RTP clocks.
const VIDEO_TICKS: u32 = 3_000;
const AUDIO_TICKS: u32 = 960;
const FRAME: Duration = Duration::from_nanos(33_333_333);

/// `ticks` of the 90 kHz video clock, exactly (rounded down to the nanosecond once).
fn video_ticks(ticks: u32) -> Duration {
    Duration::from_nanos(u64::from(ticks) * 1_000_000_000 / u64::from(VIDEO))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A sender of one track: RTP timestamps from a base, one frame per period of the wall clock.
struct Track {
    mid: &'static str,
    rate: u32,
    ticks: u32,
    period: Duration,
    timestamp: u32,
}

impl Track {
    fn video(base: u32) -> Self {
        Track {
            mid: "0",
            rate: VIDEO,
            ticks: VIDEO_TICKS,
            period: FRAME,
            timestamp: base,
        }
    }

    fn audio(base: u32) -> Self {
        Track {
            mid: "1",
            rate: AUDIO,
            ticks: AUDIO_TICKS,
            period: ms(20),
            timestamp: base,
        }
    }

    /// Places this track's frame at `at`, then advances its timestamp by one frame.
    fn send(&mut self, timeline: &mut Timeline, session: SessionId, at: Instant) -> Placement {
        let placed = timeline
            .place(session, self.mid, self.timestamp, self.rate, at)
            .expect("a frame of the current session is placed");
        self.timestamp = self.timestamp.wrapping_add(self.ticks);
        placed
    }
}

/// Plays `tracks` from `start` for `length` of wall clock, interleaved by their periods;
/// returns every placement with its wall-clock instant, in sending order.
fn play(
    timeline: &mut Timeline,
    session: SessionId,
    tracks: &mut [Track],
    start: Instant,
    length: Duration,
) -> Vec<(Instant, &'static str, Placement)> {
    let mut next: Vec<Instant> = tracks.iter().map(|_| start).collect();
    let mut out = Vec::new();
    loop {
        let (i, at) = next
            .iter()
            .copied()
            .enumerate()
            .min_by_key(|&(_, at)| at)
            .expect("at least one track");
        if at >= start + length {
            return out;
        }
        let placed = tracks[i].send(timeline, session, at);
        out.push((at, tracks[i].mid, placed));
        next[i] = at + tracks[i].period;
    }
}

fn assert_strictly_increasing(placements: &[(Instant, &str, Placement)]) {
    for mid in ["0", "1"] {
        let pts: Vec<Duration> = placements
            .iter()
            .filter(|(_, m, _)| *m == mid)
            .map(|(_, _, p)| p.pts)
            .collect();
        for pair in pts.windows(2) {
            assert!(
                pair[1] > pair[0],
                "track {mid}: {:?} then {:?}",
                pair[0],
                pair[1]
            );
        }
    }
}

fn last_pts(placements: &[(Instant, &str, Placement)], mid: &str) -> Duration {
    placements
        .iter()
        .rev()
        .find(|(_, m, _)| *m == mid)
        .map(|(_, _, p)| p.pts)
        .expect("the track has frames")
}

#[test]
fn the_first_session_starts_at_zero_and_follows_rtp_time() {
    let t0 = tokio::time::Instant::now().into_std();
    let mut timeline = Timeline::new(GapMode::Continue);
    let session = timeline.begin_session();
    let mut tracks = [Track::video(123_456)];
    let placed = play(&mut timeline, session, &mut tracks, t0, ms(990));
    assert_eq!(placed[0].2.pts, Duration::ZERO);
    assert!(
        !placed[0].2.discontinuity,
        "nothing to flush before the first frame"
    );
    assert_eq!(placed.len(), 30);
    assert_eq!(placed[29].2.pts, video_ticks(29 * VIDEO_TICKS));
    assert!(
        placed
            .iter()
            .all(|(_, _, p)| !p.discontinuity && p.session == session)
    );
}

#[test]
fn a_reconnect_continues_where_the_last_session_stopped() {
    let t0 = tokio::time::Instant::now().into_std();
    let mut timeline = Timeline::new(GapMode::Continue);
    let first = timeline.begin_session();
    let before = play(&mut timeline, first, &mut [Track::video(9)], t0, ms(2_000));
    let stopped = last_pts(&before, "0");

    // Four seconds of reconnecting; the new session's RTP clock starts elsewhere.
    let second = timeline.begin_session();
    let mut video = Track::video(3_000_000_000);
    let after = play(
        &mut timeline,
        second,
        std::slice::from_mut(&mut video),
        t0 + ms(6_000),
        ms(1_000),
    );
    assert_eq!(
        after[0].2.pts,
        stopped + FRAME,
        "one frame after the last one"
    );
    assert!(after[0].2.discontinuity);
    assert!(after[1..].iter().all(|(_, _, p)| !p.discontinuity));
    let mut all = before;
    all.extend(after);
    assert_strictly_increasing(&all);
    // The timeline holds 3 s of media: the outage is not on it.
    let end = last_pts(&all, "0");
    assert!(end > ms(2_900) && end < ms(3_100), "{end:?}");
}

#[test]
fn in_wall_clock_mode_a_reconnect_leaves_the_real_gap() {
    let t0 = tokio::time::Instant::now().into_std();
    let mut timeline = Timeline::new(GapMode::WallClock);
    let first = timeline.begin_session();
    let before = play(&mut timeline, first, &mut [Track::video(0)], t0, ms(2_000));
    let (last_at, _, last) = *before.last().expect("frames");
    let second = timeline.begin_session();
    let back = t0 + ms(6_000);
    let after = play(
        &mut timeline,
        second,
        &mut [Track::video(55)],
        back,
        ms(500),
    );
    // The real gap, rounded to the track's frame grid: at most half a frame off, and a whole
    // number of frames after the last one.
    let gap = last.pts + (back - last_at);
    let pts = after[0].2.pts;
    assert!(pts.abs_diff(gap) <= FRAME / 2, "{pts:?} vs {gap:?}");
    let frames = (pts - last.pts).as_nanos() as f64 / FRAME.as_nanos() as f64;
    assert!((frames - frames.round()).abs() < 1e-6, "{frames} frames");
    assert!(after[0].2.discontinuity);
}

#[test]
fn a_track_keeps_its_frame_grid_across_sessions() {
    // Audio arrives first in the new session and anchors it; video follows 7 ms later, which
    // by arrival alone would put it a fifth of a frame off its old grid.
    let t0 = tokio::time::Instant::now().into_std();
    let mut timeline = Timeline::new(GapMode::Continue);
    let first = timeline.begin_session();
    let before = play(
        &mut timeline,
        first,
        &mut [Track::video(10), Track::audio(20)],
        t0,
        ms(1_000),
    );
    let video_last = last_pts(&before, "0");
    let second = timeline.begin_session();
    let back = t0 + ms(4_000);
    let audio = timeline
        .place(second, "1", 9_999, 48_000, back)
        .expect("placed");
    let video = timeline
        .place(second, "0", 123_456, 90_000, back + ms(7))
        .expect("placed");
    let frames = (video.pts - video_last).as_nanos() as f64 / FRAME.as_nanos() as f64;
    assert!((frames - frames.round()).abs() < 1e-6, "{frames} frames");
    assert!(video.pts.abs_diff(audio.pts + ms(7)) <= FRAME / 2);
    assert!(video.discontinuity && audio.discontinuity);
}

#[test]
fn audio_and_video_stay_in_sync_after_a_reconnect() {
    let t0 = tokio::time::Instant::now().into_std();
    let mut timeline = Timeline::new(GapMode::Continue);
    let first = timeline.begin_session();
    let mut tracks = [Track::video(1_000), Track::audio(77)];
    let mut all = play(&mut timeline, first, &mut tracks, t0, ms(3_000));

    // The new session: audio flows at once, the first video frame (a keyframe) 120 ms later,
    // both with new random bases.
    let second = timeline.begin_session();
    let back = t0 + ms(5_000);
    let mut audio = [Track::audio(4_000_000_000)];
    let early = play(&mut timeline, second, &mut audio, back, ms(120));
    all.extend(early);
    let [audio] = audio;
    let mut tracks = [Track::video(2_500_000_000), audio];
    let rest = play(
        &mut timeline,
        second,
        &mut tracks,
        back + ms(120),
        ms(2_000),
    );
    all.extend(rest);
    assert_strictly_increasing(&all);

    // Frames sent at the same wall instant are presented within one video frame of each
    // other, before and after the reconnect.
    let after: Vec<_> = all.iter().filter(|(_, _, p)| p.session == second).collect();
    let first_video = after.iter().find(|(_, m, _)| *m == "0").expect("video");
    assert!(first_video.2.discontinuity);
    for (at, mid, placed) in after.iter().filter(|(_, m, _)| *m == "0") {
        let audio = after
            .iter()
            .filter(|(_, m, _)| *m == "1")
            .min_by_key(|(a, _, _)| if a > at { *a - *at } else { *at - *a })
            .expect("audio near every video frame");
        let wall = if audio.0 > *at {
            audio.0 - *at
        } else {
            *at - audio.0
        };
        let shown = audio.2.pts.abs_diff(placed.pts);
        let skew = shown.abs_diff(wall);
        assert!(skew < FRAME, "{mid} at {:?}: skew {skew:?}", placed.pts);
    }
}

#[test]
fn a_migration_supersedes_the_old_session_and_its_late_frames_are_not_placed() {
    let t0 = tokio::time::Instant::now().into_std();
    let mut timeline = Timeline::new(GapMode::Continue);
    let old = timeline.begin_session();
    let mut old_video = Track::video(0);
    let before = play(
        &mut timeline,
        old,
        std::slice::from_mut(&mut old_video),
        t0,
        ms(1_000),
    );
    // The migrated session begins while the old path still delivers a frame or two.
    let new = timeline.begin_session();
    assert_eq!(timeline.current_session(), Some(new));
    assert_eq!(
        timeline.place(old, "0", old_video.timestamp, VIDEO, t0 + ms(1_000)),
        None
    );
    let after = play(
        &mut timeline,
        new,
        &mut [Track::video(0)],
        t0 + ms(1_050),
        ms(500),
    );
    assert!(after[0].2.pts > last_pts(&before, "0"));
    assert!(after[0].2.discontinuity);
    assert_eq!(new.get(), old.get() + 1);
}

#[test]
fn a_32_bit_timestamp_wrap_is_just_the_next_frame() {
    let t0 = tokio::time::Instant::now().into_std();
    let mut timeline = Timeline::new(GapMode::Continue);
    let session = timeline.begin_session();
    let mut video = Track::video(u32::MAX - 10 * VIDEO_TICKS);
    let placed = play(
        &mut timeline,
        session,
        std::slice::from_mut(&mut video),
        t0,
        ms(1_000),
    );
    assert!(video.timestamp < VIDEO_TICKS * 30, "the clock wrapped");
    assert!(placed.iter().all(|(_, _, p)| !p.discontinuity));
    assert_strictly_increasing(&placed);
    assert_eq!(placed[29].2.pts, video_ticks(29 * VIDEO_TICKS));
}

#[test]
fn a_jump_back_within_a_session_is_stepped_over_and_flagged() {
    let t0 = tokio::time::Instant::now().into_std();
    let mut timeline = Timeline::new(GapMode::Continue);
    let session = timeline.begin_session();
    let mut video = Track::video(50 * VIDEO);
    let mut all = play(
        &mut timeline,
        session,
        std::slice::from_mut(&mut video),
        t0,
        ms(1_000),
    );
    let before = last_pts(&all, "0");
    // The encoder restarts its clock 30 s back, same SSRC, same session.
    video.timestamp -= 30 * VIDEO;
    let after = play(
        &mut timeline,
        session,
        std::slice::from_mut(&mut video),
        t0 + ms(1_000),
        ms(500),
    );
    assert_eq!(after[0].2.pts, before + FRAME);
    assert!(after[0].2.discontinuity);
    assert!(after[1..].iter().all(|(_, _, p)| !p.discontinuity));
    all.extend(after);
    assert_strictly_increasing(&all);
}

#[test]
fn a_leap_ahead_within_a_session_is_not_an_hour_of_media() {
    let t0 = tokio::time::Instant::now().into_std();
    let mut timeline = Timeline::new(GapMode::Continue);
    let session = timeline.begin_session();
    let mut video = Track::video(0);
    let before = play(
        &mut timeline,
        session,
        std::slice::from_mut(&mut video),
        t0,
        ms(1_000),
    );
    video.timestamp = video.timestamp.wrapping_add(3_600 * VIDEO);
    let after = play(
        &mut timeline,
        session,
        std::slice::from_mut(&mut video),
        t0 + ms(1_000),
        ms(100),
    );
    assert_eq!(after[0].2.pts, last_pts(&before, "0") + FRAME);
    assert!(after[0].2.discontinuity);
}

#[test]
fn a_reordered_or_repeated_timestamp_still_moves_forward() {
    let t0 = tokio::time::Instant::now().into_std();
    let mut timeline = Timeline::new(GapMode::Continue);
    let session = timeline.begin_session();
    let a = timeline
        .place(session, "0", 90_000, VIDEO, t0)
        .expect("placed");
    let b = timeline
        .place(session, "0", 90_000, VIDEO, t0 + ms(1))
        .expect("placed");
    let c = timeline
        .place(session, "0", 87_000, VIDEO, t0 + ms(2))
        .expect("placed");
    assert!(a.pts < b.pts && b.pts < c.pts);
    assert!(
        !b.discontinuity && !c.discontinuity,
        "within the rewind limit: same timeline"
    );
}

#[test]
fn a_zero_clock_rate_or_an_unknown_session_is_not_placed() {
    let t0 = tokio::time::Instant::now().into_std();
    let mut timeline = Timeline::new(GapMode::Continue);
    let session = timeline.begin_session();
    assert_eq!(timeline.place(session, "0", 1, 0, t0), None);
    let later = timeline.begin_session();
    assert_eq!(timeline.place(session, "0", 1, VIDEO, t0), None);
    assert!(timeline.place(later, "0", 1, VIDEO, t0).is_some());
}

proptest! {
    /// Whatever the sessions, timestamps and arrivals, every track's presentation time
    /// strictly increases and stays before the timeline's end.
    #[test]
    fn presentation_time_only_moves_forward(
        steps in proptest::collection::vec(
            (0u8..8, 0u8..2, any::<u32>(), 0u64..2_000, any::<bool>()),
            1..200,
        ),
        wall_clock in any::<bool>(),
    ) {
        let mode = if wall_clock { GapMode::WallClock } else { GapMode::Continue };
        let mut timeline = Timeline::new(mode);
        let t0 = tokio::time::Instant::now().into_std();
        let mut at = t0;
        let mut session = timeline.begin_session();
        let mut last = [None::<Duration>; 2];
        for (op, track, jitter, gap_ms, small) in steps {
            at += ms(gap_ms);
            if op == 0 {
                session = timeline.begin_session();
                continue;
            }
            let (mid, rate) = if track == 0 { ("0", VIDEO) } else { ("1", AUDIO) };
            // Mostly regular steps, sometimes anything at all.
            let timestamp = if small { jitter % 10_000 } else { jitter };
            let placed = timeline.place(session, mid, timestamp, rate, at);
            let placed = placed.expect("the current session is placed");
            if let Some(previous) = last[usize::from(track)] {
                prop_assert!(placed.pts > previous, "{:?} after {:?}", placed.pts, previous);
            }
            prop_assert!(placed.pts < timeline.end(), "the end is past every frame");
            last[usize::from(track)] = Some(placed.pts);
        }
    }
}
