//! The relay: a WebSocket server that publishers and viewers both connect to. Publishers announce
//! their live streams' details; viewers of a stream get them at once and every change after —
//! so a viewer waiting for its publisher resumes the moment it is back, instead of polling.
//!
//! - Server: [`RelayServer`] (also the `relive-relay` binary), configured by [`RelayConfig`],
//!   with its stream state owned by a [`Broker`] ([`LocalBroker`] in process).
//! - Protocol: versioned JSON frames, documented in [`protocol`].
//! - Clients: [`RelayClient`] (a viewer that reconnects by itself), [`hints`] (live hints for
//!   any [`Reconnector`](crate::Reconnector)), [`RelayPublisher`].
//!
//! Everything is bounded: frame sizes, per-connection queues (a viewer that does not read is
//! dropped), frame rates (a token bucket per connection), connections and streams. Publishing
//! needs a token per stream or prefix; viewers can never publish; browsers' `Origin` can be
//! checked; tokens are [`Secret`](crate::Secret)s and never logged. The relay
//! can also make the Millicast Director call for its viewers, keeping the API credentials on the
//! server.
//!
//! ```no_run
//! # async fn demo() -> Result<(), relive::relay::RelayError> {
//! use relive::relay::{Details, RelayConfig, RelayPublisher, RelayServer, StreamName};
//!
//! let config = RelayConfig::default()
//!     .listen("127.0.0.1:0".parse().unwrap())
//!     .publish_token("cam-*", "s3cret");
//! let relay = RelayServer::start(config).await?;
//!
//! let publisher = RelayPublisher::connect(&relay.url(), "s3cret").await?;
//! publisher.publish(&StreamName::new("cam-1")?, &Details::default()).await?;
//! relay.shutdown().await;
//! # Ok(()) }
//! ```

mod broker;
mod client;
mod config;
mod connection;
mod core;
mod director;
mod error;
mod fanout;
#[doc(hidden)]
pub mod fuzzing;
mod hints;
mod listener;
mod local;
mod metrics;
mod outlet;
pub mod protocol;
mod publisher;
mod reconnect;
#[cfg(feature = "relay-redis")]
mod redis;
mod server;
mod shared;
mod ws;

pub use broker::{Broker, BrokerCounts, BrokerError, Frame, Peer, Published};
pub use client::{RelayClient, RelayClientBuilder, RelayEvent};
pub use config::{DirectorConfig, Limits, RelayConfig, TokenRule};
pub use error::RelayError;
pub use hints::{Hints, hints};
pub use local::LocalBroker;
pub use protocol::{CloseReason, Details, ErrorCode, PublishedTrack, StreamName};
pub use publisher::RelayPublisher;
#[cfg(feature = "relay-redis")]
pub use redis::{RedisBroker, RedisConfig, RedisError};
pub use server::RelayServer;
pub use shared::Health;
