//! The Director call: `POST /api/director/subscribe`, its request body and the classification of
//! whatever comes back (JSON success, JSON failure, HTML from a proxy, nothing at all).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::base64url;
use crate::Secret;
use crate::http_status::{StatusContext, retry_for_status};
use crate::source::{Classify, Retry};

/// Longest server message kept in a [`DirectorFailure`]; the rest is cut so that a proxy's error
/// page cannot flood the logs.
const MAX_MESSAGE: usize = 200;

/// The body of `POST /api/director/subscribe`.
///
/// Serializes as `{"streamAccountId": "...", "streamName": "..."}`, plus
/// `"unauthorizedSubscribe"` when set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeRequest {
    /// The publisher's account id.
    pub stream_account_id: String,
    /// The stream name within the account.
    pub stream_name: String,
    /// Sent by some clients for unsecured streams; servers accept it either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unauthorized_subscribe: Option<bool>,
}

/// The `data` of a successful Director answer: where to open the signaling WebSocket, and with
/// which JWT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectorSuccess {
    /// Signaling WebSocket URLs; the first one is used.
    #[serde(default)]
    pub urls: Vec<String>,
    /// The viewer JWT, fresh for this attempt; appended as `?token=`.
    pub jwt: Secret,
    /// STUN/TURN servers for the peer connection.
    #[serde(default)]
    pub ice_servers: Vec<IceServer>,
    /// The account id, echoed.
    #[serde(default)]
    pub stream_account_id: String,
    /// Deprecated single URL; some servers still send it beside `urls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws_url: Option<String>,
}

impl DirectorSuccess {
    /// The WebSocket URL to open: `urls[0]` (or the deprecated `wsUrl`) with `token=<jwt>` added
    /// to its query. A [`Secret`], because it carries the JWT.
    pub fn signaling_url(&self) -> Option<Secret> {
        let base = self.urls.first().or(self.ws_url.as_ref())?;
        let separator = if base.contains('?') { '&' } else { '?' };
        Some(Secret::new(format!(
            "{base}{separator}token={}",
            self.jwt.expose()
        )))
    }
}

/// One entry of `iceServers`, in the WebRTC `RTCIceServer` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:`/`turn:` URLs; a single string is accepted too.
    #[serde(alias = "url", deserialize_with = "one_or_many")]
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<Secret>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(url) => vec![url],
        OneOrMany::Many(urls) => urls,
    })
}

/// Why a Director call did not give a session; each variant maps to one reconnect class
/// (what the Director's answers mean).
///
/// `message` is the server's own message when the body had one (cut to 200 characters), else a
/// short description of the body such as `empty body`. It never contains a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectorFailure {
    /// Nobody publishes this stream (yet): 400/404 with `stream not being published` or
    /// `stream not found`. Wait for the publisher.
    #[error("stream not published (HTTP {status}): {message}")]
    NotPublished {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The subscribe token is bad or expired: 401/403. Fatal unless the token can be refreshed.
    #[error("unauthorized (HTTP {status}): {message}")]
    Unauthorized {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The Director or a proxy in front of it failed: 5xx. Retry with backoff.
    #[error("director server error (HTTP {status}): {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// Any other status, or a 2xx whose body is not a usable success.
    #[error("unexpected director response (HTTP {status}): {message}")]
    Unexpected {
        /// HTTP status.
        status: u16,
        /// The server's message, or what was wrong with the body.
        message: String,
    },
}

impl DirectorFailure {
    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotPublished { status, .. }
            | Self::Unauthorized { status, .. }
            | Self::Server { status, .. }
            | Self::Unexpected { status, .. } => *status,
        }
    }
}

/// The class the shared HTTP status table gives the answer. What the Director adds: a
/// [`NotPublished`](DirectorFailure::NotPublished) answer waits for the publisher, and any status
/// the table does not name (a 400 or 404 about something else, a 2xx without a usable body, a
/// proxy's odd answer) is retried later.
impl Classify for DirectorFailure {
    fn retry(&self) -> Retry {
        let context = StatusContext {
            not_published: matches!(self, Self::NotPublished { .. }),
            otherwise: Retry::Later,
        };
        retry_for_status(self.status(), context)
    }
}

/// The outer shape shared by every JSON Director answer.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    message: Option<Value>,
}

impl Envelope {
    /// `data.message` (`fail` answers) or the top-level `message` (`error` answers).
    fn message(&self) -> Option<String> {
        let nested = self.data.as_ref().and_then(|data| data.get("message"));
        match nested.or(self.message.as_ref())? {
            Value::String(text) => Some(text.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

/// Classifies a Director answer from its HTTP status and raw body.
///
/// The status decides first (401/403 unauthorized, 5xx server, whatever the body); the message
/// then tells "not published" from other 400/404s. A 2xx must carry
/// `{"status":"success","data":{...}}` with at least one signaling URL, else it is
/// [`DirectorFailure::Unexpected`].
///
/// ```
/// use relive::millicast::wire::{parse_director_response, DirectorFailure};
/// let body = br#"{"status":"fail","data":{"message":"Stream not being published"}}"#;
/// let failure = parse_director_response(400, body).unwrap_err();
/// assert!(matches!(failure, DirectorFailure::NotPublished { status: 400, .. }));
/// ```
pub fn parse_director_response(
    status: u16,
    body: &[u8],
) -> Result<DirectorSuccess, DirectorFailure> {
    let envelope = serde_json::from_slice::<Envelope>(body).ok();
    let message = envelope
        .as_ref()
        .and_then(Envelope::message)
        .map(|text| truncate(&text))
        .unwrap_or_else(|| describe_body(body, envelope.is_some()));
    match status {
        200..=299 => success(status, envelope, message),
        401 | 403 => Err(DirectorFailure::Unauthorized { status, message }),
        400 | 404 if envelope.is_some() && is_not_published(&message) => {
            Err(DirectorFailure::NotPublished { status, message })
        }
        500..=599 => Err(DirectorFailure::Server { status, message }),
        _ => Err(DirectorFailure::Unexpected { status, message }),
    }
}

fn success(
    status: u16,
    envelope: Option<Envelope>,
    message: String,
) -> Result<DirectorSuccess, DirectorFailure> {
    let unexpected = |message: String| DirectorFailure::Unexpected { status, message };
    let Some(Envelope {
        status: Some(outcome),
        data: Some(data),
        ..
    }) = envelope
    else {
        return Err(unexpected(message));
    };
    if outcome != "success" {
        return Err(unexpected(message));
    }
    // serde's error quotes the offending value whole (`invalid type: string "..."`): cut it like
    // a server message, or a 2xx with one huge malformed field floods the logs.
    let success = DirectorSuccess::deserialize(data)
        .map_err(|err| unexpected(truncate(&format!("malformed success body: {err}"))))?;
    if success.urls.is_empty() && success.ws_url.is_none() {
        return Err(unexpected(
            "success body without a signaling url".to_owned(),
        ));
    }
    Ok(success)
}

fn is_not_published(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("stream not being published") || message.contains("stream not found")
}

fn describe_body(body: &[u8], is_json: bool) -> String {
    if body.iter().all(u8::is_ascii_whitespace) {
        "empty body".to_owned()
    } else if is_json {
        "JSON body without a message".to_owned()
    } else {
        format!("non-JSON body ({} bytes)", body.len())
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The stream name a viewer JWT is for: claim `millicast.streamName` of its payload.
///
/// Only decodes, never verifies. `None` for anything that is not a JWT with that claim; never
/// panics.
///
/// ```
/// use relive::millicast::wire::{base64url_encode, jwt_stream_name};
/// let payload = base64url_encode(br#"{"millicast":{"streamName":"cam1"}}"#);
/// assert_eq!(jwt_stream_name(&format!("e30.{payload}.sig")).as_deref(), Some("cam1"));
/// assert_eq!(jwt_stream_name("not a jwt"), None);
/// ```
pub fn jwt_stream_name(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let json: Value = serde_json::from_slice(&base64url::decode(payload)?).ok()?;
    let name = json.get("millicast")?.get("streamName")?.as_str()?;
    Some(name.to_owned())
}
