//! Replays the situations that drop live viewers — a viewer who arrives before
//! the broadcast, an encoder restart, a network blink, silent freezes, a feed
//! with no layers — on virtual time, and prints what relive does about each.
//!
//! `cargo run --example simulate --features testkit` (takes well under a second:
//! two virtual minutes run on tokio's paused clock).

use std::time::Duration;

use futures::StreamExt;
use relive::testkit::MemoryStream;
use relive::{Event, Policy, Reconnector};
use tokio::time::{Instant, sleep_until};

/// What the publisher side does, and when (seconds from the start).
const SCRIPT: &[(f64, &str)] = &[
    (12.0, "publish"),
    (30.0, "unpublish"),
    (36.0, "publish"),
    (50.0, "blink"),
    (65.0, "freeze"),
    (66.5, "thaw"),
    (80.0, "freeze"),
    (90.0, "thaw"),
    (105.0, "no-layers"),
    (106.0, "layers"),
    (120.0, "stop"),
];

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let stream = MemoryStream::new();
    let start = Instant::now();
    let mut viewer = Reconnector::new(stream.source(), Policy::default())
        .seed(2024)
        .spawn();
    let mut script = SCRIPT.iter();
    let mut next = script.next();
    let mut summary = Summary::default();
    println!("   time  what");
    loop {
        let due = next.map(|(t, _)| start + Duration::from_secs_f64(*t));
        tokio::select! {
            () = async { sleep_until(due.unwrap_or(start)).await }, if due.is_some() => {
                let Some((t, action)) = next else { break };
                println!("{t:>6.2}s  ── {}", describe(action));
                if *action == "stop" {
                    viewer.stop().await;
                    break;
                }
                act(&stream, action);
                next = script.next();
            }
            Some(event) = viewer.next() => {
                let t = start.elapsed().as_secs_f64();
                summary.record(&event, t);
                print_event(t, &event);
            }
        }
    }
    println!("\n{summary}");
    println!("connect attempts: {}", stream.connects());
}

fn act(stream: &MemoryStream, action: &str) {
    match action {
        "publish" => stream.publish(),
        "unpublish" => stream.unpublish(),
        "blink" => stream.drop_sessions(),
        "freeze" => stream.freeze(),
        "thaw" => stream.thaw(),
        "no-layers" => stream.set_layers(0),
        "layers" => stream.set_layers(1),
        _ => {}
    }
}

fn describe(action: &str) -> &'static str {
    match action {
        "publish" => "publisher goes live",
        "unpublish" => "publisher stops its encoder",
        "blink" => "network blinks: the session's transport drops",
        "freeze" => "media freezes silently (the session stays up)",
        "thaw" => "media flows again",
        "no-layers" => "server offers no active layer",
        "layers" => "layers are back",
        "stop" => "user closes the player",
        _ => "?",
    }
}

fn print_event<M: std::fmt::Debug, E: std::fmt::Display>(t: f64, event: &Event<M, E>) {
    match event {
        Event::State {
            to,
            reason,
            retry_in,
            ..
        } => {
            let retry = retry_in
                .map(|d| format!(", next attempt in {:.2}s", d.as_secs_f64()))
                .unwrap_or_default();
            println!("{t:>6.2}s     {to} — {reason}{retry}");
        }
        Event::Session(media) => println!("{t:>6.2}s     new session {media:?}"),
        Event::Error(e) => println!("{t:>6.2}s     error: {e}"),
        Event::GaveUp(reason) => println!("{t:>6.2}s     gave up: {reason}"),
        _ => {}
    }
}

/// Time playing, stalls, reconnects and time to resume, from the events.
#[derive(Default)]
struct Summary {
    playing_since: Option<f64>,
    playing: f64,
    stalls: u32,
    sessions: u32,
    lost_at: Option<f64>,
    resumes: Vec<f64>,
}

impl Summary {
    fn record<M, E>(&mut self, event: &Event<M, E>, t: f64) {
        match event {
            Event::Session(_) => self.sessions += 1,
            Event::State { from, to, .. } => {
                if let Some(since) = self.playing_since.take() {
                    self.playing += t - since;
                }
                if to.is_playing() {
                    self.playing_since = Some(t);
                    if let Some(lost) = self.lost_at.take() {
                        self.resumes.push(t - lost);
                    }
                } else if from.is_playing() {
                    self.lost_at = Some(t);
                }
                if matches!(to, relive::State::Stalled { .. }) {
                    self.stalls += 1;
                }
            }
            _ => {}
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mean = if self.resumes.is_empty() {
            0.0
        } else {
            self.resumes.iter().sum::<f64>() / self.resumes.len() as f64
        };
        write!(
            f,
            "playing {:.1}s · {} stalls · {} sessions ({} reconnects) · mean time to resume {:.2}s over {} interruptions",
            self.playing,
            self.stalls,
            self.sessions,
            self.sessions.saturating_sub(1),
            mean,
            self.resumes.len()
        )
    }
}
