//! What the application gets of a WebRTC session: the negotiated tracks and a bounded queue of
//! received RTP packets that drops the oldest when the application does not keep up.

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

/// The media of one live WebRTC session, handed to the application as the session's media
/// (`Event::Session`).
///
/// It lists the negotiated [`Track`]s and receives every RTP packet of the session as a
/// [`MediaPacket`] (depacketizing and decoding are the player's business). Read it with
/// [`recv`](WebRtcMedia::recv) or as a [`Stream`]; it ends when the session is over.
///
/// The queue holds [`queue_capacity`](WebRtcMedia::queue_capacity) packets: when the
/// application does not read, the oldest are dropped and counted
/// ([`dropped`](WebRtcMedia::dropped)), so a stuck player never stalls the peer or grows memory.
/// Progress ticks are taken before the queue, so they do not depend on the application reading.
///
/// ```no_run
/// # async fn play(mut media: relive::webrtc::WebRtcMedia) {
/// for track in media.tracks() {
///     println!("mid {} {:?}: {:?}", track.mid, track.kind, track.codecs);
/// }
/// while let Some(packet) = media.recv().await {
///     // hand packet.payload to a depacketizer + decoder for track `packet.mid`
/// }
/// # }
/// ```
pub struct WebRtcMedia {
    tracks: Vec<Track>,
    local_addr: SocketAddr,
    queue: Arc<Queue>,
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

impl WebRtcMedia {
    pub(crate) fn new(tracks: Vec<Track>, local_addr: SocketAddr, queue: Arc<Queue>) -> Self {
        WebRtcMedia {
            tracks,
            local_addr,
            queue,
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

    /// The next packet; `None` once the session is over and the queue is empty.
    pub async fn recv(&mut self) -> Option<MediaPacket> {
        futures::future::poll_fn(|cx| self.queue.poll_pop(cx)).await
    }

    /// A packet if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<MediaPacket> {
        self.queue.pop()
    }

    /// Packets dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped.load(Ordering::Relaxed)
    }

    /// How many packets the queue holds before dropping the oldest.
    pub fn queue_capacity(&self) -> usize {
        self.queue.capacity
    }

    /// Whether the session is over (its peer stopped). Queued packets can still be read.
    pub fn is_closed(&self) -> bool {
        self.queue.closed.load(Ordering::Acquire)
    }
}

impl fmt::Debug for WebRtcMedia {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebRtcMedia")
            .field("tracks", &self.tracks)
            .field("local_addr", &self.local_addr)
            .field("dropped", &self.dropped())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Stream for WebRtcMedia {
    type Item = MediaPacket;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<MediaPacket>> {
        self.queue.poll_pop(cx)
    }
}

/// The packet queue between the peer task (one producer) and the application (one consumer).
pub(crate) struct Queue {
    packets: Mutex<VecDeque<MediaPacket>>,
    capacity: usize,
    dropped: AtomicU64,
    closed: AtomicBool,
    waker: AtomicWaker,
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Queue {
            packets: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        })
    }

    /// Queues a packet, dropping the oldest when full.
    pub(crate) fn push(&self, packet: MediaPacket) {
        {
            let mut packets = self.packets.lock().unwrap_or_else(PoisonError::into_inner);
            if packets.len() >= self.capacity {
                packets.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            packets.push_back(packet);
        }
        self.waker.wake();
    }

    /// Marks the end of the session: the reader gets `None` after the last packet.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn pop(&self) -> Option<MediaPacket> {
        self.packets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Option<MediaPacket>> {
        if let Some(packet) = self.pop() {
            return Poll::Ready(Some(packet));
        }
        self.waker.register(cx.waker());
        // Checked again after registering, so a push or close in between is not missed.
        if let Some(packet) = self.pop() {
            return Poll::Ready(Some(packet));
        }
        if self.closed.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(sequence: u64) -> MediaPacket {
        MediaPacket {
            mid: "0".into(),
            payload_type: 96,
            ssrc: 1,
            sequence,
            rtp_timestamp: 0,
            media_time: Duration::ZERO,
            marker: false,
            payload: Arc::from(&[1u8, 2, 3][..]),
        }
    }

    fn media(capacity: usize) -> (WebRtcMedia, Arc<Queue>) {
        let queue = Queue::new(capacity);
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        (WebRtcMedia::new(Vec::new(), addr, queue.clone()), queue)
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts() {
        let (mut media, queue) = media(3);
        for n in 0..5 {
            queue.push(packet(n));
        }
        assert_eq!(media.dropped(), 2);
        let kept: Vec<u64> = std::iter::from_fn(|| media.try_recv())
            .map(|p| p.sequence)
            .collect();
        assert_eq!(kept, [2, 3, 4]);
    }

    #[tokio::test]
    async fn the_reader_gets_queued_packets_then_the_end() {
        let (mut media, queue) = media(8);
        queue.push(packet(7));
        queue.close();
        assert!(media.is_closed());
        assert_eq!(media.recv().await.map(|p| p.sequence), Some(7));
        assert_eq!(media.recv().await, None);
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_on_push() {
        let (mut media, queue) = media(8);
        let reader = tokio::spawn(async move { media.recv().await.map(|p| p.sequence) });
        tokio::task::yield_now().await;
        queue.push(packet(1));
        assert_eq!(reader.await.ok().flatten(), Some(1));
    }
}
