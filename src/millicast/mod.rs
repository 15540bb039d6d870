//! Millicast (Dolby.io real-time streaming) as a [`StreamSource`](crate::StreamSource):
//! the Director API and the signaling WebSocket's `view` command and events.
//!
//! Each connect attempt calls the Director for a fresh JWT, opens the signaling
//! socket, sends `view` with an SDP offer from an [`OfferProvider`](crate::offer::OfferProvider) and applies
//! the answer. Events become [`SourceEvent`](crate::SourceEvent)s:
//!
//! | Millicast | relive |
//! |---|---|
//! | `active` (main source) | `Active` (a live hint while backing off) |
//! | `inactive` (main source) | `Inactive` → `Stalled` |
//! | `stopped` | `StreamEnded` → `Stalled` |
//! | `layers` | `Layers { active }`, counted over every media; zero → `Stalled` |
//! | `viewercount` / `viewerCount` | `ViewerCount` |
//! | `migrate` | a new connection opened first, then `Migrated(media)`: no gap |
//! | `vad`, `updated`, unknown names | ignored (logged at debug) |
//! | socket closed, error, missing pong, oversized frame | `Lost` → reconnect |
//!
//! Errors classify as the service's answers mean: "stream not being published" and
//! "Feed not found" wait for the publisher; 401/403 are fatal unless a token
//! refresher supplies a new token; everything else is retried with backoff.
//! Tokens and JWTs are [`Secret`](crate::Secret)s: never in logs, `Debug` or errors.

pub(crate) mod director;
mod error;
mod offer;
mod session;
mod signaling;
mod source;
pub mod wire;

pub use error::MillicastError;
pub use offer::{FixedOffer, RECVONLY_OFFER, SignalingMedia, SignalingOnly};
pub use session::MillicastEvents;
pub use source::{DEFAULT_DIRECTOR, MillicastSource};

/// What the application gets for each Millicast session: the media stack's
/// handle and the server's identifiers of the view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MillicastMedia<M> {
    /// The media handle of the [`OfferProvider`](crate::offer::OfferProvider).
    pub media: M,
    /// The `view` answer's identifiers.
    pub view: ViewInfo,
}

/// Identifiers the server gave a view.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewInfo {
    /// `subscriberId`.
    pub subscriber_id: String,
    /// `clusterId`.
    pub cluster_id: String,
    /// `streamViewId`.
    pub stream_view_id: String,
}
