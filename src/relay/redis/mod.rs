//! [`RedisBroker`]: several relay nodes as one relay. Redis holds what is shared — each live
//! stream's current state under a key with a TTL, its events on a channel — and each node keeps
//! its own [`LocalBroker`] to fan frames out to its own connections.
//!
//! - The node of a publisher writes the stream's key (refreshed every `heartbeat`, expiring
//!   after `ttl`) and publishes `publish`/`update`/`close` on the stream's channel.
//! - A node subscribes to a stream's channel while it has viewers of it, then reads the key: a
//!   late viewer gets the current details. Events and keys carry a [`Version`](wire::Version)
//!   (fencing epoch, sequence) so nothing older than what a node applied is applied again.
//! - Every `heartbeat`, a node also reads the keys of the streams it watches: a key gone means
//!   its publisher's node died (or lost Redis) and the stream is closed for local viewers —
//!   within `ttl + heartbeat` of the last refresh.
//! - Two publishers on two nodes: the last one wins. Each new publisher takes a fencing epoch
//!   with `INCR`; a write with a lower epoch than the key's is refused atomically (Lua), and the
//!   node that lost tells its publisher `replaced`.

mod config;
mod link;
mod wire;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::relay::broker::{Broker, BrokerCounts, BrokerError, Peer, Published};
use crate::relay::fanout::Deliveries;
use crate::relay::local::LocalBroker;
use crate::relay::outlet::Outlet;
use crate::relay::protocol::{CloseReason, Details, StreamName};
pub use config::{RedisConfig, RedisError};
use wire::{Record, Version};

/// A [`Broker`] for a group of relay nodes that share stream state through Redis.
///
/// Local viewers are served by an inner [`LocalBroker`]; this broker decides what reaches it
/// from other nodes. A background task holds the Redis connections and reconnects with
/// [`Backoff`](crate::Backoff); while Redis is away, local publishers and viewers keep working,
/// and on return the node re-subscribes, re-announces what it owns and re-reads what it
/// watches. Dropping the broker stops the task.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use relive::relay::{RedisBroker, RedisConfig, RelayConfig, RelayServer};
///
/// let config = RelayConfig::default().publish_token("cam-*", "s3cret");
/// let broker = RedisBroker::start(RedisConfig::new("redis://127.0.0.1:6379"), 10_000)?;
/// let relay = RelayServer::start_with_broker(config, Arc::new(broker)).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisBroker {
    shared: Arc<Shared>,
    link: JoinHandle<()>,
}

/// What the broker's methods and its Redis task share.
#[derive(Debug)]
struct Shared {
    config: RedisConfig,
    node: String,
    local: LocalBroker,
    state: Mutex<State>,
    commands: mpsc::Sender<Command>,
    /// Whether both Redis connections are up.
    connected: watch::Sender<bool>,
    dropped: AtomicU64,
    /// Times the Redis connections were lost, and were made (the first one is no reconnect).
    disconnects: AtomicU64,
    connects: AtomicU64,
}

/// Cross-node state of this node. Lock order: `state`, then the local broker's table.
#[derive(Debug, Default)]
struct State {
    /// Streams whose publisher is connected here.
    owned: HashMap<StreamName, Owned>,
    /// Closes of owned streams not yet written to Redis (it was away, or the command is
    /// queued): replayed on reconnect, so other nodes hear `unpublished`, not a TTL's
    /// `publisher_lost`. At most one per stream, and at most `queue` in all.
    closes: HashMap<StreamName, Record>,
    /// Streams viewed here: the local viewers and the newest version applied from Redis.
    watched: HashMap<StreamName, Watched>,
}

#[derive(Clone, Debug)]
struct Owned {
    publisher: u64,
    details: Details,
    /// `None` until Redis handed out a fencing epoch.
    epoch: Option<u64>,
    seq: u64,
}

#[derive(Debug, Default)]
struct Watched {
    viewers: HashSet<u64>,
    seen: Option<Version>,
    /// `true` once the Redis task subscribed and read the key; viewers that arrive before
    /// wait on it, so their snapshot has the stream's current details.
    ready: Option<watch::Receiver<bool>>,
}

/// Work for the Redis task, in order.
#[derive(Debug)]
enum Command {
    /// Write the owned stream's state (taking an epoch first if needed) and publish it.
    Announce(StreamName),
    /// Publish a close of our epoch and delete the key if it is still ours.
    Close(StreamName, Record),
    /// Subscribe, read the key, apply it, then send `true`.
    Watch(StreamName, watch::Sender<bool>),
    /// Unsubscribe if nobody here views the stream any more.
    Unwatch(StreamName),
}

/// Connection ids of remote publishers in the local table: the high bit and the epoch, so a
/// new epoch is a new publisher (viewers get `publish`) and the same one an `update`.
const REMOTE: u64 = 1 << 63;

fn remote_peer(epoch: u64) -> Peer {
    // Its outlet is closed: the `replaced` error a remote publisher may get goes nowhere.
    Peer::new(REMOTE | epoch, Arc::new(Outlet::closed()))
}

impl RedisBroker {
    /// Starts the broker and its Redis task (it connects in the background; Redis may be
    /// down at first). `max_streams` bounds the streams this node tracks.
    pub fn start(config: RedisConfig, max_streams: usize) -> Result<RedisBroker, RedisError> {
        config.check()?;
        let client = ::redis::Client::open(config.url.expose()).map_err(|_| RedisError::Url)?;
        let (commands, queue) = mpsc::channel(config.queue);
        let node = format!("{:016x}", RandomState::new().hash_one(std::process::id()));
        let shared = Arc::new(Shared {
            config,
            node,
            local: LocalBroker::new(max_streams),
            state: Mutex::new(State::default()),
            commands,
            connected: watch::Sender::new(false),
            dropped: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            connects: AtomicU64::new(0),
        });
        let link = tokio::spawn(link::run(Arc::clone(&shared), client, queue));
        Ok(RedisBroker { shared, link })
    }

    /// This node's id in Redis records.
    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// Whether the Redis connections are up now.
    pub fn is_connected(&self) -> bool {
        *self.shared.connected.borrow()
    }

    /// Resolves once the Redis connections are up (at once if they are), for tests and
    /// readiness checks.
    pub async fn connected(&self) {
        let mut connected = self.shared.connected.subscribe();
        // The sender lives in `self`: it cannot be dropped while this waits.
        let _ = connected.wait_for(|up| *up).await;
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        self.link.abort();
    }
}

impl Shared {
    /// The Redis connections are up (again): counted for `/metrics`.
    fn count_connect(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
    }

    /// The Redis connections were lost: counted for `/metrics`.
    fn count_disconnect(&self) {
        self.disconnects.fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a few inserts or removes; a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `command` for the Redis task without waiting; a full queue drops and counts it.
    fn send(&self, command: Command) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.commands.try_send(command) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "redis queue full: command dropped");
            }
        }
    }

    fn publish_now(
        &self,
        stream: StreamName,
        publisher: Peer,
        details: Details,
    ) -> Result<Published, BrokerError> {
        let id = publisher.id();
        // Before the guard: delivered after it is released, on every way out.
        let mut out = Deliveries::default();
        let mut state = self.lock();
        let published =
            self.local
                .publish_now(stream.clone(), publisher, details.clone(), &mut out)?;
        match state.owned.get_mut(&stream) {
            Some(owned) if owned.publisher == id => {
                owned.seq += 1;
                owned.details = details;
            }
            _ => {
                let owned = Owned {
                    publisher: id,
                    details,
                    epoch: None,
                    seq: 0,
                };
                state.owned.insert(stream.clone(), owned);
            }
        }
        drop(state);
        self.send(Command::Announce(stream));
        Ok(published)
    }

    fn unpublish_now(&self, stream: StreamName, publisher: u64, reason: CloseReason) -> bool {
        let mut out = Deliveries::default();
        let mut state = self.lock();
        if !self
            .local
            .unpublish_now(stream.clone(), publisher, reason, &mut out)
        {
            return false;
        }
        let owned = state.owned.remove(&stream);
        if let Some(Owned {
            epoch: Some(epoch),
            seq,
            ..
        }) = owned
        {
            let close = Record {
                epoch,
                seq: seq + 1,
                node: self.node.clone(),
                details: None,
                reason: Some(reason),
            };
            if state.closes.len() < self.config.queue || state.closes.contains_key(&stream) {
                state.closes.insert(stream.clone(), close.clone());
            } else {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            drop(state);
            self.send(Command::Close(stream, close));
        }
        true
    }

    /// Records `viewer` as watching. Returns what to wait on before its snapshot: the first
    /// viewer here asks the Redis task to subscribe and read the key (when connected), and
    /// those that arrive before that is done wait with it.
    fn watch(&self, stream: &StreamName, viewer: u64) -> Option<watch::Receiver<bool>> {
        let mut state = self.lock();
        let watched = state.watched.entry(stream.clone()).or_default();
        watched.viewers.insert(viewer);
        if let Some(ready) = &watched.ready {
            return (!*ready.borrow()).then(|| ready.clone());
        }
        if !*self.connected.borrow() {
            // The Redis task subscribes and reads the key when it is back.
            return None;
        }
        let (done, ready) = watch::channel(false);
        watched.ready = Some(ready.clone());
        self.send(Command::Watch(stream.clone(), done));
        Some(ready)
    }

    fn unview_now(&self, stream: &StreamName, viewer: u64) {
        let mut out = Deliveries::default();
        let mut state = self.lock();
        self.local.unview(stream, viewer);
        let Some(watched) = state.watched.get_mut(stream) else {
            return;
        };
        watched.viewers.remove(&viewer);
        if !watched.viewers.is_empty() {
            return;
        }
        if let Some((epoch, _)) = watched.seen {
            // Forget the remote publisher too: nobody here needs its state any more.
            let gone = CloseReason::Unpublished;
            self.local
                .unpublish_now(stream.clone(), REMOTE | epoch, gone, &mut out);
        }
        state.watched.remove(stream);
        drop(state);
        self.send(Command::Unwatch(stream.clone()));
    }

    /// Applies a record read from Redis (key or channel) to the local fan-out, if it is newer
    /// than what this node holds. Records of streams nobody here views or owns are ignored.
    fn apply(&self, stream: &StreamName, record: Record) {
        let mut out = Deliveries::default();
        let mut state = self.lock();
        let State { owned, watched, .. } = &mut *state;
        if record.node == self.node {
            return;
        }
        let mut replaced = false;
        if let Some(mine) = owned.get(stream) {
            match mine.epoch {
                Some(epoch) if record.epoch > epoch && record.details.is_some() => {
                    tracing::info!(%stream, epoch, newer = record.epoch, "replaced by another node");
                    owned.remove(stream);
                    replaced = true;
                }
                // Ours is newer, or about to be (our INCR comes after theirs).
                _ => return,
            }
        }
        match watched.get_mut(stream) {
            Some(watched) if watched.seen.is_some_and(|seen| record.version() <= seen) => return,
            Some(watched) => watched.seen = Some(record.version()),
            None if !replaced => return,
            None => {}
        }
        let id = REMOTE | record.epoch;
        match (record.details, record.reason) {
            (Some(details), _) => {
                let peer = remote_peer(record.epoch);
                let published = self
                    .local
                    .publish_now(stream.clone(), peer, details, &mut out);
                if let Err(error) = published {
                    tracing::warn!(%stream, %error, "remote publish not applied");
                }
                if !watched.contains_key(stream) {
                    // Only our replaced publisher needed telling; nobody here views it.
                    let gone = CloseReason::Unpublished;
                    self.local.unpublish_now(stream.clone(), id, gone, &mut out);
                }
            }
            (None, reason) => {
                let reason = reason.unwrap_or(CloseReason::PublisherLost);
                self.local
                    .unpublish_now(stream.clone(), id, reason, &mut out);
            }
        }
    }

    /// A local view: watched (subscribed, the key read) only once the local table has room for
    /// it, and unwatched again if the table refuses it after all — so no refused view leaves a
    /// watched entry, a SUBSCRIBE or a heartbeat read behind.
    async fn view(&self, stream: StreamName, viewer: Peer) -> Result<(), BrokerError> {
        self.local.lock().room_for(&stream)?;
        let id = viewer.id();
        if let Some(mut ready) = self.watch(&stream, id) {
            // Bounded: without an answer (or with the command dropped) the viewer gets
            // what this node knows, and the Redis task applies the key when it can.
            let answered = ready.wait_for(|ready| *ready);
            let _ = tokio::time::timeout(self.config.view_wait, answered).await;
        }
        let mut out = Deliveries::default();
        let viewed = self.local.view_now(stream.clone(), viewer, &mut out);
        out.deliver();
        if viewed.is_err() {
            // The table filled while the key was read.
            self.unview_now(&stream, id);
        }
        viewed
    }

    /// The key of a watched stream is gone: its publisher's node stopped refreshing it.
    fn apply_missing(&self, stream: &StreamName) {
        let mut out = Deliveries::default();
        let mut state = self.lock();
        if state.owned.contains_key(stream) {
            return;
        }
        let seen = state.watched.get_mut(stream).and_then(|w| w.seen.take());
        if let Some((epoch, _)) = seen {
            let lost = CloseReason::PublisherLost;
            if self
                .local
                .unpublish_now(stream.clone(), REMOTE | epoch, lost, &mut out)
            {
                tracing::info!(%stream, epoch, "remote publisher expired");
            }
        }
    }
}

impl Broker for RedisBroker {
    fn publish(
        &self,
        stream: StreamName,
        publisher: Peer,
        details: Details,
    ) -> BoxFuture<'_, Result<Published, BrokerError>> {
        let result = self.shared.publish_now(stream, publisher, details);
        async move { result }.boxed()
    }

    fn unpublish(
        &self,
        stream: StreamName,
        publisher: u64,
        reason: CloseReason,
    ) -> BoxFuture<'_, bool> {
        let held = self.shared.unpublish_now(stream, publisher, reason);
        async move { held }.boxed()
    }

    fn view(&self, stream: StreamName, viewer: Peer) -> BoxFuture<'_, Result<(), BrokerError>> {
        self.shared.view(stream, viewer).boxed()
    }

    fn unview(&self, stream: &StreamName, viewer: u64) {
        self.shared.unview_now(stream, viewer);
    }

    fn counts(&self) -> BrokerCounts {
        BrokerCounts {
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            disconnects: self.shared.disconnects.load(Ordering::Relaxed),
            reconnects: (self.shared.connects.load(Ordering::Relaxed)).saturating_sub(1),
            ..self.shared.local.counts()
        }
    }
}

#[cfg(test)]
mod tests;
