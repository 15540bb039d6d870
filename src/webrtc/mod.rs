//! WebRTC media for relive: a receive-only str0m peer whose RTP timestamps become progress
//! ticks, behind the [`OfferProvider`](crate::offer::OfferProvider) seam, and the
//! WHEP source on the same peer.
//!
//! - [`ReceivePeers`] makes one peer per connect attempt: a UDP socket, one host candidate, a
//!   recvonly offer (video mid `"0"`, audio mid `"1"`), and once the answer is in, one tokio task
//!   running str0m's loop. Give it to
//!   [`MillicastSource::offer_provider`](crate::millicast::MillicastSource::offer_provider).
//! - [`WebRtcMedia`] is what the application gets for each session: the negotiated [`Track`]s
//!   and a bounded queue of depacketized [`MediaFrame`]s on the viewer's one
//!   [`Timeline`](crate::timeline::Timeline) (video from a keyframe, which the peer asks for at
//!   the session's first video packet), or of raw [`MediaPacket`]s with
//!   [`ReceivePeers::rtp_packets`].
//! - [`WhepSource`] watches a WHEP endpoint (`POST` the offer as `application/sdp`, `PATCH` an
//!   ICE restart to repair a session in place, `DELETE` the resource on leave).
//!
//! Media time is the RTP timestamp of each track, unwrapped and divided by its clock rate,
//! counted from the track's first packet; the session's progress is the largest over its tracks,
//! ticked at most every 100 ms. A dead path is noticed by the reconnect machine from media time
//! standing still (`stall_after` plus one tick), not by ICE, which str0m reports only 14–23 s
//! after a cut; ICE disconnection, a DTLS close or failure and socket errors end the session as
//! `Lost`, a backstop.
//!
//! | what | relive |
//! |---|---|
//! | frame (str0m frame mode) | video through the keyframe gate, placed on the timeline, queued for the application; media time → `Progress` (≤ 1 per 100 ms) |
//! | first video packet of a session, a lost frame | keyframe request (PLI, else FIR), repeated every 300 ms while withheld |
//! | a payload that does not depacketize | skipped, counted (`undecodable`) |
//! | ICE `Disconnected` (WHEP) | `PathLost`: the peer waits for an ICE restart ([`WhepSource`]'s repair) or to be dropped |
//! | ICE `Disconnected` (Millicast), DTLS closed or failed, socket error | `Lost` → reconnect |
//! | session dropped by the reconnector | DTLS close sent, socket closed, task ended |

mod error;
mod keyframes;
mod media;
mod peer;
mod progress;
mod provider;
mod sdp;
pub(crate) mod sdpfrag;
mod whep;

pub use error::WhepError;
pub use media::{
    Codec, Delivery, MediaCodec, MediaFrame, MediaPacket, Track, TrackKind, WebRtcMedia,
};
pub use provider::{AUDIO_MID, PendingPeer, ReceivePeers, VIDEO_MID};
pub use whep::{WhepEvents, WhepSource};
