//! An application that never reads events (it only watches the state) keeps
//! bounded memory: counted, never timed.

use std::sync::Arc;
use std::time::Duration;

use relive::testkit::{MemoryError, MemoryMedia, MemoryStream};
use relive::{BoxSource, EVENT_QUEUE_CAPACITY, Event, Policy};
use tokio::time::{sleep, timeout};

use crate::{Handle, Kind, PATIENCE};

/// A memory session's media that counts how many are alive.
#[derive(Debug)]
pub(crate) struct Tracked {
    pub(crate) id: u64,
    _alive: Arc<()>,
}

type Source = BoxSource<Tracked, MemoryError>;

fn tracked(stream: &MemoryStream, alive: &Arc<()>) -> Source {
    let alive = Arc::clone(alive);
    BoxSource::map(
        stream.source(),
        move |m: MemoryMedia| Tracked {
            id: m.id,
            _alive: Arc::clone(&alive),
        },
        |e| e,
    )
}

/// Media handles alive: the test and the source's map hold one count each.
fn media_alive(alive: &Arc<()>) -> usize {
    Arc::strong_count(alive) - 2
}

/// Reconnects within a millisecond: no spread, a 1 ms backoff.
fn blinking_policy() -> Policy {
    let ms = Duration::from_millis(1);
    Policy::builder()
        .reconnect_spread(Duration::ZERO)
        .backoff(ms, 2.0, ms)
        .build()
        .expect("a valid policy")
}

/// Drops every session and waits until the viewer plays on a new one.
async fn blink(stream: &MemoryStream, v: &impl Handle<Source>) {
    let before = stream.connects();
    stream.drop_sessions();
    let replayed = timeout(PATIENCE, async {
        while !(stream.connects() > before && v.state().is_playing()) {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(replayed.is_ok(), "never played again; {}", v.state());
}

pub(crate) async fn an_application_that_never_reads_events_keeps_bounded_memory_through_10_000_blinks<
    D: Kind,
>() {
    const BLINKS: u64 = 10_000;
    let stream = MemoryStream::new();
    stream.publish();
    let alive = Arc::new(());
    let v = D::spawn(tracked(&stream, &alive), blinking_policy(), 7);
    assert!(v.wait_for(|s| s.is_playing()).await.is_some());
    let mut most_queued = 0;
    for _ in 0..BLINKS {
        blink(&stream, &v).await;
        most_queued = most_queued.max(v.queued());
    }
    // Each blink queued an error, three state changes and a session.
    assert!(
        most_queued <= EVENT_QUEUE_CAPACITY,
        "{most_queued} events queued"
    );
    let dropped = v.dropped();
    assert_eq!(dropped.sessions, BLINKS, "every superseded session counted");
    assert!(dropped.states + dropped.errors >= BLINKS, "{dropped:?}");
    // The superseded media were dropped: only the undelivered newest is alive.
    assert_eq!(media_alive(&alive), 1, "media handles alive");
    assert_eq!(stream.sessions(), 1, "one session open");
    assert_eq!(stream.connects(), BLINKS + 1);
}

pub(crate) async fn a_session_that_arrives_before_the_last_one_was_read_supersedes_it<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    let alive = Arc::new(());
    let mut v = D::spawn(tracked(&stream, &alive), blinking_policy(), 8);
    assert!(v.wait_for(|s| s.is_playing()).await.is_some());
    blink(&stream, &v).await;
    assert_eq!(v.dropped().sessions, 1);
    assert_eq!(media_alive(&alive), 1);
    // Everything else is delivered, in order: the states of both sessions,
    // the loss between them, and the newer session only.
    let mut sessions = Vec::new();
    let mut errors = 0;
    let mut states = 0;
    while let Ok(Some(event)) = timeout(Duration::ZERO, v.event()).await {
        match event {
            Event::Session(media) => sessions.push(media.id),
            Event::Error(_) => errors += 1,
            Event::State { .. } => states += 1,
            _ => {}
        }
    }
    assert_eq!(sessions, [2]);
    assert_eq!(errors, 1);
    // Idle → Connecting → Playing, then Backoff → Connecting → Playing.
    assert_eq!(states, 5);
    assert_eq!(v.dropped().states, 0);
}
