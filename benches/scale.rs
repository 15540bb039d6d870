//! Scale: many viewers on one multi-thread tokio runtime (2 workers).
//!
//! 1. 100 000 `Reconnector`s over the in-memory source, each session ticking
//!    media time 4×/s: resident memory per viewer, CPU share, and the same
//!    figures for 100 000 bare tokio intervals at 4 Hz (the timer cost alone).
//! 2. Viewers over real loopback WebSockets against the testkit Millicast
//!    server in the same process: as many as the open-file limit allows (two
//!    sockets each), at most 10 000.
//!
//! `cargo bench --bench scale --features millicast,testkit` (set `SCALE_VIEWERS`
//! and `SCALE_WS_VIEWERS` to change the counts).

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use relive::millicast::MillicastSource;
use relive::testkit::MemoryStream;
use relive::testkit::millicast::MillicastServer;
use relive::{Policy, Reconnector, Viewer};
use tokio::time::{Instant, sleep};

const MEASURE: Duration = Duration::from_secs(10);

fn rss() -> u64 {
    field("/proc/self/statm", 1) * 4096
}

/// utime + stime of this process, in seconds (clock ticks of 10 ms).
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

fn field(path: &str, n: usize) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .nth(n)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0)
}

/// CPU share (of one core) and wall time over `MEASURE`.
async fn measure_cpu() -> f64 {
    let (c0, t0) = (cpu(), Instant::now());
    sleep(MEASURE).await;
    (cpu() - c0) / t0.elapsed().as_secs_f64()
}

async fn wait_all<S: relive::StreamSource>(viewers: &[Viewer<S>], limit: Duration) -> Duration {
    let start = Instant::now();
    while !viewers.iter().all(|v| v.state().is_playing()) && start.elapsed() < limit {
        sleep(Duration::from_millis(200)).await;
    }
    start.elapsed()
}

async fn memory_viewers(n: usize) {
    let rss0 = rss();
    let stream = MemoryStream::new();
    stream.publish();
    let policy = std::sync::Arc::new(Policy::default());
    let viewers: Vec<_> = (0..n)
        .map(|i| {
            Reconnector::with_shared_policy(stream.source(), policy.clone())
                .seed(i as u64)
                .spawn()
        })
        .collect();
    let ready = wait_all(&viewers, Duration::from_secs(120)).await;
    let playing = viewers.iter().filter(|v| v.state().is_playing()).count();
    sleep(Duration::from_secs(2)).await;
    let rss1 = rss();
    let share = measure_cpu().await;
    println!(
        "| relive, in-memory source | {n} | {playing} | {:.1} s | {:.0} B | {:.0} % of one core | {:.2} µs |",
        ready.as_secs_f64(),
        (rss1.saturating_sub(rss0)) as f64 / n as f64,
        share * 100.0,
        share * 1e6 / (n as f64 * 4.0),
    );
    drop(viewers);
}

async fn bare_timers(n: usize) {
    let rss0 = rss();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            tokio::spawn(async {
                let mut every = tokio::time::interval(Duration::from_millis(250));
                let mut ticks = 0u64;
                loop {
                    every.tick().await;
                    ticks = std::hint::black_box(ticks + 1);
                }
            })
        })
        .collect();
    sleep(Duration::from_secs(2)).await;
    let rss1 = rss();
    let share = measure_cpu().await;
    println!(
        "| bare tokio interval, 4 Hz (baseline) | {n} | — | — | {:.0} B | {:.0} % of one core | {:.2} µs |",
        (rss1.saturating_sub(rss0)) as f64 / n as f64,
        share * 100.0,
        share * 1e6 / (n as f64 * 4.0),
    );
    for t in tasks {
        t.abort();
    }
}

async fn websocket_viewers(wanted: usize) {
    let limit = common::nofile_limit().unwrap_or(1024);
    // Two sockets per viewer (client and server side, one process) plus slack.
    let n = wanted.min(limit.saturating_sub(512) / 2);
    let server = MillicastServer::start().await.expect("testkit server");
    server.publish("cam");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    let policy = std::sync::Arc::new(
        Policy::builder()
            .progress_watchdog(false)
            .connect_timeout(Duration::from_secs(30))
            .build()
            .expect("valid"),
    );
    let rss0 = rss();
    let viewers: Vec<_> = (0..n)
        .map(|i| {
            let source = MillicastSource::new(server.account_id(), "cam")
                .director_url(server.director_url())
                .http_client(http.clone());
            Reconnector::with_shared_policy(source, policy.clone())
                .seed(i as u64)
                .spawn()
        })
        .collect();
    let ready = wait_all(&viewers, Duration::from_secs(180)).await;
    let playing = viewers.iter().filter(|v| v.state().is_playing()).count();
    sleep(Duration::from_secs(2)).await;
    let rss1 = rss();
    let share = measure_cpu().await;
    println!(
        "| relive + testkit server, WebSocket on loopback (both ends) | {n} (open-file limit {limit}) | {playing} | {:.1} s | {:.0} B | {:.0} % of one core | — |",
        ready.as_secs_f64(),
        (rss1.saturating_sub(rss0)) as f64 / n as f64,
        share * 100.0,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let n = common::env_usize("SCALE_VIEWERS", 100_000);
        println!("| what | viewers | playing | all playing after | memory per viewer | CPU (steady, {MEASURE:?}) | CPU per tick |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        bare_timers(n).await;
        memory_viewers(n).await;
        websocket_viewers(common::env_usize("SCALE_WS_VIEWERS", 10_000)).await;
    });
}
