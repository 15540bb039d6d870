//! Why a Millicast attempt or session failed, and how each failure is retried
//! (by what the service's answers mean). No variant ever carries a token, a JWT or a URL that holds one.

use std::time::Duration;

use crate::NetError;
use crate::millicast::wire::{DirectorFailure, WireError};
use crate::source::{Classify, Retry};

/// A Millicast connect attempt or session failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MillicastError {
    /// The Director answered with a failure (not published, unauthorized, 5xx, ...).
    #[error(transparent)]
    Director(#[from] DirectorFailure),
    /// The Director answered 503 or 429 with a `Retry-After`: the failure, and the wait asked for.
    #[error("{failure} (retry after {}s)", retry_after.as_secs())]
    DirectorBusy {
        /// What the Director answered.
        failure: DirectorFailure,
        /// The wait its `Retry-After` asked for.
        retry_after: Duration,
    },
    /// The Director call did not complete: DNS, TCP, TLS, timeout. (The URL is stripped.)
    #[error("director request failed: {0}")]
    DirectorRequest(#[source] NetError),
    /// The Director body was larger than the client accepts.
    #[error("director response larger than {0} bytes")]
    DirectorTooLarge(usize),
    /// The subscribe token was refused and the token refresher had no new one.
    #[error("subscribe token refused and no fresh token available")]
    TokenRefused,
    /// The signaling WebSocket could not be opened.
    #[error("signaling connect failed: {0}")]
    Connect(#[source] NetError),
    /// The server refused the `view` command (e.g. `Feed not found`).
    #[error("view rejected: {0}")]
    ViewRejected(String),
    /// No answer to `view` in time.
    #[error("no answer to view within {0:?}")]
    ViewTimeout(Duration),
    /// The server closed the signaling WebSocket.
    #[error("signaling closed by the server ({}): {reason}", close_code(*.code))]
    Closed {
        /// The close code, if the server sent a close frame.
        code: Option<u16>,
        /// The close reason, if any.
        reason: String,
    },
    /// No pong came back in time: the transport is dead even if TCP does not know yet.
    #[error("no pong within {0:?}")]
    PongTimeout(Duration),
    /// A frame exceeded the size limit.
    #[error("signaling frame over the {0}-byte limit")]
    FrameTooLarge(usize),
    /// The WebSocket failed (reset, protocol violation, TLS).
    #[error("signaling transport failed: {0}")]
    Transport(#[source] NetError),
    /// A frame the client needed (the `view` answer) could not be read.
    #[error("signaling protocol error: {0}")]
    Protocol(#[from] WireError),
    /// The offer provider (the media peer) failed.
    #[error("media: {0}")]
    Media(String),
    /// The HTTP client could not be built (TLS initialisation).
    #[error("http client: {0}")]
    Client(#[source] NetError),
}

/// `code 1001`, or `no close frame`.
fn close_code(code: Option<u16>) -> String {
    code.map_or_else(|| "no close frame".to_owned(), |c| format!("code {c}"))
}

impl Classify for MillicastError {
    fn retry(&self) -> Retry {
        match self {
            MillicastError::Director(failure) | MillicastError::DirectorBusy { failure, .. } => {
                failure.retry()
            }
            MillicastError::TokenRefused | MillicastError::Client(_) => Retry::Never,
            MillicastError::ViewRejected(message) if is_not_published(message) => {
                Retry::WaitForPublisher
            }
            _ => Retry::Later,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            MillicastError::DirectorBusy { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// `view` errors that mean nobody publishes: "Feed not found", "stream not found",
/// "stream not being published".
fn is_not_published(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("not found") || m.contains("not being published") || m.contains("not published")
}

impl From<reqwest::Error> for MillicastError {
    fn from(e: reqwest::Error) -> Self {
        MillicastError::DirectorRequest(NetError::from_reqwest(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_the_class_millicast_md_gives_it() {
        let not_published = DirectorFailure::NotPublished {
            status: 400,
            message: "stream not being published".into(),
        };
        let unauthorized = DirectorFailure::Unauthorized {
            status: 401,
            message: "bad token".into(),
        };
        let server = DirectorFailure::Server {
            status: 503,
            message: "x".into(),
        };
        let cases = [
            (MillicastError::from(not_published), Retry::WaitForPublisher),
            (MillicastError::from(unauthorized), Retry::Never),
            (MillicastError::from(server), Retry::Later),
            (
                MillicastError::ViewRejected("Feed not found".into()),
                Retry::WaitForPublisher,
            ),
            (
                MillicastError::ViewRejected("internal".into()),
                Retry::Later,
            ),
            (
                MillicastError::PongTimeout(Duration::from_secs(5)),
                Retry::Later,
            ),
            (MillicastError::TokenRefused, Retry::Never),
            (
                MillicastError::Closed {
                    code: Some(1001),
                    reason: String::new(),
                },
                Retry::Later,
            ),
        ];
        for (error, class) in cases {
            assert_eq!(error.retry(), class, "{error}");
        }
    }
}
