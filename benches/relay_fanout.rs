//! Relay fan-out: one publish event to N viewers on loopback (10 000 by default), and the
//! relay's memory per idle connection.
//!
//! `cargo bench --bench relay_fanout --features relay`
//! (`RELAY_FANOUT_VIEWERS=2000` for a quick run, `RELAY_FANOUT_ROUNDS=5` by default).
//!
//! The relay runs in a child process (this same binary, `RELAY_FANOUT_ROLE=server`), so that
//! its resident memory is measured alone (`/proc/<pid>/statm`) and each process stays within
//! its own open-file limit: N viewers need N descriptors on each side. No limit is raised; N is
//! cut to what the soft `RLIMIT_NOFILE` allows, and the output says so. The viewers are
//! `RelayClient`s in this process; each records when a round's event reaches it. Both
//! processes share the machine's cores, so delivery times include the clients' own work.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use relive::relay::{
    Details, RelayClient, RelayConfig, RelayEvent, RelayPublisher, RelayServer, StreamName,
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
    if std::env::var("RELAY_FANOUT_ROLE").as_deref() == Ok("server") {
        runtime.block_on(serve());
    } else {
        runtime.block_on(bench());
    }
}

/// The child: a relay whose address goes to stdout; it stops when stdin closes.
async fn serve() {
    let mut config = RelayConfig::default().publish_token("bench-*", TOKEN);
    config.listen = "127.0.0.1:0".parse().expect("an address");
    config.limits.max_connections = 100_000;
    // Every client of the bench comes from 127.0.0.1: no per-address caps.
    config.limits.max_connections_per_client = 100_000;
    config.limits.max_views_per_client = 100_000;
    config.limits.keepalive_ms = 120_000;
    config.limits.idle_timeout_ms = 600_000;
    config.limits.hello_timeout_ms = 120_000;
    let relay = RelayServer::start(config).await.expect("the relay starts");
    println!("{}", relay.url());
    let _ = std::io::stdout().flush();
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
    })
    .await;
    relay.shutdown().await;
}

/// Resident memory of `pid` in bytes, from `/proc/<pid>/statm` (pages of 4 KiB on x86-64).
fn rss(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

struct Relay {
    child: Child,
    url: String,
}

fn spawn_relay() -> Relay {
    let exe = std::env::current_exe().expect("this binary");
    let mut child = Command::new(exe)
        .env("RELAY_FANOUT_ROLE", "server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the relay child starts");
    let stdout = child.stdout.take().expect("its stdout");
    let mut url = String::new();
    BufReader::new(stdout)
        .read_line(&mut url)
        .expect("the relay's url");
    Relay {
        child,
        url: url.trim().to_owned(),
    }
}

/// CPU time (user + system) of `pid` so far, from `/proc/<pid>/stat` (clock ticks of 10 ms).
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// When each viewer got each round's event.
struct Arrivals {
    rounds: Vec<Mutex<Vec<Instant>>>,
    counts: Vec<AtomicUsize>,
    ready: AtomicUsize,
    changed: Notify,
}

/// What the rounds share.
struct Setup {
    url: String,
    pid: u32,
    stream: StreamName,
    viewers: usize,
    arrivals: Arc<Arrivals>,
}

async fn bench() {
    let wanted = common::env_usize("RELAY_FANOUT_VIEWERS", 10_000);
    let rounds = common::env_usize("RELAY_FANOUT_ROUNDS", 5);
    let limit = common::nofile_limit();
    // Each side needs one descriptor per viewer, plus some for the runtime and the publisher.
    let viewers = limit.map_or(wanted, |l| wanted.min(l.saturating_sub(200)));
    println!("open-file soft limit: {limit:?}; viewers: {viewers} (asked {wanted}); not raised");
    let mut relay = spawn_relay();
    let setup = Setup {
        url: relay.url.clone(),
        pid: relay.child.id(),
        stream: StreamName::new("bench-1").expect("a stream name"),
        viewers,
        arrivals: Arc::new(Arrivals {
            rounds: (0..rounds)
                .map(|_| Mutex::new(Vec::with_capacity(viewers)))
                .collect(),
            counts: (0..rounds).map(|_| AtomicUsize::new(0)).collect(),
            ready: AtomicUsize::new(0),
            changed: Notify::new(),
        }),
    };
    let publisher = RelayPublisher::connect(&setup.url, TOKEN)
        .await
        .expect("the publisher connects");
    let clients = connect_viewers(&setup).await;
    let (relay_cpu, client_cpu) = (cpu(setup.pid), cpu(std::process::id()));
    let mut lasts: Vec<Duration> = Vec::new();
    println!("\n| round | last delivery | p50 | p99 | max |\n|---|---|---|---|---|");
    for round in 0..rounds {
        lasts.extend(run_round(&setup, &publisher, round).await);
    }
    let deliveries = (viewers * rounds) as f64;
    let per = |d: Duration| d.as_secs_f64() * 1e6 / deliveries;
    println!(
        "\nCPU per delivered event: relay {:.1} µs, RelayClient side {:.1} µs",
        per(cpu(setup.pid).saturating_sub(relay_cpu)),
        per(cpu(std::process::id()).saturating_sub(client_cpu)),
    );
    lasts.sort();
    if let Some(median) = lasts.get(lasts.len() / 2) {
        let median = ms(*median);
        println!("\nmedian time until the last of {viewers} viewers has the event: {median}");
    }
    for client in &clients {
        client.abort();
    }
    stop(&mut relay);
}

/// Connects the viewers in batches (the listen backlog is finite) and reports memory.
async fn connect_viewers(setup: &Setup) -> Vec<tokio::task::JoinHandle<()>> {
    let (pid, viewers) = (setup.pid, setup.viewers);
    let (rss_before, client_before) = (rss(pid), rss(std::process::id()));
    let connecting = Instant::now();
    let mut clients = Vec::with_capacity(viewers);
    while clients.len() < viewers {
        for _ in 0..BATCH.min(viewers - clients.len()) {
            let client = RelayClient::builder(setup.url.clone())
                .stream(setup.stream.clone())
                .keepalive(Duration::from_secs(120), Duration::from_secs(30))
                .spawn();
            clients.push(tokio::spawn(watch(client, Arc::clone(&setup.arrivals))));
        }
        let connected = clients.len();
        wait_for(&setup.arrivals, |a| {
            a.ready.load(Ordering::Relaxed) >= connected
        })
        .await;
    }
    let secs = connecting.elapsed().as_secs_f64();
    let (rss_idle, client_idle) = (rss(pid), rss(std::process::id()));
    let per_conn = rss_idle.saturating_sub(rss_before) as f64 / viewers as f64 / 1024.0;
    let client_per_conn =
        client_idle.saturating_sub(client_before) as f64 / viewers as f64 / 1024.0;
    println!("connected {viewers} viewers in {secs:.2} s");
    println!(
        "relay RSS: {:.1} MiB before, {:.1} MiB with {viewers} idle viewers → {per_conn:.1} KiB per connection",
        mib(rss_before),
        mib(rss_idle),
    );
    println!("client RSS per RelayClient (this process): {client_per_conn:.1} KiB");
    clients
}

/// One event to every viewer; prints its row and returns the last delivery.
async fn run_round(setup: &Setup, publisher: &RelayPublisher, round: usize) -> Option<Duration> {
    let details = Details {
        metadata: serde_json::json!({ "round": round }),
        ..Details::default()
    };
    let arrivals = &setup.arrivals;
    let sent = Instant::now();
    publisher
        .publish(&setup.stream, &details)
        .await
        .expect("publish");
    let all = wait_for(arrivals, |a| {
        a.counts[round].load(Ordering::Relaxed) >= setup.viewers
    });
    let done = tokio::time::timeout(Duration::from_secs(60), all).await;
    let got = lock(&arrivals.rounds[round]).clone();
    if done.is_err() {
        let viewers = setup.viewers;
        println!(
            "| {round} | only {} of {viewers} within 60 s | | | |",
            got.len()
        );
        return None;
    }
    let mut delays: Vec<Duration> = got.iter().map(|t| t.duration_since(sent)).collect();
    delays.sort();
    let at = |q: usize| delays[(delays.len() * q / 100).min(delays.len() - 1)];
    let last = delays[delays.len() - 1];
    let (p50, p99) = (ms(at(50)), ms(at(99)));
    println!("| {round} | {} | {p50} | {p99} | {} |", ms(last), ms(last));
    Some(last)
}

/// One viewer: counts its snapshot as ready, then records each round's event.
async fn watch(mut client: RelayClient, arrivals: Arc<Arrivals>) {
    while let Some(event) = client.next().await {
        let round = match &event {
            RelayEvent::Snapshot { .. } => {
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
        let Some(round) = round.and_then(|r| usize::try_from(r).ok()) else {
            continue;
        };
        if let Some(slot) = arrivals.rounds.get(round) {
            lock(slot).push(now);
            arrivals.counts[round].fetch_add(1, Ordering::Relaxed);
            arrivals.changed.notify_waiters();
        }
    }
}

async fn wait_for(arrivals: &Arrivals, done: impl Fn(&Arrivals) -> bool) {
    loop {
        let changed = arrivals.changed.notified();
        if done(arrivals) {
            return;
        }
        // Created before the check: a notification in between is not lost.
        changed.await;
    }
}

fn lock(slot: &Mutex<Vec<Instant>>) -> std::sync::MutexGuard<'_, Vec<Instant>> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn stop(relay: &mut Relay) {
    drop(relay.child.stdin.take());
    for _ in 0..50 {
        if relay.child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = relay.child.kill();
    let _ = relay.child.wait();
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
