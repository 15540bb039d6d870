//! The `relive-testkit` binary as a child process: its fault script, its control API, its wire
//! log and CORS, and bad input (exit code 2 with the line and field). Each test starts its own
//! server on 127.0.0.1 port 0 and judges it by the wire log, as a test in another language would.
#![cfg(feature = "testkit-bin")]
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub, dead_code)]

mod bad_input;
mod child;
mod control;
mod script;
#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use relive::millicast::MillicastSource;
use relive::{Policy, Reconnector};

use support::Watch;

/// The stream every test watches.
pub const CAM: &str = "cam";

/// A signaling-only relive viewer of `CAM` on the server at `base`, with a fast keepalive so
/// that its pings show in the log.
pub fn viewer(base: &str) -> Watch<MillicastSource> {
    let source = MillicastSource::new("testkit", CAM)
        .director_url(base.to_owned())
        .request_timeout(Duration::from_secs(2))
        .keepalive(Duration::from_millis(200), Duration::from_secs(5));
    let policy = Policy::builder()
        .backoff(Duration::from_millis(50), 2.0, Duration::from_millis(400))
        .progress_watchdog(false)
        .build()
        .unwrap();
    Watch::new(Reconnector::new(source, policy).seed(5).spawn())
}
