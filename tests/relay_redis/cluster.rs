//! A real `redis-server` per test (spawned on a free port, killed on drop), relay nodes with a
//! `RedisBroker` (in process, or the `relive-relay` binary as a child process), and viewers.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use relive::relay::{
    Broker, Details, RedisBroker, RedisConfig, RelayClient, RelayConfig, RelayEvent, RelayServer,
    StreamName,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};

pub const TOKEN: &str = "cam-token";
pub use crate::support::{PATIENCE, cam, details};
/// Short so that the dead-node test is quick; the defaults are 5 s and 1 s.
pub const TTL: Duration = Duration::from_millis(1500);
pub const HEARTBEAT: Duration = Duration::from_millis(300);

/// A `redis-server` child process without persistence; killed when dropped.
pub struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    pub async fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Redis::start_on(port).await
    }

    /// Starts on `port` and returns once it answers `PING`.
    pub async fn start_on(port: u16) -> Redis {
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(error) => panic!(
                "cannot start redis-server ({error}): these tests need it installed — \
                 apt-get update && apt-get install -y redis-server"
            ),
        };
        let redis = Redis { child, port };
        redis.wait_ready().await;
        redis
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(mut socket) = TcpStream::connect(("127.0.0.1", self.port)).await {
                let mut pong = [0u8; 7];
                let asked = socket.write_all(b"PING\r\n").await.is_ok();
                if asked && socket.read_exact(&mut pong).await.is_ok() && &pong == b"+PONG\r\n" {
                    return;
                }
            }
            // The server is starting: nothing to wait on but its port.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server on port {} did not answer PING", self.port);
    }

    /// `PTTL key`: the key's time to live in ms; negative when it has none or is gone.
    pub async fn pttl(&self, key: &str) -> i64 {
        let mut socket = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let command = format!("*2\r\n$4\r\nPTTL\r\n${}\r\n{key}\r\n", key.len());
        socket.write_all(command.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while !reply.ends_with(b"\r\n") {
            socket.read_exact(&mut byte).await.unwrap();
            reply.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&reply);
        text.trim()
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("PTTL answered {text:?}"))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The channels with a subscriber (`PUBSUB CHANNELS pattern`), sorted.
    pub async fn channels(&self, pattern: &str) -> Vec<String> {
        let client = redis::Client::open(self.url()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let mut channels: Vec<String> = redis::cmd("PUBSUB")
            .arg("CHANNELS")
            .arg(pattern)
            .query_async(&mut connection)
            .await
            .unwrap();
        channels.sort();
        channels
    }

    /// Subscribers of each channel (`PUBSUB NUMSUB`).
    pub async fn numsub(&self, channels: &[String]) -> Vec<u64> {
        let client = redis::Client::open(self.url()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let counts: Vec<(String, u64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channels)
            .query_async(&mut connection)
            .await
            .unwrap();
        counts.into_iter().map(|(_, n)| n).collect()
    }

    /// Waits until `PUBSUB CHANNELS pattern` is `expected`; panics with what it is after
    /// [`PATIENCE`].
    pub async fn wait_channels(&self, pattern: &str, expected: &[&str]) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.channels(pattern).await;
            if now == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "subscribed: {now:?}, expected {expected:?}"
            );
            // Polling Redis: there is no event to wait on from outside the node.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills it (SIGKILL) and waits for it to exit.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

pub fn redis_config(url: &str) -> RedisConfig {
    let mut config = RedisConfig::new(url);
    config.ttl = TTL;
    config.heartbeat = HEARTBEAT;
    config
}

/// A relay node in this process.
pub struct Node {
    pub relay: RelayServer,
    pub broker: Arc<RedisBroker>,
}

impl Node {
    pub async fn start(redis: &Redis) -> Node {
        let node = Node::start_with(&redis.url()).await;
        timeout(PATIENCE, node.broker.connected()).await.unwrap();
        node
    }

    /// A node for the Redis at `url`, without waiting for it to connect.
    pub async fn start_with(url: &str) -> Node {
        Node::start_limited(url, 1000).await
    }

    /// A node tracking at most `max_streams` streams, connected.
    pub async fn start_connected(redis: &Redis, max_streams: usize) -> Node {
        let node = Node::start_limited(&redis.url(), max_streams).await;
        timeout(PATIENCE, node.broker.connected()).await.unwrap();
        node
    }

    async fn start_limited(url: &str, max_streams: usize) -> Node {
        let broker = Arc::new(RedisBroker::start(redis_config(url), max_streams).unwrap());
        let mut config = RelayConfig::default().publish_token("cam-*", TOKEN);
        config.listen = "127.0.0.1:0".parse().unwrap();
        let shared: Arc<dyn Broker> = Arc::clone(&broker) as Arc<dyn Broker>;
        let relay = RelayServer::start_with_broker(config, shared)
            .await
            .unwrap();
        Node { relay, broker }
    }

    pub fn url(&self) -> String {
        self.relay.url()
    }

    /// The documented bound between a node's death and `close` everywhere.
    pub fn broker_config_bound(&self) -> Duration {
        redis_config("redis://127.0.0.1").close_bound()
    }
}

/// A relay node as a child process of the `relive-relay` binary: killable with SIGKILL.
pub struct ChildNode {
    pub child: Child,
    pub url: String,
}

impl ChildNode {
    pub async fn start(redis: &Redis) -> ChildNode {
        ChildNode::start_with(&["--redis", &redis.url()]).await
    }

    /// A node whose Redis flags are `redis` (`--redis URL` or `--redis-cluster URL`).
    pub async fn start_with(redis: &[&str]) -> ChildNode {
        let mut child = Command::new(env!("CARGO_BIN_EXE_relive-relay"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--publish-token",
                "cam-*=cam-token",
            ])
            .args(redis)
            .args(["--log", "warn"])
            .args(["--redis-ttl-ms", &TTL.as_millis().to_string()])
            .args(["--redis-heartbeat-ms", &HEARTBEAT.as_millis().to_string()])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = timeout(PATIENCE, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let url = line.rsplit(' ').next().unwrap().to_owned();
        assert!(url.starts_with("ws://"), "unexpected first line {line:?}");
        ChildNode { child, url }
    }
}

/// A viewer client of `stream` on the relay at `url`, past its first `Snapshot`.
pub async fn viewer(url: &str, stream: &StreamName) -> (RelayClient, Option<Details>) {
    let mut client = RelayClient::builder(url.to_owned())
        .stream(stream.clone())
        .spawn();
    match next_event(&mut client, "snapshot", |e| {
        matches!(e, RelayEvent::Snapshot { .. })
    })
    .await
    {
        RelayEvent::Snapshot { details, .. } => (client, details),
        _ => unreachable!(),
    }
}

/// The next event matching `f`; panics with what came instead after [`PATIENCE`].
pub async fn next_event(
    client: &mut RelayClient,
    what: &str,
    f: impl Fn(&RelayEvent) -> bool,
) -> RelayEvent {
    crate::support::next_relay_event(client, what, PATIENCE, f).await
}

/// Waits for a `publish` or `update` with `want`.
pub async fn live_with(client: &mut RelayClient, want: &Details) {
    next_event(client, "publish/update with the details", |e| match e {
        RelayEvent::Publish { details, .. } | RelayEvent::Update { details, .. } => details == want,
        _ => false,
    })
    .await;
}

/// Waits for a `close`.
pub async fn closed(client: &mut RelayClient) {
    next_event(client, "close", |e| matches!(e, RelayEvent::Close { .. })).await;
}
