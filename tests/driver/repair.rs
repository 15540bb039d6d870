//! In-session repair through the drivers: a session its source can repair
//! (here a `MemoryStream` with `set_repair`) is repaired in place on a
//! stall, a lost media path and a network change, and replaced by a new
//! session when the repair fails. Run against both drivers (see `main.rs`).

use relive::testkit::{MemoryError, MemoryRepair, MemoryStream};
use relive::{BoxSource, Event, Policy, Reason, State};

use crate::situations::collect_now;
use crate::{Handle, Kind, TICK, playing, transition_to, viewer, wait_for};

fn is_stalled(s: &State) -> bool {
    matches!(s, State::Stalled { .. })
}

/// A live stream whose sessions can be repaired as `repair` says.
fn repairable(repair: MemoryRepair) -> MemoryStream {
    let stream = MemoryStream::new();
    stream.set_repair(Some(repair));
    stream.publish();
    stream
}

pub(crate) async fn a_frozen_repairable_session_is_repaired_in_place<D: Kind>() {
    let stream = repairable(MemoryRepair::Heals);
    let mut v = viewer::<D>(&stream);
    playing(&v).await;
    collect_now(&mut v).await;
    stream.freeze();
    let (_, reason) = transition_to(&mut v, "playing again", State::is_playing).await;
    assert_eq!(reason, Reason::Repaired);
    assert_eq!(stream.repairs(), 1);
    assert_eq!(stream.connects(), 1, "no new session");
    assert_eq!(stream.sessions(), 1);
}

pub(crate) async fn a_failed_repair_escalates_to_a_session_made_beside_it<D: Kind>() {
    let stream = repairable(MemoryRepair::Fails);
    let mut v = viewer::<D>(&stream);
    playing(&v).await;
    collect_now(&mut v).await;
    stream.freeze();
    wait_for(&v, "stalled", is_stalled).await;
    // The attempt beside the frozen session connects to a frozen stream:
    // heal it once the repair was refused, so the new session plays.
    let mut repair_error = false;
    while let Ok(Some(event)) = tokio::time::timeout(crate::PATIENCE, v.event()).await {
        match event {
            Event::Error(MemoryError::RepairFailed) => {
                repair_error = true;
                stream.unfreeze();
            }
            Event::State { to, reason, .. } if to.is_playing() => {
                assert_eq!(reason, Reason::Connected);
                break;
            }
            _ => {}
        }
    }
    assert!(repair_error, "the failed repair reaches the application");
    assert_eq!(stream.repairs(), 1);
    assert_eq!(stream.connects(), 2);
    assert_eq!(stream.sessions(), 1, "the frozen session was replaced");
}

pub(crate) async fn a_lost_path_is_repaired_on_the_same_session<D: Kind>() {
    let stream = repairable(MemoryRepair::Heals);
    let mut v = viewer::<D>(&stream);
    playing(&v).await;
    collect_now(&mut v).await;
    stream.lose_paths();
    let (_, reason) = transition_to(&mut v, "stalled", is_stalled).await;
    assert_eq!(reason, Reason::PathLost);
    let (_, reason) = transition_to(&mut v, "playing again", State::is_playing).await;
    assert_eq!(reason, Reason::Repaired);
    assert_eq!((stream.repairs(), stream.connects()), (1, 1));
}

pub(crate) async fn a_lost_path_of_a_session_that_cannot_be_repaired_reconnects<D: Kind>() {
    let stream = MemoryStream::new();
    stream.publish();
    let mut v = viewer::<D>(&stream);
    playing(&v).await;
    collect_now(&mut v).await;
    stream.lose_paths();
    let (_, reason) = transition_to(&mut v, "leaving playing", |s| !s.is_playing()).await;
    assert_eq!(reason, Reason::TransportLost(relive::Retry::Later));
    stream.unfreeze();
    playing(&v).await;
    assert_eq!((stream.repairs(), stream.connects()), (0, 2));
}

pub(crate) async fn a_network_change_while_playing_repairs_at_once<D: Kind>() {
    let stream = repairable(MemoryRepair::Succeeds);
    let v = viewer::<D>(&stream);
    playing(&v).await;
    v.network_changed();
    tokio::time::timeout(crate::PATIENCE, async {
        while stream.repairs() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("a repair within the patience");
    assert!(v.state().is_playing());
    assert_eq!(stream.connects(), 1);
}

pub(crate) async fn a_boxed_source_repairs_like_the_source_it_boxes<D: Kind>() {
    let stream = repairable(MemoryRepair::Heals);
    let source = BoxSource::new(stream.source().tick(TICK));
    let policy = Policy::default();
    let mut v = D::spawn(source, policy, 1);
    playing(&v).await;
    collect_now(&mut v).await;
    stream.freeze();
    let (_, reason) = transition_to(&mut v, "playing again", State::is_playing).await;
    assert_eq!(reason, Reason::Repaired);
    assert_eq!((stream.repairs(), stream.connects()), (1, 1));
}
