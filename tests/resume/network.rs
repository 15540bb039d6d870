//! `Control::network_changed` during a backoff starts the next attempt at once.

use std::time::Duration;

use relive::testkit::millicast::{DirectorFault, MillicastServer};
use relive::{Policy, Reason, State};

use crate::{CAM, millicast};

#[tokio::test]
async fn a_network_change_during_a_long_backoff_attempts_at_once() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    server.set_director_fault_for(DirectorFault::ServerError, 1);
    // A first delay of 30 s: only the network change can bring the attempt sooner.
    let slow = Policy::builder()
        .backoff(Duration::from_secs(30), 2.0, Duration::from_secs(60))
        .jitter(relive::Jitter::None)
        .progress_watchdog(false)
        .build()
        .unwrap();
    let mut w = millicast(&server, slow);
    w.until_state("the backoff", |s| matches!(s, State::Backoff { .. }))
        .await;
    assert!(w.viewer.retry_in().unwrap() > Duration::from_secs(20));
    w.viewer.network_changed();
    let reason = w
        .until_state("connecting", |s| matches!(s, State::Connecting { .. }))
        .await;
    assert_eq!(reason, Reason::NetworkChanged);
    w.until_playing().await;
    assert_eq!(server.director_requests(), 2);
    assert!(
        w.timeline.iter().any(|l| l.contains("network changed")),
        "{}",
        w.dump()
    );
}
