//! Refusals: the stable [`ErrorCode`] of `error` frames and the parser's [`ProtocolError`].

use serde::{Deserialize, Serialize};

use super::{MAX_DETAILS, MAX_LIST, MAX_NAME};

/// The code of an `error` frame: stable, for programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not JSON, a binary frame, or fields of the wrong shape.
    Malformed,
    /// The frame is over `max_frame`, or `details` over its bounds.
    TooLarge,
    /// A `type` this server does not know.
    UnknownType,
    /// The `hello` version is not one the server speaks (fatal).
    UnsupportedVersion,
    /// A frame came before `hello`.
    HelloRequired,
    /// A second `hello`.
    DuplicateHello,
    /// The token is wrong for this stream (fatal at `hello` when it fits no stream at all).
    Unauthorized,
    /// The role may not do that (a viewer publishing), or no rule lets anyone publish the stream.
    Forbidden,
    /// The stream name is not valid.
    InvalidStream,
    /// `close` of a stream this connection does not publish.
    NotPublisher,
    /// This connection views or publishes too many streams, or the relay holds too many.
    TooManyStreams,
    /// The client's address (the TCP peer, or the client a trusted proxy names) already views
    /// as many streams over all its connections as the relay allows one address; the view is
    /// refused. (An address with too many connections is answered HTTP 429 at the upgrade.)
    ClientLimit,
    /// Over the frame rate (fatal when it goes on).
    RateLimited,
    /// The outgoing queue was full: the client does not read (fatal).
    SlowConsumer,
    /// Another connection took over this stream.
    Replaced,
    /// Nothing received for `idle_timeout_ms` (fatal).
    IdleTimeout,
    /// The relay has as many connections as it accepts (fatal).
    ServerFull,
    /// No `hello` in time (fatal).
    HelloTimeout,
    /// The relay has no Director configured.
    DirectorNotConfigured,
    /// The Director says nobody publishes the stream.
    NotPublished,
    /// The Director refused the relay's subscribe token.
    DirectorUnauthorized,
    /// The Director call failed (network, 5xx, odd answer).
    DirectorFailed,
    /// A Director call is already in flight on this connection.
    Busy,
    /// A bug on the server.
    Internal,
    /// A code a newer server sent.
    #[serde(other)]
    Other,
}

/// Why a client frame was refused; each maps to an [`ErrorCode`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Not JSON, or not the shape of its `type`.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A `type` not in the protocol; what it holds is only the type's start (see
    /// [`MAX_ECHO`](super::MAX_ECHO)).
    #[error("unknown frame type (starting {0:?})")]
    UnknownType(String),
    /// A stream name that is empty, too long or has characters outside `A-Za-z0-9-_.~:/`.
    #[error("invalid stream name")]
    InvalidStream,
    /// `details` over the protocol's bounds.
    #[error(
        "details over the protocol's bounds ({MAX_DETAILS} bytes, {MAX_LIST} entries, {MAX_NAME}-byte ids)"
    )]
    DetailsTooLarge,
}

impl ProtocolError {
    /// The `error` frame code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::Malformed(_) => ErrorCode::Malformed,
            ProtocolError::UnknownType(_) => ErrorCode::UnknownType,
            ProtocolError::InvalidStream => ErrorCode::InvalidStream,
            ProtocolError::DetailsTooLarge => ErrorCode::TooLarge,
        }
    }
}
