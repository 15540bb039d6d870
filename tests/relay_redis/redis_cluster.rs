//! Relay nodes on a real three-shard Redis Cluster (three `redis-server --cluster-enabled yes`
//! processes on free loopback ports, joined by `redis-cli --cluster create`): a stream whose
//! slot is on the third shard reaches a viewer on another relay node through sharded pub/sub,
//! and neither a refused nor an ended view leaves an `SSUBSCRIBE` behind on any shard.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use relive::relay::{
    Broker, ErrorCode, RedisBroker, RedisConfig, RelayClient, RelayConfig, RelayEvent,
    RelayPublisher, RelayServer, StreamName,
};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};

use crate::cluster::{
    ChildNode, HEARTBEAT, PATIENCE, TOKEN, TTL, cam, details, live_with, next_event, viewer,
};

/// The slots `redis-cli --cluster create` gives the third of three primaries.
const THIRD_SHARD: std::ops::RangeInclusive<u64> = 10923..=16383;

/// Three primaries, no replicas, all slots covered; the processes are killed and their
/// directory removed when dropped.
struct RedisCluster {
    shards: Vec<Child>,
    ports: Vec<u16>,
    dir: PathBuf,
}

async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

impl RedisCluster {
    async fn start() -> RedisCluster {
        let first = free_port().await;
        let dir = std::env::temp_dir().join(format!("relive-redis-cluster-{first}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = RedisCluster {
            shards: Vec::new(),
            ports: Vec::new(),
            dir,
        };
        for i in 0..3 {
            let port = if i == 0 { first } else { free_port().await };
            // The cluster bus on its own free port: `port + 10000` may be out of range.
            let bus = free_port().await;
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus.to_string(),
                ])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .arg("--dir")
                .arg(&cluster.dir)
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("redis-server (apt-get install -y redis-server)");
            cluster.shards.push(child);
            cluster.ports.push(port);
        }
        for port in &cluster.ports {
            cluster.wait_answering(*port).await;
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(created.success(), "redis-cli --cluster create failed");
        for port in cluster.ports.clone() {
            cluster.wait_state_ok(port).await;
        }
        cluster
    }

    fn url(&self, shard: usize) -> String {
        format!("redis://127.0.0.1:{}", self.ports[shard])
    }

    async fn connection(&self, port: u16) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }

    async fn wait_answering(&self, port: u16) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
            if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                let pong: Result<String, _> = redis::cmd("PING").query_async(&mut c).await;
                if pong.is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} never answered"
            );
            // The server is starting: nothing to wait on but its port.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `CLUSTER INFO` on `port` says `cluster_state:ok`.
    async fn wait_state_ok(&self, port: u16) {
        let deadline = Instant::now() + PATIENCE;
        let mut connection = self.connection(port).await;
        loop {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut connection)
                .await
                .unwrap();
            if info.contains("cluster_state:ok") {
                return;
            }
            assert!(Instant::now() < deadline, "cluster on {port}: {info}");
            // Gossip converging: polled, there is no event to wait on.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `CLUSTER KEYSLOT key`.
    async fn slot(&self, key: &str) -> u64 {
        let mut connection = self.connection(self.ports[0]).await;
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut connection)
            .await
            .unwrap()
    }

    /// The sharded channels with a subscriber on each shard (`PUBSUB SHARDCHANNELS`), sorted.
    async fn shard_channels(&self) -> Vec<Vec<String>> {
        let mut all = Vec::new();
        for port in &self.ports {
            let mut connection = self.connection(*port).await;
            let mut channels: Vec<String> = redis::cmd("PUBSUB")
                .arg("SHARDCHANNELS")
                .arg("relive:*")
                .query_async(&mut connection)
                .await
                .unwrap();
            channels.sort();
            all.push(channels);
        }
        all
    }

    /// Waits until the shards' sharded channels are `expected` (one list per shard).
    async fn wait_shard_channels(&self, expected: &[Vec<String>]) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.shard_channels().await;
            if now == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sharded channels: {now:?}, expected {expected:?}"
            );
            // Polling Redis: there is no event to wait on from outside the node.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for shard in &mut self.shards {
            let _ = shard.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A relay node on the cluster, seeded with one shard's address.
async fn node(seed: &str, max_streams: usize) -> (RelayServer, Arc<RedisBroker>) {
    node_with(seed, max_streams, TTL, HEARTBEAT).await
}

/// [`node`] with its own key TTL and heartbeat.
async fn node_with(
    seed: &str,
    max_streams: usize,
    ttl: Duration,
    heartbeat: Duration,
) -> (RelayServer, Arc<RedisBroker>) {
    let mut redis = RedisConfig::cluster(seed);
    redis.ttl = ttl;
    redis.heartbeat = heartbeat;
    let broker = Arc::new(RedisBroker::start(redis, max_streams).unwrap());
    timeout(PATIENCE, broker.connected()).await.unwrap();
    let mut config = RelayConfig::default().publish_token("cam-*", TOKEN);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let shared: Arc<dyn Broker> = Arc::clone(&broker) as Arc<dyn Broker>;
    let relay = RelayServer::start_with_broker(config, shared)
        .await
        .unwrap();
    (relay, broker)
}

/// The first `cam-N` whose keys hash to a slot of the third shard.
async fn stream_on_third_shard(cluster: &RedisCluster, from: u32) -> StreamName {
    for n in from.. {
        let slot = cluster.slot(&format!("relive:{{cam-{n}}}:live")).await;
        if THIRD_SHARD.contains(&slot) {
            return cam(n);
        }
    }
    unreachable!()
}

#[tokio::test]
async fn a_stream_on_the_third_shard_reaches_a_viewer_on_another_node_and_views_leave_no_ssubscribe()
 {
    let cluster = RedisCluster::start().await;
    let stream = stream_on_third_shard(&cluster, 1).await;
    let channel = format!("relive:{{{stream}}}:events");
    // A seeded with the first shard, B with the second: neither talks to the third directly.
    let (a, _a_broker) = node(&cluster.url(0), 1000).await;
    let (b, _b_broker) = node(&cluster.url(1), 1).await;

    // On B (max_streams 1): the stream is viewed, a second one refused.
    let other = cam(1_000);
    let mut viewer = RelayClient::builder(b.url())
        .stream(stream.clone())
        .stream(other)
        .spawn();
    let (mut snapshots, mut refused) = (0, 0);
    while snapshots + refused < 2 {
        match next_event(&mut viewer, "snapshot or refusal", |e| {
            matches!(e, RelayEvent::Snapshot { .. } | RelayEvent::Refused { .. })
        })
        .await
        {
            RelayEvent::Snapshot { stream: s, .. } => {
                assert_eq!(s, stream, "the first view fits");
                snapshots += 1;
            }
            RelayEvent::Refused { code, .. } => {
                assert_eq!(code, ErrorCode::TooManyStreams);
                refused += 1;
            }
            _ => unreachable!(),
        }
    }
    // One SSUBSCRIBE, on the shard of the stream's slot; nothing for the refused view.
    let subscribed = [vec![], vec![], vec![channel.clone()]];
    cluster.wait_shard_channels(&subscribed).await;

    let publisher = RelayPublisher::connect(&a.url(), TOKEN).await.unwrap();
    publisher
        .publish(&stream, &details("sharded"))
        .await
        .unwrap();
    live_with(&mut viewer, &details("sharded")).await;
    // The stream's key is on the third shard itself (another shard would answer MOVED).
    let mut third = cluster.connection(cluster.ports[2]).await;
    let key: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("relive:{{{stream}}}:live"))
        .query_async(&mut third)
        .await
        .unwrap();
    assert!(key.is_some(), "the live key is on the third shard");

    publisher.close(&stream).await.unwrap();
    next_event(&mut viewer, "close", |e| {
        matches!(e, RelayEvent::Close { .. })
    })
    .await;
    // The view ends: its SSUBSCRIBE goes with it.
    drop(viewer);
    cluster.wait_shard_channels(&[vec![], vec![], vec![]]).await;
    assert_eq!(b.health().broker.streams, 0);
}

/// The binary's `--redis-cluster` flag: a publisher on a `relive-relay` child process seeded
/// with the third shard reaches a viewer on a node seeded with the first.
#[tokio::test]
async fn the_binary_joins_a_cluster_with_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let stream = stream_on_third_shard(&cluster, 1).await;
    let child = ChildNode::start_with(&["--redis-cluster", &cluster.url(2)]).await;
    let (on_first, _broker) = node(&cluster.url(0), 1000).await;
    let (mut watching, now) = viewer(&on_first.url(), &stream).await;
    assert_eq!(now, None);
    let channel = format!("relive:{{{stream}}}:events");
    cluster
        .wait_shard_channels(&[vec![], vec![], vec![channel]])
        .await;
    let publisher = RelayPublisher::connect(&child.url, TOKEN).await.unwrap();
    publisher
        .publish(&stream, &details("from the binary"))
        .await
        .unwrap();
    live_with(&mut watching, &details("from the binary")).await;
}

impl RedisCluster {
    /// `CLUSTER MYID` of shard `i`.
    async fn id(&self, i: usize) -> String {
        let mut connection = self.connection(self.ports[i]).await;
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query_async(&mut connection)
            .await
            .unwrap()
    }

    /// Moves `slot` and its keys from shard `from` to shard `to`, as `redis-cli --cluster
    /// reshard` does: importing/migrating, `MIGRATE` of each key, then the new owner announced
    /// on every shard.
    async fn migrate_slot(&self, slot: u64, from: usize, to: usize) {
        let (source_id, target_id) = (self.id(from).await, self.id(to).await);
        let mut source = self.connection(self.ports[from]).await;
        let mut target = self.connection(self.ports[to]).await;
        let setslot = |state: &str, id: &str| {
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SETSLOT").arg(slot).arg(state).arg(id);
            cmd
        };
        let () = setslot("IMPORTING", &source_id)
            .query_async(&mut target)
            .await
            .unwrap();
        let () = setslot("MIGRATING", &target_id)
            .query_async(&mut source)
            .await
            .unwrap();
        let keys: Vec<String> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(1000)
            .query_async(&mut source)
            .await
            .unwrap();
        if !keys.is_empty() {
            let () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.ports[to])
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query_async(&mut source)
                .await
                .unwrap();
        }
        for i in [to, from]
            .into_iter()
            .chain((0..self.ports.len()).filter(|i| *i != to && *i != from))
        {
            let mut connection = self.connection(self.ports[i]).await;
            let () = setslot("NODE", &target_id)
                .query_async(&mut connection)
                .await
                .unwrap();
        }
    }
}

/// A slot that moves to another shard ends its sharded subscriptions there (Redis sends
/// `sunsubscribe`): the node subscribes again on the new owner at once — not at its next
/// heartbeat, 30 s away here — and the next publish from another node still reaches its viewer.
#[tokio::test]
async fn a_viewer_keeps_its_stream_when_the_slot_migrates_to_another_shard() {
    let cluster = RedisCluster::start().await;
    let stream = stream_on_third_shard(&cluster, 1).await;
    let channel = format!("relive:{{{stream}}}:events");
    let (a, _a_broker) = node(&cluster.url(0), 1000).await;
    let slow = Duration::from_secs(30);
    let (b, _b_broker) = node_with(&cluster.url(1), 1000, 2 * slow, slow).await;
    let (mut watching, now) = viewer(&b.url(), &stream).await;
    assert_eq!(now, None);
    cluster
        .wait_shard_channels(&[vec![], vec![], vec![channel.clone()]])
        .await;
    let publisher = RelayPublisher::connect(&a.url(), TOKEN).await.unwrap();
    publisher
        .publish(&stream, &details("before"))
        .await
        .unwrap();
    live_with(&mut watching, &details("before")).await;

    let slot = cluster.slot(&format!("relive:{{{stream}}}:live")).await;
    cluster.migrate_slot(slot, 2, 0).await;
    // The subscription follows the slot to the first shard.
    cluster
        .wait_shard_channels(&[vec![channel.clone()], vec![], vec![]])
        .await;
    publisher.publish(&stream, &details("after")).await.unwrap();
    live_with(&mut watching, &details("after")).await;
    // The key moved too: the first shard has it now.
    let mut first = cluster.connection(cluster.ports[0]).await;
    let key: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("relive:{{{stream}}}:live"))
        .query_async(&mut first)
        .await
        .unwrap();
    assert!(key.is_some(), "the live key is on the first shard");
}
