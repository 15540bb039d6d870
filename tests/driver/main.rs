//! The tokio drivers on virtual time, against the in-memory scripted source.
//!
//! Every situation is written once, generic over a [`Kind`] of driver, and
//! runs twice: `reconnector::NAME` on a per-viewer `Reconnector`,
//! `fleet_of_one::NAME` on one viewer of a `Fleet`. Files: `situations.rs`
//! (the machine's rules as the application sees them), `bounded.rs` (an
//! application that never reads events), `task_only.rs` (what only the
//! per-viewer task has), `fleet.rs` (what only a fleet has: many viewers over
//! several shards, bulk progress, removal).
#![cfg(feature = "testkit")]

#[path = "../support/mod.rs"]
mod support;

mod bounded;
mod fleet;
mod repair;
mod situations;
mod task_only;

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use relive::testkit::{MemorySource, MemoryStream};
use relive::{
    Dropped, Event, Fleet, FleetBuilder, FleetControl, Policy, Reason, Reconnector, State,
    StreamSource, Viewer, ViewerId,
};
use tokio::time::{sleep, timeout};

pub(crate) const TICK: Duration = Duration::from_millis(250);
pub(crate) use support::VIRTUAL_PATIENCE as PATIENCE;

/// A driver under test: how to start one viewer of `source`.
pub(crate) trait Kind {
    /// The application's handle on that viewer.
    type H<S: StreamSource>: Handle<S>;
    fn spawn<S: StreamSource>(source: S, policy: Policy, seed: u64) -> Self::H<S>;
}

/// What a test does with a viewer, whichever the driver.
pub(crate) trait Handle<S: StreamSource> {
    fn state(&self) -> State;
    /// The viewer's next event.
    fn event(&mut self) -> impl Future<Output = Option<Event<S::Media, S::Error>>>;
    fn report_progress(&self, media: Duration);
    fn pause(&self);
    fn resume(&self);
    fn live_hint(&self);
    fn network_changed(&self);
    fn start(&self);
    fn stop(&self) -> impl Future<Output = ()>;
    fn retry_in(&self) -> Option<Duration>;
    /// Undelivered events.
    fn queued(&self) -> usize;
    fn dropped(&self) -> Dropped;
    /// Waits until the state matches `f`: checked after letting the other
    /// tasks run, and every virtual millisecond when they have nothing to do.
    fn wait_for(&self, f: impl Fn(&State) -> bool) -> impl Future<Output = Option<State>> {
        async move {
            timeout(PATIENCE, async {
                for round in 0u64.. {
                    let state = self.state();
                    if f(&state) {
                        return state;
                    }
                    if round % 32 == 31 {
                        sleep(Duration::from_millis(1)).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
                unreachable!("the rounds never end")
            })
            .await
            .ok()
        }
    }
}

/// The per-viewer task.
pub(crate) struct Single;

impl Kind for Single {
    type H<S: StreamSource> = Viewer<S>;
    fn spawn<S: StreamSource>(source: S, policy: Policy, seed: u64) -> Viewer<S> {
        Reconnector::new(source, policy).seed(seed).spawn()
    }
}

impl<S: StreamSource> Handle<S> for Viewer<S> {
    fn state(&self) -> State {
        std::ops::Deref::deref(self).state()
    }
    async fn event(&mut self) -> Option<Event<S::Media, S::Error>> {
        self.next().await
    }
    fn report_progress(&self, media: Duration) {
        std::ops::Deref::deref(self).report_progress(media);
    }
    fn pause(&self) {
        std::ops::Deref::deref(self).pause();
    }
    fn resume(&self) {
        std::ops::Deref::deref(self).resume();
    }
    fn live_hint(&self) {
        std::ops::Deref::deref(self).live_hint();
    }
    fn network_changed(&self) {
        std::ops::Deref::deref(self).network_changed();
    }
    fn start(&self) {
        std::ops::Deref::deref(self).start();
    }
    async fn stop(&self) {
        std::ops::Deref::deref(self).stop().await;
    }
    fn retry_in(&self) -> Option<Duration> {
        std::ops::Deref::deref(self).retry_in()
    }
    fn queued(&self) -> usize {
        Viewer::queued(self)
    }
    fn dropped(&self) -> Dropped {
        Viewer::dropped(self)
    }
    /// The watch channel: exact, no polling.
    async fn wait_for(&self, f: impl Fn(&State) -> bool) -> Option<State> {
        let mut rx = self.watch_state();
        match timeout(PATIENCE, rx.wait_for(|s| f(s))).await {
            Ok(Ok(state)) => Some(*state),
            _ => None,
        }
    }
}

/// One viewer of a fleet that owns nothing else.
pub(crate) struct Many;

pub(crate) struct FleetViewer<S: StreamSource> {
    pub(crate) fleet: Fleet<S>,
    pub(crate) id: ViewerId,
    pub(crate) control: FleetControl,
}

impl Kind for Many {
    type H<S: StreamSource> = FleetViewer<S>;
    fn spawn<S: StreamSource>(source: S, policy: Policy, seed: u64) -> FleetViewer<S> {
        let fleet = FleetBuilder::new(policy).spawn();
        let id = fleet.add_with(source, Some(seed), true);
        let control = fleet.control(id);
        FleetViewer { fleet, id, control }
    }
}

impl<S: StreamSource> Handle<S> for FleetViewer<S> {
    fn state(&self) -> State {
        self.control.state()
    }
    async fn event(&mut self) -> Option<Event<S::Media, S::Error>> {
        loop {
            let (id, event) = self.fleet.next().await?;
            if id == self.id {
                return Some(event);
            }
        }
    }
    fn report_progress(&self, media: Duration) {
        self.control.report_progress(media);
    }
    fn pause(&self) {
        self.control.pause();
    }
    fn resume(&self) {
        self.control.resume();
    }
    fn live_hint(&self) {
        self.control.live_hint();
    }
    fn network_changed(&self) {
        self.control.network_changed();
    }
    fn start(&self) {
        self.control.start();
    }
    async fn stop(&self) {
        self.control.stop().await;
    }
    fn retry_in(&self) -> Option<Duration> {
        self.control.retry_in()
    }
    fn queued(&self) -> usize {
        self.fleet.queued()
    }
    fn dropped(&self) -> Dropped {
        self.fleet.dropped()
    }
}

pub(crate) fn viewer<D: Kind>(stream: &MemoryStream) -> D::H<MemorySource> {
    viewer_with::<D>(stream, Policy::default())
}

pub(crate) fn viewer_with<D: Kind>(stream: &MemoryStream, policy: Policy) -> D::H<MemorySource> {
    D::spawn(stream.source().tick(TICK), policy, 1)
}

/// The defaults without make-before-break: a frozen session waits out its grace alone.
pub(crate) fn one_at_a_time() -> Policy {
    Policy::builder()
        .make_before_break(false)
        .build()
        .expect("valid")
}

pub(crate) async fn wait_for<S: StreamSource>(
    v: &impl Handle<S>,
    what: &str,
    f: impl Fn(&State) -> bool,
) -> State {
    match v.wait_for(f).await {
        Some(state) => state,
        None => panic!("never reached {what}; state is {}", v.state()),
    }
}

pub(crate) async fn playing<S: StreamSource>(v: &impl Handle<S>) -> State {
    wait_for(v, "playing", State::is_playing).await
}

/// Waits for the next transition into a state matching `f`: catches states
/// too brief for the state watch. Drain older events first with `collect_now`.
pub(crate) async fn transition_to<S: StreamSource>(
    v: &mut impl Handle<S>,
    what: &str,
    f: impl Fn(&State) -> bool,
) -> (State, Reason) {
    while let Ok(Some(event)) = timeout(PATIENCE, v.event()).await {
        if let Event::State { to, reason, .. } = event
            && f(&to)
        {
            return (to, reason);
        }
    }
    panic!("never moved to {what}; state is {}", v.state());
}

/// Each test, once per driver.
macro_rules! both {
    ($($path:ident :: $name:ident),* $(,)?) => {
        mod reconnector {
            $(
                #[tokio::test(start_paused = true)]
                async fn $name() {
                    crate::$path::$name::<crate::Single>().await;
                }
            )*
        }
        mod fleet_of_one {
            $(
                #[tokio::test(start_paused = true)]
                async fn $name() {
                    crate::$path::$name::<crate::Many>().await;
                }
            )*
        }
    };
}

both!(
    situations::frozen_media_is_detected_within_stall_after_plus_one_tick,
    situations::a_freeze_that_heals_within_the_grace_keeps_the_session,
    situations::a_freeze_beyond_the_grace_drops_the_session_and_reconnects,
    situations::a_freeze_is_answered_by_a_session_made_beside_it_that_replaces_it,
    situations::a_frozen_session_that_heals_first_abandons_the_attempt_beside_it,
    situations::a_zero_reconnect_spread_reconnects_at_once,
    situations::waiting_for_the_publisher_ends_at_once_on_a_live_hint,
    situations::waiting_for_the_publisher_polls_with_backoff_without_a_hint,
    situations::stop_during_connecting_abandons_the_attempt_and_never_reconnects,
    situations::stop_during_playing_drops_the_session,
    situations::stop_during_stalled_drops_the_session,
    situations::stop_during_backoff_never_reconnects,
    situations::start_after_stop_watches_again,
    situations::player_reported_progress_drives_stall_detection,
    situations::a_user_pause_is_never_a_stall,
    situations::a_network_blink_after_stable_play_reconnects_within_the_spread,
    situations::a_fatal_error_gives_up_and_reports_it,
    situations::backoff_events_say_when_the_next_attempt_comes,
    situations::dropping_the_viewer_ends_its_session,
    situations::viewer_counts_reach_the_application,
    situations::a_live_hint_given_while_an_attempt_is_in_flight_is_not_lost,
    situations::stopping_during_an_attempt_hands_no_session_to_the_app,
    situations::a_spawned_viewer_is_connecting_at_once_and_retry_in_reads_the_runtime_clock,
    repair::a_frozen_repairable_session_is_repaired_in_place,
    repair::a_failed_repair_escalates_to_a_session_made_beside_it,
    repair::a_lost_path_is_repaired_on_the_same_session,
    repair::a_lost_path_of_a_session_that_cannot_be_repaired_reconnects,
    repair::a_network_change_while_playing_repairs_at_once,
    repair::a_boxed_source_repairs_like_the_source_it_boxes,
    bounded::an_application_that_never_reads_events_keeps_bounded_memory_through_10_000_blinks,
    bounded::a_session_that_arrives_before_the_last_one_was_read_supersedes_it,
);
