//! What the server sends: [`ServerFrame`] and the types inside it.

use serde::{Deserialize, Serialize};

use super::client::describe_json;
use super::{Details, ErrorCode, ProtocolError, Role, StreamName};
use crate::Secret;
use crate::millicast::wire::IceServer;

/// A frame the server sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerFrame {
    /// The answer to `hello`.
    Welcome {
        /// The protocol version the server speaks.
        v: u32,
        /// The role accepted.
        role: Role,
        /// This connection's number, for logs on both sides.
        session: u64,
        /// The limits that apply to this connection.
        limits: WireLimits,
    },
    /// The answer to `view`: the stream's state now.
    Snapshot {
        /// The stream.
        stream: StreamName,
        /// Whether a publisher is live.
        live: bool,
        /// The details, when live.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<Details>,
    },
    /// A publisher went live.
    Publish {
        /// The stream.
        stream: StreamName,
        /// Its details.
        details: Details,
    },
    /// A live publisher changed its details.
    Update {
        /// The stream.
        stream: StreamName,
        /// The new details.
        details: Details,
    },
    /// The stream is no longer live.
    Close {
        /// The stream.
        stream: StreamName,
        /// Why.
        reason: CloseReason,
    },
    /// The Director subscribe answer the relay got for a viewer.
    Director {
        /// The stream.
        stream: StreamName,
        /// The request's `id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Signaling WebSocket URLs; open the first with `?token=<jwt>`.
        urls: Vec<String>,
        /// The viewer JWT. Never logged.
        jwt: Secret,
        /// STUN/TURN servers.
        #[serde(default, rename = "iceServers")]
        ice_servers: Vec<IceServer>,
    },
    /// A refusal.
    Error {
        /// What kind.
        code: ErrorCode,
        /// For people.
        message: String,
        /// The stream it is about, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream: Option<StreamName>,
        /// The `id` of the request refused (`director`), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The server closes the socket next.
        #[serde(default)]
        fatal: bool,
    },
    /// The answer to `ping`.
    Pong {
        /// The ping's `id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// The server is going away: reconnect later.
    Shutdown {
        /// Why.
        reason: String,
    },
}

impl ServerFrame {
    /// The frame as JSON text.
    pub fn to_text(&self) -> String {
        // Serializing these types cannot fail: string keys, no maps with other keys.
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"type":"error","code":"internal","message":"unserializable frame","fatal":false}"#.to_owned())
    }
}

/// Reads one server text frame (the clients' side). Unknown types are an error the clients
/// ignore, so that a newer server can add frames.
pub fn parse_server_frame(text: &str) -> Result<ServerFrame, ProtocolError> {
    serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(describe_json(&e)))
}

/// The limits the server announces in `welcome`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WireLimits {
    /// The largest frame accepted, in bytes.
    pub max_frame: usize,
    /// Frames per second allowed on average.
    pub rate_per_sec: f64,
    /// Frames allowed in a burst.
    pub burst: u32,
    /// Silence after which the connection is closed.
    pub idle_timeout_ms: u64,
}

/// Why a stream stopped being live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CloseReason {
    /// The publisher sent `close`.
    Unpublished,
    /// The publisher's socket closed or went silent.
    PublisherLost,
    /// A reason a newer server sent.
    #[serde(other)]
    Other,
}
