//! The seam that owns stream state: which streams are live, with which details, and who views
//! them. The server's connections only ask a [`Broker`]; [`LocalBroker`](crate::relay::LocalBroker)
//! keeps it all in this process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;
use tokio::sync::{Notify, mpsc};

use crate::relay::protocol::{CloseReason, Details, StreamName};

/// One serialized server frame, shared by every connection it is queued for: the bytes of
/// axum's `Message::Text`, so each socket gets a refcounted clone, never a copy.
pub type Frame = axum::extract::ws::Utf8Bytes;

/// The owner of the relay's stream state; one per relay, shared by every connection.
///
/// # Contract
///
/// - `view` queues a `snapshot` for the viewer, then every later event of the stream, in
///   order: nothing lost, nothing twice, between the snapshot and the events.
/// - Delivery never waits: a frame goes to a [`Peer`] with [`Peer::deliver`], which drops a
///   peer whose queue is full. A broker must never buffer for a peer beyond its queue.
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

/// A connection as a broker sees it: an id, a bounded queue of frames and a way to drop it.
///
/// Cheap to clone; every clone is the same connection.
#[derive(Clone, Debug)]
pub struct Peer {
    id: u64,
    queue: mpsc::Sender<Frame>,
    kick: Arc<Kick>,
}

/// Set when a peer must go because it does not read.
#[derive(Debug, Default)]
pub(crate) struct Kick {
    slow: AtomicBool,
    notify: Notify,
}

impl Kick {
    /// Whether the peer was kicked.
    pub(crate) fn is_kicked(&self) -> bool {
        self.slow.load(Ordering::Acquire)
    }

    /// Resolves once the peer was kicked.
    pub(crate) async fn kicked(&self) {
        loop {
            let notified = self.notify.notified();
            if self.slow.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

impl Peer {
    /// A peer with id `id` and the sending side of its queue; the connection keeps the `Kick`.
    pub(crate) fn new(id: u64, queue: mpsc::Sender<Frame>) -> (Peer, Arc<Kick>) {
        let kick = Arc::new(Kick::default());
        let peer = Peer {
            id,
            queue,
            kick: Arc::clone(&kick),
        };
        (peer, kick)
    }

    /// The connection's id, unique within the relay.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Queues `frame` without waiting. A full queue means the connection does not read: it is
    /// kicked (it closes with `slow_consumer`) and `false` returned, as for a closed one.
    pub fn deliver(&self, frame: &Frame) -> bool {
        match self.queue.try_send(frame.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.kick.slow.store(true, Ordering::Release);
                self.kick.notify.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_kicks_the_peer() {
        let (tx, mut rx) = mpsc::channel(1);
        let (peer, kick) = Peer::new(1, tx);
        let frame = Frame::from("x");
        assert!(peer.deliver(&frame));
        assert!(!peer.deliver(&frame));
        kick.kicked().await;
        assert_eq!(rx.recv().await.as_deref(), Some("x"));
        drop(rx);
        assert!(!peer.deliver(&frame));
    }
}
