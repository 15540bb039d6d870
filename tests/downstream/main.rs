//! What a crate that depends on relive writes, through the public API only: its
//! own source as a closure, and a source chosen at run time behind one type.
#![cfg(feature = "testkit")]

#[path = "../support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream;
use relive::testkit::{MemoryMedia, MemoryStream};
use relive::{
    AnyError, BoxSource, Classify, Event, Policy, Reconnector, Retry, Session, SourceEvent, State,
    source_fn,
};
use tokio::time::timeout;

use support::VIRTUAL_PATIENCE as PATIENCE;

#[derive(Debug, thiserror::Error)]
#[error("the server refused: {0}")]
struct Refused(&'static str);

impl Classify for Refused {
    fn retry(&self) -> Retry {
        Retry::Later
    }
}

#[tokio::test(start_paused = true)]
async fn a_closure_source_is_retried_and_its_sessions_reach_the_app() {
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&attempts);
    // Fails twice, then gives sessions whose media time advances.
    let source = source_fn(move |attempt| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            if attempt < 3 {
                return Err(Refused("busy"));
            }
            let ticks = stream::iter(1u64..)
                .then(|n| async move {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    SourceEvent::Progress(Duration::from_millis(250 * n))
                })
                .boxed();
            Ok(Session {
                media: format!("session of attempt {attempt}"),
                events: ticks,
            })
        }
    })
    .describe_as("closure");
    let mut viewer = Reconnector::new(source, Policy::default()).seed(3).spawn();
    let mut errors = 0;
    let media = timeout(PATIENCE, async {
        while let Some(event) = viewer.next().await {
            match event {
                Event::Error(e) => {
                    assert_eq!(e.to_string(), "the server refused: busy");
                    errors += 1;
                }
                Event::Session(media) => return media,
                _ => {}
            }
        }
        panic!("the viewer ended");
    })
    .await
    .expect("a session");
    assert_eq!(media, "session of attempt 3");
    assert_eq!(errors, 2);
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    let mut state = viewer.watch_state();
    // Progress keeps it playing past the first-media and stall windows.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(state.borrow_and_update().is_playing(), "{}", viewer.state());
    viewer.stop().await;
    assert_eq!(viewer.state(), State::Idle);
}

#[derive(Debug, PartialEq)]
enum Media {
    Main(MemoryMedia),
    Backup(MemoryMedia),
}

fn choose(
    use_backup: bool,
    main: &MemoryStream,
    backup: &MemoryStream,
) -> BoxSource<Media, AnyError> {
    if use_backup {
        BoxSource::map(backup.source(), Media::Backup, AnyError::new)
    } else {
        BoxSource::map(main.source(), Media::Main, AnyError::new)
    }
}

#[tokio::test(start_paused = true)]
async fn a_source_chosen_at_run_time_plays_reconnects_and_keeps_error_classes() {
    for use_backup in [false, true] {
        let (main, backup) = (MemoryStream::new(), MemoryStream::new());
        let chosen = if use_backup { &backup } else { &main };
        chosen.publish();
        let mut viewer = Reconnector::new(choose(use_backup, &main, &backup), Policy::default())
            .seed(5)
            .spawn();
        let first = next_session(&mut viewer).await;
        assert!(
            matches!(first, Media::Backup(_)) == use_backup,
            "{first:?} (backup: {use_backup})"
        );
        // A lost session comes back as a mapped error with its class kept.
        chosen.drop_sessions();
        let error = timeout(PATIENCE, async {
            loop {
                if let Some(Event::Error(e)) = viewer.next().await {
                    return e;
                }
            }
        })
        .await
        .expect("an error");
        assert_eq!(error.retry(), Retry::Later);
        assert!(
            error.get_ref().is::<relive::testkit::MemoryError>(),
            "{error:?}"
        );
        let second = next_session(&mut viewer).await;
        assert_ne!(first, second, "a new session after the loss");
        let other = if use_backup { &main } else { &backup };
        assert_eq!(other.connects(), 0, "only the chosen source is used");
    }
}

async fn next_session(viewer: &mut relive::Viewer<BoxSource<Media, AnyError>>) -> Media {
    timeout(PATIENCE, async {
        loop {
            match viewer.next().await {
                Some(Event::Session(media)) => return media,
                Some(_) => {}
                None => panic!("the viewer ended"),
            }
        }
    })
    .await
    .expect("a session")
}

/// The Millicast testkit on paused time: sockets are real, so their answers
/// take real time while tokio's clock jumps ahead whenever the runtime idles.
/// A 5 s pong timeout on that clock fires before any real pong can come (seen:
/// "no pong within 5s" every few virtual seconds); the source's pong timeout is
/// the one setting to lengthen, as the testkit docs say.
#[cfg(feature = "millicast")]
#[tokio::test(start_paused = true)]
async fn the_millicast_testkit_on_paused_time_plays_sixty_virtual_seconds_without_a_pong_timeout() {
    use relive::millicast::MillicastSource;
    use relive::testkit::millicast::MillicastServer;

    let server = MillicastServer::start().await.expect("a server");
    server.publish("cam");
    let source = MillicastSource::new(server.account_id(), "cam")
        .director_url(server.director_url())
        .keepalive(Duration::from_secs(5), Duration::from_secs(24 * 3600));
    let policy = Policy::builder()
        .progress_watchdog(false)
        .build()
        .expect("valid");
    let mut viewer = Reconnector::new(source, policy).seed(9).spawn();
    timeout(PATIENCE, async {
        while !viewer.state().is_playing() {
            viewer.next().await.expect("events");
        }
    })
    .await
    .expect("playing");
    let mut events = Vec::new();
    let _ = timeout(Duration::from_secs(60), async {
        while let Some(event) = viewer.next().await {
            events.push(event.to_string());
        }
    })
    .await;
    assert!(
        viewer.state().is_playing(),
        "{}\n{events:#?}",
        viewer.state()
    );
    assert!(
        events.iter().all(|e| !e.contains("error")),
        "an error in 60 virtual seconds: {events:#?}"
    );
    assert!(server.view_requests() == 1, "one session all along");
}
