//! [`LocalBroker`]: the relay's stream state in this process, behind one mutex that is held only
//! to update a table and queue frames, never across an await.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::relay::broker::{Broker, BrokerCounts, BrokerError, Frame, Peer, Published};
use crate::relay::protocol::{CloseReason, Details, ErrorCode, ServerFrame, StreamName};

/// The in-process [`Broker`]: one node's streams, publishers and viewers.
///
/// Fan-out serializes each event once and queues the same [`Frame`] for every viewer, without
/// waiting: a viewer whose queue is full is dropped, never buffered for.
///
/// ```
/// use relive::relay::{Broker, LocalBroker};
/// let broker = LocalBroker::new(1000);
/// assert_eq!(broker.counts().streams, 0);
/// ```
#[derive(Debug)]
pub struct LocalBroker {
    topics: Mutex<HashMap<StreamName, Topic>>,
    max_streams: usize,
}

#[derive(Debug, Default)]
struct Topic {
    live: Option<Live>,
    viewers: HashMap<u64, Peer>,
}

#[derive(Debug)]
struct Live {
    publisher: Peer,
    details: Details,
}

impl Topic {
    fn is_empty(&self) -> bool {
        self.live.is_none() && self.viewers.is_empty()
    }

    /// Queues `frame` for every viewer, forgetting those that are gone or too slow.
    fn fan_out(&mut self, frame: &Frame) {
        self.viewers.retain(|_, viewer| viewer.deliver(frame));
    }
}

fn frame(frame: &ServerFrame) -> Frame {
    Arc::from(frame.to_text())
}

impl LocalBroker {
    /// A broker that tracks at most `max_streams` streams at once.
    pub fn new(max_streams: usize) -> Self {
        LocalBroker {
            topics: Mutex::new(HashMap::new()),
            max_streams,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<StreamName, Topic>> {
        // A panic while holding the lock is a bug elsewhere; the table itself stays consistent
        // (every update is one insert or remove), so keep serving.
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The topic of `stream`, created if there is room.
    fn topic<'a>(
        &self,
        topics: &'a mut HashMap<StreamName, Topic>,
        stream: StreamName,
    ) -> Result<&'a mut Topic, BrokerError> {
        let full = topics.len() >= self.max_streams;
        match topics.entry(stream) {
            Entry::Occupied(topic) => Ok(topic.into_mut()),
            Entry::Vacant(_) if full => Err(BrokerError::TooManyStreams(self.max_streams)),
            Entry::Vacant(slot) => Ok(slot.insert(Topic::default())),
        }
    }

    /// [`Broker::publish`] without the future: also how a multi-node broker feeds events
    /// from other nodes into this node's fan-out.
    pub(crate) fn publish_now(
        &self,
        stream: StreamName,
        publisher: Peer,
        details: Details,
    ) -> Result<Published, BrokerError> {
        let mut topics = self.lock();
        let topic = self.topic(&mut topics, stream.clone())?;
        let published = match &topic.live {
            Some(live) if live.publisher.id() == publisher.id() => Published::Updated,
            Some(live) => {
                let replaced = ServerFrame::Error {
                    code: ErrorCode::Replaced,
                    message: "another publisher took over this stream".to_owned(),
                    stream: Some(stream.clone()),
                    id: None,
                    fatal: false,
                };
                live.publisher.deliver(&frame(&replaced));
                Published::TookOver
            }
            None => Published::New,
        };
        let event = match published {
            Published::Updated => ServerFrame::Update {
                stream: stream.clone(),
                details: details.clone(),
            },
            _ => ServerFrame::Publish {
                stream: stream.clone(),
                details: details.clone(),
            },
        };
        topic.live = Some(Live { publisher, details });
        topic.fan_out(&frame(&event));
        tracing::debug!(%stream, ?published, viewers = topic.viewers.len(), "published");
        Ok(published)
    }

    /// [`Broker::unpublish`] without the future.
    pub(crate) fn unpublish_now(
        &self,
        stream: StreamName,
        publisher: u64,
        reason: CloseReason,
    ) -> bool {
        let mut topics = self.lock();
        let Some(topic) = topics.get_mut(&stream) else {
            return false;
        };
        if topic.live.as_ref().map(|l| l.publisher.id()) != Some(publisher) {
            return false;
        }
        topic.live = None;
        let close = ServerFrame::Close {
            stream: stream.clone(),
            reason,
        };
        topic.fan_out(&frame(&close));
        tracing::debug!(%stream, ?reason, viewers = topic.viewers.len(), "unpublished");
        if topic.is_empty() {
            topics.remove(&stream);
        }
        true
    }

    /// [`Broker::view`] without the future.
    pub(crate) fn view_now(&self, stream: StreamName, viewer: Peer) -> Result<(), BrokerError> {
        let mut topics = self.lock();
        let topic = self.topic(&mut topics, stream.clone())?;
        let details = topic.live.as_ref().map(|live| live.details.clone());
        let snapshot = ServerFrame::Snapshot {
            stream: stream.clone(),
            live: details.is_some(),
            details,
        };
        // Under the lock: the snapshot is queued before any event that follows it.
        if viewer.deliver(&frame(&snapshot)) {
            topic.viewers.insert(viewer.id(), viewer);
        } else if topic.is_empty() {
            topics.remove(&stream);
        }
        Ok(())
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
        let mut topics = self.lock();
        if let Some(topic) = topics.get_mut(stream) {
            topic.viewers.remove(&viewer);
            if topic.is_empty() {
                topics.remove(stream);
            }
        }
    }

    fn counts(&self) -> BrokerCounts {
        let topics = self.lock();
        BrokerCounts {
            streams: topics.len(),
            live: topics.values().filter(|t| t.live.is_some()).count(),
            views: topics.values().map(|t| t.viewers.len()).sum(),
            dropped: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tokio::sync::mpsc;

    use super::*;
    use crate::relay::protocol::parse_server_frame;

    fn peer(id: u64, queue: usize) -> (Peer, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(queue);
        (Peer::new(id, tx).0, rx)
    }

    fn next(rx: &mut mpsc::Receiver<Frame>) -> ServerFrame {
        parse_server_frame(&rx.try_recv().unwrap()).unwrap()
    }

    fn cam() -> StreamName {
        StreamName::new("cam").unwrap()
    }

    #[tokio::test]
    async fn snapshot_then_events_in_order_and_the_stream_is_forgotten_when_empty() {
        let broker = LocalBroker::new(10);
        let (viewer, mut v) = peer(1, 8);
        let (publisher, _p) = peer(2, 8);
        broker.view(cam(), viewer).await.unwrap();
        assert!(matches!(
            next(&mut v),
            ServerFrame::Snapshot { live: false, .. }
        ));
        let published = broker.publish(cam(), publisher.clone(), Details::default());
        assert_eq!(published.await.unwrap(), Published::New);
        assert!(matches!(next(&mut v), ServerFrame::Publish { .. }));
        let again = broker.publish(cam(), publisher, Details::default());
        assert_eq!(again.await.unwrap(), Published::Updated);
        assert!(matches!(next(&mut v), ServerFrame::Update { .. }));
        assert!(!broker.unpublish(cam(), 99, CloseReason::Unpublished).await);
        assert!(broker.unpublish(cam(), 2, CloseReason::PublisherLost).await);
        let close = next(&mut v);
        assert!(matches!(
            close,
            ServerFrame::Close {
                reason: CloseReason::PublisherLost,
                ..
            }
        ));
        broker.unview(&cam(), 1);
        assert_eq!(broker.counts(), BrokerCounts::default());
    }

    #[tokio::test]
    async fn a_new_publisher_takes_over_and_the_old_one_is_told() {
        let broker = LocalBroker::new(10);
        let (first, mut f) = peer(1, 8);
        let (second, _s) = peer(2, 8);
        broker
            .publish(cam(), first, Details::default())
            .await
            .unwrap();
        let took = broker.publish(cam(), second, Details::default()).await;
        assert_eq!(took.unwrap(), Published::TookOver);
        assert!(matches!(
            next(&mut f),
            ServerFrame::Error {
                code: ErrorCode::Replaced,
                ..
            }
        ));
        assert!(!broker.unpublish(cam(), 1, CloseReason::PublisherLost).await);
        assert_eq!(broker.counts().live, 1);
    }

    #[tokio::test]
    async fn a_slow_viewer_is_dropped_and_others_keep_receiving() {
        let broker = LocalBroker::new(10);
        let (slow, _s) = peer(1, 1);
        let (fast, mut f) = peer(2, 8);
        let (publisher, _p) = peer(3, 8);
        broker.view(cam(), slow).await.unwrap();
        broker.view(cam(), fast).await.unwrap();
        broker
            .publish(cam(), publisher, Details::default())
            .await
            .unwrap();
        assert_eq!(broker.counts().views, 1);
        next(&mut f);
        assert!(matches!(next(&mut f), ServerFrame::Publish { .. }));
    }

    #[tokio::test]
    async fn the_number_of_streams_is_bounded() {
        let broker = LocalBroker::new(1);
        let (viewer, _v) = peer(1, 8);
        broker.view(cam(), viewer.clone()).await.unwrap();
        let other = StreamName::new("other").unwrap();
        let refused = broker.view(other, viewer).await;
        assert_eq!(refused, Err(BrokerError::TooManyStreams(1)));
    }
}
