//! Scale: many viewers on one multi-thread tokio runtime (2 workers), in one run:
//!
//! 1. 100 000 bare tokio intervals at 4 Hz: the timer cost alone (baseline);
//! 2. 100 000 in-memory sessions alone, held open: what "beyond the session" subtracts;
//! 3. 100 000 `Reconnector`s over the in-memory source, each session ticking
//!    media time 4×/s through its own interval;
//! 4. a `Fleet` of 100 000 viewers over the same sessions (not ticking
//!    themselves), fed 4 ticks/s each in bulk by one task (a tenth of the
//!    viewers every 25 ms through `Fleet::report_progress`);
//! 5. the same fleet at 1 000 000 viewers, when the machine has the memory;
//! 6. viewers over real loopback WebSockets against the testkit Millicast
//!    server in the same process: as many as the open-file limit allows (two
//!    sockets each), at most 10 000.
//!
//! Memory per viewer is counted two ways: live heap bytes (a counting global
//! allocator: exact, without the allocator's own overhead) and the resident set
//! size's growth (what the process really took; freed memory of an earlier row
//! is reused, so it can read low). CPU is the process's utime + stime over 10 s
//! of steady state, as a share of one core; per tick divides it by 4 × viewers.
//!
//! `cargo bench --bench scale --features millicast,testkit` (set `SCALE_VIEWERS`,
//! `SCALE_FLEET_MAX` and `SCALE_WS_VIEWERS` to change the counts; 0 skips a row).
//!
//! Unsafe code is needed here, and only here and in the allocation tests, to
//! implement `GlobalAlloc`; the library keeps `#![forbid(unsafe_code)]`.
#![allow(unsafe_code)]

#[path = "common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use relive::millicast::MillicastSource;
use relive::testkit::millicast::MillicastServer;
use relive::testkit::{MemorySource, MemoryStream};
use relive::{Fleet, FleetBuilder, Policy, Reconnector, StreamSource, Viewer, ViewerId};
use tokio::time::{Instant, sleep};

const MEASURE: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(250);

/// `System`, keeping the number of live heap bytes.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; counting touches no memory that is handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`, as the caller guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn heap() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

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

/// `MemAvailable` of /proc/meminfo, in bytes.
fn mem_available() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Memory taken since `base`: heap bytes and RSS growth, both per viewer.
struct Memory {
    heap: i64,
    rss: u64,
}

impl Memory {
    fn now() -> Self {
        Memory {
            heap: heap(),
            rss: rss(),
        }
    }

    fn per_viewer_since(&self, base: &Memory, n: usize) -> (f64, f64) {
        let n = n.max(1) as f64;
        (
            (self.heap - base.heap) as f64 / n,
            self.rss.saturating_sub(base.rss) as f64 / n,
        )
    }
}

/// CPU share (of one core) over `MEASURE`.
async fn measure_cpu() -> f64 {
    let (c0, t0) = (cpu(), Instant::now());
    sleep(MEASURE).await;
    (cpu() - c0) / t0.elapsed().as_secs_f64()
}

#[allow(clippy::too_many_arguments)]
fn row(what: &str, n: usize, playing: &str, ready: &str, mem: (f64, f64), share: Option<f64>) {
    let (cpu, per_tick) = match share {
        Some(s) => (
            format!("{:.1} %", s * 100.0),
            format!("{:.0} ns", s * 1e9 / (n as f64 * 4.0)),
        ),
        None => ("—".into(), "—".into()),
    };
    println!(
        "| {what} | {n} | {playing} | {ready} | {:.0} B | {:.0} B | {cpu} | {per_tick} |",
        mem.0, mem.1
    );
}

async fn wait_all<S: StreamSource>(viewers: &[Viewer<S>], limit: Duration) -> Duration {
    let start = Instant::now();
    while !viewers.iter().all(|v| v.state().is_playing()) && start.elapsed() < limit {
        sleep(Duration::from_millis(200)).await;
    }
    start.elapsed()
}

/// Reads every event a viewer has queued (an application that keeps up).
fn drain<S: StreamSource>(viewers: &mut [Viewer<S>]) {
    for v in viewers {
        while let Some(Some(event)) = v.next().now_or_never() {
            std::hint::black_box(event);
        }
    }
}

async fn bare_timers(n: usize) {
    let base = Memory::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            tokio::spawn(async {
                let mut every = tokio::time::interval(TICK);
                let mut ticks = 0u64;
                loop {
                    every.tick().await;
                    ticks = std::hint::black_box(ticks + 1);
                }
            })
        })
        .collect();
    sleep(Duration::from_secs(2)).await;
    let mem = Memory::now().per_viewer_since(&base, n);
    let share = measure_cpu().await;
    row(
        "bare tokio interval, 4 Hz (baseline)",
        n,
        "—",
        "—",
        mem,
        Some(share),
    );
    for t in &tasks {
        t.abort();
    }
    // Awaited, so that the next row's memory is its own.
    for t in tasks {
        let _ = t.await;
    }
}

/// Opens `n` memory sessions that do not tick and holds them: the session's own cost.
async fn sessions_alone(stream: &MemoryStream, n: usize) {
    let base = Memory::now();
    let mut source = stream.source().with_progress(false);
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        if let Ok(session) = source.connect(1).await {
            sessions.push(session);
        }
    }
    sleep(Duration::from_secs(1)).await;
    let mem = Memory::now().per_viewer_since(&base, n);
    row(
        "in-memory sessions alone, not ticking (what the fleet rows include)",
        n,
        &sessions.len().to_string(),
        "—",
        mem,
        None,
    );
}

async fn reconnectors(stream: &MemoryStream, n: usize) {
    let base = Memory::now();
    let policy = Arc::new(Policy::default());
    let mut viewers: Vec<_> = (0..n)
        .map(|i| {
            Reconnector::with_shared_policy(stream.source().tick(TICK), policy.clone())
                .seed(i as u64)
                .spawn()
        })
        .collect();
    let ready = wait_all(&viewers, Duration::from_secs(120)).await;
    let playing = viewers.iter().filter(|v| v.state().is_playing()).count();
    drain(&mut viewers);
    sleep(Duration::from_secs(2)).await;
    drain(&mut viewers);
    let mem = Memory::now().per_viewer_since(&base, n);
    let share = measure_cpu().await;
    row(
        "`Reconnector`, in-memory session ticking 4×/s (its own interval)",
        n,
        &playing.to_string(),
        &format!("{:.1} s", ready.as_secs_f64()),
        mem,
        Some(share),
    );
    let dropped = viewers.iter().map(|v| v.dropped().sessions).sum::<u64>();
    assert_eq!(dropped, 0, "the bench reads every event");
    drop(viewers);
    settle(stream).await;
}

/// Waits until every session of the row before is closed (its tasks ended),
/// so that the next row's memory is its own.
async fn settle(stream: &MemoryStream) {
    let start = Instant::now();
    while stream.sessions() > 0 && start.elapsed() < Duration::from_secs(60) {
        sleep(Duration::from_millis(100)).await;
    }
    sleep(Duration::from_secs(1)).await;
}

/// Feeds every viewer 4 ticks/s: a tenth of them (consecutive ids, as an
/// application that groups its viewers would) every 25 ms, in one batch.
async fn feed(fleet: Arc<Fleet<MemorySource>>, ids: Arc<Vec<ViewerId>>) {
    const SLICES: usize = 10;
    let mut every = tokio::time::interval(TICK / SLICES as u32);
    let mut media = vec![Duration::ZERO; ids.len()];
    let mut batch = Vec::with_capacity(ids.len() / SLICES + 1);
    for k in 0usize.. {
        every.tick().await;
        let slice = k % SLICES;
        batch.clear();
        let per = ids.len().div_ceil(SLICES);
        for i in slice * per..((slice + 1) * per).min(ids.len()) {
            media[i] += TICK;
            batch.push((ids[i], media[i]));
        }
        fleet.report_progress(&batch);
    }
}

async fn fleet_viewers(stream: &MemoryStream, n: usize) -> Option<f64> {
    let base = Memory::now();
    let fleet: Arc<Fleet<MemorySource>> = Arc::new(FleetBuilder::new(Policy::default()).spawn());
    let source = stream.source().with_progress(false);
    let ids: Arc<Vec<_>> = Arc::new((0..n).map(|_| fleet.add(source.clone())).collect());
    // The application reads every event, as it comes.
    let reader = {
        let fleet = Arc::clone(&fleet);
        tokio::spawn(async move {
            let mut events = &*fleet;
            while let Some(event) = events.next().await {
                std::hint::black_box(event);
            }
        })
    };
    let feeder = tokio::spawn(feed(Arc::clone(&fleet), Arc::clone(&ids)));
    let start = Instant::now();
    let all_playing = |fleet: &Fleet<MemorySource>| {
        ids.iter()
            .filter(|id| fleet.state(**id).is_some_and(|s| s.is_playing()))
            .count()
    };
    while all_playing(&fleet) < n && start.elapsed() < Duration::from_secs(300) {
        sleep(Duration::from_millis(200)).await;
    }
    let ready = start.elapsed();
    let playing = all_playing(&fleet);
    sleep(Duration::from_secs(2)).await;
    // Ticks refused while a million viewers were still joining are reported;
    // in the steady state there must be none.
    let refused_setting_up = fleet.ticks_refused();
    let mem = Memory::now().per_viewer_since(&base, n);
    let share = measure_cpu().await;
    row(
        &format!(
            "`Fleet` ({} shards), same sessions, 4 ticks/s each in bulk ({refused_setting_up} ticks refused while joining)",
            fleet.shards()
        ),
        n,
        &playing.to_string(),
        &format!("{:.1} s", ready.as_secs_f64()),
        mem,
        Some(share),
    );
    let refused = fleet.ticks_refused() - refused_setting_up;
    let still_playing = all_playing(&fleet);
    feeder.abort();
    reader.abort();
    // Awaited, so that their handles on the fleet are gone.
    let _ = feeder.await;
    let _ = reader.await;
    drop(ids);
    if let Ok(fleet) = Arc::try_unwrap(fleet) {
        drop(fleet);
    }
    settle(stream).await;
    assert_eq!(refused, 0, "ticks refused in the steady state");
    assert_eq!(still_playing, n, "a viewer stalled while fed");
    Some(mem.0)
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
    let base = Memory::now();
    let mut viewers: Vec<_> = (0..n)
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
    drain(&mut viewers);
    sleep(Duration::from_secs(2)).await;
    let mem = Memory::now().per_viewer_since(&base, n);
    let share = measure_cpu().await;
    println!(
        "| `Reconnector` + testkit server, WebSocket on loopback (both ends; open-file limit {limit}) | {n} | {playing} | {:.1} s | {:.0} B | {:.0} B | {:.1} % | — |",
        ready.as_secs_f64(),
        mem.0,
        mem.1,
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
        let most = common::env_usize("SCALE_FLEET_MAX", 1_000_000);
        println!(
            "| what | viewers | playing | all playing after | heap per viewer | RSS growth per viewer | CPU (steady, {MEASURE:?}, of one core) | CPU per tick |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        let stream = MemoryStream::new();
        stream.publish();
        // SCALE_FLEET_ONLY=1: the fleet rows alone (for profiling).
        if n > 0 && common::env_usize("SCALE_FLEET_ONLY", 0) == 0 {
            bare_timers(n).await;
            sessions_alone(&stream, n).await;
            reconnectors(&stream, n).await;
        }
        let per_viewer = if n > 0 {
            fleet_viewers(&stream, n).await
        } else {
            None
        };
        if most > n {
            // Twice the measured bytes per viewer (fragmentation, the sessions), with 2 GiB spare.
            let need = per_viewer.map_or(2048.0, |b| 2.0 * b.max(1.0)) * most as f64;
            let available = mem_available() as f64;
            if need + 2.0 * f64::from(1u32 << 30) < available {
                fleet_viewers(&stream, most).await;
            } else {
                println!(
                    "| `Fleet` at {most}: skipped, needs about {:.1} GiB, {:.1} GiB available | | | | | | | |",
                    need / f64::from(1u32 << 30),
                    available / f64::from(1u32 << 30)
                );
            }
        }
        let ws = common::env_usize("SCALE_WS_VIEWERS", 10_000);
        if ws > 0 {
            websocket_viewers(ws).await;
        }
    });
}
