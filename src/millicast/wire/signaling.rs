//! Signaling WebSocket frames: the commands a viewer sends and the responses, errors and events
//! the server sends back.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{SignalingEvent, WireError};

/// The events a viewer subscribes to unless told otherwise.
pub const DEFAULT_EVENTS: [&str; 8] = [
    "active",
    "inactive",
    "layers",
    "viewercount",
    "vad",
    "updated",
    "migrate",
    "stopped",
];

/// A command frame, `{"type":"cmd","transId":N,"name":"...","data":{...}}`.
///
/// `trans_id` counts up per socket; the answer carries the same number.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Transaction id, echoed by the response or error.
    pub trans_id: u64,
    /// `view`, `select`, `project`, `unproject`, ...
    pub name: String,
    /// The command's arguments.
    pub data: Value,
}

impl Command {
    /// A command with any serializable `data`.
    pub fn new(trans_id: u64, name: &str, data: &impl Serialize) -> Result<Self, WireError> {
        let data = serde_json::to_value(data).map_err(WireError::Malformed)?;
        Ok(Self {
            trans_id,
            name: name.to_owned(),
            data,
        })
    }

    /// The `view` command.
    pub fn view(trans_id: u64, view: &ViewCommand) -> Result<Self, WireError> {
        Self::new(trans_id, "view", view)
    }

    /// The frame text to send.
    pub fn to_text(&self) -> String {
        let mut frame = Map::new();
        frame.insert("type".to_owned(), Value::from("cmd"));
        frame.insert("transId".to_owned(), Value::from(self.trans_id));
        frame.insert("name".to_owned(), Value::from(self.name.as_str()));
        frame.insert("data".to_owned(), self.data.clone());
        Value::Object(frame).to_string()
    }
}

/// Reads a command frame (the server side of [`Command::to_text`]).
pub fn parse_command(text: &str) -> Result<Command, WireError> {
    let raw: RawFrame = serde_json::from_str(text).map_err(WireError::Malformed)?;
    if raw.kind.as_deref() != Some("cmd") {
        return Err(WireError::UnknownType(raw.kind.unwrap_or_default()));
    }
    Ok(Command {
        trans_id: raw.trans_id()?,
        name: raw.name.ok_or(WireError::MissingField("name"))?,
        data: raw.data.unwrap_or(Value::Null),
    })
}

/// The `data` of a `view` command: the SDP offer and what to watch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewCommand {
    /// The recvonly SDP offer (video mid `0`, audio mid `1`).
    pub sdp: String,
    /// The stream name, as in the JWT claim `millicast.streamName`.
    pub stream_id: String,
    /// Watch only this source of a multi-source stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_source_id: Option<String>,
    /// Sources not to receive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_source_ids: Vec<String>,
    /// Event names to receive; [`DEFAULT_EVENTS`] by default.
    #[serde(default = "default_events")]
    pub events: Vec<String>,
    /// The initial simulcast/SVC layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<LayerSelection>,
    /// Playout delay bounds forced on the receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_playout_delay: Option<PlayoutDelay>,
    /// Whether the server may switch layers by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abr: Option<bool>,
}

impl ViewCommand {
    /// A `view` of `stream_id` with the default events and nothing pinned or excluded.
    pub fn new(sdp: impl Into<String>, stream_id: impl Into<String>) -> Self {
        Self {
            sdp: sdp.into(),
            stream_id: stream_id.into(),
            pinned_source_id: None,
            excluded_source_ids: Vec::new(),
            events: default_events(),
            layer: None,
            force_playout_delay: None,
            abr: None,
        }
    }
}

fn default_events() -> Vec<String> {
    DEFAULT_EVENTS.iter().map(|&name| name.to_owned()).collect()
}

/// A layer to select, as in `view.layer` and `select.layer`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerSelection {
    /// The simulcast encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_id: Option<String>,
    /// The SVC spatial layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spatial_layer_id: Option<u32>,
    /// The SVC temporal layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_layer_id: Option<u32>,
}

/// `forcePlayoutDelay`: bounds in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayoutDelay {
    /// Lower bound.
    pub min: u32,
    /// Upper bound.
    pub max: u32,
}

/// The `data` of a successful `view` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewResponse {
    /// The SDP answer (ICE-lite, `setup:passive`, host candidates).
    pub sdp: String,
    /// The server's id for this viewer.
    #[serde(default)]
    pub subscriber_id: String,
    /// The cluster serving it.
    #[serde(default)]
    pub cluster_id: String,
    /// The server's id for this view.
    #[serde(default)]
    pub stream_view_id: String,
}

impl ViewResponse {
    /// Reads the `data` of a [`ServerMessage::Response`] to `view`.
    pub fn from_data(data: &Value) -> Result<Self, WireError> {
        Self::deserialize(data).map_err(WireError::Malformed)
    }
}

/// A frame from the signaling server.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerMessage {
    /// The success answer to the command with `trans_id`.
    Response {
        /// The command's transaction id.
        trans_id: u64,
        /// The answer; for `view` see [`ViewResponse::from_data`].
        data: Value,
    },
    /// The failure answer to the command with `trans_id`, such as `Feed not found`.
    Error {
        /// The command's transaction id.
        trans_id: u64,
        /// The server's message.
        message: String,
    },
    /// A pushed event.
    Event(SignalingEvent),
}

impl ServerMessage {
    /// The frame text, as a server sends it (used by the testkit server).
    pub fn to_text(&self) -> String {
        let mut frame = Map::new();
        let (kind, data) = match self {
            Self::Response { trans_id, data } => {
                frame.insert("transId".to_owned(), Value::from(*trans_id));
                ("response", data.clone())
            }
            Self::Error { trans_id, message } => {
                frame.insert("transId".to_owned(), Value::from(*trans_id));
                ("error", Value::from(message.as_str()))
            }
            Self::Event(event) => {
                frame.insert("name".to_owned(), Value::from(event.name()));
                ("event", event.to_data())
            }
        };
        frame.insert("type".to_owned(), Value::from(kind));
        frame.insert("data".to_owned(), data);
        Value::Object(frame).to_string()
    }
}

/// Reads one signaling text frame.
///
/// Errors only when the frame is not a JSON object, has an unknown `type`, or a response/error
/// lacks its `transId`; event data is read leniently (see [`SignalingEvent`]). Never panics.
///
/// ```
/// use relive::millicast::wire::{parse_server_message, SignalingEvent, ServerMessage};
/// let frame = r#"{"type":"event","name":"viewercount","data":{"viewerCount":3}}"#;
/// assert_eq!(parse_server_message(frame).unwrap(), ServerMessage::Event(SignalingEvent::ViewerCount(3)));
/// ```
pub fn parse_server_message(text: &str) -> Result<ServerMessage, WireError> {
    let raw: RawFrame = serde_json::from_str(text).map_err(WireError::Malformed)?;
    match raw.kind.as_deref() {
        Some("response") => Ok(ServerMessage::Response {
            trans_id: raw.trans_id()?,
            data: raw.data.unwrap_or(Value::Null),
        }),
        Some("error") => Ok(ServerMessage::Error {
            trans_id: raw.trans_id()?,
            message: error_message(raw.data),
        }),
        Some("event") => {
            let name = raw.name.ok_or(WireError::MissingField("name"))?;
            Ok(ServerMessage::Event(SignalingEvent::from_parts(
                &name, raw.data,
            )))
        }
        other => Err(WireError::UnknownType(other.unwrap_or_default().to_owned())),
    }
}

/// `data` of an error frame: a plain string, leniently also `{"message": "..."}`.
fn error_message(data: Option<Value>) -> String {
    match data {
        Some(Value::String(message)) => message,
        Some(Value::Object(mut object)) => match object.remove("message") {
            Some(Value::String(message)) => message,
            _ => Value::Object(object).to_string(),
        },
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Every frame's outer fields; what is required depends on `type`.
#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(rename = "transId", default)]
    trans_id: Option<Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    data: Option<Value>,
}

impl RawFrame {
    /// `transId` as a number, leniently also a numeric string.
    fn trans_id(&self) -> Result<u64, WireError> {
        let id = match &self.trans_id {
            Some(Value::Number(number)) => number.as_u64(),
            Some(Value::String(text)) => text.parse().ok(),
            _ => None,
        };
        id.ok_or(WireError::MissingField("transId"))
    }
}
