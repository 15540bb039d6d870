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

use std::io::{IsTerminal, Write};
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
    json: bool,
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
            "--json" => args.json = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

const USAGE: &str = "usage: watch [--json] [--account A --stream S [--token T] [--director URL]]";

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    // Signaling only until the `webrtc` feature supplies media: stalls come
    // from layers, publisher events and the transport, not from media time.
    let policy = Policy::builder()
        .backoff(Duration::from_millis(250), 2.0, Duration::from_secs(4))
        .progress_watchdog(false)
        .build()
        .expect("a valid policy");
    match (args.account.clone(), args.stream.clone()) {
        (Some(account), Some(stream)) => {
            let mut source = MillicastSource::new(account, stream);
            if let Some(token) = args.token.clone() {
                source = source.token(token);
            }
            if let Some(director) = args.director.clone() {
                source = source.director_url(director);
            }
            let until = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            watch(source, policy, args.json, until).await;
        }
        (None, None) => demo(policy, args.json).await,
        _ => {
            eprintln!("--account and --stream go together\n{USAGE}");
            std::process::exit(2);
        }
    }
}

/// The publisher's script, in seconds from the start.
const SCRIPT: &[(u64, &str)] = &[
    (2, "publisher goes live"),
    (8, "publisher stops its encoder"),
    (14, "publisher is back"),
    (19, "network blink: every socket dropped"),
    (25, "end of demo"),
];

async fn demo(policy: Policy, json: bool) {
    let server = MillicastServer::start()
        .await
        .expect("the testkit server starts on 127.0.0.1");
    let source =
        MillicastSource::new(server.account_id(), "demo").director_url(server.director_url());
    if !json {
        println!("testkit Millicast server at {}", server.director_url());
    }
    let script = async {
        let start = Instant::now();
        for (at, what) in SCRIPT {
            tokio::time::sleep_until(start + Duration::from_secs(*at)).await;
            if !json {
                println!("\r{:>7.2}s ── {what}", start.elapsed().as_secs_f64());
            }
            match *at {
                2 | 14 => server.publish("demo"),
                8 => server.unpublish("demo"),
                19 => server.drop_all_sockets(),
                _ => {}
            }
        }
    };
    watch(source, policy, json, script).await;
}

async fn watch<S: StreamSource>(
    source: S,
    policy: Policy,
    json: bool,
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
            }
            () = sleep(Duration::from_millis(100)), if live_line => {
                status_line(start, &viewer.state(), &stats);
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
fn status_line(start: Instant, state: &State, stats: &Stats) {
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
        "\r\x1b[2K{:>7.2}s  [{}]  media n/a (signaling only)  attempt {attempt}  next retry {retry}  playing {:.1}s",
        now.duration_since(start).as_secs_f64(),
        state.name(),
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
