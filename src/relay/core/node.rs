//! [`Node`]: one relay node's stream table — which streams are live, with which details, who
//! publishes and who views each — and its rules, as a plain value (the
//! [`LocalBroker`](crate::relay::LocalBroker) puts it behind a mutex).
//!
//! Frames go out through [`Peer::deliver`], which never waits: a viewer whose queue is full is
//! kicked and forgotten, never buffered for. Those queues are the node's output.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use crate::relay::broker::{BrokerCounts, BrokerError, Frame, Peer, Published};
use crate::relay::protocol::{CloseReason, Details, ErrorCode, ServerFrame, StreamName};

/// The stream table of one node.
///
/// Rules: a stream entry exists while a publisher holds it or a viewer views it, and at most
/// `max_streams` at once (a new one beyond is refused `too_many_streams`); a stream has at most
/// one publisher, a new one takes over and the old one is told `replaced`; a view gets a
/// `snapshot` and then every later event, in order (both are queued by the same call).
#[derive(Debug)]
pub(crate) struct Node {
    topics: HashMap<StreamName, Topic>,
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

impl Node {
    /// A node that tracks at most `max_streams` streams at once.
    pub(crate) fn new(max_streams: usize) -> Self {
        Node {
            topics: HashMap::new(),
            max_streams,
        }
    }

    /// The topic of `stream`, created if there is room.
    fn topic(&mut self, stream: StreamName) -> Result<&mut Topic, BrokerError> {
        let full = self.topics.len() >= self.max_streams;
        match self.topics.entry(stream) {
            Entry::Occupied(topic) => Ok(topic.into_mut()),
            Entry::Vacant(_) if full => Err(BrokerError::TooManyStreams(self.max_streams)),
            Entry::Vacant(slot) => Ok(slot.insert(Topic::default())),
        }
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
        let topic = self.topic(stream.clone())?;
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
                stream,
                details: details.clone(),
            },
            _ => ServerFrame::Publish {
                stream,
                details: details.clone(),
            },
        };
        topic.live = Some(Live { publisher, details });
        topic.fan_out(&frame(&event));
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
        topic.fan_out(&frame(&close));
        if topic.is_empty() {
            self.topics.remove(stream);
        }
        true
    }

    /// `viewer` follows `stream`: a `snapshot` now, events after. A viewer whose queue is
    /// already full is not kept (it was kicked).
    pub(crate) fn view(&mut self, stream: StreamName, viewer: Peer) -> Result<(), BrokerError> {
        let topic = self.topic(stream.clone())?;
        let details = topic.live.as_ref().map(|live| live.details.clone());
        let snapshot = ServerFrame::Snapshot {
            stream: stream.clone(),
            live: details.is_some(),
            details,
        };
        if viewer.deliver(&frame(&snapshot)) {
            topic.viewers.insert(viewer.id(), viewer);
        } else if topic.is_empty() {
            self.topics.remove(&stream);
        }
        Ok(())
    }

    /// The viewer with id `viewer` stops following `stream`; an empty entry is forgotten.
    pub(crate) fn unview(&mut self, stream: &StreamName, viewer: u64) {
        if let Some(topic) = self.topics.get_mut(stream) {
            topic.viewers.remove(&viewer);
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
