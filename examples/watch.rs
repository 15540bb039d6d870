//! Watches a Millicast stream and keeps it playing.
//!
//! With no arguments it starts the testkit Millicast-protocol server on
//! 127.0.0.1 with a publisher that starts late, goes away, comes back and
//! suffers a network blink — about 25 seconds — and shows what relive does:
//!
//! ```sh
//! cargo run --example watch --features millicast,testkit
//! cargo run --example watch --features millicast,testkit -- --json
//! ```
//!
//! Against a real stream (Ctrl-C to end):
//!
//! ```sh
//! cargo run --example watch --features millicast,testkit -- \
//!     --account ACCOUNT --stream NAME [--token SUBSCRIBE_TOKEN] [--director URL]
//! ```
//!
//! With `--features webrtc,testkit` the viewer is a real receive-only WebRTC peer: the status
//! line shows media time from RTP, the progress watchdog is on (a frozen picture is a stall),
//! and the demo's publisher also freezes its encoder once. `--whep URL [--token T]` watches a
//! WHEP endpoint instead.
//!
//! `--record PATH` (with `--features record,testkit`) writes every frame of every session into
//! one file on the viewer's continuous timeline: `ffplay PATH` plays it from start to end,
//! across every reconnect of the run. `--h264` makes the demo's publisher send H.264 instead of
//! VP8; record it into an `.mp4` (`.webm` holds VP8, VP9, AV1 and Opus; `.mp4` H.264 and Opus).
//!
//! `RUST_LOG` (`RUST_LOG=relive=debug`, `RUST_LOG=trace`) adds relive's and its dependencies'
//! logs on stderr, through `relive::logging::secret_safe_filter`: tungstenite's TRACE records
//! (the signaling URL with its JWT, every WebSocket frame) stay out even at `trace`.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use relive::millicast::MillicastSource;
use relive::testkit::millicast::MillicastServer;
use relive::{Event, Policy, Reconnector, State, Stats, StreamSource};
use tokio::time::{Instant, sleep};

#[derive(Debug, Default)]
struct Args {
    account: Option<String>,
    stream: Option<String>,
    token: Option<String>,
    director: Option<String>,
    whep: Option<String>,
    record: Option<String>,
    json: bool,
    h264: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--account" => args.account = Some(value()?),
            "--stream" => args.stream = Some(value()?),
            "--token" => args.token = Some(value()?),
            "--director" => args.director = Some(value()?),
            "--whep" => args.whep = Some(value()?),
            "--record" => args.record = Some(value()?),
            "--json" => args.json = true,
            "--h264" => args.h264 = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

const USAGE: &str = "usage: watch [--json] [--account A --stream S [--token T] [--director URL]] \
                     [--whep URL [--token T]] [--record PATH] [--h264] (--whep needs --features webrtc, \
                     --record needs --features record)";

/// Logs on stderr when `RUST_LOG` is set, without the dependency records that carry tokens.
fn init_logs() {
    let Ok(filter) = std::env::var("RUST_LOG") else {
        return; // the status line and the timeline are the output
    };
    let filter = relive::logging::secret_safe_filter(&filter);
    match tracing_subscriber::EnvFilter::try_new(&filter) {
        Ok(filter) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
        Err(e) => eprintln!("RUST_LOG ignored ({filter}): {e}"),
    }
}

#[tokio::main]
async fn main() {
    init_logs();
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    // With `webrtc`, media time comes from RTP and the progress watchdog is on. Signaling
    // only, stalls come from layers, publisher events and the transport.
    let policy = Policy::builder()
        .backoff(Duration::from_millis(250), 2.0, Duration::from_secs(4))
        .progress_watchdog(media::WATCHDOG)
        .build()
        .expect("a valid policy");
    let until = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let clock = match media::clock(args.record.as_deref()) {
        Ok(clock) => clock,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Some(url) = args.whep.clone() {
        media::whep(
            url,
            args.token.clone(),
            policy,
            args.json,
            clock.clone(),
            until,
        )
        .await;
        clock.finish(args.json);
        return;
    }
    match (args.account.clone(), args.stream.clone()) {
        (Some(account), Some(stream)) => {
            let mut source = MillicastSource::new(account, stream);
            if let Some(token) = args.token.clone() {
                source = source.token(token);
            }
            if let Some(director) = args.director.clone() {
                source = source.director_url(director);
            }
            let (source, attach) = media::attach(source, &clock);
            watch(source, policy, args.json, clock.clone(), attach, until).await;
        }
        (None, None) => demo(policy, args.json, args.h264, clock.clone()).await,
        _ => {
            eprintln!("--account and --stream go together\n{USAGE}");
            std::process::exit(2);
        }
    }
    clock.finish(args.json);
}

/// The presentation time reached by the viewer, from its frames (`None`: signaling only).
/// With `--record`, it also holds the recording.
#[derive(Clone)]
struct MediaClock(Option<Arc<AtomicU64>>, recording::Recording);

impl MediaClock {
    fn show(&self) -> String {
        match &self.0 {
            Some(ms) => format!("picture {:.2}s", ms.load(Ordering::Relaxed) as f64 / 1e3),
            None => "media n/a (signaling only)".to_owned(),
        }
    }

    /// Closes the recording, if any, and says what it holds.
    fn finish(&self, json: bool) {
        if let Some(summary) = self.1.finish() {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"event": "recording", "summary": summary})
                );
            } else {
                println!("recording: {summary}");
            }
        }
    }
}

/// `--record PATH`: a `relive::record::Recorder` shared by the sessions of the run.
#[cfg(feature = "record")]
mod recording {
    use std::sync::{Arc, Mutex};

    use relive::record::Recorder;
    use relive::webrtc::MediaFrame;

    #[derive(Clone, Default)]
    pub(crate) struct Recording(Option<Arc<Mutex<Option<Recorder>>>>);

    impl Recording {
        pub(crate) fn start(path: Option<&str>) -> Result<Self, String> {
            let Some(path) = path else {
                return Ok(Recording(None));
            };
            let recorder = Recorder::create(path).map_err(|e| e.to_string())?;
            Ok(Recording(Some(Arc::new(Mutex::new(Some(recorder))))))
        }

        /// Records a frame; a write error ends the recording (said once), never the viewer.
        pub(crate) fn write(&self, frame: &MediaFrame) {
            let Some(cell) = &self.0 else { return };
            let mut slot = cell.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(recorder) = slot.as_mut()
                && let Err(e) = recorder.write(frame)
            {
                eprintln!("\nrecording ended: {e}");
                *slot = None;
            }
        }

        pub(crate) fn finish(&self) -> Option<String> {
            let recorder = self
                .0
                .as_ref()?
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()?;
            let path = recorder.path().display().to_string();
            Some(match recorder.finish() {
                Ok(summary) => format!("{path}: {summary}"),
                Err(e) => format!("{path}: {e}"),
            })
        }
    }
}

/// Without the `record` feature there is nothing to record with.
#[cfg(not(feature = "record"))]
mod recording {
    #[derive(Clone, Default)]
    pub(crate) struct Recording;

    impl Recording {
        pub(crate) fn start(path: Option<&str>) -> Result<Self, String> {
            match path {
                Some(_) => Err("--record needs --features record".to_owned()),
                None => Ok(Recording),
            }
        }

        #[cfg(feature = "webrtc")]
        pub(crate) fn write(&self, _frame: &relive::webrtc::MediaFrame) {}

        pub(crate) fn finish(&self) -> Option<String> {
            None
        }
    }
}

/// Signaling only: no media to attach.
#[cfg(not(feature = "webrtc"))]
mod media {
    use relive::millicast::{MillicastMedia, MillicastSource, SignalingMedia};

    use super::MediaClock;

    pub(crate) const WATCHDOG: bool = false;

    pub(crate) fn clock(record: Option<&str>) -> Result<MediaClock, String> {
        Ok(MediaClock(
            None,
            super::recording::Recording::start(record)?,
        ))
    }

    pub(crate) fn attach(
        source: MillicastSource,
        _clock: &MediaClock,
    ) -> (
        MillicastSource,
        impl Fn(MillicastMedia<SignalingMedia>) + use<>,
    ) {
        (source, drop)
    }

    pub(crate) async fn whep(
        _url: String,
        _token: Option<String>,
        _policy: relive::Policy,
        _json: bool,
        _clock: MediaClock,
        _until: impl Future<Output = ()>,
    ) {
        eprintln!("--whep needs --features webrtc\n{}", super::USAGE);
        std::process::exit(2);
    }
}

/// A real receive-only WebRTC peer: media time from RTP.
#[cfg(feature = "webrtc")]
mod media {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use relive::millicast::{MillicastMedia, MillicastSource};
    use relive::webrtc::{ReceivePeers, WebRtcMedia, WhepSource};

    use super::MediaClock;

    pub(crate) const WATCHDOG: bool = true;

    pub(crate) fn clock(record: Option<&str>) -> Result<MediaClock, String> {
        let recording = super::recording::Recording::start(record)?;
        Ok(MediaClock(Some(Arc::new(AtomicU64::new(0))), recording))
    }

    /// Plays a new session: here, reads its frames into the clock (the viewer's presentation
    /// time, which goes on across sessions) until the session ends.
    fn follow(mut media: WebRtcMedia, clock: &MediaClock) {
        let Some(ms) = clock.0.clone() else { return };
        let recording = clock.1.clone();
        tokio::spawn(async move {
            while let Some(frame) = media.recv().await {
                ms.fetch_max(frame.pts.as_millis() as u64, Ordering::Relaxed);
                recording.write(&frame);
            }
        });
    }

    pub(crate) fn attach(
        source: MillicastSource,
        clock: &MediaClock,
    ) -> (
        MillicastSource<ReceivePeers>,
        impl Fn(MillicastMedia<WebRtcMedia>) + use<>,
    ) {
        let clock = clock.clone();
        let source = source.offer_provider(ReceivePeers::new());
        (source, move |media: MillicastMedia<WebRtcMedia>| {
            follow(media.media, &clock)
        })
    }

    pub(crate) async fn whep(
        url: String,
        token: Option<String>,
        policy: relive::Policy,
        json: bool,
        clock: MediaClock,
        until: impl Future<Output = ()>,
    ) {
        let mut source = WhepSource::new(url);
        if let Some(token) = token {
            source = source.token(token);
        }
        let follower = clock.clone();
        let attach = move |media: WebRtcMedia| follow(media, &follower);
        super::watch(source, policy, json, clock, attach, until).await;
    }
}

/// The publisher's script, in seconds from the start.
const SCRIPT: &[(u64, &str)] = &[
    (2, "publisher goes live"),
    (8, "publisher stops its encoder"),
    (14, "publisher is back"),
    (19, "network blink: every socket dropped"),
    (
        22,
        "encoder freezes: no RTP, no event (seen only from media time, with webrtc)",
    ),
    // Longer than `stall_after` (2 s) plus a tick, so that the freeze is caught.
    (26, "encoder unfreezes"),
    (30, "end of demo"),
];

async fn demo(policy: Policy, json: bool, h264: bool, clock: MediaClock) {
    let server = MillicastServer::start()
        .await
        .expect("the testkit server starts on 127.0.0.1");
    #[cfg(feature = "webrtc")]
    if h264 {
        server.set_video_codec("demo", relive::testkit::clip::ClipCodec::H264);
    }
    #[cfg(not(feature = "webrtc"))]
    let _ = h264; // no media without webrtc
    let source =
        MillicastSource::new(server.account_id(), "demo").director_url(server.director_url());
    let (source, attach) = media::attach(source, &clock);
    if !json {
        println!("testkit Millicast server at {}", server.director_url());
    }
    let script = async {
        let start = Instant::now();
        for (at, what) in SCRIPT {
            tokio::time::sleep_until(start + Duration::from_secs(*at)).await;
            let t = start.elapsed();
            if json {
                let t_ms = t.as_millis() as u64;
                println!(
                    "{}",
                    serde_json::json!({"t_ms": t_ms, "event": "script", "what": what})
                );
            } else {
                println!("\r{:>7.2}s ── {what}", t.as_secs_f64());
            }
            match *at {
                2 | 14 => server.publish("demo"),
                8 => server.unpublish("demo"),
                19 => server.close_all_sockets(),
                22 => server.freeze("demo"),
                26 => server.unfreeze("demo"),
                _ => {}
            }
        }
    };
    watch(source, policy, json, clock, attach, script).await;
}

async fn watch<S: StreamSource>(
    source: S,
    policy: Policy,
    json: bool,
    clock: MediaClock,
    attach: impl Fn(S::Media),
    until: impl Future<Output = ()>,
) where
    S::Media: std::fmt::Debug,
{
    let start = Instant::now();
    let mut viewer = Reconnector::new(source, policy).spawn();
    let mut stats = Stats::default();
    let live_line = !json && std::io::stdout().is_terminal();
    tokio::pin!(until);
    loop {
        tokio::select! {
            () = &mut until => break,
            event = viewer.next() => {
                let Some(event) = event else { break };
                let now = Instant::now();
                stats.record(&event, now.into_std());
                let t = now.duration_since(start);
                if json {
                    println!("{}", to_json(t, &event));
                } else {
                    print_event(t, &event, live_line);
                }
                if let Event::Session(media) = event {
                    attach(media);
                }
            }
            () = sleep(Duration::from_millis(100)), if live_line => {
                status_line(start, &viewer.state(), &stats, &clock);
            }
        }
    }
    viewer.stop().await;
    let total = start.elapsed();
    let played = stats.playing_time(Instant::now().into_std());
    if json {
        let summary = serde_json::json!({
            "event": "summary",
            "t_ms": total.as_millis() as u64,
            "playing_ms": played.as_millis() as u64,
            "stalls": stats.stalls(),
            "reconnects": stats.reconnects(),
            "errors": stats.errors(),
            "mean_time_to_resume_ms": stats.mean_time_to_resume().map(|d| d.as_millis() as u64),
        });
        println!("{summary}");
    } else {
        println!(
            "\nplaying {:.1}s of {:.1}s · {stats}",
            played.as_secs_f64(),
            total.as_secs_f64()
        );
    }
}

fn print_event<M, E: std::fmt::Display>(t: Duration, event: &Event<M, E>, live: bool) {
    // On a terminal, the status line is rewritten in place: clear it first.
    let clear = if live { "\r\x1b[2K" } else { "" };
    println!("{clear}{:>7.2}s    {event}", t.as_secs_f64());
}

/// One line, rewritten in place: state, media time, attempts, next retry.
fn status_line(start: Instant, state: &State, stats: &Stats, clock: &MediaClock) {
    let now = Instant::now();
    let (attempt, retry) = match state {
        State::Connecting { attempt, .. } => (*attempt, "now".to_owned()),
        State::Backoff { attempt, until, .. } => (
            *attempt,
            format!(
                "{:.1}s",
                until
                    .saturating_duration_since(now.into_std())
                    .as_secs_f64()
            ),
        ),
        _ => (0, "—".to_owned()),
    };
    print!(
        "\r\x1b[2K{:>7.2}s  [{}]  {}  attempt {attempt}  next retry {retry}  playing {:.1}s",
        now.duration_since(start).as_secs_f64(),
        state.name(),
        clock.show(),
        stats.playing_time(now.into_std()).as_secs_f64(),
    );
    let _ = std::io::stdout().flush();
}

fn to_json<M, E: std::fmt::Display>(t: Duration, event: &Event<M, E>) -> serde_json::Value {
    let t_ms = t.as_millis() as u64;
    match event {
        Event::State {
            from,
            to,
            reason,
            retry_in,
            ..
        } => serde_json::json!({
            "t_ms": t_ms, "event": "state", "from": from.name(), "to": to.name(),
            "reason": reason.to_string(), "retry_in_ms": retry_in.map(|d| d.as_millis() as u64),
        }),
        Event::Session(_) => serde_json::json!({"t_ms": t_ms, "event": "session"}),
        Event::Error(e) => {
            serde_json::json!({"t_ms": t_ms, "event": "error", "message": e.to_string()})
        }
        Event::GaveUp(r) => {
            serde_json::json!({"t_ms": t_ms, "event": "gave_up", "reason": r.to_string()})
        }
        Event::ViewerCount(n) => {
            serde_json::json!({"t_ms": t_ms, "event": "viewercount", "count": n})
        }
        _ => serde_json::json!({"t_ms": t_ms, "event": "other"}),
    }
}
