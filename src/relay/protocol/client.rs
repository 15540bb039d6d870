//! What clients send: [`ClientFrame`] and its pure parser.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Details, ProtocolError, Role, StreamName};
use crate::Secret;

/// A frame a client sends, checked.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ClientFrame {
    /// The first frame: who the client is and which protocol it speaks.
    Hello {
        /// The protocol version ([`PROTOCOL_VERSION`](super::PROTOCOL_VERSION)).
        version: u32,
        /// Publisher or viewer.
        role: Role,
        /// The publish token (publishers); never logged.
        token: Option<Secret>,
    },
    /// A publisher announces (or updates) a live stream.
    Publish {
        /// The stream.
        stream: StreamName,
        /// Its details.
        details: Details,
    },
    /// A publisher ends a stream.
    Close {
        /// The stream.
        stream: StreamName,
    },
    /// A viewer follows a stream.
    View {
        /// The stream.
        stream: StreamName,
    },
    /// A viewer stops following a stream.
    Unview {
        /// The stream.
        stream: StreamName,
    },
    /// A viewer asks the relay for a Millicast Director subscribe answer.
    Director {
        /// The stream.
        stream: StreamName,
        /// Echoed in the answer, to match it.
        id: Option<u64>,
    },
    /// Keepalive; answered with `pong`.
    Ping {
        /// Echoed in the `pong`.
        id: Option<u64>,
    },
}

/// The serde shape of client frames; [`parse_client_frame`] checks it into a [`ClientFrame`].
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawClient {
    Hello {
        v: u32,
        role: Role,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<Secret>,
    },
    Publish {
        stream: String,
        #[serde(default, deserialize_with = "details_object")]
        details: Details,
    },
    Close {
        stream: String,
    },
    View {
        stream: String,
    },
    Unview {
        stream: String,
    },
    Director {
        stream: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
}

impl ClientFrame {
    /// The frame as JSON text, as the clients send it. The `hello` token is in it: send it,
    /// never log it.
    pub fn to_text(&self) -> String {
        let name = |s: &StreamName| s.as_str().to_owned();
        let raw = match self {
            ClientFrame::Hello {
                version,
                role,
                token,
            } => RawClient::Hello {
                v: *version,
                role: *role,
                token: token.clone(),
            },
            ClientFrame::Publish { stream, details } => RawClient::Publish {
                stream: name(stream),
                details: details.clone(),
            },
            ClientFrame::Close { stream } => RawClient::Close {
                stream: name(stream),
            },
            ClientFrame::View { stream } => RawClient::View {
                stream: name(stream),
            },
            ClientFrame::Unview { stream } => RawClient::Unview {
                stream: name(stream),
            },
            ClientFrame::Director { stream, id } => RawClient::Director {
                stream: name(stream),
                id: *id,
            },
            ClientFrame::Ping { id } => RawClient::Ping { id: *id },
        };
        // Plain data with string keys: serializing cannot fail.
        serde_json::to_string(&raw).unwrap_or_default()
    }
}

/// `details` must be a JSON object (serde alone would also take an array of its fields).
fn details_object<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Details, D::Error> {
    let object = serde_json::Map::<String, Value>::deserialize(deserializer)?;
    Details::deserialize(Value::Object(object)).map_err(serde::de::Error::custom)
}

/// Just the `type` of a frame, to tell an unknown type from a malformed frame.
#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: Option<Value>,
}

const CLIENT_TYPES: [&str; 7] = [
    "hello", "publish", "close", "view", "unview", "director", "ping",
];

/// Reads one client text frame. Pure and total: any input gives a frame or an error, never a
/// panic (a unit test feeds it hostile inputs).
///
/// ```
/// use relive::relay::protocol::{parse_client_frame, ClientFrame, ErrorCode};
/// let frame = parse_client_frame(r#"{"type":"view","stream":"cam-1"}"#).unwrap();
/// assert!(matches!(frame, ClientFrame::View { .. }));
/// let error = parse_client_frame(r#"{"type":"view","stream":"no spaces"}"#).unwrap_err();
/// assert_eq!(error.code(), ErrorCode::InvalidStream);
/// ```
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, ProtocolError> {
    let raw: RawClient = serde_json::from_str(text).map_err(|e| classify(text, &e))?;
    let stream = StreamName::new;
    Ok(match raw {
        RawClient::Hello { v, role, token } => ClientFrame::Hello {
            version: v,
            role,
            token,
        },
        RawClient::Publish { stream: s, details } => {
            details.check()?;
            ClientFrame::Publish {
                stream: stream(s)?,
                details,
            }
        }
        RawClient::Close { stream: s } => ClientFrame::Close { stream: stream(s)? },
        RawClient::View { stream: s } => ClientFrame::View { stream: stream(s)? },
        RawClient::Unview { stream: s } => ClientFrame::Unview { stream: stream(s)? },
        RawClient::Director { stream: s, id } => ClientFrame::Director {
            stream: stream(s)?,
            id,
        },
        RawClient::Ping { id } => ClientFrame::Ping { id },
    })
}

/// Why a frame did not parse: an unknown `type`, or a malformed frame.
fn classify(text: &str, error: &serde_json::Error) -> ProtocolError {
    match serde_json::from_str::<TypeOnly>(text) {
        Ok(TypeOnly {
            kind: Some(Value::String(kind)),
        }) if !CLIENT_TYPES.contains(&kind.as_str()) => ProtocolError::UnknownType(echo(&kind)),
        _ => ProtocolError::Malformed(describe_json(error)),
    }
}

/// What was wrong with a frame, in words that never repeat its values: serde's own message
/// quotes the offending value (`invalid type: string "s3cret", expected u32` for a token sent as
/// `v`), and refusals are logged. A missing field is named (a name is ours, not the client's).
pub(super) fn describe_json(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let column = error.column();
    match error.classify() {
        Category::Data if error.to_string().starts_with("missing field `") => {
            cut(&error.to_string())
        }
        Category::Data => format!("a field has the wrong type or value (column {column})"),
        Category::Syntax => format!("not valid JSON (column {column})"),
        Category::Eof => "truncated JSON".to_owned(),
        Category::Io => "unreadable frame".to_owned(),
    }
}

/// Keeps our own text in errors short.
pub(super) fn cut(text: &str) -> String {
    text.chars().take(80).collect()
}

/// The part of a client's `value` an error may repeat: its start, at most
/// [`MAX_ECHO`](super::MAX_ECHO) characters and at most half of it — never all of it.
pub(super) fn echo(value: &str) -> String {
    let half = value.chars().count() / 2;
    value.chars().take(half.min(super::MAX_ECHO)).collect()
}
