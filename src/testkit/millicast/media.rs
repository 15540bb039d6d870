//! The server's media side: with feature `webrtc`, each accepted `view` or WHEP offer gets a
//! publisher peer that sends real RTP, steered per stream (live, frozen, black-holed); without
//! it, the answer is the fixed SDP of [`frames::sdp_answer`] and no media follows.

#[cfg(feature = "webrtc")]
use std::collections::HashMap;
#[cfg(feature = "webrtc")]
use std::sync::atomic::AtomicU64;
#[cfg(feature = "webrtc")]
use std::sync::{Mutex, MutexGuard, PoisonError};

#[cfg(feature = "webrtc")]
use tokio::sync::watch;

use super::frames;
#[cfg(feature = "webrtc")]
use crate::testkit::clip::ClipCodec;
#[cfg(feature = "webrtc")]
use crate::testkit::publisher::{Feed, PublisherError, PublisherPeer};

/// What keeps a viewer's media flowing: its publisher peer, or nothing without `webrtc`.
#[cfg(feature = "webrtc")]
pub(super) type Peer = PublisherPeer;
/// What keeps a viewer's media flowing: nothing without `webrtc`.
#[cfg(not(feature = "webrtc"))]
pub(super) type Peer = ();

/// The media state of every stream, and the WHEP resources.
#[derive(Default)]
pub(super) struct Media {
    #[cfg(feature = "webrtc")]
    streams: Mutex<HashMap<String, StreamMedia>>,
    #[cfg(feature = "webrtc")]
    pub(super) whep: Mutex<HashMap<u64, super::whep::Resource>>,
    #[cfg(feature = "webrtc")]
    pub(super) whep_requests: AtomicU64,
    #[cfg(feature = "webrtc")]
    pub(super) whep_deletes: AtomicU64,
    #[cfg(feature = "webrtc")]
    pub(super) whep_patches: AtomicU64,
    /// The status every WHEP `PATCH` is answered with, if set (405, 501: no ICE restart).
    #[cfg(feature = "webrtc")]
    patch_refusal: Mutex<Option<u16>>,
}

/// One stream's switches; the feed its peers follow is derived from them.
#[cfg(feature = "webrtc")]
struct StreamMedia {
    live: bool,
    frozen: bool,
    blackhole: bool,
    video: ClipCodec,
    feed: watch::Sender<Feed>,
    /// The feeds of sessions frozen for good by [`Switch::FreezeSessions`]: kept so that
    /// their peers stay connected (silent), dropped once no peer follows them.
    silenced: Vec<watch::Sender<Feed>>,
}

#[cfg(feature = "webrtc")]
impl Default for StreamMedia {
    fn default() -> Self {
        StreamMedia {
            live: false,
            frozen: false,
            blackhole: false,
            video: ClipCodec::default(),
            feed: watch::Sender::new(Feed::default()),
            silenced: Vec::new(),
        }
    }
}

/// A switch of a stream's media.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "webrtc"), allow(dead_code))]
pub(super) enum Switch {
    /// Published (`true`, which also unfreezes) or not.
    Live(bool),
    /// Frozen: the connection stays, RTP stops.
    Frozen(bool),
    /// The UDP path drops everything.
    Blackhole(bool),
    /// The video codec of the peers answered from now on.
    #[cfg(feature = "webrtc")]
    Video(ClipCodec),
    /// The sessions of now go silent for good (their connections stay); new ones get media.
    FreezeSessions,
}

impl Media {
    /// Flips a switch of `stream`; its peers follow at once.
    #[cfg(feature = "webrtc")]
    pub(super) fn set(&self, stream: &str, switch: Switch) {
        let mut streams = self.streams();
        let media = streams.entry(stream.to_owned()).or_default();
        match switch {
            Switch::Live(live) => {
                media.live = live;
                media.frozen &= !live;
            }
            Switch::Frozen(frozen) => media.frozen = frozen,
            Switch::Blackhole(on) => media.blackhole = on,
            Switch::Video(codec) => media.video = codec,
            Switch::FreezeSessions => {
                let current = *media.feed.borrow();
                let old = std::mem::replace(&mut media.feed, watch::Sender::new(current));
                old.send_replace(Feed {
                    sending: false,
                    ..current
                });
                media.silenced.retain(|feed| feed.receiver_count() > 0);
                media.silenced.push(old);
            }
        }
        let feed = Feed {
            sending: media.live && !media.frozen,
            blackhole: media.blackhole,
            video: media.video,
        };
        media.feed.send_replace(feed);
    }

    /// Without `webrtc` there is no media to switch.
    #[cfg(not(feature = "webrtc"))]
    pub(super) fn set(&self, _stream: &str, _switch: Switch) {}

    /// Makes every WHEP `PATCH` answer `status` (`None`: ICE restarts work).
    #[cfg(feature = "webrtc")]
    pub(super) fn set_patch_refusal(&self, status: Option<u16>) {
        *self
            .patch_refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = status;
    }

    /// The status WHEP `PATCH`es are refused with, if any.
    #[cfg(feature = "webrtc")]
    pub(super) fn patch_refusal(&self) -> Option<u16> {
        *self
            .patch_refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(feature = "webrtc")]
    fn streams(&self) -> MutexGuard<'_, HashMap<String, StreamMedia>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A publisher peer for `offer` on `stream`, and its answer.
    #[cfg(feature = "webrtc")]
    pub(super) fn publisher(
        &self,
        stream: &str,
        offer: &str,
    ) -> Result<(PublisherPeer, String), PublisherError> {
        let feed = self
            .streams()
            .entry(stream.to_owned())
            .or_default()
            .feed
            .subscribe();
        PublisherPeer::answer(offer, std::net::Ipv4Addr::LOCALHOST.into(), feed)
    }

    /// The answer to a `view` offer, and the peer that keeps its media flowing. An offer no peer
    /// can answer (a signaling-only client's fixed offer) gets the fixed answer and no media.
    #[cfg(feature = "webrtc")]
    pub(super) fn answer_view(&self, stream: &str, offer: &str, id: u64) -> (String, Option<Peer>) {
        match self.publisher(stream, offer) {
            Ok((peer, answer)) => (answer, Some(peer)),
            Err(error) => {
                tracing::debug!(%error, "no publisher peer for this offer; fixed answer");
                tracing::trace!(%offer, "the offer no publisher peer could answer");
                (frames::sdp_answer(offer, id), None)
            }
        }
    }

    /// The fixed answer to a `view` offer; no media without `webrtc`.
    #[cfg(not(feature = "webrtc"))]
    pub(super) fn answer_view(
        &self,
        _stream: &str,
        offer: &str,
        id: u64,
    ) -> (String, Option<Peer>) {
        (frames::sdp_answer(offer, id), None)
    }
}
