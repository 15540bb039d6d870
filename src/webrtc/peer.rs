//! The task of one receive-only peer: the str0m run loop over its UDP socket.
//!
//! It reads datagrams into `handle_input`, drains `poll_output` (transmits, events, the next
//! timeout) after every input, turns RTP timestamps into progress ticks and queues frames (or
//! packets) for the application: video through its [`KeyframeGate`], every frame placed on the
//! viewer's [`Timeline`]. It ends when the session's events are dropped (closing the DTLS
//! session politely), or when the path fails, after reporting `Lost`.
//!
//! A peer whose owner keeps its [`PeerControl`] (WHEP) can be repaired in place: an ICE
//! restart makes a new offer ([`PeerCommand::Restart`]) and applies the other side's new
//! credentials and candidates ([`PeerCommand::Accept`]) on the same DTLS session and tracks.
//! Such a peer reports a lost ICE path as `PathLost` and keeps running, waiting for a restart
//! or for its session to be dropped; a peer nobody can restart (Millicast) reports `Lost`.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{KeyframeRequestKind, MediaData, Mid};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::rtp::RtpPacket;
use str0m::{Event, IceConnectionState, Input, Output, Rtc, RtcError};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::offer::MediaEvent;
use crate::timeline::{SessionId, Timeline};
use crate::webrtc::keyframes::KeyframeGate;
use crate::webrtc::media::{
    Counters, Delivery, MediaCodec, MediaFrame, MediaPacket, Queue, TrackKind,
};
use crate::webrtc::progress::{MediaClocks, ProgressTicker};
use crate::webrtc::sdpfrag::IceFragment;

/// Larger than any datagram WebRTC sends (str0m's MTU target is ~1150 bytes).
const RECV_BUFFER: usize = 2048;

/// How many outputs a closing peer drains at most before it gives up on a polite close.
const CLOSE_DRAIN_LIMIT: usize = 256;

/// Counts a running peer task while alive.
pub(crate) struct LiveGuard(Arc<AtomicUsize>);

impl LiveGuard {
    pub(crate) fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        LiveGuard(Arc::clone(live))
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One negotiated peer and everything its loop needs.
pub(crate) struct Peer {
    pub(crate) rtc: Rtc,
    pub(crate) socket: UdpSocket,
    /// The local candidate address: the destination of every datagram we read.
    pub(crate) local: SocketAddr,
    pub(crate) events: mpsc::Sender<MediaEvent>,
    pub(crate) delivery: Delivery,
    pub(crate) frames: Arc<Queue<MediaFrame>>,
    pub(crate) packets: Arc<Queue<MediaPacket>>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) ticker: ProgressTicker,
    /// Payload type → RTP clock rate, from the negotiated codecs.
    pub(crate) clock_rates: HashMap<u8, u32>,
    pub(crate) clocks: MediaClocks,
    /// The viewer's timeline (shared with its other sessions) and this session on it.
    pub(crate) timeline: Arc<Mutex<Timeline>>,
    pub(crate) session: SessionId,
    /// The keyframe state of each video track, and how to ask for one (`None`: the answer
    /// negotiated neither PLI nor FIR).
    pub(crate) gates: Vec<VideoGate>,
    /// Repairs asked by the session's owner; `None` once nobody can send any (the peer then
    /// reports a lost path as `Lost`).
    pub(crate) commands: Option<mpsc::Receiver<PeerCommand>>,
    /// The remote description in force: the answer, with the credentials and candidates of
    /// the last accepted restart spliced in.
    pub(crate) answer: String,
    /// The offer of a restart waiting for the other side's fragment.
    pub(crate) restart: Option<SdpPendingOffer>,
}

/// The sending side of a peer's repairs: what a source that can restart ICE keeps.
pub(crate) type PeerControl = mpsc::Sender<PeerCommand>;

/// How many repair commands may wait for the peer's loop.
pub(crate) const COMMAND_QUEUE: usize = 4;

/// A repair asked of a running peer.
pub(crate) enum PeerCommand {
    /// Starts an ICE restart (new local credentials, the same candidates) and replies with the
    /// new offer. A restart asked while another waits for its fragment replaces it.
    Restart(oneshot::Sender<Result<String, String>>),
    /// Applies the other side's fragment to the waiting restart: ICE restarts on the new
    /// credentials and candidates, the DTLS session and the tracks stay.
    Accept(IceFragment, oneshot::Sender<Result<(), String>>),
}

/// What the command channel gave.
enum Command {
    Got(PeerCommand),
    Closed,
}

/// The next command, or `Closed` once every sender is gone; pending for ever without a channel.
async fn next_command(commands: &mut Option<mpsc::Receiver<PeerCommand>>) -> Command {
    match commands {
        Some(rx) => rx.recv().await.map_or(Command::Closed, Command::Got),
        None => std::future::pending().await,
    }
}

/// One video track's keyframe gate.
pub(crate) struct VideoGate {
    pub(crate) mid: Mid,
    pub(crate) gate: KeyframeGate,
    pub(crate) request: Option<KeyframeRequestKind>,
}

/// Why the loop ended.
enum End {
    /// The session's events were dropped: the session is over on our side.
    Dropped,
    /// The media path failed.
    Lost(String),
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Peer {
    /// Runs the peer until its session is dropped or its path fails. The application's packet
    /// queue ends last, once the socket is closed and the task no longer counts as live: a
    /// reader that sees the end knows the peer is gone.
    pub(crate) async fn run(mut self, live: LiveGuard) {
        let end = self.serve().await;
        match end {
            End::Dropped => {
                tracing::debug!(local = %self.local, "webrtc session dropped; closing the peer");
                self.close();
            }
            End::Lost(reason) => {
                tracing::info!(local = %self.local, %reason, "webrtc media path lost");
                self.rtc.disconnect();
                let _ = self.events.send(MediaEvent::Lost(reason)).await;
            }
        }
        let (frames, packets) = (Arc::clone(&self.frames), Arc::clone(&self.packets));
        drop(self);
        drop(live);
        frames.close();
        packets.close();
    }

    async fn serve(&mut self) -> End {
        let mut buf = vec![0u8; RECV_BUFFER];
        loop {
            let deadline = match self.drain() {
                Ok(deadline) => deadline,
                Err(reason) => return End::Lost(reason),
            };
            let wake = self
                .ticker
                .poll_timeout()
                .map_or(deadline, |tick| tick.min(deadline));
            let result = tokio::select! {
                biased;
                () = self.events.closed() => return End::Dropped,
                command = next_command(&mut self.commands) => {
                    match command {
                        Command::Got(command) => self.on_command(command),
                        Command::Closed => self.commands = None,
                    }
                    Ok(())
                }
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, source)) => self.receive(&buf[..n], source),
                    Err(e) if is_transient(&e) => Ok(()),
                    Err(e) => Err(format!("UDP socket failed: {e}")),
                },
                () = tokio::time::sleep_until(wake.into()) => self.handle_timeout(),
            };
            if let Err(reason) = result {
                return End::Lost(reason);
            }
        }
    }

    /// Feeds one datagram. Anything that is not STUN, DTLS, RTP or RTCP, or that is not for
    /// this peer, is ignored: network input never ends a session by itself being odd.
    fn receive(&mut self, data: &[u8], source: SocketAddr) -> Result<(), String> {
        let Ok(contents) = DatagramRecv::try_from(data) else {
            tracing::trace!(%source, len = data.len(), "ignoring an unknown datagram");
            return Ok(());
        };
        let input = Input::Receive(
            now(),
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        if !self.rtc.accepts(&input) {
            tracing::trace!(%source, "ignoring a datagram for another peer");
            return Ok(());
        }
        self.rtc
            .handle_input(input)
            .map_err(|e| format!("WebRTC failed: {e}"))?;
        self.ask_first_keyframes();
        Ok(())
    }

    /// Asks for a keyframe on every video track whose first packets just arrived (str0m has
    /// a receive stream for it), before its first frame is even complete.
    fn ask_first_keyframes(&mut self) {
        for i in 0..self.gates.len() {
            let gate = &self.gates[i];
            if !gate.gate.awaits_first_request() || gate.request.is_none() {
                continue;
            }
            let mid = gate.mid;
            if self.rtc.direct_api().stream_rx_by_mid(mid, None).is_none() {
                continue;
            }
            if self.gates[i].gate.on_packets(now()) && !self.request_keyframe(i) {
                self.gates[i].gate.request_failed();
            }
        }
    }

    /// Sends a keyframe request for video track `index`; whether it went out.
    fn request_keyframe(&mut self, index: usize) -> bool {
        let VideoGate { mid, request, .. } = self.gates[index];
        let Some(kind) = request else {
            return false;
        };
        let sent = match self.delivery {
            Delivery::Frames => match self.rtc.writer(mid) {
                Some(mut writer) => writer.request_keyframe(None, kind).is_ok(),
                None => false,
            },
            Delivery::RtpPackets => match self.rtc.direct_api().stream_rx_by_mid(mid, None) {
                Some(stream) => {
                    stream.request_keyframe(kind);
                    true
                }
                None => false,
            },
        };
        if sent {
            Counters::add(&self.counters.keyframe_requests);
            tracing::debug!(%mid, ?kind, "keyframe requested");
        }
        sent
    }

    fn handle_timeout(&mut self) -> Result<(), String> {
        let now = now();
        if let Some(media) = self.ticker.handle_timeout(now) {
            self.tick(media);
        }
        self.rtc
            .handle_input(Input::Timeout(now))
            .map_err(|e| format!("WebRTC failed: {e}"))
    }

    /// Drains `poll_output` until the next timeout, as str0m requires after every input.
    fn drain(&mut self) -> Result<Instant, String> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(deadline)) => return Ok(deadline),
                Ok(Output::Transmit(transmit)) => {
                    // UDP is lossy anyway: a full buffer drops the datagram like the network
                    // would; an unreachable candidate (say IPv6 on an IPv4 socket) is ICE's
                    // business, not a failure of the session.
                    if let Err(e) = self
                        .socket
                        .try_send_to(&transmit.contents, transmit.destination)
                    {
                        tracing::debug!(destination = %transmit.destination, error = %e, "UDP send failed");
                    }
                }
                Ok(Output::Event(event)) => self.on_event(event)?,
                // A payload str0m cannot depacketize (malformed, truncated): skipped and
                // counted; str0m has consumed it and goes on with the next.
                Err(RtcError::Packet(mid, pt, e)) => self.on_undecodable(mid, *pt, &e),
                Err(e) => return Err(format!("WebRTC failed: {e}")),
            }
        }
    }

    fn on_event(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::MediaData(data) => self.on_frame(data),
            Event::RtpPacket(packet) => self.on_rtp(packet),
            Event::Connected => tracing::debug!(local = %self.local, "ICE and DTLS connected"),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                // str0m never heals this state by itself: only an ICE restart can, so the
                // session is over unless its owner can restart it.
                let reason = "ICE disconnected (consent lost)".to_owned();
                if self.commands.is_none() {
                    return Err(reason);
                }
                tracing::info!(local = %self.local, "webrtc media path lost; awaiting a repair");
                if self.events.try_send(MediaEvent::PathLost(reason)).is_err() {
                    // A full queue: the stall the missing media causes reports it anyway.
                    tracing::debug!("path loss not queued");
                }
            }
            Event::IceConnectionStateChange(state) => {
                tracing::debug!(local = %self.local, ?state, "ICE state");
            }
            Event::Closed => return Err("the remote peer closed the DTLS session".to_owned()),
            Event::StreamPaused(paused) => {
                tracing::debug!(mid = %paused.mid, paused = paused.paused, "stream paused");
            }
            other => tracing::trace!(event = ?other, "webrtc event"),
        }
        Ok(())
    }

    /// Carries out a repair; the reply says how it went (a dropped reply is no matter).
    fn on_command(&mut self, command: PeerCommand) {
        match command {
            PeerCommand::Restart(reply) => {
                let _ = reply.send(self.restart_ice());
            }
            PeerCommand::Accept(fragment, reply) => {
                let _ = reply.send(self.accept_restart(&fragment));
            }
        }
    }

    /// An ICE restart's offer: new local credentials on the same candidates.
    fn restart_ice(&mut self) -> Result<String, String> {
        let mut api = self.rtc.sdp_api();
        api.ice_restart(true);
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| "str0m made no ICE restart offer".to_owned())?;
        self.restart = Some(pending);
        tracing::debug!(local = %self.local, "ICE restart offered");
        Ok(offer.to_sdp_string())
    }

    /// Applies the other side's fragment to the waiting restart.
    fn accept_restart(&mut self, fragment: &IceFragment) -> Result<(), String> {
        let pending = self
            .restart
            .take()
            .ok_or_else(|| "no ICE restart is waiting for an answer".to_owned())?;
        let answer = fragment.splice_into(&self.answer);
        let parsed = SdpAnswer::from_sdp_string(&answer)
            .map_err(|e| format!("unreadable restart answer: {e}"))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, parsed)
            .map_err(|e| format!("ICE restart refused: {e}"))?;
        self.answer = answer;
        // Frames after the gap depend on what was lost: the gates ask for a keyframe as soon
        // as the first packets arrive again.
        tracing::debug!(local = %self.local, "ICE restart applied");
        Ok(())
    }

    fn on_undecodable(&mut self, mid: Mid, payload_type: u8, error: &dyn std::fmt::Display) {
        Counters::add(&self.counters.undecodable);
        tracing::debug!(%mid, payload_type, %error, "skipping a payload that does not depacketize");
        if let Some(i) = self.gates.iter().position(|g| g.mid == mid)
            && self.gates[i].gate.on_broken(now())
        {
            self.request_keyframe(i);
        }
    }

    /// A depacketized frame: video through its keyframe gate, then progress, then the
    /// timeline and the application's queue.
    fn on_frame(&mut self, data: MediaData) {
        let now = now();
        let codec = MediaCodec::from_str0m(data.params.spec().codec);
        let video = self.gates.iter().position(|g| g.mid == data.mid);
        let kind = if video.is_some() || codec.is_video() {
            TrackKind::Video
        } else {
            TrackKind::Audio
        };
        let keyframe = data.is_keyframe();
        if let Some(i) = video {
            let admit = self.gates[i].gate.on_frame(now, keyframe, data.contiguous);
            if admit.request {
                self.request_keyframe(i);
            }
            if !admit.deliver {
                Counters::add(&self.counters.withheld);
                return;
            }
        }
        let mid = data.mid.to_string();
        let clock_rate = data.time.frequency().get();
        // The frame's RTP timestamp: str0m extends it to 64 bits; the low 32 are the wire's.
        let rtp_timestamp = data.time.numer() as u32;
        let (_, session_time) = self.clocks.on_packet(&mid, 0, rtp_timestamp, clock_rate);
        let placed = self
            .timeline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .place(
                self.session,
                &mid,
                rtp_timestamp,
                clock_rate,
                data.network_time,
            );
        if let Some(placed) = placed {
            self.frames.push(MediaFrame {
                mid,
                kind,
                codec,
                payload_type: *data.pt,
                keyframe,
                pts: placed.pts,
                discontinuity: placed.discontinuity,
                session: placed.session,
                rtp_timestamp,
                clock_rate,
                data: data.data,
            });
        }
        // A frame of a superseded session is not the picture any more, but it still shows
        // this session's media moving.
        if let Some(media) = self.ticker.on_media(now, session_time) {
            self.tick(media);
        }
    }

    fn on_rtp(&mut self, packet: RtpPacket) {
        let ssrc = *packet.header.ssrc;
        let mid = match packet.header.ext_vals.mid {
            Some(mid) => mid,
            None => match self.rtc.direct_api().stream_rx(&packet.header.ssrc) {
                Some(stream) => stream.mid(),
                None => return,
            },
        };
        let payload_type = *packet.header.payload_type;
        let clock_rate = self
            .clock_rates
            .get(&payload_type)
            .copied()
            .unwrap_or_else(|| packet.time.frequency().get());
        let timestamp = packet.header.timestamp;
        let (media_time, session_time) = self.clocks.on_packet(&mid, ssrc, timestamp, clock_rate);
        if let Some(i) = self.gates.iter().position(|g| g.mid == mid)
            && self.gates[i].gate.on_packets(now())
        {
            // RTP mode: nothing is withheld, but a new session still asks for a keyframe at
            // its first video packet.
            if !self.request_keyframe(i) {
                self.gates[i].gate.request_failed();
            }
        }
        self.packets.push(MediaPacket {
            mid: mid.to_string(),
            payload_type,
            ssrc,
            sequence: *packet.seq_no,
            rtp_timestamp: timestamp,
            media_time,
            marker: packet.header.marker,
            payload: packet.payload,
        });
        if let Some(media) = self.ticker.on_media(now(), session_time) {
            self.tick(media);
        }
    }

    /// Sends a progress tick; a full channel drops it, as the next one carries a later time.
    fn tick(&mut self, media: Duration) {
        let _ = self.events.try_send(MediaEvent::Progress(media));
    }

    /// Starts str0m's polite close (RTCP BYE, DTLS close_notify) and sends what it produces.
    fn close(&mut self) {
        if self.rtc.close().is_err() {
            return;
        }
        for _ in 0..CLOSE_DRAIN_LIMIT {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(transmit)) => {
                    let _ = self
                        .socket
                        .try_send_to(&transmit.contents, transmit.destination);
                }
                Ok(Output::Event(_)) => {}
                Ok(Output::Timeout(_)) | Err(_) => break,
            }
        }
    }
}

/// Errors a UDP receive can report for an earlier send (ICMP) that say nothing about this socket.
fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock
            | ErrorKind::Interrupted
            | ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
    )
}
