//! Resuming as fast as the network and the server allow, against the testkit server on
//! 127.0.0.1: `Retry-After` honoured (Director and WHEP), redirects followed with the body, a
//! network change cutting a backoff short. One module per situation.
#![allow(clippy::unwrap_used)] // test helpers fail loudly, like the tests
#![cfg(all(feature = "webrtc", feature = "testkit"))]

#[path = "../support/mod.rs"]
mod support;

mod freeze;
mod ice_restart;
mod network;
mod redirect;
mod retry_after;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use relive::millicast::MillicastSource;
use relive::testkit::millicast::MillicastServer;
use relive::webrtc::{ReceivePeers, WhepSource};
use relive::{Policy, Reconnector};
use support::Watch;

const CAM: &str = "cam";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Fast retries, so that a wait of seconds can only be the server's `Retry-After`: the backoff
/// alone would retry within 50–400 ms.
fn policy() -> Policy {
    Policy::builder()
        .backoff(Duration::from_millis(50), 2.0, Duration::from_millis(400))
        .connect_timeout(Duration::from_secs(5))
        .progress_watchdog(false)
        .build()
        .expect("a valid policy")
}

/// A signaling-only Millicast viewer of `CAM` (its media, if any, is not watched).
fn millicast(server: &MillicastServer, policy: Policy) -> Watch<MillicastSource> {
    let source = MillicastSource::new(server.account_id(), CAM)
        .director_url(server.director_url())
        .request_timeout(Duration::from_secs(2));
    Watch::new(Reconnector::new(source, policy).seed(5).spawn())
}

/// A WHEP viewer of `CAM` with real media.
fn whep(server: &MillicastServer, policy: Policy) -> Watch<WhepSource> {
    let peers = ReceivePeers::new()
        .bind_ip(LOOPBACK)
        .progress_every(Duration::from_millis(100));
    let source = WhepSource::new(server.whep_url(CAM))
        .peers(peers)
        .request_timeout(Duration::from_secs(2));
    Watch::new(Reconnector::new(source, policy).seed(5).spawn())
}
