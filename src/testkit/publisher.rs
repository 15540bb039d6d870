//! A publisher peer for tests: the answering side of a viewer's offer (str0m, ICE-lite,
//! `setup:passive`, one host candidate) that sends real RTP over UDP — the testkit's
//! [clip](crate::testkit::clip), looped: real VP8 or H.264 ([`Feed::video`]; 320×180) at 30 fps
//! (90 kHz timestamps) and real Opus at 50 packets/s (48 kHz), so what a viewer records decodes.
//!
//! Timestamps are rewritten ([`ClipCursor`]): they follow the wall clock from the peer's start,
//! only increase across loops, and audio and video share that clock. A PLI or FIR from the
//! viewer (the video codec is answered with `nack pli` and `ccm fir` feedback) makes the next video frame a
//! key frame: the loop jumps to the clip's next key frame. [`PublisherPeer::keyframe_requests`]
//! counts them.
//!
//! What it does is steered by a [`Feed`] on a `watch` channel, shared by every peer of a stream:
//! send or not (live, frozen), and black-hole the UDP path (nothing in, nothing out). While it
//! does not send, time goes on but the clip stands still (a frozen encoder), so what it sends
//! next still decodes against what it sent last.
//!
//! One peer's path can be cut on its own ([`PublisherPeer::cut_path`]): its datagrams are
//! dropped both ways, as when the viewer's network changes under it, until the viewer restarts
//! ICE (a WHEP `PATCH`), which the peer answers with new credentials on the same DTLS session.
//! A cut peer waits for that restart (or for its idle timeout of 30 s) instead of ending when
//! ICE consent lapses.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use crate::testkit::clip::{Clip, ClipCodec, ClipCursor, ClipError};
use crate::webrtc::sdpfrag::IceFragment;

/// What the publisher peers of a stream do now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Feed {
    /// Whether RTP is sent (the stream is live and not frozen).
    pub sending: bool,
    /// Whether the UDP path is black-holed: datagrams are dropped both ways.
    pub blackhole: bool,
    /// The video codec a peer answers with and sends (read when it answers; VP8 by default).
    /// The publisher decides the codec, as with a real Millicast publisher: a viewer that did
    /// not offer it gets no video track.
    pub video: ClipCodec,
}

/// Why a publisher peer could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublisherError {
    /// The UDP socket could not be bound.
    #[error("publisher socket: {0}")]
    Socket(#[from] std::io::Error),
    /// The offer could not be read or accepted.
    #[error("publisher cannot answer the offer: {0}")]
    Offer(String),
    /// The embedded clip could not be read (a broken build, not bad input).
    #[error("publisher clip: {0}")]
    Clip(#[from] ClipError),
}

/// Where a publisher peer is in its life, for [`PublisherPeer::phases`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerPhase {
    /// The offer is answered; ICE and DTLS are not done yet.
    Answered,
    /// ICE and DTLS are up: media can flow.
    Connected,
    /// The task has ended (the viewer left or the path died).
    Ended,
}

/// One publisher peer: a task answering one viewer. Dropping it closes the peer (DTLS
/// close_notify to the viewer) and ends the task.
#[derive(Debug)]
pub struct PublisherPeer {
    local: SocketAddr,
    packets: Arc<AtomicU64>,
    keyframe_requests: Arc<AtomicU64>,
    _stop: oneshot::Sender<()>,
    phase: watch::Receiver<PeerPhase>,
    restarts: mpsc::Sender<Restart>,
    cut: Arc<AtomicBool>,
}

/// An ICE restart asked of a peer: the viewer's fragment, and where the peer's goes.
struct Restart {
    fragment: IceFragment,
    reply: oneshot::Sender<Result<IceFragment, PublisherError>>,
}

/// A viewer that sends nothing (not even consent checks) for this long is gone.
const IDLE: Duration = Duration::from_secs(30);

impl PublisherPeer {
    /// Answers `offer` with a peer bound on `ip` (port 0) that follows `feed`; returns the peer
    /// and the SDP answer. Must be called within a tokio runtime.
    pub fn answer(
        offer: &str,
        ip: IpAddr,
        feed: watch::Receiver<Feed>,
    ) -> Result<(PublisherPeer, String), PublisherError> {
        let offer_sdp = in_rfc_order(offer);
        let offer = SdpOffer::from_sdp_string(&offer_sdp)
            .map_err(|e| PublisherError::Offer(e.to_string()))?;
        let codec = feed.borrow().video;
        let clip = Clip::builtin_with(codec)?;
        let std_socket = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
        std_socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(std_socket)?;
        let local = socket.local_addr()?;
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_vp8(codec == ClipCodec::Vp8)
            .enable_h264(codec == ClipCodec::H264)
            .enable_opus(true, false)
            .build(now());
        let candidate =
            Candidate::host(local, "udp").map_err(|e| PublisherError::Offer(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| PublisherError::Offer(e.to_string()))?;
        let packets = Arc::new(AtomicU64::new(0));
        let keyframe_requests = Arc::new(AtomicU64::new(0));
        let (stop_tx, stop) = oneshot::channel();
        let (phase_tx, phase) = watch::channel(PeerPhase::Answered);
        let start = tokio::time::Instant::now().into_std();
        let (restarts, restart_rx) = mpsc::channel(2);
        let cut = Arc::new(AtomicBool::new(false));
        let task = Task {
            offer: offer_sdp,
            restarts: restart_rx,
            cut: Arc::clone(&cut),
            rtc,
            socket,
            local,
            feed,
            packets: Arc::clone(&packets),
            keyframe_requests: Arc::clone(&keyframe_requests),
            video: None,
            audio: None,
            connected: false,
            phase: phase_tx,
            start,
            cursor: ClipCursor::new(clip),
            last_rx: start,
        };
        tokio::spawn(task.run(stop));
        tracing::debug!(%local, "publisher peer answered");
        let peer = PublisherPeer {
            local,
            packets,
            keyframe_requests,
            _stop: stop_tx,
            phase,
            restarts,
            cut,
        };
        Ok((peer, answer.to_sdp_string()))
    }

    /// The peer's UDP address (its host candidate).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Video frames and audio packets written so far (str0m sends a large video frame as
    /// several RTP packets).
    pub fn packets_sent(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Keyframe requests (PLI or FIR) received from the viewer for the video track so far.
    pub fn keyframe_requests(&self) -> u64 {
        self.keyframe_requests.load(Ordering::Relaxed)
    }

    /// Whether the peer's task has ended (the viewer left or the path died).
    pub fn is_finished(&self) -> bool {
        *self.phase.borrow() == PeerPhase::Ended
    }

    /// The peer's phase now and its changes, for a log of peer-connection states.
    pub fn phases(&self) -> watch::Receiver<PeerPhase> {
        self.phase.clone()
    }

    /// Cuts this peer's UDP path (both ways) until the viewer restarts ICE.
    pub fn cut_path(&self) {
        self.cut.store(true, Ordering::Relaxed);
    }

    /// Whether the path is cut (no ICE restart since [`cut_path`](Self::cut_path)).
    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }

    /// Restarts ICE with the viewer's `fragment` (its new credentials and candidates); the
    /// peer's own new fragment once applied. Heals a cut path.
    pub(crate) fn restart(
        &self,
        fragment: IceFragment,
    ) -> impl std::future::Future<Output = Result<IceFragment, PublisherError>> + Send + 'static
    {
        let restarts = self.restarts.clone();
        async move {
            let gone = || PublisherError::Offer("the peer has ended".to_owned());
            let (reply, answer) = oneshot::channel();
            restarts
                .send(Restart { fragment, reply })
                .await
                .map_err(|_| gone())?;
            answer.await.map_err(|_| gone())?
        }
    }
}

/// `sdp` with the lines of each media section in RFC 8866 order (`i=`, `c=`, `b=`, `k=`, then
/// `a=`), as str0m requires. Browsers write them so, but an SDK that munges the offer may not:
/// the official Millicast JS SDK inserts its `multiopus` `a=` lines right after the audio `m=`
/// line, ahead of `c=`, and Millicast's servers accept that, so the testkit does too.
fn in_rfc_order(sdp: &str) -> String {
    fn rank(line: &str) -> u8 {
        match line.as_bytes().first() {
            Some(b'i') => 0,
            Some(b'c') => 1,
            Some(b'b') => 2,
            Some(b'k') => 3,
            _ => 4,
        }
    }
    let mut out = String::with_capacity(sdp.len());
    let mut section: Vec<&str> = Vec::new();
    let flush = |section: &mut Vec<&str>, out: &mut String| {
        // The `m=` line stays first; the others are sorted stably by type.
        if let Some((first, rest)) = section.split_first_mut() {
            rest.sort_by_key(|line| rank(line));
            out.push_str(first);
            for line in rest.iter() {
                out.push_str(line);
            }
        }
        section.clear();
    };
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("m=") {
            flush(&mut section, &mut out);
            section.push(line);
        } else if section.is_empty() {
            out.push_str(line);
        } else {
            section.push(line);
        }
    }
    flush(&mut section, &mut out);
    out
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

struct Task {
    /// The viewer's offer in force (the last restart's credentials spliced in).
    offer: String,
    restarts: mpsc::Receiver<Restart>,
    cut: Arc<AtomicBool>,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    feed: watch::Receiver<Feed>,
    packets: Arc<AtomicU64>,
    keyframe_requests: Arc<AtomicU64>,
    video: Option<Mid>,
    audio: Option<Mid>,
    connected: bool,
    phase: watch::Sender<PeerPhase>,
    /// The wall-clock time of the cursor's time zero.
    start: Instant,
    cursor: ClipCursor<'static>,
    last_rx: Instant,
}

impl Task {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut buf = vec![0u8; 2048];
        while let Some(deadline) = self.drain() {
            let wake = deadline
                .min(self.start + self.cursor.video_due())
                .min(self.start + self.cursor.audio_due());
            tokio::select! {
                biased;
                _ = &mut stop => {
                    self.close();
                    break;
                }
                changed = self.feed.changed() => if changed.is_err() { break },
                Some(restart) = self.restarts.recv() => {
                    let answer = self.restart(&restart.fragment);
                    let _ = restart.reply.send(answer);
                }
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, source)) => self.receive(&buf[..n], source),
                    Err(e) => tracing::debug!(error = %e, "publisher UDP receive failed"),
                },
                () = tokio::time::sleep_until(wake.into()) => {
                    if !self.on_timer() {
                        break;
                    }
                }
            }
        }
        tracing::debug!(local = %self.local, "publisher peer ended");
        self.phase.send_replace(PeerPhase::Ended);
    }

    fn feed(&self) -> Feed {
        *self.feed.borrow()
    }

    /// Whether datagrams are dropped: the stream's path is black-holed or this peer's is cut.
    fn dropping(&self) -> bool {
        self.feed().blackhole || self.cut.load(Ordering::Relaxed)
    }

    /// A remote-initiated ICE restart: the viewer's new credentials and candidates on the offer
    /// in force, answered with new ones of ours (str0m restarts ICE for an offer whose
    /// credentials changed); the DTLS session and the tracks stay.
    fn restart(&mut self, fragment: &IceFragment) -> Result<IceFragment, PublisherError> {
        let offer_sdp = fragment.splice_into(&self.offer);
        let offer = SdpOffer::from_sdp_string(&offer_sdp)
            .map_err(|e| PublisherError::Offer(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| PublisherError::Offer(e.to_string()))?;
        let ours = IceFragment::parse(&answer.to_sdp_string())
            .map_err(|e| PublisherError::Offer(e.to_string()))?;
        self.offer = offer_sdp;
        self.cut.store(false, Ordering::Relaxed);
        self.last_rx = now();
        tracing::debug!(local = %self.local, "publisher ICE restarted");
        Ok(ours)
    }

    fn receive(&mut self, data: &[u8], source: SocketAddr) {
        if self.dropping() {
            return;
        }
        let Ok(contents) = DatagramRecv::try_from(data) else {
            return;
        };
        let now = now();
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        if self.rtc.accepts(&input) {
            self.last_rx = now;
            if let Err(e) = self.rtc.handle_input(input) {
                tracing::debug!(error = %e, "publisher input refused");
            }
        }
    }

    /// Media and str0m timers. `false` when the viewer is gone.
    fn on_timer(&mut self) -> bool {
        let now = now();
        if now.saturating_duration_since(self.last_rx) > IDLE {
            return false;
        }
        if now >= self.start + self.cursor.video_due() {
            self.send(MediaKind::Video, now);
        }
        if now >= self.start + self.cursor.audio_due() {
            self.send(MediaKind::Audio, now);
        }
        self.rtc.handle_input(Input::Timeout(now)).is_ok()
    }

    /// Uses the next slot of `kind`: writes the clip's next frame (or packet) if the feed
    /// sends, else lets the slot pass; drains after a write (one mutation at a time).
    fn send(&mut self, kind: MediaKind, now: Instant) {
        let Some((mid, pt)) = self.writable(kind) else {
            if kind.is_audio() {
                self.cursor.skip_audio();
            } else {
                self.cursor.skip_video();
            }
            return;
        };
        let (time, data) = if kind.is_audio() {
            let (time, packet) = self.cursor.next_audio();
            (MediaTime::new(time, Frequency::FORTY_EIGHT_KHZ), packet)
        } else {
            let (time, frame) = self.cursor.next_video();
            (MediaTime::from_90khz(time), &frame.data)
        };
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        // A clone of the clip's `Arc`: no copy of the frame.
        match writer.write(pt, now, time, Arc::clone(data)) {
            Ok(()) => {
                self.packets.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(error = %e, "publisher write failed"),
        }
        let _ = self.drain();
    }

    /// The track and payload type to write `kind` to, if the feed sends and the peer can.
    fn writable(&mut self, kind: MediaKind) -> Option<(Mid, Pt)> {
        let feed = self.feed();
        let mid = if kind.is_audio() {
            self.audio
        } else {
            self.video
        };
        let (Some(mid), true, false) = (mid, self.connected && feed.sending, feed.blackhole) else {
            return None;
        };
        let wanted = match (kind.is_audio(), self.cursor.video_codec()) {
            (true, _) => Codec::Opus,
            (false, ClipCodec::H264) => Codec::H264,
            (false, _) => Codec::Vp8,
        };
        // For H.264, the clip's packetization mode 1 (non-interleaved) first.
        let pt = self
            .rtc
            .writer(mid)?
            .payload_params()
            .filter(|p| p.spec().codec == wanted)
            .max_by_key(|p| p.spec().format.packetization_mode == Some(1))
            .map(|p| p.pt())?;
        Some((mid, pt))
    }

    /// Drains str0m's output; `None` when the peer is over.
    fn drain(&mut self) -> Option<Instant> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(deadline)) => return Some(deadline),
                Ok(Output::Transmit(transmit)) => {
                    if !self.dropping() {
                        let _ = self
                            .socket
                            .try_send_to(&transmit.contents, transmit.destination);
                    }
                }
                Ok(Output::Event(event)) => {
                    if !self.on_event(event) {
                        return None;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "publisher peer failed");
                    return None;
                }
            }
        }
    }

    /// `false` when the viewer is gone.
    fn on_event(&mut self, event: Event) -> bool {
        match event {
            Event::MediaAdded(added) if added.kind.is_audio() => self.audio = Some(added.mid),
            Event::MediaAdded(added) => self.video = Some(added.mid),
            Event::Connected => {
                self.connected = true;
                self.phase.send_replace(PeerPhase::Connected);
            }
            Event::KeyframeRequest(request) if Some(request.mid) == self.video => {
                self.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                self.cursor.request_keyframe();
            }
            // A cut peer waits for the viewer's ICE restart.
            Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                if self.cut.load(Ordering::Relaxed) => {}
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) | Event::Closed => {
                return false;
            }
            _ => {}
        }
        true
    }

    fn close(&mut self) {
        if self.rtc.close().is_err() {
            return;
        }
        for _ in 0..256 {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(transmit)) if !self.dropping() => {
                    let _ = self
                        .socket
                        .try_send_to(&transmit.contents, transmit.destination);
                }
                Ok(Output::Timeout(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    #[test]
    fn media_lines_are_put_in_rfc_order_and_nothing_else_moves() {
        let munged = "v=0\r\ns=-\r\nm=audio 9 X 111\r\na=rtpmap:105 multiopus/48000/6\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\nm=video 9 X 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n";
        let fixed = "v=0\r\ns=-\r\nm=audio 9 X 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:105 multiopus/48000/6\r\na=mid:1\r\nm=video 9 X 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n";
        assert_eq!(super::in_rfc_order(munged), fixed);
        assert_eq!(super::in_rfc_order(fixed), fixed);
        assert_eq!(super::in_rfc_order("v=0\r\n"), "v=0\r\n");
    }

    use str0m::media::{Direction, KeyframeRequestKind};

    use super::*;

    /// A frame-mode str0m viewer (receive-only VP8 + Opus) on its own socket.
    struct Viewer {
        rtc: Rtc,
        socket: UdpSocket,
        local: SocketAddr,
        video: Mid,
    }

    impl Viewer {
        /// Offers, lets a publisher peer answer, and returns both with the answer.
        async fn connect() -> (Viewer, PublisherPeer, String, watch::Sender<Feed>) {
            let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
            let local = socket.local_addr().unwrap();
            let mut rtc = Rtc::builder()
                .clear_codecs()
                .enable_vp8(true)
                .enable_opus(true, false)
                .build(now());
            rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
            let mut changes = rtc.sdp_api();
            let video = changes.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
            changes.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
            let (offer, pending) = changes.apply().unwrap();
            let (feed_tx, feed) = watch::channel(Feed {
                sending: true,
                ..Feed::default()
            });
            let (peer, answer) =
                PublisherPeer::answer(&offer.to_sdp_string(), Ipv4Addr::LOCALHOST.into(), feed)
                    .unwrap();
            let parsed = str0m::change::SdpAnswer::from_sdp_string(&answer).unwrap();
            rtc.sdp_api().accept_answer(pending, parsed).unwrap();
            let viewer = Viewer {
                rtc,
                socket,
                local,
                video,
            };
            (viewer, peer, answer, feed_tx)
        }

        /// Runs the peer until the next video frame; returns whether it is a key frame.
        async fn next_video_frame(&mut self) -> bool {
            let mut buf = vec![0u8; 2048];
            loop {
                let deadline = loop {
                    match self.rtc.poll_output().unwrap() {
                        Output::Timeout(deadline) => break deadline,
                        Output::Transmit(t) => {
                            self.socket
                                .send_to(&t.contents, t.destination)
                                .await
                                .unwrap();
                        }
                        Output::Event(Event::MediaData(data)) if data.mid == self.video => {
                            return data.data[0] & 0x01 == 0;
                        }
                        Output::Event(_) => {}
                    }
                };
                tokio::select! {
                    received = self.socket.recv_from(&mut buf) => {
                        let (n, source) = received.unwrap();
                        let input = Input::Receive(now(), Receive {
                            proto: Protocol::Udp,
                            source,
                            destination: self.local,
                            contents: DatagramRecv::try_from(&buf[..n]).unwrap(),
                        });
                        self.rtc.handle_input(input).unwrap();
                    }
                    () = tokio::time::sleep_until(deadline.into()) => {
                        self.rtc.handle_input(Input::Timeout(now())).unwrap();
                    }
                }
            }
        }
    }

    /// The payload type of VP8 in an SDP.
    fn vp8_pt(sdp: &str) -> &str {
        let line = sdp
            .lines()
            .find(|l| l.starts_with("a=rtpmap:") && l.contains(" VP8/90000"))
            .unwrap();
        line["a=rtpmap:".len()..].split(' ').next().unwrap()
    }

    #[tokio::test]
    async fn a_viewer_asking_for_a_keyframe_gets_one_next_and_is_counted() {
        let timeout = Duration::from_secs(10);
        let (mut viewer, peer, answer, _feed) = Viewer::connect().await;
        let pt = vp8_pt(&answer);
        for feedback in ["nack", "nack pli", "ccm fir"] {
            assert!(
                answer.contains(&format!("a=rtcp-fb:{pt} {feedback}\r\n")),
                "{feedback}: {answer}"
            );
        }
        let first = tokio::time::timeout(timeout, viewer.next_video_frame()).await;
        assert!(first.unwrap(), "the first frame is a key frame");
        for _ in 0..5 {
            let inter = tokio::time::timeout(timeout, viewer.next_video_frame()).await;
            assert!(
                !inter.unwrap(),
                "frames 1 to 5 of the clip are inter frames"
            );
        }
        assert_eq!(peer.keyframe_requests(), 0);
        for (n, kind) in [(1, KeyframeRequestKind::Pli), (2, KeyframeRequestKind::Fir)] {
            let mut writer = viewer.rtc.writer(viewer.video).unwrap();
            assert!(writer.is_request_keyframe_possible(kind), "{kind:?}");
            writer.request_keyframe(None, kind).unwrap();
            // Frames already on the way are inter frames; then one key frame, then inter again.
            let mut keyframe = false;
            for _ in 0..10 {
                keyframe = tokio::time::timeout(timeout, viewer.next_video_frame())
                    .await
                    .unwrap();
                if keyframe {
                    break;
                }
            }
            assert!(keyframe, "{kind:?}: no key frame within 10 frames");
            assert_eq!(peer.keyframe_requests(), n);
            let after = tokio::time::timeout(timeout, viewer.next_video_frame()).await;
            assert!(!after.unwrap(), "one key frame per request");
        }
        assert!(peer.packets_sent() > 10);
    }
}
