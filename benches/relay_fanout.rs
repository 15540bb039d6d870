//! Relay fan-out: one publish event to N viewers on loopback (10 000 by default), the relay
//! against two other servers in the same run, and the relay's memory per idle connection.
//!
//! `cargo bench --bench relay_fanout --features relay`
//! (`RELAY_FANOUT_VIEWERS=2000` for a quick run, `RELAY_FANOUT_ROUNDS=10` by default).
//!
//! Child processes of this same binary (`RELAY_FANOUT_ROLE`), three servers pinned to CPU 0:
//! - `relay`: a [`RelayServer`];
//! - `baseline`: a minimal broadcast server for the same clients — it answers `hello` and
//!   `view`, then each `publish` is serialized once into one axum `Message` and sent through a
//!   `tokio::sync::broadcast` to every viewer's socket (clones by refcount);
//! - `floor`: the least any server can do — after the `snapshot` it keeps only the viewers'
//!   bare sockets in a list, and a `publish` is framed once and written to each of them in one
//!   loop of non-blocking writes: the kernel's cost of N writes, plus nothing.
//!
//! And one `clients` child per server, pinned to CPU 1: N viewers and a `RelayPublisher`; on
//! each `round K` line from stdin the publisher publishes, and the child prints when the event
//! reached the last viewer, p50 and p99. The viewers (`RELAY_FANOUT_VIEWER`) are `raw` by
//! default: a bare WebSocket that says `hello` and `view` and looks for the round number in
//! each text frame, so that the one core the clients have keeps up with the server and the
//! last delivery measures the server; `client` makes them `RelayClient`s (a full client
//! costs its core more per event than either server spends delivering it, so the last
//! delivery then measures the clients). A `clients` child whose viewers do not all have their
//! `snapshot` within 60 s says how many do and exits, and the bench stops with that message.
//!
//! This process only coordinates: rounds rotate between the servers (which goes first rotates
//! too), and each server's CPU time (`/proc/<pid>/task/*/schedstat`, in ns) is read around each
//! of its rounds, so the figures of all three come from the same minutes of the same machine.
//! The soft `RLIMIT_NOFILE` is raised to the hard one (children inherit it); N is cut to what
//! it allows, and the output says so.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use futures::StreamExt;
use relive::relay::protocol::{
    ClientFrame, PROTOCOL_VERSION, ServerFrame, WireLimits, parse_client_frame,
};
use relive::relay::{
    Details, RelayClient, RelayConfig, RelayEvent, RelayPublisher, RelayServer, StreamName,
};
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;

const TOKEN: &str = "bench-token";
const BATCH: usize = 250;
/// The CPU the servers run on; the clients get the other one.
const SERVER_CPU: usize = 0;
const CLIENT_CPU: usize = 1;

fn main() {
    let role = std::env::var("RELAY_FANOUT_ROLE").unwrap_or_default();
    if let Some(cpu) = std::env::var("RELAY_FANOUT_CPU")
        .ok()
        .and_then(|c| c.parse().ok())
    {
        // Before the runtime: tokio sizes its worker pool from the CPUs this process may use.
        pin_to(cpu);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match role.as_str() {
        "relay" => runtime.block_on(serve_relay()),
        "baseline" => runtime.block_on(serve_baseline()),
        "floor" => runtime.block_on(serve_floor()),
        "clients" => runtime.block_on(clients()),
        _ => coordinate(),
    }
}

/// Pins this process to `cpu` (`sched_setaffinity`); a machine without that CPU runs unpinned.
#[allow(unsafe_code)]
fn pin_to(cpu: usize) {
    // SAFETY: `set` is a plain bit set on the stack, zeroed before use, and its size is what
    // the call is told; pid 0 is this process.
    let pinned = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    if pinned != 0 {
        eprintln!(
            "could not pin to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Raises the soft open-file limit to the hard one; returns the soft limit then in force.
#[allow(unsafe_code)]
fn raise_nofile() -> Option<usize> {
    // SAFETY: `limit` is a plain struct on the stack that both calls read or fill.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    common::nofile_limit()
}

/// A server's address goes to stdout; it stops when stdin closes.
async fn until_stdin_closes(url: String) {
    println!("{url}");
    let _ = std::io::stdout().flush();
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
    })
    .await;
}

async fn serve_relay() {
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
    until_stdin_closes(relay.url()).await;
    relay.shutdown().await;
}

/// The baseline: `hello` → `welcome`, `view` → `snapshot`, and every `publish` serialized once
/// into one `Message` that a `broadcast` hands to every viewer.
async fn serve_baseline() {
    let (events, _) = broadcast::channel::<Message>(64);
    let app = axum::Router::new()
        .route(
            "/ws",
            axum::routing::get(|upgrade: WebSocketUpgrade| async move {
                // The relay's socket buffers: the defaults (128 KiB to read) cost more per
                // wake-up than the whole relay does.
                upgrade
                    .read_buffer_size(4 * 1024)
                    .write_buffer_size(0)
                    .on_upgrade(move |socket| baseline_connection(socket, events))
            }),
        )
        .into_make_service();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("ws://{}/ws", listener.local_addr().expect("its address"));
    let serve = tokio::spawn(async move { axum::serve(listener, app).await });
    until_stdin_closes(url).await;
    serve.abort();
}

async fn baseline_connection(mut socket: WebSocket, events: broadcast::Sender<Message>) {
    let text = |frame: ServerFrame| Message::Text(Utf8Bytes::from(frame.to_text()));
    let mut session = 0;
    let mut feed = None;
    while let Some(Ok(message)) = socket.recv().await {
        let Message::Text(frame) = message else {
            continue;
        };
        let reply = match parse_client_frame(frame.as_str()) {
            Ok(ClientFrame::Hello { role, .. }) => {
                session += 1;
                text(ServerFrame::Welcome {
                    v: PROTOCOL_VERSION,
                    role,
                    session,
                    limits: WireLimits::default(),
                })
            }
            Ok(ClientFrame::View { stream }) => {
                feed = Some(events.subscribe());
                text(ServerFrame::Snapshot {
                    stream,
                    live: false,
                    details: None,
                })
            }
            Ok(ClientFrame::Publish { stream, details }) => {
                let _ = events.send(text(ServerFrame::Publish { stream, details }));
                continue;
            }
            _ => continue,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
        if feed.is_some() {
            break;
        }
    }
    let Some(mut feed) = feed else { return };
    loop {
        tokio::select! {
            event = feed.recv() => match event {
                Ok(message) => if socket.send(message).await.is_err() { return },
                Err(_) => return,
            },
            message = socket.recv() => match message {
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

/// The floor: the least any WebSocket server can spend delivering an event to N sockets —
/// each connection answers `hello` and `view` (through tokio-tungstenite), then hands its
/// socket to a shared list, and each `publish` is framed once and written to every socket of
/// the list in one loop (`try_write`, no task, no queue, no WebSocket library). What it spends
/// per delivery is nearly all the kernel's TCP path over loopback.
async fn serve_floor() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("ws://{}/ws", listener.local_addr().expect("its address"));
    let viewers = Arc::new(Mutex::new(Vec::new()));
    let accept = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(floor_connection(stream, Arc::clone(&viewers)));
        }
    });
    until_stdin_closes(url).await;
    accept.abort();
}

async fn floor_connection(
    stream: tokio::net::TcpStream,
    viewers: Arc<Mutex<Vec<tokio::net::TcpStream>>>,
) {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let Ok(mut socket) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
    else {
        return;
    };
    let mut session = 0;
    while let Some(Ok(message)) = socket.next().await {
        let WsMessage::Text(frame) = message else {
            continue;
        };
        let reply = match parse_client_frame(frame.as_str()) {
            Ok(ClientFrame::Hello { role, .. }) => {
                session += 1;
                ServerFrame::Welcome {
                    v: PROTOCOL_VERSION,
                    role,
                    session,
                    limits: WireLimits::default(),
                }
            }
            Ok(ClientFrame::View { stream }) => {
                let snapshot = ServerFrame::Snapshot {
                    stream,
                    live: false,
                    details: None,
                };
                if socket
                    .send(WsMessage::text(snapshot.to_text()))
                    .await
                    .is_ok()
                {
                    lock(&viewers).push(socket.into_inner());
                }
                return;
            }
            Ok(ClientFrame::Publish { stream, details }) => {
                let wire = text_frame(&ServerFrame::Publish { stream, details }.to_text());
                let mut missed = 0;
                for viewer in lock(&viewers).iter() {
                    if !viewer.try_write(&wire).is_ok_and(|n| n == wire.len()) {
                        missed += 1;
                    }
                }
                if missed > 0 {
                    eprintln!("floor: {missed} sockets did not take the event at once");
                }
                continue;
            }
            _ => continue,
        };
        if socket.send(WsMessage::text(reply.to_text())).await.is_err() {
            return;
        }
    }
}

/// `text` as a final, unmasked WebSocket text frame (RFC 6455 §5.2).
fn text_frame(text: &str) -> Vec<u8> {
    let len = text.len();
    let mut wire = vec![0x81];
    match len {
        0..=125 => wire.push(len as u8),
        126..=65_535 => {
            wire.push(126);
            wire.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            wire.push(127);
            wire.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    wire.extend_from_slice(text.as_bytes());
    wire
}

/// A child of this binary with `role`, pinned to `cpu`; its first stdout line is read.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    first: String,
}

impl Proc {
    fn spawn(role: &str, cpu: usize, envs: &[(&str, String)]) -> Proc {
        let exe = std::env::current_exe().expect("this binary");
        let mut child = Command::new(exe)
            .env("RELAY_FANOUT_ROLE", role)
            .env("RELAY_FANOUT_CPU", cpu.to_string())
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("a child starts");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("its stdout"));
        let mut proc = Proc {
            child,
            stdin,
            stdout,
            first: String::new(),
        };
        proc.first = proc.line();
        proc
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        line.trim().to_owned()
    }

    fn tell(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }

    fn stop(&mut self) {
        drop(self.stdin.take());
        for _ in 0..50 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time of every thread of `pid` so far: the scheduler's run time in ns
/// (`/proc/<pid>/task/*/schedstat`), or user + system clock ticks where that is missing.
fn cpu(pid: u32) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"));
    let ns: Option<u64> = tasks.ok().and_then(|tasks| {
        tasks
            .filter_map(Result::ok)
            .map(|task| {
                let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
                stat.split_whitespace().next()?.parse::<u64>().ok()
            })
            .sum()
    });
    if let Some(ns) = ns {
        return Duration::from_nanos(ns);
    }
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

/// One server under test and its clients.
struct Side {
    name: &'static str,
    server: Proc,
    clients: Proc,
    cpu: Duration,
    lasts: Vec<Duration>,
    p99s: Vec<Duration>,
}

/// What a `clients` child reports for one round.
struct Round {
    last: Duration,
    p50: Duration,
    p99: Duration,
}

fn parse_round(line: &str) -> Option<Round> {
    let mut fields = line.split_whitespace().skip(2);
    let mut us = || {
        fields
            .next()?
            .parse::<u64>()
            .ok()
            .map(Duration::from_micros)
    };
    Some(Round {
        last: us()?,
        p50: us()?,
        p99: us()?,
    })
}

fn side(name: &'static str, role: &str, viewers: usize) -> Side {
    let mut server = Proc::spawn(role, SERVER_CPU, &[]);
    let before = rss(server.pid());
    let envs = [
        ("RELAY_FANOUT_URL", server.first.clone()),
        ("RELAY_FANOUT_VIEWERS", viewers.to_string()),
    ];
    let mut clients = Proc::spawn("clients", CLIENT_CPU, &envs);
    if !clients.first.starts_with("connected") {
        let first = clients.first.clone();
        clients.stop();
        server.stop();
        panic!("{name}: the viewers did not connect: {first:?}");
    }
    let per_conn = rss(server.pid()).saturating_sub(before) as f64 / viewers as f64 / 1024.0;
    println!(
        "{name}: {} ; server RSS {:.1} MiB before, {per_conn:.1} KiB per idle connection",
        clients.first,
        mib(before),
    );
    Side {
        name,
        server,
        clients,
        cpu: Duration::ZERO,
        lasts: Vec::new(),
        p99s: Vec::new(),
    }
}

fn coordinate() {
    let wanted = common::env_usize("RELAY_FANOUT_VIEWERS", 10_000);
    let rounds = common::env_usize("RELAY_FANOUT_ROUNDS", 10);
    let limit = raise_nofile();
    // Each side needs one descriptor per viewer, plus some for the runtime and the publisher.
    let viewers = limit.map_or(wanted, |l| wanted.min(l.saturating_sub(200)));
    println!(
        "open-file soft limit (raised to the hard one): {limit:?}; viewers: {viewers} (asked {wanted})"
    );
    println!("servers pinned to CPU {SERVER_CPU}, clients to CPU {CLIENT_CPU}\n");
    let mut sides = [
        side("relay", "relay", viewers),
        side("baseline", "baseline", viewers),
        side("floor", "floor", viewers),
    ];
    println!(
        "\n| round | server | last delivery | p50 | p99 | server CPU per delivery | clients CPU per delivery |"
    );
    println!("|---|---|---|---|---|---|---|");
    for round in 0..rounds {
        // Which server goes first rotates.
        let order = [round % 3, (round + 1) % 3, (round + 2) % 3];
        for i in order {
            let side = &mut sides[i];
            let before = cpu(side.server.pid());
            let clients_before = cpu(side.clients.pid());
            side.clients.tell(&format!("round {round}"));
            let line = side.clients.line();
            let spent = cpu(side.server.pid()).saturating_sub(before);
            let clients_spent = cpu(side.clients.pid()).saturating_sub(clients_before);
            side.cpu += spent;
            let per = spent.as_secs_f64() * 1e6 / viewers as f64;
            let clients_per = clients_spent.as_secs_f64() * 1e6 / viewers as f64;
            match parse_round(&line) {
                Some(r) => {
                    side.lasts.push(r.last);
                    side.p99s.push(r.p99);
                    println!(
                        "| {round} | {} | {} | {} | {} | {per:.2} µs | {clients_per:.2} µs |",
                        side.name,
                        ms(r.last),
                        ms(r.p50),
                        ms(r.p99)
                    );
                }
                None => println!(
                    "| {round} | {} | {line} | | | {per:.2} µs | {clients_per:.2} µs |",
                    side.name
                ),
            }
            // Let the sockets and both processes go quiet before the next round.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    println!("\n| server | CPU per delivery | median last delivery | median p99 | worst p99 |");
    println!("|---|---|---|---|---|");
    let mut per = [0.0; 3];
    for (i, side) in sides.iter_mut().enumerate() {
        per[i] = side.cpu.as_secs_f64() * 1e6 / (viewers * rounds) as f64;
        side.lasts.sort();
        side.p99s.sort();
        let median = |v: &[Duration]| v.get(v.len() / 2).map_or("-".to_owned(), |d| ms(*d));
        let worst = side.p99s.last().map_or("-".to_owned(), |d| ms(*d));
        println!(
            "| {} | {:.2} µs | {} | {} | {worst} |",
            side.name,
            per[i],
            median(&side.lasts),
            median(&side.p99s),
        );
    }
    println!(
        "\nrelay CPU per delivery / baseline: {:.2} (target ≤ 1.10); relay / floor: {:.2}",
        per[0] / per[1],
        per[0] / per[2]
    );
    for side in &mut sides {
        side.clients.stop();
        side.server.stop();
    }
}

/// When each viewer got each round's event.
struct Arrivals {
    round: AtomicUsize,
    got: Mutex<Vec<Instant>>,
    ready: AtomicUsize,
    changed: Notify,
}

/// A `clients` child: N viewers and a publisher against `RELAY_FANOUT_URL`; one round per
/// `round K` line on stdin, one result line per round on stdout.
async fn clients() {
    let url = std::env::var("RELAY_FANOUT_URL").expect("RELAY_FANOUT_URL");
    let viewers = common::env_usize("RELAY_FANOUT_VIEWERS", 10_000);
    let stream = StreamName::new("bench-1").expect("a stream name");
    let arrivals = Arc::new(Arrivals {
        round: AtomicUsize::new(usize::MAX),
        got: Mutex::new(Vec::with_capacity(viewers)),
        ready: AtomicUsize::new(0),
        changed: Notify::new(),
    });
    let publisher = RelayPublisher::connect(&url, TOKEN)
        .await
        .expect("the publisher connects");
    let before = rss(std::process::id());
    let connecting = Instant::now();
    let raw = std::env::var("RELAY_FANOUT_VIEWER").as_deref() != Ok("client");
    let mut tasks = Vec::with_capacity(viewers);
    while tasks.len() < viewers {
        for _ in 0..BATCH.min(viewers - tasks.len()) {
            let arrivals = Arc::clone(&arrivals);
            if raw {
                tasks.push(tokio::spawn(watch_raw(
                    url.clone(),
                    stream.clone(),
                    arrivals,
                )));
                continue;
            }
            let client = RelayClient::builder(url.clone())
                .stream(stream.clone())
                .keepalive(Duration::from_secs(120), Duration::from_secs(30))
                .spawn();
            tasks.push(tokio::spawn(watch(client, arrivals)));
        }
        let connected = tasks.len();
        if !wait_for(&arrivals, |a| a.ready.load(Ordering::Relaxed) >= connected).await {
            // A viewer that never got its snapshot: say so rather than wait for ever.
            let ready = arrivals.ready.load(Ordering::Relaxed);
            println!(
                "only {ready} of {connected} viewers had their snapshot within {} s",
                PATIENCE.as_secs()
            );
            let _ = std::io::stdout().flush();
            std::process::exit(1);
        }
    }
    let per_conn = rss(std::process::id()).saturating_sub(before) as f64 / viewers as f64 / 1024.0;
    let kind = if raw { "raw viewer" } else { "RelayClient" };
    println!(
        "connected {viewers} viewers in {:.2} s, {per_conn:.1} KiB per {kind}",
        connecting.elapsed().as_secs_f64()
    );
    let _ = std::io::stdout().flush();
    let (lines_tx, mut lines) = tokio::sync::mpsc::channel::<String>(4);
    tokio::task::spawn_blocking(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { return };
            if lines_tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        let Some(round) = line.strip_prefix("round ").and_then(|r| r.parse().ok()) else {
            continue;
        };
        println!(
            "{}",
            run_round(&arrivals, &publisher, &stream, viewers, round).await
        );
        let _ = std::io::stdout().flush();
    }
    for task in &tasks {
        task.abort();
    }
}

/// One event to every viewer: `round K <last µs> <p50 µs> <p99 µs>`, or what was missing.
async fn run_round(
    arrivals: &Arrivals,
    publisher: &RelayPublisher,
    stream: &StreamName,
    viewers: usize,
    round: usize,
) -> String {
    lock(&arrivals.got).clear();
    arrivals.round.store(round, Ordering::Relaxed);
    let details = Details {
        metadata: serde_json::json!({ "round": round }),
        ..Details::default()
    };
    let sent = Instant::now();
    publisher.publish(stream, &details).await.expect("publish");
    let done = wait_for(arrivals, |a| lock(&a.got).len() >= viewers).await;
    let got = lock(&arrivals.got).clone();
    if !done {
        return format!(
            "round {round} only {} of {viewers} within {} s",
            got.len(),
            PATIENCE.as_secs()
        );
    }
    let mut delays: Vec<Duration> = got.iter().map(|t| t.duration_since(sent)).collect();
    delays.sort();
    let at = |q: usize| delays[(delays.len() * q / 100).min(delays.len() - 1)].as_micros();
    let last = delays[delays.len() - 1].as_micros();
    format!("round {round} {last} {} {}", at(50), at(99))
}

/// One viewer: counts its snapshot as ready, then records the current round's event.
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
        let current = arrivals.round.load(Ordering::Relaxed);
        if round.and_then(|r| usize::try_from(r).ok()) == Some(current) {
            lock(&arrivals.got).push(now);
            arrivals.changed.notify_waiters();
        }
    }
}

/// One bare viewer: `hello`, `view`, then the round number of each text frame; the WebSocket
/// library answers pings. Costs its process as little as a viewer can.
async fn watch_raw(url: String, stream: StreamName, arrivals: Arc<Arrivals>) {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let connected = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true);
    let Ok((mut socket, _)) = connected.await else {
        eprintln!("a raw viewer could not connect");
        return;
    };
    let hello = r#"{"type":"hello","v":1,"role":"viewer"}"#;
    let view = format!(r#"{{"type":"view","stream":"{}"}}"#, stream.as_str());
    for frame in [hello.to_owned(), view] {
        if socket.send(WsMessage::text(frame)).await.is_err() {
            return;
        }
    }
    while let Some(Ok(message)) = socket.next().await {
        let WsMessage::Text(text) = message else {
            continue;
        };
        let text = text.as_str();
        if text.starts_with(r#"{"type":"snapshot""#) {
            arrivals.ready.fetch_add(1, Ordering::Relaxed);
            arrivals.changed.notify_waiters();
            continue;
        }
        let now = Instant::now();
        let current = arrivals.round.load(Ordering::Relaxed);
        if round_of(text) == Some(current) {
            lock(&arrivals.got).push(now);
            arrivals.changed.notify_waiters();
        }
    }
}

/// The number after `"round":` in a frame's text.
fn round_of(text: &str) -> Option<usize> {
    let (_, rest) = text.split_once(r#""round":"#)?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest.get(..digits)?.parse().ok()
}

/// How long the viewers may take to all have their snapshot, or an event.
const PATIENCE: Duration = Duration::from_secs(60);

/// Waits until `done` holds: `false` if it still does not after [`PATIENCE`].
async fn wait_for(arrivals: &Arrivals, done: impl Fn(&Arrivals) -> bool) -> bool {
    let until = async {
        loop {
            let changed = arrivals.changed.notified();
            if done(arrivals) {
                return;
            }
            // Created before the check: a notification in between is not lost.
            changed.await;
        }
    };
    tokio::time::timeout(PATIENCE, until).await.is_ok()
}

fn lock<T>(slot: &Mutex<Vec<T>>) -> std::sync::MutexGuard<'_, Vec<T>> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
