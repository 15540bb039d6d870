//! Real local servers and scripted sources for tests, examples and users' own
//! tests, like tokio's `test-util`.
//!
//! - [`MemoryStream`]: an in-memory live stream with a script (publish, freeze,
//!   drop sessions, fail attempts) and its [`MemorySource`].
//! - [`proxy::FaultProxy`]: a TCP proxy that cuts, black-holes, delays and
//!   corrupts traffic, for chaos tests.
//! - `millicast` (with feature `millicast`): a Millicast-protocol Director and
//!   signaling server.
//! - `publisher` (with feature `webrtc`): a publisher peer that answers a viewer's offer and
//!   sends real RTP over UDP on loopback: the [`clip`], looped.
//! - `script` (with feature `millicast`): fault scripts, timelines of server actions read from
//!   JSON, which the `relive-testkit` binary plays and its control API takes live.
//! - [`clip`]: a short real clip (VP8 or H.264 video, Opus audio), embedded, and the cursor
//!   that loops it.

pub mod clip;
mod memory;
#[cfg(feature = "millicast")]
pub mod millicast;
pub mod proxy;
#[cfg(feature = "webrtc")]
pub mod publisher;
#[cfg(feature = "millicast")]
pub mod script;

pub use memory::{MemoryError, MemoryMedia, MemoryRepair, MemorySource, MemoryStream};
