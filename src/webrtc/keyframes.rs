//! When a video frame can go to a decoder, and when to ask the sender for a keyframe. Pure: the
//! peer task feeds it what str0m reports and carries out the requests.
//!
//! A decoder can only start on a keyframe, and a frame whose reference was lost decodes to
//! garbage (smeared blocks, or errors). So a video track starts *closed*: frames are withheld
//! until the first keyframe, and one is requested (PLI, or FIR) as soon as the first video
//! packet arrives, so a new session shows a picture after about one round trip instead of
//! waiting for the sender's next periodic keyframe. When str0m reports a frame that is not
//! contiguous with the last one delivered (packets lost for good) — or a payload it cannot
//! depacketize — the track closes again, a keyframe is requested, and frames are withheld
//! until it comes. Requests are repeated every [`REQUEST_RETRY`] while the track stays closed,
//! since RTCP feedback is lossy too.
//!
//! Withheld, not marked: a player would have to drop marked frames anyway, and a recording must
//! not contain frames that do not decode; withholding costs nothing but the time to the next
//! keyframe, which the request makes short.

use std::time::{Duration, Instant};

/// How long a closed track waits for the keyframe it asked for before asking again.
pub(crate) const REQUEST_RETRY: Duration = Duration::from_millis(300);

/// What to do with one video frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Admit {
    /// Hand the frame to the application.
    pub(crate) deliver: bool,
    /// Send a keyframe request now.
    pub(crate) request: bool,
}

/// The keyframe state of one video track of one session.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyframeGate {
    /// A keyframe was delivered and nothing was lost since.
    open: bool,
    /// When the last request was sent; `None` before the first.
    requested: Option<Instant>,
}

impl KeyframeGate {
    /// A closed gate that has not asked yet.
    pub(crate) fn new() -> Self {
        KeyframeGate::default()
    }

    /// Whether a keyframe is needed before the next frame can be delivered.
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        !self.open
    }

    /// Whether the track waits for its first keyframe request (closed, nothing asked yet).
    pub(crate) fn awaits_first_request(&self) -> bool {
        !self.open && self.requested.is_none()
    }

    /// The first packets of the track are arriving: whether to request a keyframe now (once,
    /// before any frame is complete).
    pub(crate) fn on_packets(&mut self, now: Instant) -> bool {
        if self.open || self.requested.is_some() {
            return false;
        }
        self.requested = Some(now);
        true
    }

    /// The keyframe request just made could not be sent (str0m had no receive stream yet):
    /// the next packets or frame ask again.
    pub(crate) fn request_failed(&mut self) {
        self.requested = None;
    }

    /// A frame is complete: `keyframe` as its codec says, `contiguous` as str0m says (no frame
    /// lost between it and the previous one).
    pub(crate) fn on_frame(&mut self, now: Instant, keyframe: bool, contiguous: bool) -> Admit {
        if keyframe {
            self.open = true;
            return Admit {
                deliver: true,
                request: false,
            };
        }
        if self.open && contiguous {
            return Admit {
                deliver: true,
                request: false,
            };
        }
        Admit {
            deliver: false,
            request: self.close(now),
        }
    }

    /// A payload of the track could not be depacketized: what follows may depend on it.
    pub(crate) fn on_broken(&mut self, now: Instant) -> bool {
        self.close(now)
    }

    /// Closes the track; whether to ask for a keyframe now: at once when it was open (a fresh
    /// loss), else when a retry is due.
    fn close(&mut self, now: Instant) -> bool {
        if self.open {
            self.open = false;
            self.requested = Some(now);
            return true;
        }
        self.retry_due(now)
    }

    /// Records a request at `now` if one is due (none yet, or the last is [`REQUEST_RETRY`]
    /// old).
    fn retry_due(&mut self, now: Instant) -> bool {
        let due = self
            .requested
            .is_none_or(|at| now.saturating_duration_since(at) >= REQUEST_RETRY);
        if due {
            self.requested = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELIVER: Admit = Admit {
        deliver: true,
        request: false,
    };
    const WITHHOLD: Admit = Admit {
        deliver: false,
        request: false,
    };
    const WITHHOLD_AND_ASK: Admit = Admit {
        deliver: false,
        request: true,
    };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_new_track_asks_once_at_its_first_packets_and_withholds_until_a_keyframe() {
        let t0 = tokio::time::Instant::now().into_std();
        let mut gate = KeyframeGate::new();
        assert!(gate.is_closed());
        assert!(gate.on_packets(t0), "the first packets ask at once");
        assert!(!gate.on_packets(t0 + ms(5)), "once");
        assert_eq!(gate.on_frame(t0 + ms(30), false, true), WITHHOLD);
        assert_eq!(gate.on_frame(t0 + ms(60), true, true), DELIVER);
        assert!(!gate.is_closed());
        assert_eq!(gate.on_frame(t0 + ms(90), false, true), DELIVER);
        assert!(!gate.on_packets(t0 + ms(100)), "an open track does not ask");
    }

    #[test]
    fn a_loss_closes_the_track_and_asks_at_once_then_every_retry_period() {
        let t0 = tokio::time::Instant::now().into_std();
        let mut gate = KeyframeGate::new();
        assert_eq!(gate.on_frame(t0, true, true), DELIVER);
        assert_eq!(gate.on_frame(t0 + ms(33), false, false), WITHHOLD_AND_ASK);
        assert_eq!(gate.on_frame(t0 + ms(66), false, true), WITHHOLD);
        let retry = t0 + ms(33) + REQUEST_RETRY;
        assert_eq!(gate.on_frame(retry - ms(1), false, true), WITHHOLD);
        assert_eq!(gate.on_frame(retry, false, true), WITHHOLD_AND_ASK);
        assert_eq!(
            gate.on_frame(retry + ms(33), true, false),
            DELIVER,
            "a keyframe needs nothing"
        );
        assert_eq!(gate.on_frame(retry + ms(66), false, true), DELIVER);
    }

    #[test]
    fn a_failed_request_is_made_again_by_the_next_packets() {
        let t0 = tokio::time::Instant::now().into_std();
        let mut gate = KeyframeGate::new();
        assert!(gate.on_packets(t0));
        gate.request_failed();
        assert!(gate.on_packets(t0 + ms(1)));
    }

    #[test]
    fn a_broken_payload_closes_the_track_like_a_loss() {
        let t0 = tokio::time::Instant::now().into_std();
        let mut gate = KeyframeGate::new();
        assert_eq!(gate.on_frame(t0, true, true), DELIVER);
        assert!(gate.on_broken(t0 + ms(10)), "asks at once");
        assert!(
            !gate.on_broken(t0 + ms(20)),
            "not again within the retry period"
        );
        assert_eq!(gate.on_frame(t0 + ms(33), false, true), WITHHOLD);
    }

    #[test]
    fn a_closed_track_that_never_asked_asks_on_its_first_frame() {
        let t0 = tokio::time::Instant::now().into_std();
        let mut gate = KeyframeGate::new();
        assert_eq!(gate.on_frame(t0, false, true), WITHHOLD_AND_ASK);
    }
}
