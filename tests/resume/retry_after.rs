//! A 503 or 429 with `Retry-After` (seconds or an HTTP-date) is the least delay before the next
//! attempt, from the Director and from a WHEP endpoint; a longer one is capped by the policy.

use std::time::Duration;

use relive::testkit::millicast::{DirectorFault, MillicastServer, RetryAfter, WhepFault};
use relive::{Event, Policy, State};
use tokio::time::Instant;

use crate::support::PATIENCE;
use crate::{CAM, millicast, policy, whep};

/// The time from the refused attempt to the next request must be at least this: the server's
/// 2 s, less the moment between the machine reading the error and the test seeing it.
const AT_LEAST: Duration = Duration::from_millis(1_900);

async fn director_fault_is_honoured(fault: DirectorFault) {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    server.set_director_fault_for(fault, 1);
    let mut w = millicast(&server, policy());
    let event = w
        .until("the backoff", |e| {
            matches!(
                e,
                Event::State {
                    to: State::Backoff { .. },
                    ..
                }
            )
        })
        .await;
    let refused = Instant::now();
    let Event::State { retry_in, .. } = event else {
        unreachable!()
    };
    assert!(
        retry_in.is_some_and(|d| d >= AT_LEAST),
        "{retry_in:?}\n{}",
        w.dump()
    );
    assert!(
        w.errors.iter().any(|e| e.contains("retry after 2s")),
        "{}",
        w.dump()
    );
    w.until_playing().await;
    assert!(refused.elapsed() >= AT_LEAST, "{}", w.dump());
    assert_eq!(server.director_requests(), 2);
}

#[tokio::test]
async fn a_director_503_with_retry_after_in_seconds_is_honoured() {
    director_fault_is_honoured(DirectorFault::Unavailable(RetryAfter::Seconds(2))).await;
}

#[tokio::test]
async fn a_director_429_with_retry_after_as_an_http_date_is_honoured() {
    director_fault_is_honoured(DirectorFault::TooManyRequests(RetryAfter::HttpDate(2))).await;
}

#[tokio::test]
async fn a_whep_503_with_retry_after_is_honoured_and_media_follows() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    server.set_whep_fault_for(WhepFault::Unavailable(RetryAfter::Seconds(2)), 1);
    let mut w = whep(&server, policy());
    w.until("the refusal", |e| matches!(e, Event::Error(_)))
        .await;
    let refused = Instant::now();
    assert!(w.errors[0].contains("503"), "{}", w.dump());
    w.until_playing().await;
    assert!(refused.elapsed() >= AT_LEAST, "{}", w.dump());
    assert_eq!(server.whep_requests(), 2);
}

#[tokio::test]
async fn a_whep_429_asking_for_a_day_waits_only_the_policy_maximum() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    server.set_whep_fault_for(WhepFault::TooManyRequests(RetryAfter::Seconds(86_400)), 1);
    let capped = Policy::builder()
        .backoff(Duration::from_millis(50), 2.0, Duration::from_millis(400))
        .retry_after_max(Duration::from_secs(1))
        .progress_watchdog(false)
        .build()
        .unwrap();
    let mut w = whep(&server, capped);
    let event = w
        .until("the backoff", |e| {
            matches!(
                e,
                Event::State {
                    to: State::Backoff { .. },
                    ..
                }
            )
        })
        .await;
    let Event::State { retry_in, .. } = event else {
        unreachable!()
    };
    let retry_in = retry_in.unwrap();
    assert!(
        retry_in > Duration::from_millis(900) && retry_in <= Duration::from_secs(1),
        "{retry_in:?}"
    );
    tokio::time::timeout(PATIENCE, w.until_playing())
        .await
        .unwrap();
}
