//! The situations every driver must handle alike, written once and run against
//! both the per-viewer `Reconnector` and the `Fleet` (see `main.rs`).

use std::time::Duration;

use relive::testkit::MemoryStream;
use relive::{Event, GiveUpReason, Policy, Reason, Retry, StallCause, State};
use tokio::time::{Instant, sleep, timeout};

use crate::{
    Handle, Kind, PATIENCE, TICK, one_at_a_time, playing, transition_to, viewer, viewer_with,
    wait_for,
};

fn is_stalled(s: &State) -> bool {
    matches!(s, State::Stalled { .. })
}

pub(crate) async fn frozen_media_is_detected_within_stall_after_plus_one_tick<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    let v = viewer::<D>(&stream);
    playing(&v).await;
    sleep(Duration::from_millis(3_100)).await;
    stream.freeze();
    let frozen_at = Instant::now();
    let state = wait_for(&v, "stalled", is_stalled).await;
    let latency = frozen_at.elapsed();
    let bound = Policy::default().stall_after() + TICK;
    assert!(
        latency <= bound,
        "detected after {latency:?}, bound {bound:?}"
    );
    assert!(matches!(
        state,
        State::Stalled {
            cause: StallCause::NoProgress,
            ..
        }
    ));
}

pub(crate) async fn a_freeze_that_heals_within_the_grace_keeps_the_session<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    let v = viewer_with::<D>(&stream, one_at_a_time());
    playing(&v).await;
    stream.freeze();
    wait_for(&v, "stalled", is_stalled).await;
    sleep(Duration::from_secs(1)).await;
    stream.unfreeze();
    playing(&v).await;
    assert_eq!(stream.connects(), 1, "the same session must carry on");
    assert_eq!(stream.sessions(), 1);
}

pub(crate) async fn a_freeze_beyond_the_grace_drops_the_session_and_reconnects<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    let mut v = viewer_with::<D>(&stream, one_at_a_time());
    playing(&v).await;
    // Stable past `reset_after`: the first drop reconnects within the spread.
    sleep(Policy::default().reset_after() + Duration::from_secs(1)).await;
    stream.freeze();
    wait_for(&v, "stalled", is_stalled).await;
    collect_now(&mut v).await;
    let (_, reason) = transition_to(&mut v, "leaving stalled", |s| !is_stalled(s)).await;
    assert_eq!(reason, Reason::GraceExpired(StallCause::NoProgress));
    stream.unfreeze();
    collect_now(&mut v).await;
    playing(&v).await;
    assert_eq!(stream.sessions(), 1, "the old session is dropped");
    assert!(stream.connects() >= 2);
}

pub(crate) async fn a_freeze_is_answered_by_a_session_made_beside_it_that_replaces_it<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    let mut v = viewer::<D>(&stream);
    playing(&v).await;
    sleep(Policy::default().reset_after() + Duration::from_secs(1)).await;
    stream.freeze();
    let frozen_at = Instant::now();
    wait_for(&v, "stalled", is_stalled).await;
    collect_now(&mut v).await;
    // The new session comes before the grace runs out, the old one still up.
    let (to, reason) = transition_to(&mut v, "leaving stalled", |s| !is_stalled(s)).await;
    let replaced_after = frozen_at.elapsed();
    assert!(to.is_playing(), "{to}");
    assert_eq!(reason, Reason::Connected);
    let p = Policy::default();
    assert!(
        replaced_after <= p.stall_after() + TICK + p.reconnect_spread(),
        "{replaced_after:?}"
    );
    assert!(replaced_after < p.stall_after() + p.stall_grace());
    assert_eq!(stream.connects(), 2);
    assert_eq!(stream.sessions(), 1, "the frozen session is dropped");
}

pub(crate) async fn a_frozen_session_that_heals_first_abandons_the_attempt_beside_it<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    let policy = Policy::builder()
        .reconnect_spread(Duration::ZERO)
        .build()
        .expect("valid");
    let v = viewer_with::<D>(&stream, policy);
    playing(&v).await;
    // Attempts take 2 s: the frozen session heals before the new one connects.
    stream.set_connect_delay(Duration::from_secs(2));
    stream.freeze();
    wait_for(&v, "stalled", is_stalled).await;
    sleep(Duration::from_millis(500)).await;
    stream.unfreeze();
    playing(&v).await;
    sleep(Duration::from_secs(3)).await;
    assert_eq!(
        stream.connects(),
        2,
        "an attempt was made beside the session"
    );
    assert_eq!(stream.sessions(), 1, "the abandoned attempt left nothing");
    assert!(v.state().is_playing());
}

pub(crate) async fn a_zero_reconnect_spread_reconnects_at_once<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    let policy = Policy::builder()
        .reconnect_spread(Duration::ZERO)
        .build()
        .expect("valid");
    let mut v = D::spawn(stream.source().tick(TICK), policy, 0);
    playing(&v).await;
    sleep(Policy::default().reset_after() + Duration::from_secs(1)).await;
    collect_now(&mut v).await;
    let blink = Instant::now();
    stream.drop_sessions();
    let (state, _) = transition_to(&mut v, "leaving playing", |s| !s.is_playing()).await;
    assert!(
        matches!(state, State::Connecting { attempt: 1, .. }),
        "{state}"
    );
    transition_to(&mut v, "playing", State::is_playing).await;
    assert!(blink.elapsed() < Duration::from_millis(1));
}

pub(crate) async fn waiting_for_the_publisher_ends_at_once_on_a_live_hint<D: Kind>() {
    let stream = MemoryStream::new();
    let v = viewer::<D>(&stream);
    let waiting = wait_for(&v, "waiting for publisher", |s| {
        matches!(
            s,
            State::Backoff {
                waiting_for_publisher: true,
                ..
            }
        )
    })
    .await;
    let State::Backoff { until, .. } = waiting else {
        unreachable!()
    };
    stream.publish();
    let hinted_at = Instant::now();
    v.live_hint();
    playing(&v).await;
    assert!(
        hinted_at.elapsed() < Duration::from_millis(1),
        "resume must not wait"
    );
    assert!(tokio::time::Instant::from_std(until) > hinted_at || stream.connects() == 2);
}

pub(crate) async fn waiting_for_the_publisher_polls_with_backoff_without_a_hint<D: Kind>() {
    let stream = MemoryStream::new();
    let v = viewer::<D>(&stream);
    sleep(Duration::from_secs(60)).await;
    let polls = stream.connects();
    // 500 ms doubling to a 10 s cap with full jitter: more than a handful,
    // far fewer than one per second.
    assert!((4..60).contains(&polls), "{polls} attempts in a minute");
    stream.publish();
    playing(&v).await;
}

pub(crate) async fn stop_during_connecting_abandons_the_attempt_and_never_reconnects<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    stream.set_connect_delay(Duration::from_secs(3600 * 24));
    let v = viewer::<D>(&stream);
    // The viewer says `Connecting` from `spawn`; wait until the attempt is made.
    timeout(PATIENCE, async {
        while stream.connects() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("an attempt");
    v.stop().await;
    assert_eq!(v.state(), State::Idle);
    sleep(Duration::from_secs(600)).await;
    assert_eq!(stream.connects(), 1);
    assert_eq!(stream.sessions(), 0);
}

pub(crate) async fn stop_during_playing_drops_the_session<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    let v = viewer::<D>(&stream);
    playing(&v).await;
    v.stop().await;
    assert_eq!(v.state(), State::Idle);
    tokio::task::yield_now().await;
    assert_eq!(stream.sessions(), 0);
    sleep(Duration::from_secs(600)).await;
    assert_eq!(stream.connects(), 1);
}

pub(crate) async fn stop_during_stalled_drops_the_session<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    let v = viewer::<D>(&stream);
    playing(&v).await;
    stream.freeze();
    wait_for(&v, "stalled", is_stalled).await;
    v.stop().await;
    assert_eq!(v.state(), State::Idle);
    sleep(Duration::from_secs(600)).await;
    assert_eq!((stream.connects(), stream.sessions()), (1, 0));
}

pub(crate) async fn stop_during_backoff_never_reconnects<D: Kind>() {
    let stream = MemoryStream::new();
    let v = viewer::<D>(&stream);
    wait_for(&v, "backoff", |s| matches!(s, State::Backoff { .. })).await;
    let before = stream.connects();
    v.stop().await;
    stream.publish();
    sleep(Duration::from_secs(600)).await;
    assert_eq!(stream.connects(), before);
    assert_eq!(v.state(), State::Idle);
}

pub(crate) async fn start_after_stop_watches_again<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    let v = viewer::<D>(&stream);
    playing(&v).await;
    v.stop().await;
    v.start();
    playing(&v).await;
    assert_eq!(stream.connects(), 2);
}

pub(crate) async fn player_reported_progress_drives_stall_detection<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    let source = stream.source().with_progress(false);
    let v = D::spawn(source, Policy::default(), 2);
    playing(&v).await;
    let mut media = Duration::ZERO;
    for _ in 0..40 {
        media += TICK;
        v.report_progress(media);
        sleep(TICK).await;
    }
    assert!(v.state().is_playing(), "steady progress is no stall");
    let last = Instant::now();
    let state = wait_for(&v, "stalled", is_stalled).await;
    assert!(matches!(
        state,
        State::Stalled {
            cause: StallCause::NoProgress,
            ..
        }
    ));
    assert!(last.elapsed() <= Policy::default().stall_after() + TICK);
}

pub(crate) async fn a_user_pause_is_never_a_stall<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    let source = stream.source().with_progress(false);
    let v = D::spawn(source, Policy::default(), 3);
    playing(&v).await;
    v.report_progress(TICK);
    v.pause();
    sleep(Duration::from_secs(120)).await;
    assert!(v.state().is_playing(), "{}", v.state());
    v.resume();
    wait_for(&v, "stalled after resume", is_stalled).await;
}

pub(crate) async fn a_network_blink_after_stable_play_reconnects_within_the_spread<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    let mut v = viewer::<D>(&stream);
    playing(&v).await;
    sleep(Policy::default().reset_after() + Duration::from_secs(1)).await;
    collect_now(&mut v).await;
    let blink = Instant::now();
    stream.drop_sessions();
    let (_, reason) = transition_to(&mut v, "leaving playing", |s| !s.is_playing()).await;
    assert_eq!(reason, Reason::TransportLost(Retry::Later));
    transition_to(&mut v, "playing", State::is_playing).await;
    let spread = Policy::default().reconnect_spread();
    assert!(
        blink.elapsed() <= spread,
        "{:?} > {spread:?}",
        blink.elapsed()
    );
    assert_eq!(stream.connects(), 2, "one attempt, no backoff");
}

pub(crate) async fn a_fatal_error_gives_up_and_reports_it<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    stream.fail_next(1, Retry::Never);
    let mut v = viewer::<D>(&stream);
    let mut gave_up = None;
    let mut errors = 0;
    while let Ok(Some(event)) = timeout(PATIENCE, v.event()).await {
        match event {
            Event::Error(_) => errors += 1,
            Event::GaveUp(reason) => {
                gave_up = Some(reason);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(gave_up, Some(GiveUpReason::Fatal));
    assert_eq!(errors, 1);
    assert_eq!(v.state(), State::Idle);
    sleep(Duration::from_secs(600)).await;
    assert_eq!(stream.connects(), 1);
}

pub(crate) async fn backoff_events_say_when_the_next_attempt_comes<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    stream.fail_next(3, Retry::Later);
    let mut v = viewer::<D>(&stream);
    let mut delays = Vec::new();
    while let Ok(Some(event)) = timeout(PATIENCE, v.event()).await {
        match event {
            Event::State {
                to: State::Backoff { .. },
                retry_in,
                reason,
                ..
            } => {
                assert_eq!(reason, Reason::ConnectFailed(Retry::Later));
                delays.push(retry_in.expect("a backoff has a delay"));
            }
            Event::Session(_) => break,
            _ => {}
        }
    }
    assert!(delays.len() <= 3, "{delays:?}");
    assert!(
        delays
            .iter()
            .all(|d| *d <= Policy::default().backoff().cap())
    );
    assert_eq!(stream.connects(), 4);
}

pub(crate) async fn dropping_the_viewer_ends_its_session<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    let v = viewer::<D>(&stream);
    playing(&v).await;
    drop(v);
    let deadline = Instant::now() + Duration::from_secs(5);
    while stream.sessions() > 0 && Instant::now() < deadline {
        sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stream.sessions(), 0);
}

pub(crate) async fn viewer_counts_reach_the_application<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    let mut v = viewer::<D>(&stream);
    playing(&v).await;
    stream.set_viewer_count(42);
    let mut seen = None;
    while let Ok(Some(event)) = timeout(PATIENCE, v.event()).await {
        if let Event::ViewerCount(n) = event {
            seen = Some(n);
            break;
        }
    }
    assert_eq!(seen, Some(42));
}

/// The events already queued, without waiting for more.
pub(crate) async fn collect_now<S: relive::StreamSource>(
    v: &mut impl Handle<S>,
) -> Vec<Event<S::Media, S::Error>> {
    let mut out = Vec::new();
    while let Ok(Some(e)) = timeout(Duration::ZERO, v.event()).await {
        out.push(e);
    }
    out
}

pub(crate) async fn a_live_hint_given_while_an_attempt_is_in_flight_is_not_lost<D: Kind>() {
    let stream = MemoryStream::new();
    stream.set_connect_delay(Duration::from_millis(200));
    // The first attempt is answered "not published": the server saw it before
    // the publisher came.
    stream.fail_next(1, Retry::WaitForPublisher);
    let mut v = viewer::<D>(&stream);
    transition_to(&mut v, "connecting", |s| {
        matches!(s, State::Connecting { .. })
    })
    .await;
    // The publisher goes live while that attempt is in flight; the app hears
    // of it at once and says so.
    stream.publish();
    v.live_hint();
    let (_, reason) = transition_to(&mut v, "the retry", |s| {
        matches!(s, State::Connecting { attempt: 2, .. })
    })
    .await;
    assert_eq!(reason, Reason::LiveHint, "the kept hint cut the backoff");
    playing(&v).await;
    assert_eq!(stream.connects(), 2);
}

pub(crate) async fn stopping_during_an_attempt_hands_no_session_to_the_app<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    stream.set_connect_delay(Duration::from_millis(200));
    let mut v = viewer::<D>(&stream);
    transition_to(&mut v, "connecting", |s| {
        matches!(s, State::Connecting { .. })
    })
    .await;
    v.stop().await;
    // The attempt was abandoned: no session was handed over, none is open.
    while let Ok(Some(event)) = timeout(Duration::from_secs(1), v.event()).await {
        assert!(!matches!(event, Event::Session(_)), "{event}");
    }
    assert_eq!(stream.sessions(), 0);
}

pub(crate) async fn a_spawned_viewer_is_connecting_at_once_and_retry_in_reads_the_runtime_clock<
    D: Kind,
>() {
    let stream = MemoryStream::new();
    let v = viewer::<D>(&stream);
    assert!(
        matches!(v.state(), State::Connecting { attempt: 1, .. }),
        "{}",
        v.state()
    );
    wait_for(&v, "waiting for the publisher", |s| {
        matches!(s, State::Backoff { .. })
    })
    .await;
    let first = v.retry_in().expect("backing off");
    // Far more virtual time than any real time: the answer follows the runtime's clock.
    sleep(first / 2).await;
    let later = v.retry_in().expect("still backing off");
    // tokio's timer has a 1 ms resolution.
    let moved = first - later;
    assert!(
        moved.abs_diff(first / 2) <= Duration::from_millis(1),
        "{moved:?} of {first:?}"
    );
}
