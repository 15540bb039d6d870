//! Failures below the protocol — a refused connection, a timeout, a broken TLS or WebSocket
//! stream — as one typed error shared by the Millicast and WHEP adapters.

use std::error::Error;
use std::fmt;

/// What kind of network failure a [`NetError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NetErrorKind {
    /// The connection could not be made (DNS, refused, unreachable, TLS handshake).
    Connect,
    /// No answer in time.
    Timeout,
    /// The server answered the WebSocket upgrade with this HTTP status.
    Http(u16),
    /// The connection broke or carried something it should not (reset, protocol violation).
    Transport,
    /// Anything else (a bad URL, a client that cannot be built).
    Other,
}

/// A network failure: what happened ([`kind`](NetError::kind)), a message that names the
/// deepest cause ("connection refused"), and the client library's error as its
/// [`source`](Error::source).
///
/// Neither the message nor the source chain carries a URL: a signaling URL holds its JWT,
/// and a WHEP URL may hold a token in its query.
#[derive(Debug)]
pub struct NetError {
    kind: NetErrorKind,
    message: String,
    source: Option<Box<dyn Error + Send + Sync>>,
}

impl NetError {
    /// What kind of failure it is.
    pub fn kind(&self) -> NetErrorKind {
        self.kind
    }

    /// A failure described only by `message` (no underlying error).
    pub(crate) fn new(kind: NetErrorKind, message: impl Into<String>) -> Self {
        NetError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An HTTP client error, with its URL stripped.
    pub(crate) fn from_reqwest(e: reqwest::Error) -> Self {
        let e = e.without_url();
        let kind = if e.is_timeout() {
            NetErrorKind::Timeout
        } else if e.is_connect() {
            NetErrorKind::Connect
        } else if e.is_builder() {
            NetErrorKind::Other
        } else {
            NetErrorKind::Transport
        };
        NetError {
            kind,
            message: with_deepest_cause(&e),
            source: Some(Box::new(e)),
        }
    }

    /// A WebSocket error. An HTTP answer keeps only its status (its headers and body stay
    /// out); a URL error keeps nothing of the URL.
    pub(crate) fn from_ws(e: tokio_tungstenite::tungstenite::Error) -> Self {
        use tokio_tungstenite::tungstenite::Error as E;
        match e {
            E::Http(response) => {
                let status = response.status();
                NetError::new(
                    NetErrorKind::Http(status.as_u16()),
                    format!("HTTP {status}"),
                )
            }
            E::Url(_) => NetError::new(NetErrorKind::Other, "invalid URL"),
            E::Io(io) => {
                let kind = match io.kind() {
                    std::io::ErrorKind::TimedOut => NetErrorKind::Timeout,
                    std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::AddrNotAvailable => NetErrorKind::Connect,
                    _ => NetErrorKind::Transport,
                };
                NetError {
                    kind,
                    message: with_deepest_cause(&io),
                    source: Some(Box::new(io)),
                }
            }
            other => NetError {
                kind: NetErrorKind::Transport,
                message: with_deepest_cause(&other),
                source: Some(Box::new(other)),
            },
        }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for NetError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// `e`'s message, and its deepest cause when that says more: "error sending request:
/// tcp connect error: Connection refused (os error 111)" becomes "error sending request
/// (Connection refused (os error 111))".
fn with_deepest_cause(e: &(dyn Error + 'static)) -> String {
    let top = e.to_string();
    let mut deepest = e;
    while let Some(next) = deepest.source() {
        deepest = next;
    }
    let cause = deepest.to_string();
    if std::ptr::addr_eq(deepest, e) || top.contains(&cause) {
        top
    } else {
        format!("{top} ({cause})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);
    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }

    #[test]
    fn the_message_names_the_deepest_cause_once() {
        let chain = Layer(
            "error sending request",
            Some(Box::new(Layer(
                "client error (Connect)",
                Some(Box::new(Layer("Connection refused (os error 111)", None))),
            ))),
        );
        assert_eq!(
            with_deepest_cause(&chain),
            "error sending request (Connection refused (os error 111))"
        );
        assert_eq!(with_deepest_cause(&Layer("alone", None)), "alone");
    }

    #[test]
    fn an_io_error_keeps_its_kind_and_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = NetError::from_ws(tokio_tungstenite::tungstenite::Error::Io(io));
        assert_eq!(e.kind(), NetErrorKind::Connect);
        assert_eq!(e.to_string(), "refused");
        assert!(e.source().is_some());
    }
}
