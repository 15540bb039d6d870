//! relive keeps live-stream viewers watching.
//!
//! Publishers restart encoders, networks blink, WebRTC sessions freeze
//! silently, and a server answers "Feed not found" because nobody is
//! broadcasting yet. relive notices and gets the picture back: fast, without
//! hammering the service, and without each app re-inventing a fragile
//! polling loop.
//!
//! It has three layers:
//! - [`Machine`], the sans-IO core: fed inputs with the time they happened
//!   ([`Input`]: progress ticks, layer counts, publisher events, connect
//!   results), it answers with [`Output`]s (connect, drop the session, state
//!   changed, gave up) and the next instant it needs waking. No tokio, no
//!   sockets, no clock: every decision is a pure function of its inputs.
//! - [`Reconnector`], the tokio driver: runs one machine per viewer over any
//!   [`StreamSource`], hands each new session to the application and reports
//!   every change as a [`futures::Stream`] of [`Event`]s.
//! - [`Fleet`], the driver for crowds: the same machines and outputs, many
//!   viewers per task, sharded over the runtime's workers, with one timer wheel
//!   per shard and progress fed in bulk.
//! - Adapters behind features: Millicast signaling, WebRTC media and WHEP, a relay.
//!
//! Every decision lives in the machine; the driver and the adapters carry out
//! its outputs. The one rule about media time (what is progress, what starts
//! a new timeline) is [`timeline::classify`].
//!
//! # The core loop
//!
//! ```
//! use std::time::{Duration, Instant};
//! use relive::{Input, Machine, Output, Policy};
//!
//! let mut machine = Machine::new(Policy::default(), 42);
//! let mut now = Instant::now();
//! machine.handle_input(now, Input::Start);
//! for step in 0..40 {
//!     // 1. carry out every output, in order
//!     while let Some(output) = machine.poll_output() {
//!         match output {
//!             Output::Connect { .. } => machine.handle_input(now, Input::Connected),
//!             Output::KeepSession => { /* hand the new session to the player */ }
//!             Output::DropSession { .. } | Output::AbortConnect { .. } => {}
//!             Output::StateChanged { to, .. } => println!("{step}: {to}"),
//!             Output::GaveUp { .. } => return,
//!             _ => {}
//!         }
//!     }
//!     // 2. feed what happened (here: media that freezes after 2 s)...
//!     now += Duration::from_millis(250);
//!     let media = Duration::from_millis(250 * step.min(8));
//!     machine.handle_input(now, Input::Progress(media));
//!     // 3. ...and wake the machine at its deadline
//!     if let Some(deadline) = machine.poll_timeout().filter(|d| *d <= now) {
//!         machine.handle_timeout(deadline);
//!     }
//! }
//! ```
//!
//! # With tokio
//!
//! ```no_run
//! # use relive::{Event, Policy, Reconnector, StreamSource};
//! # async fn watch<S: StreamSource>(source: S) {
//! use futures::StreamExt;
//!
//! let mut viewer = Reconnector::new(source, Policy::default()).spawn();
//! while let Some(event) = viewer.next().await {
//!     match event {
//!         Event::Session(media) => { /* player.attach(media) */ }
//!         Event::State { to, retry_in, .. } => println!("{to}, retry in {retry_in:?}"),
//!         Event::GaveUp(reason) => { println!("gave up: {reason}"); break }
//!         _ => {}
//!     }
//! }
//! // anywhere: viewer.state(), viewer.report_progress(t), viewer.stop().await
//! # }
//! ```
//!
//! # States
//!
//! | state | meaning | leaves on |
//! |---|---|---|
//! | `Idle` | not started, stopped, or given up | start → `Connecting` |
//! | `Connecting` | one attempt in flight, bounded by `connect_timeout` | success → `Playing`; retryable failure → `Backoff`; fatal → `Idle` + gave up; a live hint is kept for the `Backoff` that may follow |
//! | `Playing` | session up, media time advancing | no progress for `stall_after`, no active layers, `inactive`, `stopped`, a lost media path of a repairable session → `Stalled`; transport lost → `Backoff` within `reconnect_spread` on the first drop after stable playback (`Connecting` at once when the spread is zero), else `Backoff` by the schedule |
//! | `Stalled` | session up, media not advancing or feed gone | no progress: progress → `Playing`; no layers: layers or progress → `Playing`; `inactive`/`stopped`: only `active` or a live hint → `Playing`; `stall_grace` over → drop the session → reconnect as above; a picture frozen for `stall_after` gets its first remedy within `reconnect_spread`: a repair in place if its source can repair it (a WHEP ICE restart; media back → `Playing`), else, or when that fails or brings no media within `repair_within`, with make-before-break (the default) one attempt beside the session: it connecting first replaces the session, media on the old one first abandons it |
//! | `Backoff` | waiting before the next attempt | delay over → `Connecting`; a live hint (or one kept from `Connecting`) or a network change → `Connecting` at once (a hint within `hint_spread` when set), never before a server's `Retry-After` |
//!
//! A user pause is never a stall. `stop()` always reaches `Idle` and drops the
//! session or attempt. Attempts count from 1 in each outage and start over
//! once playback has held for `reset_after`.
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `millicast` | Millicast signaling: Director API + WebSocket `view` command and events |
//! | `webrtc` | a receive-only WebRTC peer (str0m) delivering depacketized frames on the viewer's timeline (a keyframe requested on every new session), whose RTP timestamps give progress ticks, for Millicast and the WHEP source (implies `millicast`) |
//! | `record` | `record::Recorder`: every frame of every session into one WebM file (libwebm, built with the C++ compiler); implies `webrtc` |
//! | `relay` | the publisher/viewer WebSocket relay (`relay::RelayServer`, the `relive-relay` binary), its viewer and publisher clients and `relay::hints` for instant resume; implies `millicast` |
//! | `relay-redis` | `relay::RedisBroker`: several relay nodes share their streams through Redis (keys with a TTL, pub/sub), `relive-relay --redis URL`; implies `relay` |
//! | `testkit` | in-process test servers, a fault-injecting proxy and an in-memory scripted source |
//! | `testkit-bin` | the `relive-testkit` binary: the testkit's Millicast-protocol and WHEP server with real media, fault scripts, a control API and a wire log, for viewers in any language; implies `testkit` and `webrtc` |
//! | `net-watch` | Linux: `netwatch::NetworkWatcher` calls [`Control::network_changed`] when an IP address comes or goes (if-watch); off by default |
//!
//! # Panics and errors
//!
//! A panic is a bug: no input, input order, `now` (even one going backwards)
//! or server message makes relive panic. The core has no error type: giving
//! up is an output. Errors of sources and adapters are typed enums that know
//! their [`Retry`] class, and secrets (tokens, JWTs: a [`Secret`]) never appear in their
//! `Debug`, `Display` or logs. Dependencies log them at TRACE (tungstenite's WebSocket
//! frames and handshake request): [`logging`] has the filter directives that keep them out.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backoff;
mod driver;
pub mod fleet;
#[cfg(any(feature = "testkit", feature = "record"))]
mod h264;
#[cfg(feature = "millicast")]
mod http_settings;
#[cfg(feature = "millicast")]
mod http_status;
mod machine;
#[cfg(feature = "millicast")]
mod net_error;
mod policy;
mod secret;
mod source;
mod stats;
pub mod timeline;

pub mod logging;
#[cfg(feature = "millicast")]
pub mod millicast;
#[cfg(all(feature = "net-watch", target_os = "linux"))]
pub mod netwatch;
#[cfg(feature = "millicast")]
pub mod offer;
#[cfg(feature = "record")]
pub mod record;
#[cfg(feature = "relay")]
pub mod relay;
#[cfg(feature = "testkit")]
pub mod testkit;
#[cfg(feature = "webrtc")]
pub mod webrtc;

pub use backoff::{Backoff, BackoffConfig, BackoffConfigBuilder, Jitter, Rng};
pub use driver::{Control, Dropped, EVENT_QUEUE_CAPACITY, Event, Reconnector, Viewer};
pub use fleet::{Fleet, FleetBuilder, FleetControl, FleetEvent, ViewerId};
pub use machine::{
    GiveUpReason, Input, MACHINE_SIZE, Machine, Output, Reason, StallCause, State, Timer,
};
#[cfg(feature = "millicast")]
pub use net_error::{NetError, NetErrorKind};
pub use policy::{GiveUpRule, MAX_DURATION, Policy, PolicyBuilder, PolicyError};
pub use secret::Secret;
pub use source::{
    AnyError, BoxEvents, BoxSource, Classify, FnSource, RepairFuture, Retry, Session, SourceEvent,
    StreamSource, source_fn,
};
pub use stats::Stats;

/// The README's examples, compiled and run as doc tests.
#[cfg(all(
    doctest,
    feature = "testkit",
    feature = "webrtc",
    feature = "record",
    feature = "relay"
))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
