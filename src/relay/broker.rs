//! The seam that owns stream state: which streams are live, with which details, and who views
//! them. The server's connections only ask a [`Broker`]; [`LocalBroker`](crate::relay::LocalBroker)
//! keeps it all in this process.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

use crate::relay::outlet::Outlet;
use crate::relay::protocol::{CloseReason, Details, StreamName};

/// One serialized server frame, framed once for the wire and shared by every connection it
/// goes to: a server's WebSocket frames are not masked, so the same bytes (header and text)
/// are written to each socket — a refcount each, never a copy, never a re-encoding.
///
/// ```
/// use relive::relay::Frame;
///
/// let frame = Frame::from(r#"{"type":"pong"}"#);
/// assert_eq!(frame.as_str(), r#"{"type":"pong"}"#);
/// assert_eq!(frame, r#"{"type":"pong"}"#);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// The WebSocket text frame: header, then the text.
    wire: Bytes,
    /// The text, within `wire`.
    text: Utf8Bytes,
}

impl Frame {
    /// The frame's text (the JSON of a server frame).
    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }

    /// The frame as written on the socket: a final, unmasked WebSocket text frame.
    pub(crate) fn wire(&self) -> &[u8] {
        &self.wire
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Frame {
        Frame::from(text.as_str())
    }
}

impl From<&str> for Frame {
    fn from(text: &str) -> Frame {
        let len = text.len();
        let mut wire = Vec::with_capacity(len + 10);
        wire.push(0x81); // FIN, text
        if let Ok(short) = u8::try_from(len)
            && short < 126
        {
            wire.push(short);
        } else if let Ok(medium) = u16::try_from(len) {
            wire.push(126);
            wire.extend_from_slice(&medium.to_be_bytes());
        } else {
            wire.push(127);
            wire.extend_from_slice(&u64::try_from(len).unwrap_or(u64::MAX).to_be_bytes());
        }
        let header = wire.len();
        wire.extend_from_slice(text.as_bytes());
        let wire = Bytes::from(wire);
        let text = Utf8Bytes::try_from(wire.slice(header..))
            .unwrap_or_else(|_| Utf8Bytes::from_static(""));
        Frame { wire, text }
    }
}

impl std::ops::Deref for Frame {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for Frame {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Frame {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The owner of the relay's stream state; one per relay, shared by every connection.
///
/// # Contract
///
/// - `view` queues a `snapshot` for the viewer, then every later event of the stream, in
///   order: nothing lost, nothing twice, between the snapshot and the events.
/// - Delivery never waits: a frame goes to a [`Peer`] with [`Peer::deliver`], which writes it
///   to the peer's socket or its bounded queue and drops a peer whose queue is full. A broker
///   must never buffer for a peer beyond that queue.
/// - A stream has at most one publisher; a new valid one takes over and the old one gets an
///   `error` with code `replaced`. `unpublish` from a publisher that no longer holds the stream
///   does nothing.
/// - Methods never panic and never hold a lock across an await.
///
/// # Several relay nodes
///
/// The in-process [`LocalBroker`](crate::relay::LocalBroker) serves one node. A broker for
/// several nodes (Redis, say) keeps the same contract: the live state of each stream (details,
/// owner) in a shared store, events on a channel per stream that every node with viewers of it
/// subscribes to, and a local table of peers on each node to fan frames out, like the local
/// one does. To keep the snapshot-then-events promise it subscribes to the channel before it
/// reads the stored state, and numbers events so that those older than the snapshot are
/// skipped. That is why the methods return boxed futures: such a broker awaits the network.
pub trait Broker: Send + Sync + 'static {
    /// `publisher` announces `details` for `stream`: its viewers get `publish` (or `update`
    /// from the same publisher).
    fn publish(
        &self,
        stream: StreamName,
        publisher: Peer,
        details: Details,
    ) -> BoxFuture<'_, Result<Published, BrokerError>>;

    /// The publisher with id `publisher` is done with `stream`: its viewers get `close` with
    /// `reason`. Returns whether it held the stream.
    fn unpublish(
        &self,
        stream: StreamName,
        publisher: u64,
        reason: CloseReason,
    ) -> BoxFuture<'_, bool>;

    /// `viewer` follows `stream`: a `snapshot` now, events after.
    fn view(&self, stream: StreamName, viewer: Peer) -> BoxFuture<'_, Result<(), BrokerError>>;

    /// The viewer with id `viewer` stops following `stream`. Synchronous: it runs on every
    /// disconnect and only forgets local state.
    fn unview(&self, stream: &StreamName, viewer: u64);

    /// What the broker holds now, for `/healthz`.
    fn counts(&self) -> BrokerCounts;
}

/// What a `publish` was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Published {
    /// The stream was not live: viewers got `publish`.
    New,
    /// The same publisher changed its details: viewers got `update`.
    Updated,
    /// Another publisher held the stream and was replaced: viewers got `publish`.
    TookOver,
}

/// What a broker holds, for `/healthz`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BrokerCounts {
    /// Streams tracked (live, viewed, or both).
    pub streams: usize,
    /// Streams with a live publisher.
    pub live: usize,
    /// Viewer subscriptions, over all streams.
    pub views: usize,
    /// Events a multi-node broker dropped because a bounded queue was full (the shared store
    /// slow or away); always 0 for the in-process broker.
    pub dropped: u64,
    /// Times a multi-node broker lost its shared store (Redis); always 0 in process.
    pub disconnects: u64,
    /// Times a multi-node broker connected to its shared store again after losing it.
    pub reconnects: u64,
}

/// Why a broker refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The broker tracks as many streams as it may.
    #[error("the relay tracks too many streams ({0})")]
    TooManyStreams(usize),
    /// The shared store is unreachable (brokers that have one).
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// A connection as a broker sees it: an id, and the socket its frames are written to (with a
/// bounded queue for when the socket is full) and a way to drop it.
///
/// Cheap to clone; every clone is the same connection.
#[derive(Clone, Debug)]
pub struct Peer {
    id: u64,
    outlet: Arc<Outlet>,
}

impl Peer {
    /// A peer with id `id` whose frames go to `outlet`.
    pub(crate) fn new(id: u64, outlet: Arc<Outlet>) -> Peer {
        Peer { id, outlet }
    }

    /// A peer with no socket whose frames wait in its outlet (at most `queue`), for tests.
    pub(crate) fn detached(id: u64, queue: usize) -> (Peer, Arc<Outlet>) {
        let outlet = Arc::new(Outlet::detached(queue));
        (Peer::new(id, Arc::clone(&outlet)), outlet)
    }

    /// The connection's id, unique within the relay.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Writes `frame` to the connection's socket, or queues it behind what waits there;
    /// never waits. A full queue means the connection does not read: it is kicked (it closes
    /// with `slow_consumer`) and `false` returned, as for a closed one.
    pub fn deliver(&self, frame: &Frame) -> bool {
        self.outlet.deliver(frame)
    }
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket};

    use super::*;

    /// What a WebSocket client reads from `wire`.
    fn read(wire: &[u8]) -> String {
        let mut socket =
            WebSocket::from_raw_socket(std::io::Cursor::new(wire.to_vec()), Role::Client, None);
        match socket.read() {
            Ok(tokio_tungstenite::tungstenite::Message::Text(text)) => text.as_str().to_owned(),
            other => panic!("not a text frame: {other:?}"),
        }
    }

    #[test]
    fn a_frame_is_a_valid_websocket_text_frame_of_any_length() {
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 200_000] {
            let text = "é".repeat(len / 2) + &"x".repeat(len % 2);
            let frame = Frame::from(text.as_str());
            assert_eq!(frame.as_str(), text);
            assert_eq!(read(frame.wire()), text, "length {len}");
        }
    }

    #[test]
    fn a_full_queue_kicks_the_peer() {
        let (peer, outlet) = Peer::detached(1, 1);
        let frame = Frame::from("x");
        assert!(peer.deliver(&frame));
        assert!(!peer.deliver(&frame));
        assert!(outlet.is_kicked());
        assert_eq!(outlet.take_frames(), ["x"]);
        assert!(!peer.deliver(&frame));
    }
}
