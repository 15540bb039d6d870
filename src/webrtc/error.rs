//! Why a WHEP attempt or session failed, and how each failure is retried. No variant carries the
//! bearer token, nor the endpoint URL (which may hold one in its query).

use std::time::Duration;

use crate::NetError;
use crate::http_status::{StatusContext, retry_for_status};
use crate::source::{Classify, Retry};

/// The longest server message kept in an error.
const MESSAGE_LIMIT: usize = 200;

/// A WHEP connect attempt or session failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WhepError {
    /// 404 or 409 (`Stream not found`): nobody is publishing yet.
    #[error("stream not published (HTTP {status}): {message}")]
    NotPublished {
        /// The HTTP status.
        status: u16,
        /// The server's message, shortened.
        message: String,
    },
    /// 401 or 403: the token is missing, bad or expired.
    #[error("unauthorized (HTTP {status}): {message}")]
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// The server's message, shortened.
        message: String,
    },
    /// 5xx, 408 or 429: the server is in trouble; retry later (no sooner than its `Retry-After`).
    #[error("server error (HTTP {status}): {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's message, shortened.
        message: String,
        /// The wait its `Retry-After` asked for (503 and 429 only).
        retry_after: Option<Duration>,
    },
    /// Any other status (400, 415, ...): the server refuses our offer; retrying cannot help.
    #[error("offer rejected (HTTP {status}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The server's message, shortened.
        message: String,
    },
    /// The request did not complete: DNS, TCP, TLS, timeout. (The URL is stripped.)
    #[error("WHEP request failed: {0}")]
    Request(#[source] NetError),
    /// A 201 without what WHEP requires (a `Location`, an SDP body).
    #[error("bad WHEP response: {0}")]
    BadResponse(String),
    /// The WebRTC peer failed: no socket, an answer it refuses, a lost media path.
    #[error("media: {0}")]
    Media(String),
    /// The HTTP client could not be built (TLS initialisation).
    #[error("http client: {0}")]
    Client(#[source] NetError),
    /// The server answered an ICE restart (`PATCH`) with 405 or 501: it has none. The
    /// session is replaced, and the endpoint is not asked again.
    #[error("the server has no ICE restart (HTTP {status})")]
    RepairUnsupported {
        /// The HTTP status.
        status: u16,
    },
    /// The server refused an ICE restart with another status (404 for a resource it no
    /// longer has, 412, 415, 5xx, ...): the session is replaced.
    #[error("ICE restart refused (HTTP {status}): {message}")]
    RepairRefused {
        /// The HTTP status.
        status: u16,
        /// The server's message, shortened.
        message: String,
    },
}

impl WhepError {
    /// The error for a refused ICE restart.
    pub(crate) fn repair_refused(status: u16, body: &str) -> WhepError {
        WhepError::RepairRefused {
            status,
            message: shorten(body),
        }
    }

    /// The error for a non-201 answer with `status` and `body`: its variant is the class the
    /// shared HTTP status table ([`retry_for_status`]) gives the status.
    /// `retry_after` is what the answer's `Retry-After` asked for.
    pub(crate) fn from_status(status: u16, body: &str, retry_after: Option<Duration>) -> WhepError {
        let message = shorten(body);
        match retry_for_status(status, whep_context(matches!(status, 404 | 409))) {
            Retry::WaitForPublisher => WhepError::NotPublished { status, message },
            Retry::Later | Retry::Now => WhepError::Server {
                status,
                message,
                retry_after,
            },
            Retry::Never if matches!(status, 401 | 403) => {
                WhepError::Unauthorized { status, message }
            }
            Retry::Never => WhepError::Rejected { status, message },
        }
    }
}

/// What WHEP adds to the HTTP status table: 404/409 (`Stream not found`) mean nobody
/// publishes, and any other unnamed status is the server refusing our offer, for good.
fn whep_context(not_published: bool) -> StatusContext {
    StatusContext {
        not_published,
        otherwise: Retry::Never,
    }
}

impl Classify for WhepError {
    fn retry(&self) -> Retry {
        match self {
            WhepError::NotPublished { status, .. } => retry_for_status(*status, whep_context(true)),
            WhepError::Unauthorized { status, .. }
            | WhepError::Server { status, .. }
            | WhepError::Rejected { status, .. } => retry_for_status(*status, whep_context(false)),
            WhepError::Client(_) => Retry::Never,
            // A failed repair replaces the session: a new one is worth trying.
            WhepError::Request(_)
            | WhepError::BadResponse(_)
            | WhepError::Media(_)
            | WhepError::RepairUnsupported { .. }
            | WhepError::RepairRefused { .. } => Retry::Later,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            WhepError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl From<reqwest::Error> for WhepError {
    fn from(e: reqwest::Error) -> Self {
        WhepError::Request(NetError::from_reqwest(e))
    }
}

/// The first line of a server message, at most [`MESSAGE_LIMIT`] characters.
fn shorten(body: &str) -> String {
    let line = body.lines().next().unwrap_or("").trim();
    line.chars().take(MESSAGE_LIMIT).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_has_the_class_millicast_md_gives_it() {
        let cases = [
            (404, Retry::WaitForPublisher),
            (409, Retry::WaitForPublisher),
            (401, Retry::Never),
            (403, Retry::Never),
            (400, Retry::Never),
            (415, Retry::Never),
            (408, Retry::Later),
            (429, Retry::Later),
            (500, Retry::Later),
            (503, Retry::Later),
        ];
        for (status, class) in cases {
            let error = WhepError::from_status(status, "Stream not found", None);
            assert_eq!(error.retry(), class, "{status}: {error}");
        }
        assert_eq!(WhepError::Media("ice".into()).retry(), Retry::Later);
        assert_eq!(WhepError::BadResponse("x".into()).retry(), Retry::Later);
    }

    #[test]
    fn a_server_message_is_kept_short_and_on_one_line() {
        let long = format!("{}\nsecond line", "x".repeat(1000));
        let WhepError::Server { message, .. } = WhepError::from_status(500, &long, None) else {
            panic!("not a server error")
        };
        assert_eq!(message.len(), MESSAGE_LIMIT);
        assert!(!message.contains("second"));
    }
}
