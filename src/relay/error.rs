//! Why the relay or one of its clients failed. No variant carries a token or a JWT.

use std::time::Duration;

use crate::relay::protocol::{ErrorCode, ProtocolError};

/// A relay server or client failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The configuration is not valid (file, JSON, patterns, limits).
    #[error("relay config: {0}")]
    Config(String),
    /// The listening socket could not be bound.
    #[error("relay bind failed: {0}")]
    Bind(#[source] std::io::Error),
    /// A client could not open its WebSocket (DNS, TCP, HTTP refusal such as 403 for the origin).
    #[error("relay connect failed: {0}")]
    Connect(String),
    /// The relay closed the socket.
    #[error("relay closed the connection (code {code:?}): {reason}")]
    Closed {
        /// The close code, if a close frame came.
        code: Option<u16>,
        /// The close reason.
        reason: String,
    },
    /// The WebSocket failed (reset, protocol violation).
    #[error("relay transport failed: {0}")]
    Transport(String),
    /// The relay refused a request with an `error` frame.
    #[error("relay refused ({code:?}): {message}")]
    Refused {
        /// The frame's code.
        code: ErrorCode,
        /// The frame's message.
        message: String,
    },
    /// The relay sent something a client could not read where it needed an answer.
    #[error("relay protocol: {0}")]
    Protocol(#[from] ProtocolError),
    /// No answer (or no sign of life) in time.
    #[error("no answer from the relay within {0:?}")]
    Timeout(Duration),
    /// The client's task has ended (it was dropped, or its relay went away for good).
    #[error("relay client stopped")]
    Stopped,
}

/// A WebSocket error as text, without request details.
pub(crate) fn describe(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Http(response) => format!("HTTP {}", response.status()),
        E::Url(_) => "invalid relay URL".to_owned(),
        other => other.to_string(),
    }
}
