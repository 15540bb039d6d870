//! Media-time continuity: the one rule that says whether a new reading of a
//! session's media time goes on from its timeline, stands still, or breaks it.
//!
//! Every consumer of media time applies this rule and no other: the
//! [`Machine`](crate::Machine) (is this progress?), the WebRTC adapter's RTP
//! clocks (is this timestamp a discontinuity?), and players that want to know
//! when to flush their decoder.
//!
//! On that rule, [`Timeline`] gives a viewer one presentation clock across all its sessions:
//! each frame's RTP time becomes a presentation time that only moves forward through
//! reconnects, migrations, timestamp wraps and jumps, with a discontinuity flag where a
//! player should flush its decoder.

use std::time::Duration;

mod presentation;

pub use presentation::{GapMode, Placement, SessionId, Timeline};

/// A reading this far behind the furthest point of its timeline, or further,
/// starts a new timeline (a restarted publisher, a new media path after a
/// migration); anything closer is reordering or a flickering clock.
pub const MAX_REWIND: Duration = Duration::from_secs(1);

/// A reading further than this ahead of the furthest point is a discontinuity
/// (a new RTP timestamp base, a clock that jumped), not media played.
pub const MAX_LEAP: Duration = Duration::from_secs(10);

/// How a media-time reading relates to the furthest point of its timeline;
/// see [`classify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Continuity {
    /// Past the furthest point, by at most [`MAX_LEAP`]: media played on.
    Forward,
    /// At the furthest point or behind it by at most [`MAX_REWIND`]: nothing new
    /// (a frozen picture whose clock flickers, a reordered packet).
    Still,
    /// Behind by more than [`MAX_REWIND`]: a new timeline begins here.
    Rewound,
    /// Ahead by more than [`MAX_LEAP`]: the timeline broke forward.
    Leaped,
}

impl Continuity {
    /// Whether the reading is past the furthest point (`Forward` or `Leaped`):
    /// what a stall watchdog counts as media moving.
    pub fn is_ahead(self) -> bool {
        matches!(self, Continuity::Forward | Continuity::Leaped)
    }

    /// Whether the timeline broke (`Rewound` or `Leaped`): what a clock that
    /// must stay continuous steps over instead of following.
    pub fn is_break(self) -> bool {
        matches!(self, Continuity::Rewound | Continuity::Leaped)
    }
}

/// Classifies `reading` against `furthest`, the furthest media time of its
/// timeline so far.
///
/// The [`Machine`](crate::Machine) counts a reading as progress when it
/// [is ahead](Continuity::is_ahead) and starts a new timeline on `Rewound`;
/// the WebRTC adapter's RTP clocks step over [breaks](Continuity::is_break)
/// so that media time stays continuous.
///
/// ```
/// use std::time::Duration;
/// use relive::timeline::{Continuity, classify};
///
/// let ms = Duration::from_millis;
/// assert_eq!(classify(ms(5_000), ms(5_040)), Continuity::Forward);
/// assert_eq!(classify(ms(5_000), ms(4_900)), Continuity::Still); // reordered
/// assert_eq!(classify(ms(5_000), ms(0)), Continuity::Rewound); // a new path
/// assert_eq!(classify(ms(5_000), ms(3_600_000)), Continuity::Leaped);
/// ```
#[inline]
pub fn classify(furthest: Duration, reading: Duration) -> Continuity {
    if is_ahead(furthest, reading) {
        classify_offset(true, reading - furthest)
    } else {
        classify_offset(false, furthest - reading)
    }
}

/// Whether `reading` is past `furthest`: `classify(furthest, reading).is_ahead()`, in one
/// compare. The hot path of a stall watchdog asks this first and classifies only what is
/// not ahead.
#[inline]
pub fn is_ahead(furthest: Duration, reading: Duration) -> bool {
    reading > furthest
}

/// The same rule for a reading `by` ahead of (`ahead`) or behind the furthest
/// point, for clocks that count in their own units.
#[inline]
pub(crate) fn classify_offset(ahead: bool, by: Duration) -> Continuity {
    match (ahead, by) {
        (true, by) if by > MAX_LEAP => Continuity::Leaped,
        (true, by) if !by.is_zero() => Continuity::Forward,
        (false, by) if by > MAX_REWIND => Continuity::Rewound,
        _ => Continuity::Still,
    }
}

/// `ticks` of a `rate` Hz clock as a duration, exactly to the nanosecond below (a zero rate
/// counts as 1 Hz): the one conversion of RTP ticks, for every clock that counts them.
#[inline]
pub(crate) fn ticks_to_duration(ticks: u64, rate: u32) -> Duration {
    let rate = u64::from(rate.max(1));
    Duration::from_secs(ticks / rate) + Duration::from_nanos((ticks % rate) * 1_000_000_000 / rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thresholds_belong_to_the_near_side() {
        assert_eq!(
            classify(Duration::ZERO, MAX_LEAP),
            Continuity::Forward,
            "exactly the leap limit is still media"
        );
        assert_eq!(
            classify(MAX_REWIND, Duration::ZERO),
            Continuity::Still,
            "exactly the rewind limit is still the same timeline"
        );
        assert_eq!(classify(Duration::ZERO, Duration::ZERO), Continuity::Still);
        let tiny = Duration::from_nanos(1);
        assert_eq!(
            classify(Duration::ZERO, MAX_LEAP + tiny),
            Continuity::Leaped
        );
        assert_eq!(
            classify(MAX_REWIND + tiny, Duration::ZERO),
            Continuity::Rewound
        );
    }

    #[test]
    fn is_ahead_agrees_with_classify() {
        let ms = Duration::from_millis;
        for (f, r) in [
            (0, 0),
            (0, 1),
            (5_000, 4_000),
            (5_000, 20_000),
            (5_000, 0),
            (7, 7),
        ] {
            assert_eq!(
                is_ahead(ms(f), ms(r)),
                classify(ms(f), ms(r)).is_ahead(),
                "{f} {r}"
            );
        }
    }

    #[test]
    fn predicates_split_the_four_cases() {
        use Continuity::*;
        for (c, ahead, broke) in [
            (Forward, true, false),
            (Still, false, false),
            (Rewound, false, true),
            (Leaped, true, true),
        ] {
            assert_eq!((c.is_ahead(), c.is_break()), (ahead, broke), "{c:?}");
        }
    }
}
