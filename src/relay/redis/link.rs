//! The Redis task of a [`RedisBroker`](super::RedisBroker): one command connection and one
//! pub/sub connection (under Redis Cluster: one cluster connection for both, its
//! subscriptions' messages coming as RESP3 pushes), driven by one `select!` over queued
//! commands, channel messages and the heartbeat; on any failure it drops both and reconnects
//! with [`Backoff`](crate::Backoff), then re-subscribes, re-announces and re-reads everything,
//! so nothing stays stale.

use std::collections::HashSet;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection, PubSubSink, PubSubStream};
use ::redis::cluster::ClusterClientBuilder;
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use ::redis::{
    Client, Cmd, FromRedisValue, Pipeline, PushInfo, PushKind, RedisFuture, Script, Value,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::wire::{self, Pubsub, Record};
use super::{Command, Shared};
use crate::relay::protocol::StreamName;
use crate::relay::reconnect::Reconnect;
use crate::{BackoffConfig, Classify, Retry};

/// Why a connection to Redis ended.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    /// Redis answered with an error or the connection broke.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// Redis did not answer in time.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The pub/sub connection closed.
    #[error("redis pub/sub connection closed")]
    Lost,
}

impl Classify for LinkError {
    /// Redis refusing this node's credentials will refuse them again (`Never`); anything else
    /// is the network or Redis restarting (`Later`).
    fn retry(&self) -> Retry {
        match self {
            LinkError::Redis(error) if error.kind() == ::redis::ErrorKind::AuthenticationFailed => {
                Retry::Never
            }
            LinkError::Redis(_) | LinkError::Timeout(_) | LinkError::Lost => Retry::Later,
        }
    }
}

/// Reconnect delays to Redis: 100 ms doubling to 5 s, decorrelated jitter.
const REDIS_BACKOFF: BackoffConfig =
    BackoffConfig::exponential(Duration::from_millis(100), Duration::from_secs(5));
/// How long a link must stay up before the delays start over: a Redis that accepts and drops
/// at once keeps being backed off from.
const REDIS_RESET_AFTER: Duration = Duration::from_secs(10);

/// Keys read per `MGET` when checking watched streams.
const CHUNK: usize = 256;
/// Per-slot `MGET`s in flight at once under Redis Cluster.
const SLOTS_IN_FLIGHT: usize = 16;

/// The command connection: one server, or a cluster that routes each command to the shard of
/// its keys' slot (every command here names keys of one stream, so of one slot).
#[derive(Clone)]
enum Commands {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Commands::Single(c) => c.req_packed_command(cmd),
            Commands::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Commands::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Commands::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Commands::Single(c) => c.get_db(),
            Commands::Cluster(c) => c.get_db(),
        }
    }
}

/// Where subscriptions are made: a pub/sub connection, or the cluster connection (which sends
/// each `SSUBSCRIBE` to the shard of its channel's slot).
enum Subscriptions {
    Single(PubSubSink),
    Cluster(ClusterConnection, Pubsub),
}

impl Subscriptions {
    async fn subscribe(&mut self, channel: String) -> Result<(), ::redis::RedisError> {
        match self {
            Subscriptions::Single(sink) => sink.subscribe(channel).await,
            Subscriptions::Cluster(c, Pubsub::Sharded) => c.ssubscribe(channel).await,
            Subscriptions::Cluster(c, Pubsub::Classic) => c.subscribe(channel).await,
        }
    }

    async fn unsubscribe(&mut self, channel: String) -> Result<(), ::redis::RedisError> {
        match self {
            Subscriptions::Single(sink) => sink.unsubscribe(channel).await,
            Subscriptions::Cluster(c, Pubsub::Sharded) => c.sunsubscribe(channel).await,
            Subscriptions::Cluster(c, Pubsub::Classic) => c.unsubscribe(channel).await,
        }
    }
}

/// The messages of the subscriptions: a pub/sub stream, or the cluster connection's pushes
/// (bounded: beyond `queue` they are dropped and counted; the heartbeat re-reads the keys).
enum Messages {
    Single(PubSubStream),
    Cluster(mpsc::Receiver<PushInfo>),
}

/// What came on the subscriptions' connection.
enum Incoming {
    /// A message on `channel`.
    Message(String, Vec<u8>),
    /// The server ended the subscription to `channel` (its slot moved to another shard), or
    /// confirmed one this node ended.
    Unsubscribed(String),
    /// Anything else (a subscription's confirmation).
    Other,
}

impl Messages {
    /// What came next; `Err` once the connection is gone.
    async fn next(&mut self) -> Result<Incoming, LinkError> {
        let text = |v: Value| match v {
            Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
            _ => None,
        };
        match self {
            Messages::Single(stream) => match stream.next().await {
                Some(message) => Ok(Incoming::Message(
                    message.get_channel_name().to_owned(),
                    message.get_payload_bytes().to_vec(),
                )),
                None => Err(LinkError::Lost),
            },
            Messages::Cluster(pushes) => {
                let Some(PushInfo { kind, data }) = pushes.recv().await else {
                    return Err(LinkError::Lost);
                };
                let mut data = data.into_iter();
                let channel = data.next().and_then(text);
                match (kind, channel, data.next()) {
                    (PushKind::Disconnection, _, _) => Err(LinkError::Lost),
                    (
                        PushKind::Message | PushKind::SMessage,
                        Some(channel),
                        Some(Value::BulkString(payload)),
                    ) => Ok(Incoming::Message(channel, payload)),
                    (PushKind::SUnsubscribe, Some(channel), _) => {
                        Ok(Incoming::Unsubscribed(channel))
                    }
                    _ => Ok(Incoming::Other),
                }
            }
        }
    }
}

/// Runs until the broker is dropped: connect, serve, and on failure back off and reconnect.
pub(super) async fn run(shared: Arc<Shared>, client: Client, mut queue: mpsc::Receiver<Command>) {
    let seed = RandomState::new().hash_one(shared.node.as_str());
    let mut reconnect = Reconnect::new(REDIS_BACKOFF, REDIS_RESET_AFTER, seed);
    loop {
        let error = match Link::connect(&shared, &client).await {
            Ok((mut link, messages)) => {
                reconnect.connected(Instant::now().into_std());
                shared.count_connect();
                let error = link.serve(&mut queue, messages).await;
                shared.connected.send_replace(false);
                shared.count_disconnect();
                match error {
                    Some(error) => error,
                    None => return,
                }
            }
            Err(error) => error,
        };
        let Some(delay) = reconnect.failed(Instant::now().into_std(), error.retry()) else {
            tracing::error!(%error, "redis refused this node's credentials; serving local only, not retrying");
            return;
        };
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        tracing::warn!(%error, attempt = reconnect.failures(), delay_ms, "redis unavailable; serving local only");
        if !wait_draining(&mut queue, delay).await {
            return;
        }
    }
}

/// Waits `delay` while discarding commands (a reconnect re-syncs everything from the state);
/// a first viewer waiting for an answer is released at once. `false` once the broker is gone.
async fn wait_draining(queue: &mut mpsc::Receiver<Command>, delay: Duration) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return true,
            command = queue.recv() => match command {
                None => return false,
                Some(Command::Watch(_, done)) => drop(done),
                Some(_) => {}
            },
        }
    }
}

/// Bounds a Redis call, so a Redis that stopped answering counts as a failure.
async fn timed<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, ::redis::RedisError>>,
) -> Result<T, LinkError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(LinkError::Timeout(limit)),
    }
}

/// One live pair of connections.
struct Link<'a> {
    shared: &'a Shared,
    commands: Commands,
    sink: Subscriptions,
    pubsub: Pubsub,
    subscribed: HashSet<StreamName>,
    /// Until then a missing key is not taken as a dead node: after a Redis restart, owners get
    /// one TTL to re-announce.
    grace_until: Instant,
    limit: Duration,
    announce: Script,
    close: Script,
}

impl<'a> Link<'a> {
    async fn connect(
        shared: &'a Arc<Shared>,
        client: &Client,
    ) -> Result<(Link<'a>, Messages), LinkError> {
        let limit = shared.config.ttl / 2;
        let (commands, sink, messages, pubsub) = if shared.config.cluster {
            Self::open_cluster(shared, limit).await?
        } else {
            let commands = timed(limit, client.get_multiplexed_async_connection()).await?;
            let (sink, messages) = timed(limit, client.get_async_pubsub()).await?.split();
            let (sink, messages) = (Subscriptions::Single(sink), Messages::Single(messages));
            (Commands::Single(commands), sink, messages, Pubsub::Classic)
        };
        let mut link = Link {
            shared,
            commands,
            sink,
            pubsub,
            subscribed: HashSet::new(),
            grace_until: Instant::now() + shared.config.ttl,
            limit,
            announce: Script::new(wire::ANNOUNCE),
            close: Script::new(wire::CLOSE),
        };
        // Under Redis Cluster, `SCRIPT LOAD` goes to every primary.
        let mut load = ::redis::cmd("SCRIPT");
        load.arg("LOAD").arg(wire::ANNOUNCE);
        let _: String = timed(limit, load.query_async(&mut link.commands)).await?;
        shared.connected.send_replace(true);
        link.resync(true).await?;
        tracing::info!(node = %shared.node, cluster = shared.config.cluster, ?pubsub, "redis connected; state re-synced");
        Ok((link, messages))
    }

    /// A cluster connection (RESP3, for the pushes of its subscriptions) and which pub/sub
    /// the servers have.
    async fn open_cluster(
        shared: &Arc<Shared>,
        limit: Duration,
    ) -> Result<(Commands, Subscriptions, Messages, Pubsub), LinkError> {
        let (pushes, messages) = mpsc::channel(shared.config.queue);
        let counts = Arc::clone(shared);
        let sender = move |push: PushInfo| {
            if pushes.try_send(push).is_err() {
                counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), std::convert::Infallible>(())
        };
        let client = ClusterClientBuilder::new([shared.config.url.expose()])
            .use_protocol(::redis::ProtocolVersion::RESP3)
            .push_sender(sender)
            .connection_timeout(limit)
            .response_timeout(limit)
            .build()?;
        let mut connection = timed(limit, client.get_async_connection()).await?;
        let mut info = ::redis::cmd("INFO");
        info.arg("server");
        let random = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
        let info = timed(limit, connection.route_command(info, random)).await?;
        let info = String::from_redis_value(info).unwrap_or_default();
        let pubsub = if wire::has_sharded_pubsub(&info) {
            Pubsub::Sharded
        } else {
            Pubsub::Classic
        };
        let sink = Subscriptions::Cluster(connection.clone(), pubsub);
        let messages = Messages::Cluster(messages);
        Ok((Commands::Cluster(connection), sink, messages, pubsub))
    }

    /// Serves until a failure (`Some`) or until the broker is gone (`None`).
    async fn serve(
        &mut self,
        queue: &mut mpsc::Receiver<Command>,
        mut messages: Messages,
    ) -> Option<LinkError> {
        let mut heartbeat = tokio::time::interval(self.shared.config.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.reset();
        loop {
            let step = tokio::select! {
                command = queue.recv() => match command {
                    Some(command) => self.handle(command).await,
                    None => return None,
                },
                incoming = messages.next() => match incoming {
                    Ok(Incoming::Message(channel, payload)) => {
                        self.on_message(&channel, &payload);
                        Ok(())
                    }
                    Ok(Incoming::Unsubscribed(channel)) => self.on_unsubscribed(&channel).await,
                    Ok(Incoming::Other) => Ok(()),
                    Err(error) => Err(error),
                },
                _ = heartbeat.tick() => self.resync(false).await,
            };
            if let Err(error) = step {
                return Some(error);
            }
        }
    }

    async fn handle(&mut self, command: Command) -> Result<(), LinkError> {
        match command {
            Command::Announce(stream) => self.announce(&stream, true).await,
            Command::Close(stream, record) => {
                self.publish_close(&stream, &record).await?;
                let mut state = self.shared.lock();
                if state.closes.get(&stream) == Some(&record) {
                    state.closes.remove(&stream);
                }
                Ok(())
            }
            Command::Watch(stream, done) => {
                self.subscribe(&stream).await?;
                self.refresh(std::slice::from_ref(&stream)).await?;
                done.send_replace(true);
                Ok(())
            }
            Command::Unwatch(stream) => {
                let watched = self.shared.lock().watched.contains_key(&stream);
                if !watched && self.subscribed.remove(&stream) {
                    let call = self.sink.unsubscribe(wire::channel(&stream));
                    timed(self.limit, call).await?;
                }
                Ok(())
            }
        }
    }

    /// A sharded subscription ended. This node removes a stream from `subscribed` before it
    /// unsubscribes, so one still there was ended by the server (its slot moved): forgotten,
    /// the next heartbeat subscribes again on the slot's new shard (and re-reads the key).
    /// The server ended a subscription this node still holds (its slot moved to another
    /// shard): subscribed again at once — the cluster connection routes it to the slot's new
    /// owner — and the stream's key read, for what was published in between.
    async fn on_unsubscribed(&mut self, channel: &str) -> Result<(), LinkError> {
        let Some(stream) = wire::stream_of_channel(channel) else {
            return Ok(());
        };
        if !self.subscribed.remove(&stream) {
            // The confirmation of an unsubscribe of ours.
            return Ok(());
        }
        let (watched, owned) = {
            let state = self.shared.lock();
            (
                state.watched.contains_key(&stream),
                state.owned.contains_key(&stream),
            )
        };
        if !watched {
            return Ok(());
        }
        tracing::info!(%stream, "sharded subscription ended by the server; resubscribing");
        self.subscribe(&stream).await?;
        if owned {
            Ok(())
        } else {
            self.refresh(std::slice::from_ref(&stream)).await
        }
    }

    fn on_message(&self, channel: &str, payload: &[u8]) {
        let Some(stream) = wire::stream_of_channel(channel) else {
            return;
        };
        match Record::parse(payload) {
            Some(record) => self.shared.apply(&stream, record),
            None => tracing::debug!(%stream, "unreadable record on channel ignored"),
        }
    }

    /// Makes Redis match this node: subscriptions = watched streams, keys of owned streams
    /// written (and announced on the channel when `announce`), keys of watched streams read.
    /// Runs on connect (`announce`) and on every heartbeat (refresh only).
    async fn resync(&mut self, announce: bool) -> Result<(), LinkError> {
        let (owned, watched) = {
            let state = self.shared.lock();
            let owned: HashSet<StreamName> = state.owned.keys().cloned().collect();
            let watched: HashSet<StreamName> = state.watched.keys().cloned().collect();
            (owned, watched)
        };
        let stale: Vec<StreamName> = self
            .subscribed
            .iter()
            .filter(|s| !watched.contains(s))
            .cloned()
            .collect();
        for stream in stale {
            self.subscribed.remove(&stream);
            timed(self.limit, self.sink.unsubscribe(wire::channel(&stream))).await?;
        }
        for stream in &watched {
            self.subscribe(stream).await?;
        }
        if announce {
            // Closes made while Redis was away first: other nodes hear `unpublished`.
            let closes: Vec<(StreamName, Record)> = {
                let state = self.shared.lock();
                state
                    .closes
                    .iter()
                    .map(|(s, r)| (s.clone(), r.clone()))
                    .collect()
            };
            for (stream, record) in closes {
                self.publish_close(&stream, &record).await?;
                let mut state = self.shared.lock();
                if state.closes.get(&stream) == Some(&record) {
                    state.closes.remove(&stream);
                }
            }
            for stream in &owned {
                self.announce(stream, true).await?;
            }
        } else {
            self.refresh_owned(&owned).await?;
        }
        let remote: Vec<StreamName> = watched.difference(&owned).cloned().collect();
        self.refresh(&remote).await
    }

    async fn subscribe(&mut self, stream: &StreamName) -> Result<(), LinkError> {
        if !self.subscribed.contains(stream) {
            timed(self.limit, self.sink.subscribe(wire::channel(stream))).await?;
            self.subscribed.insert(stream.clone());
        }
        Ok(())
    }

    /// Reads the keys of `streams` and applies them; a missing key closes a remote stream
    /// (outside the grace after a reconnect). One `MGET` per [`CHUNK`] keys; under Redis
    /// Cluster, per hash slot (a multi-key command must stay in one slot), a few at once.
    async fn refresh(&mut self, streams: &[StreamName]) -> Result<(), LinkError> {
        let expire = Instant::now() >= self.grace_until;
        let groups: Vec<Vec<StreamName>> = if self.shared.config.cluster {
            wire::by_slot(streams)
                .into_iter()
                .flat_map(|slot| slot.chunks(CHUNK).map(<[_]>::to_vec).collect::<Vec<_>>())
                .collect()
        } else {
            streams.chunks(CHUNK).map(<[_]>::to_vec).collect()
        };
        let (commands, limit) = (&self.commands, self.limit);
        let mut reads = futures::stream::iter(groups)
            .map(|group| {
                let mut commands = commands.clone();
                async move {
                    let keys: Vec<String> = group.iter().map(wire::live_key).collect();
                    let mut mget = ::redis::cmd("MGET");
                    mget.arg(&keys);
                    let call = mget.query_async::<Vec<Option<Vec<u8>>>>(&mut commands);
                    timed(limit, call).await.map(|values| (group, values))
                }
            })
            .buffered(if self.shared.config.cluster {
                SLOTS_IN_FLIGHT
            } else {
                1
            });
        while let Some(read) = reads.next().await {
            let (chunk, values) = read?;
            for (stream, value) in chunk.iter().zip(values) {
                match value.as_deref().and_then(Record::parse) {
                    Some(record) => self.shared.apply(stream, record),
                    None if expire => self.shared.apply_missing(stream),
                    None => {}
                }
            }
        }
        Ok(())
    }

    /// Writes an owned stream's key (taking a fencing epoch first if it has none) and, when
    /// `publish`, its event. A higher epoch in Redis means another node's publisher won.
    async fn announce(&mut self, stream: &StreamName, publish: bool) -> Result<(), LinkError> {
        let Some(owned) = self.shared.lock().owned.get(stream).cloned() else {
            return Ok(());
        };
        let epoch = match owned.epoch {
            Some(epoch) => epoch,
            None => {
                let mut incr = ::redis::cmd("INCR");
                incr.arg(wire::epoch_key(stream));
                let call = incr.query_async::<u64>(&mut self.commands);
                let epoch = timed(self.limit, call).await?;
                let mut state = self.shared.lock();
                match state.owned.get_mut(stream) {
                    Some(now) if now.publisher == owned.publisher => now.epoch = Some(epoch),
                    _ => return Ok(()),
                }
                epoch
            }
        };
        let record = self.record(epoch, &owned);
        let ttl_ms = u64::try_from(self.shared.config.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut script = self.announce.key(wire::live_key(stream));
        script
            .key(wire::epoch_key(stream))
            .key(wire::channel(stream));
        script
            .arg(epoch)
            .arg(record.to_json())
            .arg(ttl_ms)
            .arg(u8::from(publish))
            .arg(self.pubsub.publish());
        let held: u64 = timed(self.limit, script.invoke_async(&mut self.commands)).await?;
        if held > epoch {
            self.take_over(stream).await?;
        }
        Ok(())
    }

    /// The heartbeat: rewrites the keys of owned streams (refreshing their TTL), pipelined,
    /// one round trip per [`CHUNK`] streams. A stream without an epoch yet is announced.
    async fn refresh_owned(&mut self, owned: &HashSet<StreamName>) -> Result<(), LinkError> {
        let mut records = Vec::with_capacity(owned.len());
        let mut unannounced = Vec::new();
        {
            let state = self.shared.lock();
            for (stream, mine) in owned.iter().filter_map(|s| Some((s, state.owned.get(s)?))) {
                match mine.epoch {
                    Some(epoch) => records.push((stream.clone(), self.record(epoch, mine))),
                    None => unannounced.push(stream.clone()),
                }
            }
        }
        for stream in &unannounced {
            self.announce(stream, true).await?;
        }
        let ttl_ms = u64::try_from(self.shared.config.ttl.as_millis()).unwrap_or(u64::MAX);
        for chunk in records.chunks(CHUNK) {
            let mut pipe = ::redis::pipe();
            for (stream, record) in chunk {
                pipe.cmd("EVALSHA").arg(self.announce.get_hash()).arg(3);
                pipe.arg(wire::live_key(stream))
                    .arg(wire::epoch_key(stream));
                pipe.arg(wire::channel(stream))
                    .arg(record.epoch)
                    .arg(record.to_json());
                pipe.arg(ttl_ms).arg(0).arg(self.pubsub.publish());
            }
            let call = pipe.query_async::<Vec<u64>>(&mut self.commands);
            let held = timed(self.limit, call).await?;
            for ((stream, record), held) in chunk.iter().zip(held) {
                if held > record.epoch {
                    self.take_over(stream).await?;
                }
            }
        }
        Ok(())
    }

    fn record(&self, epoch: u64, owned: &super::Owned) -> Record {
        Record {
            epoch,
            seq: owned.seq,
            node: self.shared.node.clone(),
            details: Some(owned.details.clone()),
            reason: None,
        }
    }

    /// Another node's publisher holds `stream`: apply its record, which replaces ours here.
    async fn take_over(&mut self, stream: &StreamName) -> Result<(), LinkError> {
        let mut get = ::redis::cmd("GET");
        get.arg(wire::live_key(stream));
        let call = get.query_async::<Option<Vec<u8>>>(&mut self.commands);
        if let Some(record) = timed(self.limit, call)
            .await?
            .as_deref()
            .and_then(Record::parse)
        {
            self.shared.apply(stream, record);
        }
        Ok(())
    }

    async fn publish_close(
        &mut self,
        stream: &StreamName,
        record: &Record,
    ) -> Result<(), LinkError> {
        let ttl_ms = u64::try_from(self.shared.config.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut script = self.close.key(wire::live_key(stream));
        script.key(wire::channel(stream));
        script
            .arg(record.epoch)
            .arg(record.to_json())
            .arg(ttl_ms)
            .arg(self.pubsub.publish());
        let _: u64 = timed(self.limit, script.invoke_async(&mut self.commands)).await?;
        Ok(())
    }
}
