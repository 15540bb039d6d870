//! Millicast wire types: the JSON the Director and the signaling WebSocket speak.
//!
//! Pure `serde` types and parsers shared by the client adapter and the testkit server, so that both
//! sides agree on one definition of each shape (the Director call, the signaling commands and events). Nothing here does I/O,
//! and no parser panics, whatever the input.
//!
//! - [`parse_director_response`] classifies a Director answer (status + body) into a
//!   [`DirectorSuccess`] or a [`DirectorFailure`].
//! - [`parse_server_message`] reads one signaling text frame into a [`ServerMessage`]; events
//!   become a [`SignalingEvent`], leniently.
//! - [`Command`] and [`ViewCommand`] are what a viewer sends.

mod base64url;
mod director;
mod events;
mod signaling;

pub use director::{
    DirectorFailure, DirectorSuccess, IceServer, SubscribeRequest, jwt_stream_name,
    parse_director_response,
};
pub use events::{
    LayerEncoding, Layers, MediaLayers, SignalingEvent, SourceTrack, SpatialTemporalLayer,
};
pub use signaling::{
    Command, DEFAULT_EVENTS, LayerSelection, PlayoutDelay, ServerMessage, ViewCommand,
    ViewResponse, parse_command, parse_server_message,
};

/// `base64url` (RFC 4648 §5, no padding) encoding, as used in JWT segments.
///
/// Public for the testkit server, which mints JWT-shaped tokens; most users never need it.
pub fn base64url_encode(bytes: &[u8]) -> String {
    base64url::encode(bytes)
}

/// An error reading or writing a signaling frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The frame is not valid JSON, or a known message has fields of the wrong type.
    #[error("malformed signaling frame: {0}")]
    Malformed(#[source] serde_json::Error),
    /// The frame is a JSON object whose `type` is missing or not one we know.
    #[error("unknown signaling message type {0:?}")]
    UnknownType(String),
    /// A message of a known type lacks a field it cannot do without (such as `transId`).
    #[error("signaling message lacks field `{0}`")]
    MissingField(&'static str),
}

#[cfg(test)]
mod director_tests;
#[cfg(test)]
mod signaling_tests;
