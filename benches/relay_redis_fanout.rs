//! Relay fan-out across three nodes sharing state through Redis, beside one in-process node:
//! one publish, time until every viewer has it (last, p50, p99), in the same run.
//!
//! `cargo bench --bench relay_redis_fanout --features relay-redis`
//! (`RELAY_REDIS_VIEWERS=1000` per node for a quick run, `RELAY_REDIS_ROUNDS=5` by default).
//!
//! Needs `redis-server` on PATH (it is spawned on a free port, without persistence). The relays
//! run in a child process (this binary, `RELAY_REDIS_ROLE=server`): the single node (a
//! `LocalBroker`) and nodes A, B, C (each a `RedisBroker`). The viewers are `RelayClient`s in
//! this process: first 3 × N on the single node, then N on each of A, B and C, with the
//! publisher on A. Both processes need one descriptor per viewer and no limit is raised, so N
//! is cut to what the soft `RLIMIT_NOFILE` allows for 3 × N, and the output says so.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use relive::relay::{
    Details, RedisBroker, RedisConfig, RelayClient, RelayConfig, RelayEvent, RelayPublisher,
    RelayServer, StreamName,
};
use tokio::sync::Notify;
use tokio::time::Instant;

const TOKEN: &str = "bench-token";
const BATCH: usize = 250;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match std::env::var("RELAY_REDIS_ROLE").as_deref() {
        Ok("server") => runtime.block_on(serve()),
        _ => runtime.block_on(bench()),
    }
}

fn relay_config() -> RelayConfig {
    let mut config = RelayConfig::default().publish_token("bench-*", TOKEN);
    config.listen = "127.0.0.1:0".parse().expect("an address");
    config.limits.max_connections = 100_000;
    // Every client of the bench comes from 127.0.0.1: no per-address caps.
    config.limits.max_connections_per_client = 100_000;
    config.limits.max_views_per_client = 100_000;
    config.limits.keepalive_ms = 120_000;
    config.limits.idle_timeout_ms = 600_000;
    config.limits.hello_timeout_ms = 120_000;
    config
}

/// The child: a single node and three Redis nodes; their URLs go to stdout, one line.
async fn serve() {
    let url = std::env::var("RELAY_REDIS_URL").expect("RELAY_REDIS_URL");
    let single = RelayServer::start(relay_config())
        .await
        .expect("single node");
    let mut urls = vec![single.url()];
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let broker =
            Arc::new(RedisBroker::start(RedisConfig::new(url.clone()), 1000).expect("broker"));
        broker.connected().await;
        let node = RelayServer::start_with_broker(relay_config(), broker)
            .await
            .expect("node");
        urls.push(node.url());
        nodes.push(node);
    }
    println!("{}", urls.join(" "));
    let _ = std::io::stdout().flush();
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
    })
    .await;
}

/// Kills its child on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_redis() -> (Guard, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server must be installed: apt-get install -y redis-server");
    // Up to 10 s for the server to open its port.
    let up = (0..500).any(|_| {
        let open = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if !open {
            std::thread::sleep(Duration::from_millis(20));
        }
        open
    });
    assert!(up, "redis-server did not start");
    (Guard(child), format!("redis://127.0.0.1:{port}"))
}

fn spawn_relays(redis: &str) -> (Guard, Vec<String>) {
    let mut child = Command::new(std::env::current_exe().expect("this binary"))
        .env("RELAY_REDIS_ROLE", "server")
        .env("RELAY_REDIS_URL", redis)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the relay child starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("urls");
    let urls = line.split_whitespace().map(str::to_owned).collect();
    (Guard(child), urls)
}

/// When each viewer got each round's event.
struct Arrivals {
    rounds: Vec<Mutex<Vec<Instant>>>,
    ready: AtomicUsize,
    changed: Notify,
}

impl Arrivals {
    fn new(rounds: usize) -> Arc<Arrivals> {
        Arc::new(Arrivals {
            rounds: (0..rounds).map(|_| Mutex::new(Vec::new())).collect(),
            ready: AtomicUsize::new(0),
            changed: Notify::new(),
        })
    }

    fn got(&self, round: usize) -> Vec<Instant> {
        self.rounds[round]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn wait(&self, done: impl Fn(&Arrivals) -> bool) {
        loop {
            let changed = self.changed.notified();
            if done(self) {
                return;
            }
            changed.await;
        }
    }
}

async fn bench() {
    let wanted = common::env_usize("RELAY_REDIS_VIEWERS", 6000);
    let rounds = common::env_usize("RELAY_REDIS_ROUNDS", 5);
    let limit = common::nofile_limit();
    let per_node = limit.map_or(wanted, |l| wanted.min(l.saturating_sub(300) / 3));
    println!(
        "open-file soft limit: {limit:?}; {per_node} viewers per node, 3 × {per_node} = {} in all (asked {wanted}); not raised",
        3 * per_node
    );
    let (_redis, redis_url) = spawn_redis();
    let (_relays, urls) = spawn_relays(&redis_url);
    let stream = StreamName::new("bench-1").expect("a name");
    println!("\n| setup | round | last delivery | p50 | p99 |\n|---|---|---|---|---|");
    let single = vec![urls[0].clone(); 3];
    let lasts_single = phase("1 node (LocalBroker)", &single, per_node, rounds, &stream).await;
    let lasts_redis = phase("3 nodes + Redis", &urls[1..], per_node, rounds, &stream).await;
    println!(
        "\nmedian time until the last of {} viewers has the event:",
        3 * per_node
    );
    println!(
        "  1 node: {}   3 nodes + Redis: {}",
        median(lasts_single),
        median(lasts_redis)
    );
}

/// `per_node` viewers on each of `nodes`, the publisher on the first; `rounds` publishes.
async fn phase(
    name: &str,
    nodes: &[String],
    per_node: usize,
    rounds: usize,
    stream: &StreamName,
) -> Vec<Duration> {
    let arrivals = Arrivals::new(rounds);
    let total = per_node * nodes.len();
    let mut clients = Vec::with_capacity(total);
    for url in nodes {
        for _ in 0..per_node {
            let client = RelayClient::builder(url.clone())
                .stream(stream.clone())
                .keepalive(Duration::from_secs(120), Duration::from_secs(30))
                .spawn();
            clients.push(tokio::spawn(watch(client, Arc::clone(&arrivals))));
            if clients.len() % BATCH == 0 {
                let n = clients.len();
                arrivals
                    .wait(|a| a.ready.load(Ordering::Relaxed) >= n)
                    .await;
            }
        }
    }
    arrivals
        .wait(|a| a.ready.load(Ordering::Relaxed) >= total)
        .await;
    let publisher = RelayPublisher::connect(&nodes[0], TOKEN)
        .await
        .expect("publisher");
    let mut lasts = Vec::new();
    for round in 0..rounds {
        let details = Details {
            metadata: serde_json::json!({ "round": round }),
            ..Details::default()
        };
        let sent = Instant::now();
        publisher.publish(stream, &details).await.expect("publish");
        let all = arrivals.wait(|a| a.got(round).len() >= total);
        if tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .is_err()
        {
            println!(
                "| {name} | {round} | only {} of {total} within 60 s | | |",
                arrivals.got(round).len()
            );
            continue;
        }
        let mut delays: Vec<Duration> = arrivals
            .got(round)
            .iter()
            .map(|t| t.duration_since(sent))
            .collect();
        delays.sort();
        let at = |q: usize| delays[(delays.len() * q / 100).min(delays.len() - 1)];
        let last = delays[delays.len() - 1];
        println!(
            "| {name} | {round} | {} | {} | {} |",
            ms(last),
            ms(at(50)),
            ms(at(99))
        );
        lasts.push(last);
    }
    publisher.close(stream).await.expect("close");
    for client in &clients {
        client.abort();
    }
    lasts
}

/// One viewer: counts its first snapshot as ready, then records each round's event.
async fn watch(mut client: RelayClient, arrivals: Arc<Arrivals>) {
    let mut ready = false;
    while let Some(event) = client.next().await {
        let round = match &event {
            RelayEvent::Snapshot { .. } if !ready => {
                ready = true;
                arrivals.ready.fetch_add(1, Ordering::Relaxed);
                arrivals.changed.notify_waiters();
                continue;
            }
            RelayEvent::Publish { details, .. } | RelayEvent::Update { details, .. } => {
                details.metadata["round"].as_u64()
            }
            _ => continue,
        };
        let now = Instant::now();
        if let Some(slot) = round.and_then(|r| arrivals.rounds.get(usize::try_from(r).ok()?)) {
            slot.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(now);
            arrivals.changed.notify_waiters();
        }
    }
}

fn median(mut lasts: Vec<Duration>) -> String {
    lasts.sort();
    lasts
        .get(lasts.len() / 2)
        .map_or_else(|| "n/a".to_owned(), |d| ms(*d))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
