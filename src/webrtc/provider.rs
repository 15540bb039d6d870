//! [`ReceivePeers`]: receive-only str0m peers behind the [`OfferProvider`] seam, one per attempt.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::{Candidate, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::millicast::wire::IceServer;
use crate::offer::{MediaError, NegotiatedMedia, OfferProvider, PendingOffer};
use crate::timeline::{GapMode, Timeline};
use crate::webrtc::keyframes::KeyframeGate;
use crate::webrtc::media::{Codec, Delivery, Queue, Track, TrackKind, WebRtcMedia};
use crate::webrtc::peer::{COMMAND_QUEUE, LiveGuard, Peer, PeerControl, VideoGate};
use crate::webrtc::progress::{MediaClocks, ProgressTicker};
use crate::webrtc::sdp;

/// The video mid of relive's offers, as Millicast's SDKs send it.
pub const VIDEO_MID: &str = "0";
/// The audio mid of relive's offers.
pub const AUDIO_MID: &str = "1";

/// Media events queued for the session before progress ticks are dropped.
const EVENT_QUEUE: usize = 16;

/// Makes a receive-only WebRTC peer (str0m) for each connect attempt: the [`OfferProvider`]
/// that gives a Millicast or WHEP session real media.
///
/// Each [`create_offer`](OfferProvider::create_offer) binds a UDP socket, adds it as the one
/// host candidate and makes a recvonly offer: video on mid `"0"`, audio on mid `"1"`, no trickle
/// (the server's answer is ICE-lite with host candidates). Accepting the answer spawns one tokio
/// task per peer that runs the str0m loop, delivers frames (or [RTP
/// packets](ReceivePeers::rtp_packets)) to the session's [`WebRtcMedia`], and reports progress
/// ticks from RTP timestamps (at most one per [`progress_every`](ReceivePeers::progress_every))
/// and `Lost` when ICE or DTLS fail. The task ends when the session is dropped.
///
/// **One per viewer**: a `ReceivePeers` holds the viewer's presentation
/// [`Timeline`], on which every session it makes places its frames, so that a player sees one
/// clock across reconnects. Cheap to clone: clones share the timeline and the
/// [`live_peers`](ReceivePeers::live_peers) count, so give each viewer its own
/// `ReceivePeers::new()`.
///
/// ```no_run
/// # fn demo() {
/// use relive::millicast::MillicastSource;
/// use relive::webrtc::ReceivePeers;
/// use relive::{Policy, Reconnector};
///
/// let source = MillicastSource::new("ACCOUNT", "STREAM").offer_provider(ReceivePeers::new());
/// let viewer = Reconnector::new(source, Policy::default()).spawn();
/// # }
/// ```
///
/// TURN is not supported (str0m has no TURN client): the Director's ICE servers are ignored,
/// which suits servers that are reachable directly, as Millicast's ICE-lite media servers are.
#[derive(Clone)]
pub struct ReceivePeers {
    bind_ip: IpAddr,
    queue_capacity: usize,
    progress_every: Duration,
    delivery: Delivery,
    timeline: Arc<Mutex<Timeline>>,
    live: Arc<AtomicUsize>,
}

impl Default for ReceivePeers {
    fn default() -> Self {
        ReceivePeers::new()
    }
}

impl fmt::Debug for ReceivePeers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivePeers")
            .field("bind_ip", &self.bind_ip)
            .field("queue_capacity", &self.queue_capacity)
            .field("progress_every", &self.progress_every)
            .field("delivery", &self.delivery)
            .field("gap_mode", &self.timeline_mode())
            .field("live_peers", &self.live_peers())
            .finish()
    }
}

impl ReceivePeers {
    /// Peers bound on `0.0.0.0` delivering frames, a queue of 512, a progress tick every
    /// 100 ms, and a new timeline whose sessions continue where the last one stopped
    /// ([`GapMode::Continue`]).
    pub fn new() -> Self {
        ReceivePeers {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            queue_capacity: 512,
            progress_every: Duration::from_millis(100),
            delivery: Delivery::Frames,
            timeline: Arc::new(Mutex::new(Timeline::new(GapMode::Continue))),
            live: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Sessions deliver raw RTP packets ([`WebRtcMedia::recv_rtp`]) instead of frames: for
    /// applications that depacketize themselves. Packets are not placed on the timeline and
    /// nothing is withheld; a keyframe is still requested at each session's first video packet.
    #[must_use]
    pub fn rtp_packets(mut self) -> Self {
        self.delivery = Delivery::RtpPackets;
        self
    }

    /// How a new session's first frame is placed on the viewer's timeline (default
    /// [`GapMode::Continue`]). Starts a new, empty timeline: set it before the first session.
    #[must_use]
    pub fn gap_mode(mut self, mode: GapMode) -> Self {
        self.timeline = Arc::new(Mutex::new(Timeline::new(mode)));
        self
    }

    fn timeline_mode(&self) -> GapMode {
        self.timeline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .mode()
    }

    /// What sessions deliver: frames (the default) or RTP packets.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// The IP to bind each peer's UDP socket on (default `0.0.0.0`; tests use `127.0.0.1`).
    ///
    /// On an unspecified address the host candidate is the local address of the route to the
    /// server's candidate, found when the answer arrives.
    #[must_use]
    pub fn bind_ip(mut self, ip: IpAddr) -> Self {
        self.bind_ip = ip;
        self
    }

    /// How many received frames (or packets) wait for the application before the oldest are
    /// dropped (default 512, at least 1).
    #[must_use]
    pub fn queue_capacity(mut self, packets: usize) -> Self {
        self.queue_capacity = packets.max(1);
        self
    }

    /// The shortest time between two progress ticks (default 100 ms). Stall detection takes at
    /// most `stall_after` plus this.
    #[must_use]
    pub fn progress_every(mut self, period: Duration) -> Self {
        self.progress_every = period;
        self
    }

    /// Peer tasks running now, across every clone of this provider.
    pub fn live_peers(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// A peer bound to a fresh socket with a recvonly offer made: the common part of Millicast
    /// and WHEP.
    pub(crate) async fn offer(&self) -> Result<PendingPeer, MediaError> {
        let socket = UdpSocket::bind(SocketAddr::new(self.bind_ip, 0))
            .await
            .map_err(|e| MediaError(format!("cannot bind a UDP socket: {e}")))?;
        let local = socket
            .local_addr()
            .map_err(|e| MediaError(format!("UDP socket has no address: {e}")))?;
        let mut rtc = Rtc::builder()
            .set_rtp_mode(self.delivery == Delivery::RtpPackets)
            .build(tokio::time::Instant::now().into_std());
        if !local.ip().is_unspecified() {
            add_host_candidate(&mut rtc, local)?;
        }
        let (sdp, pending) = recvonly_offer(&mut rtc)?;
        tracing::debug!(%local, "webrtc offer made");
        Ok(PendingPeer {
            sdp,
            rtc,
            pending,
            socket,
            local,
            config: self.clone(),
        })
    }
}

impl OfferProvider for ReceivePeers {
    type Media = WebRtcMedia;
    type Offer = PendingPeer;

    async fn create_offer(&self, ice_servers: &[IceServer]) -> Result<PendingPeer, MediaError> {
        if !ice_servers.is_empty() {
            tracing::debug!(
                servers = ice_servers.len(),
                "ICE servers ignored: host candidates only"
            );
        }
        self.offer().await
    }
}

/// The recvonly offer with video on mid `"0"` and audio on mid `"1"`, and str0m's pending
/// offer to accept the answer with.
///
/// str0m names the media of `add_media` with random mids, and Millicast wants `"0"` and `"1"`.
/// So the media are declared with those mids (direct API) and turned recvonly, which makes
/// str0m's offer with every ICE, DTLS and extension attribute, but with the m-lines disabled
/// (no payload types yet, as those come from a remote). The codec lines come from an offer of the
/// same peer made with `add_media` and dropped (dropping a pending offer changes nothing), and
/// are spliced in. The answer then sets the payload types on the media as usual.
fn recvonly_offer(rtc: &mut Rtc) -> Result<(String, SdpPendingOffer), MediaError> {
    let template = {
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, _dropped) = api
            .apply()
            .ok_or_else(|| MediaError("str0m made no offer".to_owned()))?;
        offer.to_sdp_string()
    };
    settle(rtc);
    {
        let mut direct = rtc.direct_api();
        direct.declare_media(Mid::from(VIDEO_MID), MediaKind::Video);
        direct.declare_media(Mid::from(AUDIO_MID), MediaKind::Audio);
    }
    settle(rtc);
    let mut api = rtc.sdp_api();
    api.set_direction(Mid::from(VIDEO_MID), Direction::RecvOnly);
    api.set_direction(Mid::from(AUDIO_MID), Direction::RecvOnly);
    let (offer, pending) = api
        .apply()
        .ok_or_else(|| MediaError("str0m made no offer".to_owned()))?;
    settle(rtc);
    let sdp = sdp::splice_codecs(&offer.to_sdp_string(), &template)
        .ok_or_else(|| MediaError("str0m's offer has no codec lines to splice".to_owned()))?;
    Ok((sdp, pending))
}

/// Drains outputs before the peer has a remote: nothing to send yet, only str0m's invariant of
/// a full drain after each change.
fn settle(rtc: &mut Rtc) {
    while let Ok(output) = rtc.poll_output() {
        if let Output::Timeout(_) = output {
            break;
        }
    }
}

fn add_host_candidate(rtc: &mut Rtc, addr: SocketAddr) -> Result<(), MediaError> {
    let candidate = Candidate::host(addr, "udp")
        .map_err(|e| MediaError(format!("bad host candidate {addr}: {e}")))?;
    rtc.add_local_candidate(candidate);
    Ok(())
}

/// A recvonly offer waiting for its answer: a peer with its socket bound, nothing sent yet.
/// Dropping it releases the socket.
pub struct PendingPeer {
    sdp: String,
    rtc: Rtc,
    pending: SdpPendingOffer,
    socket: UdpSocket,
    local: SocketAddr,
    config: ReceivePeers,
}

impl fmt::Debug for PendingPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingPeer")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl PendingOffer for PendingPeer {
    type Media = WebRtcMedia;

    fn sdp(&self) -> &str {
        &self.sdp
    }

    async fn accept(self, answer: &str) -> Result<NegotiatedMedia<WebRtcMedia>, MediaError> {
        // Nobody keeps the peer's control: it cannot be restarted, and a lost path ends it.
        self.start(answer).map(|(media, _control)| media)
    }
}

impl PendingPeer {
    /// Applies the answer and spawns the peer's task; the control through which it can be
    /// repaired (dropping it makes the peer one that a lost path ends).
    pub(crate) fn start(
        mut self,
        answer: &str,
    ) -> Result<(NegotiatedMedia<WebRtcMedia>, PeerControl), MediaError> {
        let parsed = SdpAnswer::from_sdp_string(answer)
            .map_err(|e| MediaError(format!("unreadable SDP answer: {e}")))?;
        if self.local.ip().is_unspecified() {
            self.local = route_to_answer(answer, self.local.port())?;
            add_host_candidate(&mut self.rtc, self.local)?;
            settle(&mut self.rtc);
        }
        self.rtc
            .sdp_api()
            .accept_answer(self.pending, parsed)
            .map_err(|e| MediaError(format!("SDP answer refused: {e}")))?;
        let tracks = tracks(&self.rtc);
        let clock_rates = tracks
            .iter()
            .flat_map(|t| &t.codecs)
            .map(|c| (c.payload_type, c.clock_rate))
            .collect::<HashMap<_, _>>();
        let capacity = self.config.queue_capacity;
        let delivery = self.config.delivery;
        let (frames, packets) = match delivery {
            Delivery::Frames => (Queue::new(capacity), Queue::closed()),
            Delivery::RtpPackets => (Queue::closed(), Queue::new(capacity)),
        };
        let counters = Arc::default();
        let session = self
            .config
            .timeline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .begin_session();
        let gates = video_gates(&self.rtc, &tracks);
        let (events_tx, mut events_rx) = mpsc::channel(EVENT_QUEUE);
        let (control, commands) = mpsc::channel(COMMAND_QUEUE);
        let peer = Peer {
            rtc: self.rtc,
            socket: self.socket,
            local: self.local,
            events: events_tx,
            delivery,
            frames: Arc::clone(&frames),
            packets: Arc::clone(&packets),
            counters: Arc::clone(&counters),
            ticker: ProgressTicker::new(self.config.progress_every),
            clock_rates,
            clocks: MediaClocks::default(),
            timeline: Arc::clone(&self.config.timeline),
            session,
            gates,
            commands: Some(commands),
            answer: answer.to_owned(),
            restart: None,
        };
        tracing::debug!(local = %self.local, tracks = tracks.len(), "webrtc answer applied");
        let live = LiveGuard::new(&self.config.live);
        tokio::spawn(peer.run(live));
        let events = futures::stream::poll_fn(move |cx| events_rx.poll_recv(cx)).boxed();
        let media = NegotiatedMedia {
            media: WebRtcMedia::new(
                tracks, self.local, session, delivery, frames, packets, counters,
            ),
            events,
        };
        Ok((media, control))
    }
}

/// A closed keyframe gate per video track, with the request the answer allows: PLI where
/// negotiated (`a=rtcp-fb:PT nack pli`), else FIR (`ccm fir`).
fn video_gates(rtc: &Rtc, tracks: &[Track]) -> Vec<VideoGate> {
    let params = rtc.codec_config().params();
    tracks
        .iter()
        .filter(|t| t.kind == TrackKind::Video)
        .map(|track| {
            let negotiated = || {
                params
                    .iter()
                    .filter(|p| track.codecs.iter().any(|c| c.payload_type == *p.pt()))
            };
            let request = if negotiated().any(|p| p.fb_pli()) {
                Some(KeyframeRequestKind::Pli)
            } else if negotiated().any(|p| p.fb_fir()) {
                Some(KeyframeRequestKind::Fir)
            } else {
                tracing::debug!(mid = %track.mid, "no PLI or FIR negotiated: no keyframe requests");
                None
            };
            VideoGate {
                mid: Mid::from(track.mid.as_str()),
                gate: KeyframeGate::new(),
                request,
            }
        })
        .collect()
}

/// The negotiated tracks and their codecs.
fn tracks(rtc: &Rtc) -> Vec<Track> {
    let params = rtc.codec_config().params();
    [VIDEO_MID, AUDIO_MID]
        .into_iter()
        .filter_map(|mid| rtc.media(Mid::from(mid)))
        .map(|media| Track {
            mid: media.mid().to_string(),
            kind: if media.kind().is_audio() {
                TrackKind::Audio
            } else {
                TrackKind::Video
            },
            codecs: media
                .remote_pts()
                .iter()
                .filter_map(|pt| params.iter().find(|p| p.pt() == *pt))
                .map(|p| {
                    let spec = p.spec();
                    Codec {
                        payload_type: *p.pt(),
                        name: spec.codec.to_string(),
                        clock_rate: rtp_clock_rate(&spec),
                        channels: spec.channels,
                        format: spec.format.to_string(),
                    }
                })
                .collect(),
        })
        .collect()
}

/// The RTP clock of a codec: its clock rate, except G.722 whose RTP clock is 8 kHz (RFC 3551).
fn rtp_clock_rate(spec: &str0m::format::CodecSpec) -> u32 {
    if spec.codec == str0m::format::Codec::G722 {
        8_000
    } else {
        spec.clock_rate.get()
    }
}

/// The local address of the route to the answer's first host candidate, with our port. Finding
/// a route sends nothing: it is a `connect` on a throwaway UDP socket.
fn route_to_answer(answer: &str, port: u16) -> Result<SocketAddr, MediaError> {
    let remote = sdp::candidate_addrs(answer)
        .into_iter()
        .next()
        .ok_or_else(|| MediaError("the answer has no candidate".to_owned()))?;
    let any = match remote {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    };
    let probe = std::net::UdpSocket::bind(any)
        .and_then(|socket| socket.connect(remote).map(|()| socket))
        .and_then(|socket| socket.local_addr())
        .map_err(|e| MediaError(format!("no route to the server's candidate {remote}: {e}")))?;
    Ok(SocketAddr::new(probe.ip(), port))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn an_offer_is_recvonly_with_video_mid_0_and_audio_mid_1() {
        let peers = ReceivePeers::new().bind_ip(Ipv4Addr::LOCALHOST.into());
        let offer = peers.offer().await.unwrap();
        let sdp = offer.sdp();
        let video = sdp.find("m=video").unwrap();
        let audio = sdp.find("m=audio").unwrap();
        assert!(video < audio, "{sdp}");
        assert!(sdp[video..audio].contains("a=mid:0"), "{sdp}");
        assert!(sdp[audio..].contains("a=mid:1"), "{sdp}");
        assert_eq!(sdp.matches("a=recvonly").count(), 2, "{sdp}");
        assert!(sdp.contains("a=group:BUNDLE 0 1"), "{sdp}");
        assert!(
            sdp.contains("127.0.0.1") && sdp.contains("typ host"),
            "{sdp}"
        );
        assert_eq!(peers.live_peers(), 0, "no task before the answer");
    }
}
