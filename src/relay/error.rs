//! Why the relay or one of its clients failed. No variant carries a token or a JWT.

use std::time::Duration;

use crate::http_status::{StatusContext, retry_for_status};
use crate::relay::protocol::{ErrorCode, ProtocolError};
use crate::{Classify, Retry};

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
    /// The relay (or a proxy before it) answered the upgrade with an HTTP error: 403 for an
    /// origin off its allow-list, 503 when full.
    #[error("relay connect failed: HTTP {0}")]
    Http(u16),
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

impl Classify for RelayError {
    /// A refusal that will be refused again (a bad token, a forbidden origin, an unsupported
    /// version, a bad config) is `Never`; the network, the relay going away or being full, and
    /// refusals of the moment (rate, slowness, timeouts) are `Later`.
    fn retry(&self) -> Retry {
        match self {
            RelayError::Config(_) | RelayError::Bind(_) | RelayError::Stopped => Retry::Never,
            RelayError::Http(status) => retry_for_status(
                *status,
                StatusContext {
                    not_published: false,
                    otherwise: Retry::Later,
                },
            ),
            RelayError::Refused { code, .. } => match code {
                ErrorCode::Unauthorized
                | ErrorCode::Forbidden
                | ErrorCode::UnsupportedVersion
                | ErrorCode::InvalidStream
                | ErrorCode::DirectorUnauthorized => Retry::Never,
                _ => Retry::Later,
            },
            RelayError::Connect(_)
            | RelayError::Closed { .. }
            | RelayError::Transport(_)
            | RelayError::Protocol(_)
            | RelayError::Timeout(_) => Retry::Later,
        }
    }
}

/// How a failed WebSocket handshake is told: an HTTP answer keeps its status.
pub(crate) fn connect_failed(e: &tokio_tungstenite::tungstenite::Error) -> RelayError {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            RelayError::Http(response.status().as_u16())
        }
        other => RelayError::Connect(describe(other)),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_that_will_be_refused_again_are_never_retried() {
        let refused = |code| RelayError::Refused {
            code,
            message: String::new(),
        };
        for fatal in [
            refused(ErrorCode::Unauthorized),
            refused(ErrorCode::Forbidden),
            refused(ErrorCode::UnsupportedVersion),
            RelayError::Http(403),
            RelayError::Http(401),
            RelayError::Config(String::new()),
        ] {
            assert_eq!(fatal.retry(), Retry::Never, "{fatal}");
        }
        for later in [
            refused(ErrorCode::RateLimited),
            refused(ErrorCode::SlowConsumer),
            refused(ErrorCode::IdleTimeout),
            RelayError::Http(503),
            RelayError::Http(502),
            RelayError::Connect("connection refused".to_owned()),
            RelayError::Closed {
                code: Some(1001),
                reason: String::new(),
            },
            RelayError::Timeout(Duration::from_secs(1)),
        ] {
            assert_eq!(later.retry(), Retry::Later, "{later}");
        }
    }
}
