//! Replays the situations that drop live viewers — a viewer who arrives before
//! the broadcast, an encoder restart, a network blink, silent freezes, a feed
//! with no layers — on virtual time, and prints what relive does about each.
//!
//! `cargo run --example simulate --features testkit` (takes well under a second:
//! two virtual minutes run on tokio's paused clock).

use std::time::Duration;

use futures::StreamExt;
use relive::testkit::MemoryStream;
use relive::{Policy, Reconnector, Stats};
use tokio::time::{Instant, sleep_until};

/// What the publisher side does, and when (seconds from the start).
const SCRIPT: &[(f64, &str)] = &[
    (12.0, "publish"),
    (30.0, "unpublish"),
    (36.0, "publish"),
    (50.0, "blink"),
    (65.0, "freeze"),
    (66.5, "unfreeze"),
    (80.0, "freeze"),
    (90.0, "unfreeze"),
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
    let mut stats = Stats::default();
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
                stats.record(&event, Instant::now().into_std());
                println!("{t:>6.2}s     {event}");
            }
        }
    }
    let played = stats.playing_time(Instant::now().into_std()).as_secs_f64();
    println!(
        "\nplaying {played:.1}s of {:.1}s · {stats}",
        start.elapsed().as_secs_f64()
    );
    println!("connect attempts: {}", stream.connects());
}

fn act(stream: &MemoryStream, action: &str) {
    match action {
        "publish" => stream.publish(),
        "unpublish" => stream.unpublish(),
        "blink" => stream.drop_sessions(),
        "freeze" => stream.freeze(),
        "unfreeze" => stream.unfreeze(),
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
        "unfreeze" => "media flows again",
        "no-layers" => "server offers no active layer",
        "layers" => "layers are back",
        "stop" => "user closes the player",
        _ => "?",
    }
}
