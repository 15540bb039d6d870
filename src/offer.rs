//! The offer/answer seam between a signaling protocol and a media stack: an [`OfferProvider`]
//! makes the SDP offer that Millicast's `view` or a WHEP `POST` sends, its [`PendingOffer`] takes
//! the answer and starts the media, whose [`NegotiatedMedia`] reports [`MediaEvent`]s.
//!
//! Compiled with the `millicast` feature (which `webrtc` implies), since offers are made for the
//! Director's [`IceServer`]s. The `webrtc` feature supplies a real peer connection
//! (`webrtc::ReceivePeers`) behind these traits; without it,
//! [`SignalingOnly`](crate::millicast::SignalingOnly) sends a fixed offer and produces no media.

use std::future::Future;
use std::time::Duration;

use futures::stream::BoxStream;

use crate::millicast::wire::IceServer;

/// Makes SDP offers, one per connect attempt.
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

/// An offer sent to the server, waiting for its answer.
pub trait PendingOffer: Send + 'static {
    /// The media handle produced once the answer is applied.
    type Media: Send + 'static;

    /// The offer's SDP text.
    fn sdp(&self) -> &str;

    /// Applies the server's answer: the media starts flowing.
    fn accept(
        self,
        answer: &str,
    ) -> impl Future<Output = Result<NegotiatedMedia<Self::Media>, MediaError>> + Send;
}

/// A negotiated media path: the handle for the application and what the
/// media stack observes. (The transport-level session the driver sees is a
/// [`Session`](crate::Session).)
pub struct NegotiatedMedia<M> {
    /// The application's handle.
    pub media: M,
    /// Media-level events: progress ticks from media time, and loss.
    pub events: BoxStream<'static, MediaEvent>,
}

impl<M: std::fmt::Debug> std::fmt::Debug for NegotiatedMedia<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NegotiatedMedia")
            .field("media", &self.media)
            .finish_non_exhaustive()
    }
}

/// What a media stack reports about its media path.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// Media time reached this value (from RTP timestamps, a decoder).
    Progress(Duration),
    /// The media path failed (ICE, DTLS, consent); the session is over.
    Lost(String),
    /// The ICE path was lost (consent failed) but the session can still be repaired in place
    /// by an ICE restart: only a stack whose owner can restart it reports this.
    PathLost(String),
}

/// A media stack failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MediaError(pub String);
