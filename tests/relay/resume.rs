//! End to end: a `Reconnector` over the testkit's `MemoryStream`, waiting for its publisher,
//! connects the moment the relay announces it — not at its backoff deadline.
#![cfg(feature = "testkit")]

use relive::testkit::MemoryStream;
use relive::{Event, Jitter, Policy, Reason, Reconnector, State};

use super::*;

#[tokio::test]
async fn a_viewer_waiting_for_its_publisher_resumes_at_once_on_the_relays_publish() {
    let relay = start(config()).await;
    let stream = MemoryStream::new();
    // A long, fixed backoff: without the hint the next attempt is 5 s away.
    let policy = Policy::builder()
        .backoff(Duration::from_secs(5), 2.0, Duration::from_secs(10))
        .jitter(Jitter::None)
        .build()
        .unwrap();
    let mut viewer = Reconnector::new(stream.source(), policy).seed(3).spawn();
    let mut state = viewer.watch_state();
    let waiting = *timeout(
        PATIENCE,
        state.wait_for(|s| matches!(s, State::Backoff { .. })),
    )
    .await
    .unwrap()
    .unwrap();
    let State::Backoff {
        waiting_for_publisher: true,
        ..
    } = waiting
    else {
        panic!("not waiting for the publisher: {waiting}")
    };
    let _hints = relive::relay::hints(relay.url(), &cam(1), viewer.control());

    // The publisher comes back: the stream is live, and the relay says so.
    stream.publish();
    let publisher = RelayPublisher::connect(&relay.url(), TOKEN).await.unwrap();
    publisher.publish(&cam(1), &details("back")).await.unwrap();

    timeout(PATIENCE, state.wait_for(State::is_playing))
        .await
        .unwrap()
        .unwrap();
    // Not a wall-clock bound on how fast: the claim is causal, checked below — the attempt
    // that plays was started by the hint, not by the backoff deadline running out.
    assert_eq!(
        stream.connects(),
        2,
        "one failed attempt, then the hinted one"
    );
    // The second attempt was the hint's doing.
    let mut reasons = Vec::new();
    while let Ok(Some(event)) = timeout(PATIENCE, viewer.next()).await {
        if let Event::State { to, reason, .. } = event {
            reasons.push((to.name(), reason));
            if to.is_playing() {
                break;
            }
        }
    }
    assert!(
        reasons.contains(&("connecting", Reason::LiveHint)),
        "{reasons:?}"
    );
    assert!(
        !reasons.iter().any(|(_, r)| *r == Reason::BackoffElapsed),
        "the backoff ran out before the hint: {reasons:?}"
    );
}
