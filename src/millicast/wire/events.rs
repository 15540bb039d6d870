//! Signaling events (`{"type":"event","name":...,"data":...}`), read leniently: extra fields are
//! ignored, missing ones take defaults, unknown names become [`SignalingEvent::Unknown`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An event pushed by the signaling server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignalingEvent {
    /// A source started publishing (or was already live when the viewer joined).
    Active {
        /// `accountId/streamName`.
        stream_id: String,
        /// The source within a multi-source stream; `None` for the main source.
        source_id: Option<String>,
        /// The source's tracks.
        tracks: Vec<SourceTrack>,
    },
    /// A source stopped publishing; `stopped` may follow once the stream is gone for good.
    Inactive {
        /// `accountId/streamName`.
        stream_id: String,
        /// The source; `None` for the main source.
        source_id: Option<String>,
    },
    /// The stream is gone for good.
    Stopped,
    /// The simulcast/SVC layers now on offer, per media.
    Layers(Layers),
    /// How many viewers watch the stream.
    ViewerCount(u64),
    /// Voice activity in a multi-source stream.
    Vad,
    /// A track was added or removed.
    Updated,
    /// The server asks the viewer to move to a new session (make-before-break).
    Migrate,
    /// An event this crate does not know, or a `layers`/`viewercount` whose data cannot be read
    /// (so that a garbled frame never looks like a stall): the event's name.
    Unknown(String),
}

impl SignalingEvent {
    /// Builds the event from its name and `data`, never failing.
    pub(super) fn from_parts(name: &str, data: Option<Value>) -> Self {
        let data = data.unwrap_or(Value::Null);
        match name {
            "active" => {
                let active = ActiveData::deserialize(&data).unwrap_or_default();
                Self::Active {
                    stream_id: active.stream_id,
                    source_id: active.source_id,
                    tracks: active.tracks,
                }
            }
            "inactive" => {
                let inactive = ActiveData::deserialize(&data).unwrap_or_default();
                Self::Inactive {
                    stream_id: inactive.stream_id,
                    source_id: inactive.source_id,
                }
            }
            "stopped" => Self::Stopped,
            "layers" => Layers::deserialize(&data).map_or_else(|_| unknown(name), Self::Layers),
            "viewercount" => viewer_count(&data).map_or_else(|| unknown(name), Self::ViewerCount),
            "vad" => Self::Vad,
            "updated" => Self::Updated,
            "migrate" => Self::Migrate,
            other => Self::Unknown(other.to_owned()),
        }
    }
}

impl SignalingEvent {
    /// The event's name on the wire (`active`, `viewercount`, ...).
    pub fn name(&self) -> &str {
        match self {
            Self::Active { .. } => "active",
            Self::Inactive { .. } => "inactive",
            Self::Stopped => "stopped",
            Self::Layers(_) => "layers",
            Self::ViewerCount(_) => "viewercount",
            Self::Vad => "vad",
            Self::Updated => "updated",
            Self::Migrate => "migrate",
            Self::Unknown(name) => name,
        }
    }

    /// The event's `data` as a server sends it (`{}` for the events without a payload).
    pub fn to_data(&self) -> Value {
        match self {
            Self::Active {
                stream_id,
                source_id,
                tracks,
            } => json_object([
                ("streamId", Value::from(stream_id.as_str())),
                (
                    "sourceId",
                    source_id.as_deref().map_or(Value::Null, Value::from),
                ),
                ("tracks", plain_value(tracks)),
            ]),
            Self::Inactive {
                stream_id,
                source_id,
            } => json_object([
                ("streamId", Value::from(stream_id.as_str())),
                (
                    "sourceId",
                    source_id.as_deref().map_or(Value::Null, Value::from),
                ),
            ]),
            Self::Layers(layers) => plain_value(layers),
            Self::ViewerCount(count) => json_object([("viewercount", Value::from(*count))]),
            Self::Stopped | Self::Vad | Self::Updated | Self::Migrate | Self::Unknown(_) => {
                Value::Object(serde_json::Map::new())
            }
        }
    }
}

fn json_object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    )
}

/// Serializes the plain data types of this module. They have string keys and no custom
/// `Serialize`, so `to_value` cannot fail; `Null` would only mark a bug, never a panic.
fn plain_value(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn unknown(name: &str) -> SignalingEvent {
    tracing::debug!(event = name, "signaling event with unreadable data");
    SignalingEvent::Unknown(name.to_owned())
}

fn viewer_count(data: &Value) -> Option<u64> {
    data.get("viewercount")
        .or_else(|| data.get("viewerCount"))?
        .as_u64()
}

/// `active`/`inactive` data; every field optional on the wire.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ActiveData {
    #[serde(deserialize_with = "string_or_default")]
    stream_id: String,
    source_id: Option<String>,
    tracks: Vec<SourceTrack>,
}

fn string_or_default<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

/// An id sent as a string, a number or `null`, read as text.
fn id_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) => text,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// One track of an `active` source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SourceTrack {
    /// The track id.
    pub track_id: String,
    /// `video` or `audio`.
    pub media: String,
}

/// `layers` data: `{"medias": {"<mid>": {...}}}`, an object keyed by media id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layers {
    /// Per media id (`"0"` is video in a relive offer).
    pub medias: BTreeMap<String, MediaLayers>,
}

impl Layers {
    /// Active encodings across all medias. Zero means the feed is gone (the classic heuristic).
    pub fn active_count(&self) -> u32 {
        let total: usize = self.medias.values().map(|media| media.active.len()).sum();
        u32::try_from(total).unwrap_or(u32::MAX)
    }
}

/// The layers of one media.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MediaLayers {
    /// Encodings now received from the publisher.
    pub active: Vec<LayerEncoding>,
    /// Encodings announced but not received.
    pub inactive: Vec<LayerEncoding>,
    /// All selectable layers.
    pub layers: Vec<SpatialTemporalLayer>,
}

/// One simulcast encoding (`E` in a `layers` event).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LayerEncoding {
    /// The encoding id (a RID such as `h`, or an index; a number on the wire is read as text).
    #[serde(deserialize_with = "id_text")]
    pub id: String,
    /// Simulcast index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulcast_idx: Option<u32>,
    /// Bitrate in bits per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u64>,
    /// Width in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// SVC layers of this encoding.
    pub layers: Vec<SpatialTemporalLayer>,
}

/// One selectable layer (`L` in a `layers` event).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SpatialTemporalLayer {
    /// The encoding this layer belongs to.
    #[serde(deserialize_with = "id_text")]
    pub encoding_id: String,
    /// SVC spatial layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spatial_layer_id: Option<u32>,
    /// SVC temporal layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporal_layer_id: Option<u32>,
    /// Bitrate in bits per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u64>,
    /// Width in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}
