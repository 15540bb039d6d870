//! [`SignalingOnly`]: the [`OfferProvider`] of a Millicast viewer without a media stack.
//!
//! It sends a fixed recvonly offer and produces no media events: progress then
//! comes from the application's `report_progress`. The `webrtc` feature
//! supplies a real peer connection behind the same traits ([`crate::offer`]).

use crate::millicast::wire::IceServer;
use crate::offer::{MediaError, NegotiatedMedia, OfferProvider, PendingOffer};

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

    async fn accept(self, answer: &str) -> Result<NegotiatedMedia<SignalingMedia>, MediaError> {
        Ok(NegotiatedMedia {
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
