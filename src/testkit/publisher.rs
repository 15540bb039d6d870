//! A publisher peer for tests: the answering side of a viewer's offer (str0m, ICE-lite,
//! `setup:passive`, one host candidate) that sends real RTP over UDP — synthetic VP8 at 30 fps
//! (90 kHz timestamps) and Opus-like audio at 50 packets/s (48 kHz).
//!
//! What it does is steered by a [`Feed`] on a `watch` channel, shared by every peer of a stream:
//! send or not (live, frozen), and black-hole the UDP path (nothing in, nothing out).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};

/// What the publisher peers of a stream do now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Feed {
    /// Whether RTP is sent (the stream is live and not frozen).
    pub sending: bool,
    /// Whether the UDP path is black-holed: datagrams are dropped both ways.
    pub blackhole: bool,
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
}

/// One publisher peer: a task answering one viewer. Dropping it closes the peer (DTLS
/// close_notify to the viewer) and ends the task.
#[derive(Debug)]
pub struct PublisherPeer {
    local: SocketAddr,
    packets: Arc<AtomicU64>,
    _stop: oneshot::Sender<()>,
    done: watch::Receiver<bool>,
}

/// A viewer that sends nothing (not even consent checks) for this long is gone.
const IDLE: Duration = Duration::from_secs(30);
const VIDEO_PERIOD: Duration = Duration::from_nanos(33_333_333);
const AUDIO_PERIOD: Duration = Duration::from_millis(20);
/// 90 kHz ticks per video frame at 30 fps, and 48 kHz ticks per 20 ms audio packet.
const VIDEO_TICKS: u64 = 3_000;
const AUDIO_TICKS: u64 = 960;

impl PublisherPeer {
    /// Answers `offer` with a peer bound on `ip` (port 0) that follows `feed`; returns the peer
    /// and the SDP answer. Must be called within a tokio runtime.
    pub fn answer(
        offer: &str,
        ip: IpAddr,
        feed: watch::Receiver<Feed>,
    ) -> Result<(PublisherPeer, String), PublisherError> {
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| PublisherError::Offer(e.to_string()))?;
        let std_socket = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
        std_socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(std_socket)?;
        let local = socket.local_addr()?;
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_vp8(true)
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
        let (stop_tx, stop) = oneshot::channel();
        let (done_tx, done) = watch::channel(false);
        let start = tokio::time::Instant::now().into_std();
        let task = Task {
            rtc,
            socket,
            local,
            feed,
            packets: Arc::clone(&packets),
            video: None,
            audio: None,
            connected: false,
            next_video: start,
            next_audio: start,
            frames: 0,
            samples: 0,
            last_rx: start,
        };
        tokio::spawn(async move {
            task.run(stop).await;
            let _ = done_tx.send(true);
        });
        tracing::debug!(%local, "publisher peer answered");
        let peer = PublisherPeer {
            local,
            packets,
            _stop: stop_tx,
            done,
        };
        Ok((peer, answer.to_sdp_string()))
    }

    /// The peer's UDP address (its host candidate).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// RTP packets written so far.
    pub fn packets_sent(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Whether the peer's task has ended (the viewer left or the path died).
    pub fn is_finished(&self) -> bool {
        *self.done.borrow()
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

struct Task {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    feed: watch::Receiver<Feed>,
    packets: Arc<AtomicU64>,
    video: Option<Mid>,
    audio: Option<Mid>,
    connected: bool,
    next_video: Instant,
    next_audio: Instant,
    frames: u64,
    samples: u64,
    last_rx: Instant,
}

impl Task {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut buf = vec![0u8; 2048];
        while let Some(deadline) = self.drain() {
            let wake = deadline.min(self.next_video).min(self.next_audio);
            tokio::select! {
                biased;
                _ = &mut stop => {
                    self.close();
                    break;
                }
                changed = self.feed.changed() => if changed.is_err() { break },
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
    }

    fn feed(&self) -> Feed {
        *self.feed.borrow()
    }

    fn receive(&mut self, data: &[u8], source: SocketAddr) {
        if self.feed().blackhole {
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
        if now >= self.next_video {
            self.next_video += VIDEO_PERIOD;
            let frame = self.frames;
            self.frames += 1;
            self.write(
                MediaKind::Video,
                now,
                MediaTime::from_90khz(frame * VIDEO_TICKS),
            );
        }
        if now >= self.next_audio {
            self.next_audio += AUDIO_PERIOD;
            let time = MediaTime::new(self.samples * AUDIO_TICKS, Frequency::FORTY_EIGHT_KHZ);
            self.samples += 1;
            self.write(MediaKind::Audio, now, time);
        }
        self.rtc.handle_input(Input::Timeout(now)).is_ok()
    }

    /// Writes one frame of `kind` if the feed sends; drains after it (one mutation at a time).
    fn write(&mut self, kind: MediaKind, now: Instant, time: MediaTime) {
        let feed = self.feed();
        let mid = if kind.is_audio() {
            self.audio
        } else {
            self.video
        };
        let (Some(mid), true, false) = (mid, self.connected && feed.sending, feed.blackhole) else {
            return;
        };
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        let wanted = if kind.is_audio() {
            Codec::Opus
        } else {
            Codec::Vp8
        };
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == wanted)
            .map(|p| p.pt())
        else {
            return;
        };
        let data = if kind.is_audio() {
            opus_like(self.samples)
        } else {
            vp8_like(self.frames)
        };
        match writer.write(pt, now, time, data) {
            Ok(()) => {
                self.packets.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(error = %e, "publisher write failed"),
        }
        let _ = self.drain();
    }

    /// Drains str0m's output; `None` when the peer is over.
    fn drain(&mut self) -> Option<Instant> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(deadline)) => return Some(deadline),
                Ok(Output::Transmit(transmit)) => {
                    if !self.feed().blackhole {
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
            Event::Connected => self.connected = true,
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
                Ok(Output::Transmit(transmit)) if !self.feed().blackhole => {
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

/// A VP8-shaped frame: a key frame (start code, 640×360) every 30 frames, else an inter frame.
fn vp8_like(frame: u64) -> Vec<u8> {
    let key = frame.is_multiple_of(30);
    let mut data = vec![0u8; if key { 1200 } else { 300 }];
    // Frame tag: bit 0 is 0 for a key frame; show_frame set; a first-partition size.
    data[0] = if key { 0x10 } else { 0x11 };
    data[1] = 0x02;
    data[2] = 0x00;
    if key {
        data[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        data[6..8].copy_from_slice(&640u16.to_le_bytes());
        data[8..10].copy_from_slice(&360u16.to_le_bytes());
    }
    for (i, byte) in data.iter_mut().enumerate().skip(10) {
        *byte = (i as u64 ^ frame) as u8;
    }
    data
}

/// An Opus-shaped packet: a TOC byte (CELT fullband 20 ms, mono, one frame) and filler.
fn opus_like(sample: u64) -> Vec<u8> {
    let mut data = vec![(sample as u8) | 1; 80];
    data[0] = 0xf8;
    data
}
