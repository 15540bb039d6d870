//! What the application gets of a WebRTC session: the negotiated tracks and a bounded queue of
//! depacketized frames on the viewer's timeline (or, as an option, raw RTP packets) that drops
//! the oldest when the application does not keep up.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use futures::task::AtomicWaker;

use crate::timeline::SessionId;

/// The media of one live WebRTC session, handed to the application as the session's media
/// (`Event::Session`).
///
/// It lists the negotiated [`Track`]s and delivers the session's media as [`MediaFrame`]s:
/// depacketized and reordered by str0m (Annex-B access units for H.264, the codec's frame for
/// VP8/VP9/AV1, Opus packets), each with its presentation time on the viewer's one timeline,
/// which only moves forward across reconnects (see [`Timeline`](crate::timeline::Timeline)).
/// Video starts at a keyframe: one is requested as soon as the first video packet arrives, and
/// again when frames are lost for good; frames that could not be decoded are withheld until
/// then ([`withheld`](WebRtcMedia::withheld)). Read frames with [`recv`](WebRtcMedia::recv) or
/// as a [`Stream`]; it ends when the session is over.
///
/// With [`ReceivePeers::rtp_packets`](crate::webrtc::ReceivePeers::rtp_packets), the session
/// delivers raw RTP packets instead ([`recv_rtp`](WebRtcMedia::recv_rtp)), for applications that
/// depacketize themselves; [`delivery`](WebRtcMedia::delivery) tells which.
///
/// The queue holds [`queue_capacity`](WebRtcMedia::queue_capacity) items: when the
/// application does not read, the oldest are dropped and counted
/// ([`dropped`](WebRtcMedia::dropped)), so a stuck player never stalls the peer or grows memory.
/// Progress ticks are taken before the queue, so they do not depend on the application reading.
///
/// ```no_run
/// # async fn play(mut media: relive::webrtc::WebRtcMedia) {
/// for track in media.tracks() {
///     println!("mid {} {:?}: {:?}", track.mid, track.kind, track.codecs);
/// }
/// while let Some(frame) = media.recv().await {
///     if frame.discontinuity {
///         // a new session (or a break in its clock): flush the decoder of `frame.mid`
///     }
///     // hand frame.data to the decoder of `frame.codec`, to be shown at frame.pts
/// }
/// # }
/// ```
pub struct WebRtcMedia {
    tracks: Vec<Track>,
    local_addr: SocketAddr,
    session: SessionId,
    delivery: Delivery,
    frames: Arc<Queue<MediaFrame>>,
    packets: Arc<Queue<MediaPacket>>,
    counters: Arc<Counters>,
}

/// What a [`WebRtcMedia`] delivers, chosen on [`ReceivePeers`](crate::webrtc::ReceivePeers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Delivery {
    /// Depacketized frames on the viewer's timeline ([`WebRtcMedia::recv`]). The default.
    #[default]
    Frames,
    /// Raw RTP packets ([`WebRtcMedia::recv_rtp`]); no timeline, no withholding.
    RtpPackets,
}

/// What a frame's payload type carries, as far as a player needs to know to pick a decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaCodec {
    /// VP8 (a VP8 frame).
    Vp8,
    /// VP9 (a VP9 frame).
    Vp9,
    /// AV1 (a temporal unit of OBUs).
    Av1,
    /// H.264 (an Annex-B access unit: NAL units with start codes).
    H264,
    /// H.265 (an Annex-B access unit).
    H265,
    /// Opus (one Opus packet).
    Opus,
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722.
    G722,
    /// Anything else str0m depacketizes.
    Other,
}

impl MediaCodec {
    pub(crate) fn from_str0m(codec: str0m::format::Codec) -> Self {
        use str0m::format::Codec;
        match codec {
            Codec::Vp8 => MediaCodec::Vp8,
            Codec::Vp9 => MediaCodec::Vp9,
            Codec::Av1 => MediaCodec::Av1,
            Codec::H264 => MediaCodec::H264,
            Codec::H265 => MediaCodec::H265,
            Codec::Opus => MediaCodec::Opus,
            Codec::PCMU => MediaCodec::Pcmu,
            Codec::PCMA => MediaCodec::Pcma,
            Codec::G722 => MediaCodec::G722,
            _ => MediaCodec::Other,
        }
    }

    /// Whether this is a video codec.
    pub fn is_video(self) -> bool {
        matches!(
            self,
            MediaCodec::Vp8
                | MediaCodec::Vp9
                | MediaCodec::Av1
                | MediaCodec::H264
                | MediaCodec::H265
        )
    }
}

/// One depacketized frame of a session, placed on the viewer's timeline.
#[derive(Clone, PartialEq, Eq)]
pub struct MediaFrame {
    /// The track (`a=mid`) it belongs to.
    pub mid: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// The codec of its payload type.
    pub codec: MediaCodec,
    /// The RTP payload type.
    pub payload_type: u8,
    /// Whether the frame is a keyframe (decodable on its own). Always `false` for audio.
    pub keyframe: bool,
    /// Presentation time on the viewer's timeline: starts at zero with the viewer's first
    /// frame, strictly increases per track, and only moves forward across sessions.
    pub pts: Duration,
    /// The first frame of its track after a new session or a break in its clock: flush (or
    /// reset) the track's decoder before it.
    pub discontinuity: bool,
    /// The session it came from, numbered on the viewer's timeline.
    pub session: SessionId,
    /// The RTP timestamp of the frame, in its codec's clock (`clock_rate`).
    pub rtp_timestamp: u32,
    /// The RTP clock rate in Hz.
    pub clock_rate: u32,
    /// The frame itself.
    pub data: Arc<[u8]>,
}

impl fmt::Debug for MediaFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaFrame")
            .field("mid", &self.mid)
            .field("codec", &self.codec)
            .field("keyframe", &self.keyframe)
            .field("pts", &self.pts)
            .field("discontinuity", &self.discontinuity)
            .field("session", &self.session)
            .field("len", &self.data.len())
            .finish_non_exhaustive()
    }
}

/// A track of a session: one `m=` line of the SDP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    /// The media id (`a=mid`): `"0"` for video and `"1"` for audio in relive's offer.
    pub mid: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// The codecs the answer accepted for this track, in the answer's order of preference.
    pub codecs: Vec<Codec>,
}

/// Audio or video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TrackKind {
    /// A video track.
    Video,
    /// An audio track.
    Audio,
}

/// A negotiated codec: what a payload type of a track carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Codec {
    /// The RTP payload type.
    pub payload_type: u8,
    /// The codec name as in SDP (`VP8`, `H264`, `opus`, ...).
    pub name: String,
    /// The RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Audio channels, if any.
    pub channels: Option<u8>,
    /// The `a=fmtp` parameters, as SDP text (empty when none).
    pub format: String,
}

/// One received RTP packet, decrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct MediaPacket {
    /// The track (`a=mid`) it belongs to.
    pub mid: String,
    /// The RTP payload type.
    pub payload_type: u8,
    /// The RTP SSRC.
    pub ssrc: u32,
    /// The extended (never wrapping) RTP sequence number.
    pub sequence: u64,
    /// The RTP timestamp as sent (32 bits, in the codec's clock).
    pub rtp_timestamp: u32,
    /// The track's media time at this packet: unwrapped RTP time since its first packet.
    pub media_time: Duration,
    /// The RTP marker bit (end of a video frame).
    pub marker: bool,
    /// The RTP payload, without the header.
    pub payload: Arc<[u8]>,
}

impl fmt::Debug for MediaPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaPacket")
            .field("mid", &self.mid)
            .field("payload_type", &self.payload_type)
            .field("sequence", &self.sequence)
            .field("media_time", &self.media_time)
            .field("len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// Counts kept by a peer task for its session's [`WebRtcMedia`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) withheld: AtomicU64,
    pub(crate) keyframe_requests: AtomicU64,
    pub(crate) undecodable: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl WebRtcMedia {
    pub(crate) fn new(
        tracks: Vec<Track>,
        local_addr: SocketAddr,
        session: SessionId,
        delivery: Delivery,
        frames: Arc<Queue<MediaFrame>>,
        packets: Arc<Queue<MediaPacket>>,
        counters: Arc<Counters>,
    ) -> Self {
        WebRtcMedia {
            tracks,
            local_addr,
            session,
            delivery,
            frames,
            packets,
            counters,
        }
    }

    /// The negotiated tracks.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// The local UDP address of the peer (its host candidate).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The session's number on the viewer's timeline (the `session` of its frames).
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// Whether this session delivers frames or RTP packets.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// The next frame; `None` once the session is over and the queue is empty — and at once
    /// when the session delivers [RTP packets](Delivery::RtpPackets).
    pub async fn recv(&mut self) -> Option<MediaFrame> {
        futures::future::poll_fn(|cx| self.frames.poll_pop(cx)).await
    }

    /// A frame if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<MediaFrame> {
        self.frames.pop()
    }

    /// The next RTP packet, when the session delivers [RTP packets](Delivery::RtpPackets);
    /// `None` once it is over and the queue is empty, and at once when it delivers frames.
    pub async fn recv_rtp(&mut self) -> Option<MediaPacket> {
        futures::future::poll_fn(|cx| self.packets.poll_pop(cx)).await
    }

    /// An RTP packet if one is queued, without waiting.
    pub fn try_recv_rtp(&mut self) -> Option<MediaPacket> {
        self.packets.pop()
    }

    /// Frames or packets dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.frames.dropped() + self.packets.dropped()
    }

    /// Video frames withheld because they could not be decoded: before the session's first
    /// keyframe, and after a loss until the next one.
    pub fn withheld(&self) -> u64 {
        self.counters.withheld.load(Ordering::Relaxed)
    }

    /// Keyframe requests (PLI or FIR) sent to the sender so far.
    pub fn keyframe_requests(&self) -> u64 {
        self.counters.keyframe_requests.load(Ordering::Relaxed)
    }

    /// Payloads that could not be depacketized (malformed or truncated), skipped.
    pub fn undecodable(&self) -> u64 {
        self.counters.undecodable.load(Ordering::Relaxed)
    }

    /// How many frames (or packets) the queue holds before dropping the oldest.
    pub fn queue_capacity(&self) -> usize {
        match self.delivery {
            Delivery::Frames => self.frames.capacity,
            Delivery::RtpPackets => self.packets.capacity,
        }
    }

    /// Whether the session is over (its peer stopped). Queued frames can still be read.
    pub fn is_closed(&self) -> bool {
        self.frames.is_closed()
    }
}

impl fmt::Debug for WebRtcMedia {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebRtcMedia")
            .field("tracks", &self.tracks)
            .field("local_addr", &self.local_addr)
            .field("session", &self.session)
            .field("delivery", &self.delivery)
            .field("dropped", &self.dropped())
            .field("withheld", &self.withheld())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Stream for WebRtcMedia {
    type Item = MediaFrame;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<MediaFrame>> {
        self.frames.poll_pop(cx)
    }
}

/// The queue between the peer task (one producer) and the application (one consumer).
pub(crate) struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    capacity: usize,
    dropped: AtomicU64,
    closed: AtomicBool,
    waker: AtomicWaker,
}

impl<T> Queue<T> {
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Queue {
            items: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        })
    }

    /// A queue that is over before anything is pushed: the unused kind of a session.
    pub(crate) fn closed() -> Arc<Self> {
        let queue = Queue::new(1);
        queue.close();
        queue
    }

    /// Queues an item, dropping the oldest when full.
    pub(crate) fn push(&self, item: T) {
        {
            let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
            if items.len() >= self.capacity {
                items.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            items.push_back(item);
        }
        self.waker.wake();
    }

    /// Marks the end of the session: the reader gets `None` after the last item.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn pop(&self) -> Option<T> {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(item) = self.pop() {
            return Poll::Ready(Some(item));
        }
        self.waker.register(cx.waker());
        // Checked again after registering, so a push or close in between is not missed.
        if let Some(item) = self.pop() {
            return Poll::Ready(Some(item));
        }
        if self.is_closed() {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64) -> MediaFrame {
        MediaFrame {
            mid: "0".into(),
            kind: TrackKind::Video,
            codec: MediaCodec::Vp8,
            payload_type: 96,
            keyframe: n == 0,
            pts: Duration::from_millis(n * 33),
            discontinuity: false,
            session: first_session(),
            rtp_timestamp: 0,
            clock_rate: 90_000,
            data: Arc::from(&[1u8, 2, 3][..]),
        }
    }

    fn first_session() -> SessionId {
        crate::timeline::Timeline::default().begin_session()
    }

    fn media(capacity: usize) -> (WebRtcMedia, Arc<Queue<MediaFrame>>) {
        let queue = Queue::new(capacity);
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let media = WebRtcMedia::new(
            Vec::new(),
            addr,
            first_session(),
            Delivery::Frames,
            queue.clone(),
            Queue::closed(),
            Arc::default(),
        );
        (media, queue)
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts() {
        let (mut media, queue) = media(3);
        for n in 0..5 {
            queue.push(frame(n));
        }
        assert_eq!(media.dropped(), 2);
        let kept: Vec<Duration> = std::iter::from_fn(|| media.try_recv())
            .map(|f| f.pts)
            .collect();
        assert_eq!(kept, [66, 99, 132].map(Duration::from_millis));
    }

    #[tokio::test]
    async fn the_reader_gets_queued_frames_then_the_end() {
        let (mut media, queue) = media(8);
        queue.push(frame(7));
        queue.close();
        assert!(media.is_closed());
        assert_eq!(
            media.recv().await.map(|f| f.pts),
            Some(Duration::from_millis(231))
        );
        assert_eq!(media.recv().await, None);
        assert_eq!(
            media.recv_rtp().await,
            None,
            "a frame session has no packets"
        );
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_on_push() {
        let (mut media, queue) = media(8);
        let reader = tokio::spawn(async move { media.recv().await.map(|f| f.keyframe) });
        tokio::task::yield_now().await;
        queue.push(frame(0));
        assert_eq!(reader.await.ok().flatten(), Some(true));
    }
}
