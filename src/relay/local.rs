//! [`LocalBroker`]: the relay's stream state in this process — the core's [`Node`] behind one
//! mutex that is held only to update the table and queue frames, never across an await.

use std::sync::{Mutex, MutexGuard, PoisonError};

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::relay::broker::{Broker, BrokerCounts, BrokerError, Peer, Published};
use crate::relay::core::Node;
use crate::relay::protocol::{CloseReason, Details, StreamName};

/// The in-process [`Broker`]: one node's streams, publishers and viewers.
///
/// Fan-out serializes each event once and queues the same [`Frame`](crate::relay::Frame) for
/// every viewer, without waiting: a viewer whose queue is full is dropped, never buffered for.
///
/// ```
/// use relive::relay::{Broker, LocalBroker};
/// let broker = LocalBroker::new(1000);
/// assert_eq!(broker.counts().streams, 0);
/// ```
#[derive(Debug)]
pub struct LocalBroker {
    node: Mutex<Node>,
}

impl LocalBroker {
    /// A broker that tracks at most `max_streams` streams at once.
    pub fn new(max_streams: usize) -> Self {
        LocalBroker {
            node: Mutex::new(Node::new(max_streams)),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Node> {
        // A panic while holding the lock is a bug elsewhere; the table itself stays consistent
        // (every update is one insert or remove), so keep serving.
        self.node.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// [`Broker::publish`] without the future: also how a multi-node broker feeds events
    /// from other nodes into this node's fan-out.
    pub(crate) fn publish_now(
        &self,
        stream: StreamName,
        publisher: Peer,
        details: Details,
    ) -> Result<Published, BrokerError> {
        let published = self.lock().publish(stream.clone(), publisher, details)?;
        tracing::debug!(%stream, ?published, "published");
        Ok(published)
    }

    /// [`Broker::unpublish`] without the future.
    pub(crate) fn unpublish_now(
        &self,
        stream: StreamName,
        publisher: u64,
        reason: CloseReason,
    ) -> bool {
        let held = self.lock().unpublish(&stream, publisher, reason);
        if held {
            tracing::debug!(%stream, ?reason, "unpublished");
        }
        held
    }

    /// [`Broker::view`] without the future.
    pub(crate) fn view_now(&self, stream: StreamName, viewer: Peer) -> Result<(), BrokerError> {
        self.lock().view(stream, viewer)
    }
}

impl Broker for LocalBroker {
    fn publish(
        &self,
        stream: StreamName,
        publisher: Peer,
        details: Details,
    ) -> BoxFuture<'_, Result<Published, BrokerError>> {
        let result = self.publish_now(stream, publisher, details);
        async move { result }.boxed()
    }

    fn unpublish(
        &self,
        stream: StreamName,
        publisher: u64,
        reason: CloseReason,
    ) -> BoxFuture<'_, bool> {
        let held = self.unpublish_now(stream, publisher, reason);
        async move { held }.boxed()
    }

    fn view(&self, stream: StreamName, viewer: Peer) -> BoxFuture<'_, Result<(), BrokerError>> {
        let result = self.view_now(stream, viewer);
        async move { result }.boxed()
    }

    fn unview(&self, stream: &StreamName, viewer: u64) {
        self.lock().unview(stream, viewer);
    }

    fn counts(&self) -> BrokerCounts {
        self.lock().counts()
    }
}
