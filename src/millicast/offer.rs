//! Where the SDP offer of a `view` comes from, and where its answer goes: the
//! seam between Millicast signaling and a media stack.
//!
//! [`SignalingOnly`] sends a fixed recvonly offer and produces no media events:
//! progress then comes from the application's `report_progress`. The `webrtc`
//! feature supplies a real peer connection behind the same traits.

use std::future::Future;
use std::time::Duration;

use futures::stream::BoxStream;

use crate::millicast::wire::IceServer;

/// Makes SDP offers for `view` commands, one per attempt.
pub trait OfferProvider: Send + Sync + 'static {
    /// What the application gets to play the media (tracks, a packet receiver, ...).
    type Media: Send + 'static;
    /// An offer waiting for its answer.
    type Offer: PendingOffer<Media = Self::Media>;

    /// Creates a recvonly offer (video mid `0`, audio mid `1`) using the
    /// Director's ICE servers.
    fn create_offer(
        &self,
        ice_servers: &[IceServer],
    ) -> impl Future<Output = Result<Self::Offer, MediaError>> + Send;
}

/// An offer sent in `view`, waiting for the server's answer.
pub trait PendingOffer: Send + 'static {
    /// The media handle produced once the answer is applied.
    type Media: Send + 'static;

    /// The offer's SDP text.
    fn sdp(&self) -> &str;

    /// Applies the server's answer: the media starts flowing.
    fn accept(
        self,
        answer: &str,
    ) -> impl Future<Output = Result<MediaSession<Self::Media>, MediaError>> + Send;
}

/// A negotiated media path: the handle for the application and what the
/// media stack observes.
pub struct MediaSession<M> {
    /// The application's handle.
    pub media: M,
    /// Media-level events: progress ticks from media time, and loss.
    pub events: BoxStream<'static, MediaEvent>,
}

impl<M: std::fmt::Debug> std::fmt::Debug for MediaSession<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSession")
            .field("media", &self.media)
            .finish_non_exhaustive()
    }
}

/// What a media stack reports about its session.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// Media time reached this value (from RTP timestamps, a decoder).
    Progress(Duration),
    /// The media path failed (ICE, DTLS, consent); the session is over.
    Lost(String),
}

/// A media stack failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MediaError(pub String);

/// The offer provider of a signaling-only viewer: a fixed recvonly offer, no
/// media events. Pair it with `report_progress` from the player, or with
/// [`Policy::progress_watchdog(false)`](crate::PolicyBuilder::progress_watchdog).
#[derive(Clone, Copy, Debug, Default)]
pub struct SignalingOnly;

/// What a [`SignalingOnly`] session hands the application: the server's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalingMedia {
    /// The SDP answer of the `view` command.
    pub answer: String,
}

/// A [`SignalingOnly`] offer.
#[derive(Clone, Debug)]
pub struct FixedOffer;

impl OfferProvider for SignalingOnly {
    type Media = SignalingMedia;
    type Offer = FixedOffer;

    async fn create_offer(&self, _ice_servers: &[IceServer]) -> Result<FixedOffer, MediaError> {
        Ok(FixedOffer)
    }
}

impl PendingOffer for FixedOffer {
    type Media = SignalingMedia;

    fn sdp(&self) -> &str {
        RECVONLY_OFFER
    }

    async fn accept(self, answer: &str) -> Result<MediaSession<SignalingMedia>, MediaError> {
        Ok(MediaSession {
            media: SignalingMedia {
                answer: answer.to_owned(),
            },
            events: Box::pin(futures::stream::pending()),
        })
    }
}

/// A recvonly offer with video on mid `0` and audio on mid `1`, bundled, no
/// candidates (the server's ICE-lite answer carries its own).
pub const RECVONLY_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=msid-semantic: WMS\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:rlve\r\n\
a=ice-pwd:relivefixedofferpassword00\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:rlve\r\n\
a=ice-pwd:relivefixedofferpassword00\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n";
