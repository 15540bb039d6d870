//! [`LocalBroker`]: the relay's stream state in this process — the core's [`Node`] behind one
//! mutex that is held only to update the table and queue each frame once, never across an
//! await; frames reach the viewers after it is released.

use std::sync::{Mutex, MutexGuard, PoisonError};

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::relay::broker::{Broker, BrokerCounts, BrokerError, Peer, Published};
use crate::relay::core::Node;
use crate::relay::fanout::Deliveries;
use crate::relay::protocol::{CloseReason, Details, StreamName};

/// The in-process [`Broker`]: one node's streams, publishers and viewers.
///
/// Fan-out serializes and frames each event once and writes the same
/// [`Frame`](crate::relay::Frame) to every viewer's socket, without waiting and outside the lock
/// (the table's lock is held for O(1) per event, whatever the number of viewers); a frame a full
/// socket cannot take waits in the viewer's bounded queue, and a viewer whose queue is full is
/// dropped, never buffered for.
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
    /// from other nodes into this node's fan-out. The frames are added to `out`, for the
    /// caller to deliver once it holds no lock.
    pub(crate) fn publish_now(
        &self,
        stream: StreamName,
        publisher: Peer,
        details: Details,
        out: &mut Deliveries,
    ) -> Result<Published, BrokerError> {
        let mut node = self.lock();
        let published = node.publish(stream.clone(), publisher, details);
        out.append(node.take_deliveries());
        drop(node);
        let published = published?;
        tracing::debug!(%stream, ?published, "published");
        Ok(published)
    }

    /// [`Broker::unpublish`] without the future; the frames are added to `out`.
    pub(crate) fn unpublish_now(
        &self,
        stream: StreamName,
        publisher: u64,
        reason: CloseReason,
        out: &mut Deliveries,
    ) -> bool {
        let mut node = self.lock();
        let held = node.unpublish(&stream, publisher, reason);
        out.append(node.take_deliveries());
        drop(node);
        if held {
            tracing::debug!(%stream, ?reason, "unpublished");
        }
        held
    }

    /// [`Broker::view`] without the future; the snapshot is added to `out`.
    pub(crate) fn view_now(
        &self,
        stream: StreamName,
        viewer: Peer,
        out: &mut Deliveries,
    ) -> Result<(), BrokerError> {
        let mut node = self.lock();
        let viewed = node.view(stream, viewer);
        out.append(node.take_deliveries());
        viewed
    }
}

/// Runs `call` with a fresh [`Deliveries`] and delivers them after it (it took its locks and
/// released them).
fn delivering<T>(call: impl FnOnce(&mut Deliveries) -> T) -> T {
    let mut out = Deliveries::default();
    let result = call(&mut out);
    out.deliver();
    result
}

impl Broker for LocalBroker {
    fn publish(
        &self,
        stream: StreamName,
        publisher: Peer,
        details: Details,
    ) -> BoxFuture<'_, Result<Published, BrokerError>> {
        let result = delivering(|out| self.publish_now(stream, publisher, details, out));
        async move { result }.boxed()
    }

    fn unpublish(
        &self,
        stream: StreamName,
        publisher: u64,
        reason: CloseReason,
    ) -> BoxFuture<'_, bool> {
        let held = delivering(|out| self.unpublish_now(stream, publisher, reason, out));
        async move { held }.boxed()
    }

    fn view(&self, stream: StreamName, viewer: Peer) -> BoxFuture<'_, Result<(), BrokerError>> {
        let result = delivering(|out| self.view_now(stream, viewer, out));
        async move { result }.boxed()
    }

    fn unview(&self, stream: &StreamName, viewer: u64) {
        self.lock().unview(stream, viewer);
    }

    fn counts(&self) -> BrokerCounts {
        self.lock().counts()
    }
}
