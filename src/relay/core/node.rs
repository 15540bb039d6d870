//! [`Node`]: one relay node's stream table — which streams are live, with which details, who
//! publishes and who views each — and its rules, as a plain value (the
//! [`LocalBroker`](crate::relay::LocalBroker) puts it behind a mutex).
//!
//! The node's output is frames queued in each stream's [`Outbox`], each serialized once, for
//! a copy-on-write snapshot of the stream's viewers: under the caller's lock a publish costs
//! the same for one viewer or ten thousand. [`Node::take_deliveries`] hands the outboxes to
//! the caller, which delivers them once its locks are released ([`fanout`](crate::relay::fanout)).
//! Delivery never waits: each frame is written to the viewer's socket at once, or waits in its
//! bounded queue while the socket is full; a viewer whose queue is full is kicked (it ends and
//! unviews), never buffered for.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use crate::relay::broker::{BrokerCounts, BrokerError, Frame, Peer, Published};
use crate::relay::fanout::{Deliveries, Outbox, Viewers};
use crate::relay::protocol::{CloseReason, Details, ErrorCode, ServerFrame, StreamName};

/// The stream table of one node.
///
/// Rules: a stream entry exists while a publisher holds it or a viewer views it, and at most
/// `max_streams` at once (a new one beyond is refused `too_many_streams`); a stream has at most
/// one publisher, a new one takes over and the old one is told `replaced`; a view gets a
/// `snapshot` and then every later event, in order (both go through the stream's outbox).
///
/// After each call that may queue frames (`publish`, `unpublish`, `view`), the caller takes
/// [`take_deliveries`](Node::take_deliveries) and delivers them with no lock held.
#[derive(Debug)]
pub(crate) struct Node {
    topics: HashMap<StreamName, Topic>,
    max_streams: usize,
    deliveries: Deliveries,
}

#[derive(Debug, Default)]
struct Topic {
    live: Option<Live>,
    /// Copy-on-write: a fan-out in flight holds a clone of the `Arc`; a join or leave while
    /// one is in flight copies the map, otherwise it changes in place.
    viewers: Arc<Viewers>,
    outbox: Arc<Outbox>,
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

    /// Queues `frame` for the viewers there are now: O(1), whatever their number.
    fn fan_out(&self, frame: &ServerFrame, deliveries: &mut Deliveries) {
        self.outbox.to_viewers(serialize(frame), &self.viewers);
        deliveries.push(&self.outbox);
    }

    /// Queues `frame` for `peer` alone, in order with the stream's other frames.
    fn send(&self, frame: &ServerFrame, peer: Peer, deliveries: &mut Deliveries) {
        self.outbox.to_one(serialize(frame), peer);
        deliveries.push(&self.outbox);
    }
}

/// The topic of `stream` in `topics`, created if there is room for `max_streams`.
fn topic(
    topics: &mut HashMap<StreamName, Topic>,
    max_streams: usize,
    stream: StreamName,
) -> Result<&mut Topic, BrokerError> {
    let full = topics.len() >= max_streams;
    match topics.entry(stream) {
        Entry::Occupied(topic) => Ok(topic.into_mut()),
        Entry::Vacant(_) if full => Err(BrokerError::TooManyStreams(max_streams)),
        Entry::Vacant(slot) => Ok(slot.insert(Topic::default())),
    }
}

/// The one serialization of a frame, whoever gets it.
fn serialize(frame: &ServerFrame) -> Frame {
    Frame::from(frame.to_text())
}

impl Node {
    /// A node that tracks at most `max_streams` streams at once.
    pub(crate) fn new(max_streams: usize) -> Self {
        Node {
            topics: HashMap::new(),
            max_streams,
            deliveries: Deliveries::default(),
        }
    }

    /// The outboxes that got frames since the last call: deliver them once the lock on this
    /// node (and any other) is released.
    pub(crate) fn take_deliveries(&mut self) -> Deliveries {
        std::mem::take(&mut self.deliveries)
    }

    /// Whether a view or publish of `stream` would find room now: it has an entry, or there is
    /// room for one. A multi-node broker asks before it subscribes to anything.
    #[cfg_attr(not(feature = "relay-redis"), allow(dead_code))]
    pub(crate) fn room_for(&self, stream: &StreamName) -> Result<(), BrokerError> {
        if self.topics.contains_key(stream) || self.topics.len() < self.max_streams {
            Ok(())
        } else {
            Err(BrokerError::TooManyStreams(self.max_streams))
        }
    }

    /// `publisher` announces `details` for `stream`: its viewers get `publish`, or `update`
    /// from the same publisher; another publisher is told `replaced`.
    pub(crate) fn publish(
        &mut self,
        stream: StreamName,
        publisher: Peer,
        details: Details,
    ) -> Result<Published, BrokerError> {
        let deliveries = &mut self.deliveries;
        let topic = topic(&mut self.topics, self.max_streams, stream.clone())?;
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
                topic.send(&replaced, live.publisher.clone(), deliveries);
                Published::TookOver
            }
            None => Published::New,
        };
        let event = match published {
            Published::Updated => ServerFrame::Update {
                stream,
                details: details.clone(),
            },
            _ => ServerFrame::Publish {
                stream,
                details: details.clone(),
            },
        };
        topic.live = Some(Live { publisher, details });
        topic.fan_out(&event, deliveries);
        Ok(published)
    }

    /// The publisher with id `publisher` is done with `stream`: its viewers get `close` with
    /// `reason`. Returns whether it held the stream (another's unpublish changes nothing).
    pub(crate) fn unpublish(
        &mut self,
        stream: &StreamName,
        publisher: u64,
        reason: CloseReason,
    ) -> bool {
        let Some(topic) = self.topics.get_mut(stream) else {
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
        topic.fan_out(&close, &mut self.deliveries);
        if topic.is_empty() {
            self.topics.remove(stream);
        }
        true
    }

    /// `viewer` follows `stream`: a `snapshot` now, events after. A viewer whose queue is
    /// already full is kicked by the snapshot's delivery and forgotten when it unviews.
    pub(crate) fn view(&mut self, stream: StreamName, viewer: Peer) -> Result<(), BrokerError> {
        let deliveries = &mut self.deliveries;
        let topic = topic(&mut self.topics, self.max_streams, stream.clone())?;
        let details = topic.live.as_ref().map(|live| live.details.clone());
        let snapshot = ServerFrame::Snapshot {
            stream,
            live: details.is_some(),
            details,
        };
        // Behind the frames already queued for the stream, none of which it gets: the
        // snapshot says what they said.
        topic.send(&snapshot, viewer.clone(), deliveries);
        Arc::make_mut(&mut topic.viewers).insert(viewer.id(), viewer);
        Ok(())
    }

    /// The viewer with id `viewer` stops following `stream`; an empty entry is forgotten.
    pub(crate) fn unview(&mut self, stream: &StreamName, viewer: u64) {
        if let Some(topic) = self.topics.get_mut(stream) {
            if topic.viewers.contains_key(&viewer) {
                Arc::make_mut(&mut topic.viewers).remove(&viewer);
            }
            if topic.is_empty() {
                self.topics.remove(stream);
            }
        }
    }

    /// What the table holds.
    pub(crate) fn counts(&self) -> BrokerCounts {
        BrokerCounts {
            streams: self.topics.len(),
            live: self.topics.values().filter(|t| t.live.is_some()).count(),
            views: self.topics.values().map(|t| t.viewers.len()).sum(),
            ..BrokerCounts::default()
        }
    }
}
