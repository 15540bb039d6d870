//! The relay's wire protocol, version 1: JSON text frames over one WebSocket, the same socket
//! for publishers and viewers.
//!
//! # Connecting
//!
//! `GET /ws` upgrades to a WebSocket. Binary frames are refused. Every text frame is one JSON
//! object with a `type`; unknown fields are ignored, so later minor additions stay version 1.
//! A change that an old peer would misread bumps the version.
//!
//! The first frame must be `hello`; the server answers `welcome` (or an `error` and a close):
//!
//! ```json
//! {"type":"hello","v":1,"role":"publisher","token":"<publish token>"}
//! {"type":"hello","v":1,"role":"viewer"}
//! {"type":"welcome","v":1,"role":"viewer","session":17,"limits":{"max_frame":65536,"rate_per_sec":20.0,"burst":40,"idle_timeout_ms":45000}}
//! ```
//!
//! # Publishers
//!
//! ```json
//! {"type":"publish","stream":"cam-1","details":{"sourceIds":["main"],"tracks":[{"trackId":"video0","media":"video"}],"metadata":{"title":"Keynote"}}}
//! {"type":"close","stream":"cam-1"}
//! ```
//!
//! The `hello` token must be the publish token configured for the stream (per stream name or
//! per prefix such as `cam-*`; the most specific rule wins). A `publish` of a stream that is not
//! live yet reaches its viewers as `publish`; a later `publish` from the same publisher as
//! `update`. A valid publisher of a stream held by another connection takes it over (an encoder
//! that reconnects must not wait for its old socket to time out); the old one gets an `error`
//! with code `replaced`. `close`, a closed socket or a missed keepalive end the stream: its
//! viewers get `close`.
//!
//! `details` is bounded: at most [`MAX_DETAILS`] bytes as JSON, [`MAX_LIST`] source ids and
//! tracks, ids of at most [`MAX_NAME`] bytes.
//!
//! # Viewers
//!
//! ```json
//! {"type":"view","stream":"cam-1"}
//! {"type":"unview","stream":"cam-1"}
//! {"type":"director","stream":"cam-1","id":7}
//! ```
//!
//! `view` is answered at once with a `snapshot` (live or not, with the current details when
//! live), then the stream's events follow as they happen, none lost or repeated between the two:
//!
//! ```json
//! {"type":"snapshot","stream":"cam-1","live":true,"details":{"sourceIds":["main"],"tracks":[]}}
//! {"type":"publish","stream":"cam-1","details":{...}}
//! {"type":"update","stream":"cam-1","details":{...}}
//! {"type":"close","stream":"cam-1","reason":"unpublished"}
//! ```
//!
//! Close reasons: `unpublished` (the publisher said `close`), `publisher_lost` (its socket closed
//! or went silent). `director` asks the relay to make the Millicast Director subscribe call with
//! the credentials it holds; the answer carries what the viewer needs to open the signaling
//! socket (`jwt` is a secret: never log it):
//!
//! ```json
//! {"type":"director","stream":"cam-1","id":7,"urls":["wss://.../ws/v2/sub/1"],"jwt":"...","iceServers":[]}
//! ```
//!
//! # Everyone
//!
//! `{"type":"ping","id":3}` is answered `{"type":"pong","id":3}`. The server also sends WebSocket
//! pings; a connection that sends nothing (no frame, no pong) for `idle_timeout_ms` is closed.
//! Every refusal is an `error` frame with a stable `code` ([`ErrorCode`]); `fatal: true` means
//! the server closes the socket next:
//!
//! ```json
//! {"type":"error","code":"forbidden","message":"viewers cannot publish","stream":"cam-1","fatal":false}
//! {"type":"error","code":"not_published","message":"...","stream":"cam-1","id":7,"fatal":false}
//! ```
//!
//! When the relay shuts down, every client gets `{"type":"shutdown","reason":"..."}` and a
//! close frame (1001): reconnect later.
//!
//! # Limits
//!
//! Frames over `max_frame` bytes are refused (`too_large`); far larger ones close the socket.
//! Each connection has a token bucket of `burst` frames refilled at `rate_per_sec`: a frame
//! beyond it is refused (`rate_limited`), and a client that keeps flooding is closed. A viewer
//! whose outgoing queue is full (it does not read) is dropped with `slow_consumer`. A client
//! address (the TCP peer, or behind a trusted proxy the client it names) may open a bounded
//! number of connections (more are answered HTTP 429 at the upgrade) and view a bounded number
//! of streams over all of them (a view beyond is refused with `client_limit`).

mod client;
mod errors;
mod server;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use client::{ClientFrame, parse_client_frame};
pub use errors::{ErrorCode, ProtocolError};
pub use server::{CloseReason, ServerFrame, WireLimits, parse_server_frame};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// The largest `details` object, as JSON bytes.
pub const MAX_DETAILS: usize = 16 * 1024;
/// The most source ids, and the most tracks, in `details`.
pub const MAX_LIST: usize = 64;
/// The longest stream name, source id or track id, in bytes.
pub const MAX_NAME: usize = 128;
/// The most characters of a client's own value an error repeats (the start of an unknown
/// `type`). The echo is also at most half the value, so a refusal never carries a whole value
/// (a token a client mistyped into `type` included): a secret longer than this never shows
/// whole, and a short value shows only its first half. Refusals are logged.
pub const MAX_ECHO: usize = 16;

/// Who a connection is, said once in `hello`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Publishes streams' details; needs a publish token.
    Publisher,
    /// Views streams: receives their details and events.
    Viewer,
}

/// A valid stream name: 1 to [`MAX_NAME`] bytes of ASCII letters, digits and `-_.~:/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct StreamName(String);

impl StreamName {
    /// Checks `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, ProtocolError> {
        let name = name.into();
        let valid_char = |c: char| c.is_ascii_alphanumeric() || "-_.~:/".contains(c);
        if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(valid_char) {
            return Err(ProtocolError::InvalidStream);
        }
        Ok(StreamName(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StreamName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for StreamName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        StreamName::new(name).map_err(serde::de::Error::custom)
    }
}

/// What a publisher says about its live stream: what a viewer needs to pick its source and
/// tracks, plus any application metadata.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Details {
    /// The publisher's source ids (Millicast multi-source); empty for one source.
    #[serde(default)]
    pub source_ids: Vec<String>,
    /// The tracks being published.
    #[serde(default)]
    pub tracks: Vec<PublishedTrack>,
    /// Anything else, as JSON; `null` when absent.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub metadata: Value,
}

/// One published track.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedTrack {
    /// The track id.
    pub track_id: String,
    /// `audio`, `video`, or another kind.
    pub media: String,
}

impl Details {
    /// Checks the bounds of the protocol: sizes of lists, ids and the whole object.
    pub fn check(&self) -> Result<(), ProtocolError> {
        let ids = self.source_ids.iter().map(String::as_str);
        let tracks = self.tracks.iter().flat_map(|t| [&*t.track_id, &*t.media]);
        if self.source_ids.len() > MAX_LIST || self.tracks.len() > MAX_LIST {
            return Err(ProtocolError::DetailsTooLarge);
        }
        if ids.chain(tracks).any(|id| id.len() > MAX_NAME) {
            return Err(ProtocolError::DetailsTooLarge);
        }
        let size = serde_json::to_string(self).map_or(usize::MAX, |json| json.len());
        if size > MAX_DETAILS {
            return Err(ProtocolError::DetailsTooLarge);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
