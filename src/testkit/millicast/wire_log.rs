//! The wire log: what each viewer did on the wire (Director calls, sockets, commands, pings,
//! peer-connection states, WHEP requests) and what the server was told to do, as records a test
//! in any language can read, one JSON object per line.
//!
//! The server sends records to the `mpsc` channel given to
//! [`MillicastServerBuilder::wire_log`](super::MillicastServerBuilder::wire_log) with
//! `try_send`: a full channel drops the record (counted in
//! [`MillicastServer::wire_records_dropped`](super::MillicastServer::wire_records_dropped)), so a
//! slow reader never stalls the server or grows its memory.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::testkit::script::Action;

/// One line of the wire log: when (milliseconds since the server started) and what.
///
/// ```
/// use relive::testkit::millicast::{WireEvent, WireRecord};
///
/// let record = WireRecord { t_ms: 1500, event: WireEvent::Ping { viewer: 3 } };
/// assert_eq!(record.to_line(), r#"{"t_ms":1500,"event":"ping","viewer":3}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WireRecord {
    /// Milliseconds since the server started.
    pub t_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: WireEvent,
}

impl WireRecord {
    /// The record as one line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        // A record is plain strings and numbers: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a viewer did, or what the server was told to do. Serialized with the variant name in
/// `event` (snake case) beside the fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WireEvent {
    /// `POST /api/director/subscribe` was answered with `status` (a request that hung is
    /// logged when it is answered). `stream` is `null` when the body names none.
    Director {
        /// The stream name of the request body.
        stream: Option<String>,
        /// The HTTP status answered.
        status: u16,
    },
    /// A signaling WebSocket was opened (with a token the Director issued).
    SocketOpen {
        /// The server's id of this socket.
        viewer: u64,
        /// The stream its token is for.
        stream: String,
    },
    /// A signaling WebSocket ended.
    SocketClosed {
        /// The server's id of this socket.
        viewer: u64,
        /// The stream its token is for.
        stream: String,
        /// How: `close_frame` (the server sent a close frame), `dropped` (the server dropped
        /// it without one) or `client` (the client closed or went away).
        how: SocketEnd,
    },
    /// A `view` command was answered.
    View {
        /// The socket it came on.
        viewer: u64,
        /// The socket's stream.
        stream: String,
        /// Whether the view was accepted.
        accepted: bool,
        /// The error message answered, when refused.
        error: Option<String>,
    },
    /// A command other than `view` (`select`, `project`, unknown ones).
    Command {
        /// The socket it came on.
        viewer: u64,
        /// The command name.
        name: String,
    },
    /// A WebSocket ping from the client (a keepalive). Not read while pings are ignored.
    Ping {
        /// The socket it came on.
        viewer: u64,
    },
    /// A publisher peer-connection changed state.
    Peer {
        /// The stream it publishes.
        stream: String,
        /// Which session: `view-{viewer}` for a signaling `view`, `whep-{resource}` for WHEP.
        session: String,
        /// The new state.
        state: PeerState,
    },
    /// A WHEP request was answered.
    Whep {
        /// `POST`, `DELETE` (or any other method the server answers).
        method: String,
        /// The stream of a `POST`; `null` for a resource request.
        stream: Option<String>,
        /// The resource id created (`POST`) or addressed.
        resource: Option<u64>,
        /// The HTTP status answered.
        status: u16,
    },
    /// The server was told to do something: a fault script step or a control API request.
    Action {
        /// The action, in the script's own form.
        action: Action,
    },
}

/// How a signaling socket ended, for [`WireEvent::SocketClosed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SocketEnd {
    /// The server sent a close frame (shutdown, `close_sockets`).
    CloseFrame,
    /// The server dropped the connection without a close frame (`cut_sockets`).
    Dropped,
    /// The client closed it or went away.
    Client,
}

/// A publisher peer-connection's state, for [`WireEvent::Peer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PeerState {
    /// The offer was answered; ICE and DTLS not done yet.
    Answered,
    /// ICE and DTLS are up: media can flow.
    Connected,
    /// The peer ended (the viewer left, closed it, or went silent).
    Ended,
}

/// The server's end of the wire log: the channel and the clock.
pub(super) struct WireLog {
    sender: Option<mpsc::Sender<WireRecord>>,
    start: tokio::time::Instant,
    dropped: AtomicU64,
}

impl WireLog {
    pub(super) fn new(sender: Option<mpsc::Sender<WireRecord>>) -> Self {
        WireLog {
            sender,
            start: tokio::time::Instant::now(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Whether anyone reads the log.
    pub(super) fn is_on(&self) -> bool {
        self.sender.is_some()
    }

    /// Sends a record of `event`, or counts it dropped when the channel is full.
    pub(super) fn record(&self, event: WireEvent) {
        let Some(sender) = &self.sender else { return };
        let t_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        if sender.try_send(WireRecord { t_ms, event }).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Logs the state changes of a publisher peer until it ends (feature `webrtc`).
#[cfg(feature = "webrtc")]
pub(super) fn follow_peer(
    shared: &std::sync::Arc<super::state::Shared>,
    stream: &str,
    session: String,
    peer: &crate::testkit::publisher::PublisherPeer,
) {
    use crate::testkit::publisher::PeerPhase;
    if !shared.wire.is_on() {
        return;
    }
    let mut phases = peer.phases();
    let shared = std::sync::Arc::clone(shared);
    let stream = stream.to_owned();
    tokio::spawn(async move {
        let mut last = None;
        loop {
            let phase = *phases.borrow_and_update();
            if last != Some(phase) {
                last = Some(phase);
                let state = match phase {
                    PeerPhase::Answered => PeerState::Answered,
                    PeerPhase::Connected => PeerState::Connected,
                    PeerPhase::Ended => PeerState::Ended,
                };
                shared.wire.record(WireEvent::Peer {
                    stream: stream.clone(),
                    session: session.clone(),
                    state,
                });
                if phase == PeerPhase::Ended {
                    return;
                }
            }
            if phases.changed().await.is_err() {
                // The task is gone without saying so: it ended.
                if last != Some(PeerPhase::Ended) {
                    shared.wire.record(WireEvent::Peer {
                        stream,
                        session,
                        state: PeerState::Ended,
                    });
                }
                return;
            }
        }
    });
}
