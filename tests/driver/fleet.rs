//! What only a fleet has: many viewers over several shards, progress in bulk,
//! removal, and one stream of `(viewer, event)`.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use relive::testkit::{MemorySource, MemoryStream};
use relive::{Event, Fleet, FleetBuilder, Policy, StallCause, State, ViewerId};
use tokio::time::{Instant, sleep, timeout};

use crate::{PATIENCE, TICK};

async fn until_all(fleet: &Fleet<MemorySource>, ids: &[ViewerId], f: impl Fn(&State) -> bool) {
    let all = timeout(PATIENCE, async {
        while !ids.iter().all(|id| fleet.state(*id).is_some_and(|s| f(&s))) {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(all.is_ok(), "not every viewer got there");
}

#[tokio::test(start_paused = true)]
async fn viewers_spread_over_shards_each_get_their_own_session() {
    let stream = MemoryStream::new();
    stream.publish();
    let mut fleet = FleetBuilder::new(Policy::default()).shards(3).spawn();
    let ids: Vec<_> = (0..30)
        .map(|_| fleet.add(stream.source().tick(TICK)))
        .collect();
    assert_eq!(fleet.shards(), 3);
    let mut sessions = HashSet::new();
    while sessions.len() < ids.len() {
        match timeout(PATIENCE, fleet.next()).await {
            Ok(Some((id, Event::Session(_)))) => assert!(sessions.insert(id), "two sessions"),
            Ok(Some(_)) => {}
            _ => panic!("{} of {} sessions", sessions.len(), ids.len()),
        }
    }
    until_all(&fleet, &ids, State::is_playing).await;
    assert_eq!((stream.connects(), stream.sessions()), (30, 30));
}

#[tokio::test(start_paused = true)]
async fn bulk_progress_keeps_viewers_playing_and_its_end_is_a_stall() {
    let stream = MemoryStream::new();
    stream.publish();
    let fleet = FleetBuilder::new(Policy::default()).shards(2).spawn();
    let source = stream.source().with_progress(false);
    let ids: Vec<_> = (0..100).map(|_| fleet.add(source.clone())).collect();
    until_all(&fleet, &ids, State::is_playing).await;
    let mut batch: Vec<_> = ids.iter().map(|id| (*id, Duration::ZERO)).collect();
    for step in 1..=40u32 {
        for (_, media) in &mut batch {
            *media = TICK * step;
        }
        fleet.report_progress(&batch);
        sleep(TICK).await;
    }
    assert!(
        ids.iter()
            .all(|id| fleet.state(*id).is_some_and(|s| s.is_playing()))
    );
    assert_eq!(fleet.ticks_refused(), 0);
    // The ticks stop for all: every viewer stalls, within stall_after + one tick.
    let last = Instant::now();
    until_all(&fleet, &ids, |s| {
        matches!(
            s,
            State::Stalled {
                cause: StallCause::NoProgress,
                ..
            }
        )
    })
    .await;
    assert!(last.elapsed() <= Policy::default().stall_after() + TICK);
}

#[tokio::test(start_paused = true)]
async fn a_removed_viewer_drops_its_session_and_its_id_never_reaches_another() {
    let stream = MemoryStream::new();
    stream.publish();
    let fleet = FleetBuilder::new(Policy::default()).shards(1).spawn();
    let first = fleet.add(stream.source());
    until_all(&fleet, &[first], State::is_playing).await;
    fleet.remove(first);
    let gone = timeout(PATIENCE, async {
        while stream.sessions() > 0 {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the session stayed open");
    assert_eq!(fleet.state(first), None);
    // The slot is reused under a new generation.
    let second = fleet.add(stream.source());
    assert_ne!(first, second);
    assert_eq!(fleet.state(first), None);
    fleet.control(first).live_hint();
    until_all(&fleet, &[second], State::is_playing).await;
    assert_eq!(fleet.control(first).state(), State::Idle);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_fleet_ends_every_session() {
    let stream = MemoryStream::new();
    stream.publish();
    let fleet = FleetBuilder::new(Policy::default()).shards(2).spawn();
    let ids: Vec<_> = (0..10).map(|_| fleet.add(stream.source())).collect();
    until_all(&fleet, &ids, State::is_playing).await;
    drop(fleet);
    let gone = timeout(PATIENCE, async {
        while stream.sessions() > 0 {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "{} sessions open", stream.sessions());
}
