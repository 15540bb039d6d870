//! The WebRTC peer, Millicast with real media and WHEP, against the testkit server and its
//! publisher peers, over real UDP and TCP sockets on 127.0.0.1. One module per situation.
#![allow(clippy::unwrap_used)] // test helpers fail loudly, like the tests
#![cfg(all(feature = "webrtc", feature = "testkit"))]

#[path = "../support/mod.rs"]
mod support;

mod millicast;
mod peer;
mod whep;
mod whep_patch;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use relive::webrtc::{ReceivePeers, WebRtcMedia};
use relive::{Event, Policy, StreamSource};
use support::{PATIENCE, Watch};
use tokio::time::timeout;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const CAM: &str = "cam";

/// The media watchdog is on: stalls are seen from media time.
const STALL_AFTER: Duration = Duration::from_millis(600);
/// The tick period of the peers.
const TICK: Duration = Duration::from_millis(100);

fn peers() -> ReceivePeers {
    ReceivePeers::new().bind_ip(LOOPBACK).progress_every(TICK)
}

/// Short timings for loopback, with the progress watchdog on.
fn policy(stall_grace: Duration) -> Policy {
    builder(stall_grace).build().expect("a valid policy")
}

/// [`policy`], before it is built.
fn builder(stall_grace: Duration) -> relive::PolicyBuilder {
    Policy::builder()
        .stall_after(STALL_AFTER)
        .first_media_within(Duration::from_secs(2))
        .stall_grace(stall_grace)
        .backoff(Duration::from_millis(50), 2.0, Duration::from_millis(400))
        .connect_timeout(Duration::from_secs(5))
}

/// Waits for a session whose media delivers a packet; returns its media. Sessions that end
/// without media (a dead path) are skipped.
async fn until_media<S>(
    w: &mut Watch<S>,
    media: impl Fn(&mut S::Media) -> &mut WebRtcMedia,
) -> S::Media
where
    S: StreamSource,
    S::Media: std::fmt::Debug,
{
    loop {
        let Event::Session(mut session) = w
            .until("a session", |e| matches!(e, Event::Session(_)))
            .await
        else {
            unreachable!()
        };
        match timeout(PATIENCE, media(&mut session).recv()).await {
            Ok(Some(_packet)) => return session,
            Ok(None) => continue,
            Err(_) => panic!("a session without media; timeline:\n{}", w.dump()),
        }
    }
}
