//! Fault scripts: a timeline of [`Action`]s at offsets, read from JSON by pure code, and the one
//! mapping of each action onto the [`MillicastServer`] fault methods, shared by a script run and
//! the `relive-testkit` control API.
//!
//! A script is a JSON object with a `steps` array; each step is an action (its name in `action`,
//! its fields beside it) and `at`, its offset in seconds from the start of the run:
//!
//! ```
//! use std::time::Duration;
//! use relive::testkit::script::{Action, Script};
//!
//! let script = Script::parse(r#"{"steps": [
//!     {"at": 0,   "action": "publish", "stream": "cam"},
//!     {"at": 2.5, "action": "cut_sockets"},
//!     {"at": 6,   "action": "director_fault", "fault": "html", "requests": 2}
//! ]}"#)?;
//! assert_eq!(script.steps()[1].at, Duration::from_millis(2500));
//! assert_eq!(script.steps()[1].action, Action::CutSockets {});
//! # Ok::<(), relive::testkit::script::ScriptError>(())
//! ```
//!
//! JSON, not TOML: the control API's request bodies are JSON too, and a body is exactly a step
//! without `at`, so one parser and one set of names serve both; it needs no new dependency, and
//! `serde_json` reports the line and column of every error, the field's name included.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

#[cfg(feature = "webrtc")]
use crate::testkit::millicast::WhepFault;
use crate::testkit::millicast::{DirectorFault, MillicastServer, RetryAfter};

/// The longest offset a step may have: a day.
const MAX_AT: Duration = Duration::from_secs(24 * 3600);

/// Something the server does at once: publish, misbehave, drop sockets, heal.
///
/// Variants without fields are written `CutSockets {}`: as empty structs, serde refuses fields
/// they do not have, as it does for the others.
///
/// Serialized with its name in `action` (snake case) beside its fields, as in scripts and
/// control API bodies. A new fault is one variant here and one arm in [`Action::apply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Action {
    /// The stream goes live: `active` and `layers` to its viewers, media flows
    /// ([`MillicastServer::publish`]).
    Publish {
        /// The stream name.
        stream: StreamName,
    },
    /// The publisher leaves: `inactive`; Director and `view` answer "not published".
    Unpublish {
        /// The stream name.
        stream: StreamName,
    },
    /// The stream is gone for good: `stopped`.
    Stop {
        /// The stream name.
        stream: StreamName,
    },
    /// The encoder freezes: peers stay connected, no RTP, no event.
    Freeze {
        /// The stream name.
        stream: StreamName,
    },
    /// RTP flows again after a freeze.
    Unfreeze {
        /// The stream name.
        stream: StreamName,
    },
    /// The UDP media path drops everything while `on`.
    BlackholeMedia {
        /// The stream name.
        stream: StreamName,
        /// On or off.
        on: bool,
    },
    /// `layers` with `active` active encodings (`0`: the feed is gone).
    Layers {
        /// The stream name.
        stream: StreamName,
        /// Active video encodings.
        active: usize,
    },
    /// `viewercount` with `count`.
    Viewercount {
        /// The stream name.
        stream: StreamName,
        /// The count sent.
        count: u64,
    },
    /// `migrate`: viewers are asked to move to a new session.
    Migrate {
        /// The stream name.
        stream: StreamName,
    },
    /// Every signaling socket is dropped without a close frame (the client sees 1006).
    CutSockets {},
    /// Every signaling socket is closed with a close frame (1001).
    CloseSockets {},
    /// Director requests play `fault`: all of them, or only the next `requests`.
    DirectorFault {
        /// The fault.
        fault: DirectorFaultName,
        /// How many requests; absent: until `director_heal`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requests: Option<u32>,
    },
    /// Director requests are answered `503` or `429` with a `Retry-After`: all of them, or
    /// only the next `requests`.
    DirectorBusy {
        /// `unavailable` (503) or `too_many_requests` (429).
        status: Busy,
        /// The `Retry-After`, in seconds.
        retry_after: u32,
        /// Written as an HTTP-date that many seconds after the answer's `Date`, not in seconds.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        http_date: bool,
        /// How many requests; absent: until `director_heal`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requests: Option<u32>,
    },
    /// The Director answers normally again (requests hanging are answered).
    DirectorHeal {},
    /// WHEP `POST`s are answered `503` or `429` with a `Retry-After`: all of them, or only the
    /// next `requests`.
    #[cfg(feature = "webrtc")]
    WhepBusy {
        /// `unavailable` (503) or `too_many_requests` (429).
        status: Busy,
        /// The `Retry-After`, in seconds.
        retry_after: u32,
        /// Written as an HTTP-date that many seconds after the answer's `Date`, not in seconds.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        http_date: bool,
        /// How many requests; absent: until `whep_heal`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requests: Option<u32>,
    },
    /// WHEP answers normally again (`POST`s, and `PATCH`es refused by `whep_refuse_patch`).
    #[cfg(feature = "webrtc")]
    WhepHeal {},
    /// Every WHEP `PATCH` (ICE restart) is answered `status` (405 or 501: "no ICE restart
    /// here"), until `whep_heal`.
    #[cfg(feature = "webrtc")]
    WhepRefusePatch {
        /// An HTTP error status, 400 to 599.
        status: ErrorStatus,
    },
    /// The UDP path of every WHEP session of the stream is cut (both ways), as a viewer's
    /// network change does, until that viewer restarts ICE with a `PATCH`.
    #[cfg(feature = "webrtc")]
    CutMediaPaths {
        /// The stream name.
        stream: StreamName,
    },
    /// While `on`, signaling sockets are not read: pings (and commands) go unanswered.
    IgnorePings {
        /// On or off.
        on: bool,
    },
    /// While `on`, every `view` is refused with `Feed not found`.
    RejectView {
        /// On or off.
        on: bool,
    },
    /// `text`, as it is, as one text frame to every socket of the stream: garbage frames.
    SendRaw {
        /// The stream name.
        stream: StreamName,
        /// The frame text.
        text: String,
    },
}

/// The name of a [`DirectorFault`] in scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DirectorFaultName {
    /// 400 "stream not being published".
    NotPublished,
    /// 401 "Unauthorized: Invalid token".
    Unauthorized,
    /// 500 with Millicast's error body.
    ServerError,
    /// 502 with a proxy's HTML page.
    Html,
    /// 503 with an empty body.
    Empty,
    /// No answer until healed.
    Hang,
}

/// Which busy answer a [`Action::DirectorBusy`] (or `whep_busy`) gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Busy {
    /// 503 Service Unavailable.
    Unavailable,
    /// 429 Too Many Requests.
    TooManyRequests,
}

/// The `Retry-After` of a busy answer: `seconds`, as seconds or as an HTTP-date.
fn retry_after(seconds: u32, http_date: bool) -> RetryAfter {
    if http_date {
        RetryAfter::HttpDate(seconds)
    } else {
        RetryAfter::Seconds(seconds)
    }
}

impl From<DirectorFaultName> for DirectorFault {
    fn from(name: DirectorFaultName) -> Self {
        match name {
            DirectorFaultName::NotPublished => DirectorFault::NotPublished,
            DirectorFaultName::Unauthorized => DirectorFault::Unauthorized,
            DirectorFaultName::ServerError => DirectorFault::ServerError,
            DirectorFaultName::Html => DirectorFault::Html,
            DirectorFaultName::Empty => DirectorFault::Empty,
            DirectorFaultName::Hang => DirectorFault::Hang,
        }
    }
}

/// A stream name: 1 to 255 characters, none of them `/`, whitespace or a control character (it
/// is a URL path segment of WHEP and the signaling stream id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct StreamName(String);

impl StreamName {
    /// Checks `name`.
    pub fn new(name: &str) -> Result<Self, String> {
        let valid = !name.is_empty()
            && name.len() <= 255
            && !name
                .chars()
                .any(|c| c == '/' || c.is_whitespace() || c.is_control());
        if valid {
            Ok(StreamName(name.to_owned()))
        } else {
            Err(format!(
                "invalid stream name {name:?}: 1 to 255 characters without '/' or whitespace"
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for StreamName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        StreamName::new(&name).map_err(serde::de::Error::custom)
    }
}

/// An HTTP error status: 400 to 599.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ErrorStatus(u16);

impl ErrorStatus {
    /// Checks `status`.
    pub fn new(status: u16) -> Result<Self, String> {
        if (400..=599).contains(&status) {
            Ok(ErrorStatus(status))
        } else {
            Err(format!(
                "invalid status {status}: an HTTP error, 400 to 599"
            ))
        }
    }

    /// The status.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl<'de> Deserialize<'de> for ErrorStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let status = u16::deserialize(deserializer)?;
        ErrorStatus::new(status).map_err(serde::de::Error::custom)
    }
}

impl Action {
    /// Reads one action from a JSON object (a control API body, a step without `at`).
    pub fn parse(json: &str) -> Result<Action, ScriptError> {
        serde_json::from_str(json).map_err(ScriptError::from)
    }

    /// Does it: calls the [`MillicastServer`] method the action names. The wire log records
    /// the action first, so that what it causes (a dropped socket...) always follows it there.
    pub fn apply(&self, server: &MillicastServer) {
        server.note_action(self);
        match self {
            Action::Publish { stream } => server.publish(stream.as_str()),
            Action::Unpublish { stream } => server.unpublish(stream.as_str()),
            Action::Stop { stream } => server.stop(stream.as_str()),
            Action::Freeze { stream } => server.freeze(stream.as_str()),
            Action::Unfreeze { stream } => server.unfreeze(stream.as_str()),
            Action::BlackholeMedia { stream, on } => server.blackhole_media(stream.as_str(), *on),
            Action::Layers { stream, active } => server.send_layers(stream.as_str(), *active),
            Action::Viewercount { stream, count } => {
                server.send_viewercount(stream.as_str(), *count);
            }
            Action::Migrate { stream } => server.migrate(stream.as_str()),
            Action::CutSockets {} => server.cut_all_sockets(),
            Action::CloseSockets {} => server.close_all_sockets(),
            Action::DirectorFault {
                fault,
                requests: None,
            } => server.set_director_fault(Some((*fault).into())),
            Action::DirectorFault {
                fault,
                requests: Some(n),
            } => server.set_director_fault_for((*fault).into(), *n),
            Action::DirectorBusy {
                status,
                retry_after: seconds,
                http_date,
                requests,
            } => {
                let after = retry_after(*seconds, *http_date);
                let fault = match status {
                    Busy::Unavailable => DirectorFault::Unavailable(after),
                    Busy::TooManyRequests => DirectorFault::TooManyRequests(after),
                };
                match requests {
                    None => server.set_director_fault(Some(fault)),
                    Some(n) => server.set_director_fault_for(fault, *n),
                }
            }
            Action::DirectorHeal {} => server.set_director_fault(None),
            #[cfg(feature = "webrtc")]
            Action::WhepBusy {
                status,
                retry_after: seconds,
                http_date,
                requests,
            } => {
                let after = retry_after(*seconds, *http_date);
                let fault = match status {
                    Busy::Unavailable => WhepFault::Unavailable(after),
                    Busy::TooManyRequests => WhepFault::TooManyRequests(after),
                };
                match requests {
                    None => server.set_whep_fault(Some(fault)),
                    Some(n) => server.set_whep_fault_for(fault, *n),
                }
            }
            #[cfg(feature = "webrtc")]
            Action::WhepHeal {} => {
                server.set_whep_fault(None);
                server.refuse_whep_patch(None);
            }
            #[cfg(feature = "webrtc")]
            Action::WhepRefusePatch { status } => server.refuse_whep_patch(Some(status.get())),
            #[cfg(feature = "webrtc")]
            Action::CutMediaPaths { stream } => {
                server.cut_media_paths(stream.as_str());
            }
            Action::IgnorePings { on } => server.ignore_pings(*on),
            Action::RejectView { on } => server.reject_view(*on),
            Action::SendRaw { stream, text } => server.send_raw(stream.as_str(), text),
        }
    }
}

/// One step of a [`Script`]: an action and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The offset from the start of the run (`at`, seconds, in JSON).
    #[serde(serialize_with = "seconds")]
    pub at: Duration,
    /// What to do.
    #[serde(flatten)]
    pub action: Action,
}

impl<'de> Deserialize<'de> for Step {
    /// By hand, not derived: serde's `flatten` would let unknown fields through the action's
    /// `deny_unknown_fields`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut fields = serde_json::Map::deserialize(deserializer)?;
        let at = fields
            .remove("at")
            .ok_or_else(|| D::Error::missing_field("at"))?;
        let at = offset(at).map_err(D::Error::custom)?;
        let action =
            Action::deserialize(serde_json::Value::Object(fields)).map_err(D::Error::custom)?;
        Ok(Step { at, action })
    }
}

/// A timeline of faults, ordered by offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    steps: Vec<Step>,
}

/// Why a script or an action could not be read: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScriptError {
    /// The line of the error (1-based; 0 when the error is not at a place, such as a read error).
    pub line: usize,
    /// The column (1-based).
    pub column: usize,
    /// What is wrong, naming the field or action (`missing field `stream``, `unknown variant
    /// `frezze``).
    pub message: String,
}

impl std::fmt::Display for ScriptError {
    /// `line L, column C: message`, or the message alone when it is at no place.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(
                f,
                "line {}, column {}: {}",
                self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for ScriptError {}

impl From<serde_json::Error> for ScriptError {
    fn from(error: serde_json::Error) -> Self {
        ScriptError::from(&error)
    }
}

impl From<&serde_json::Error> for ScriptError {
    fn from(error: &serde_json::Error) -> Self {
        let full = error.to_string();
        // serde_json appends " at line L column C"; the fields say it already.
        let message = match full.rfind(" at line ") {
            Some(cut) if error.line() > 0 => full[..cut].to_owned(),
            _ => full,
        };
        ScriptError {
            line: error.line(),
            column: error.column(),
            message,
        }
    }
}

impl Script {
    /// Reads a script; steps are ordered by offset (steps at the same offset keep their order).
    ///
    /// An error names the line and column, and for a step its number (from 1) and the field or
    /// action at fault; a step's error points into that step.
    pub fn parse(json: &str) -> Result<Script, ScriptError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw<'a> {
            #[serde(borrow)]
            steps: Vec<&'a serde_json::value::RawValue>,
        }
        let raw: Raw<'_> = serde_json::from_str(json)?;
        let mut steps = Vec::with_capacity(raw.steps.len());
        for (index, step) in raw.steps.iter().enumerate() {
            let text = step.get();
            let parsed = serde_json::from_str::<Step>(text)
                .map_err(|error| step_error(json, text, index, &error))?;
            steps.push(parsed);
        }
        steps.sort_by_key(|step| step.at);
        Ok(Script { steps })
    }

    /// The steps, ordered by offset.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The offset of the last step (zero for an empty script).
    pub fn duration(&self) -> Duration {
        self.steps.last().map_or(Duration::ZERO, |step| step.at)
    }

    /// Plays the script on `server`: each action at its offset from now. Cancel by dropping.
    pub async fn run(&self, server: &MillicastServer) {
        let start = tokio::time::Instant::now();
        for step in &self.steps {
            tokio::time::sleep_until(start + step.at).await;
            tracing::info!(at_ms = step.at.as_millis(), action = ?step.action, "script step");
            step.action.apply(server);
        }
    }
}

/// The error of step `index` (`text`, a slice of `json`), placed in `json`.
fn step_error(json: &str, text: &str, index: usize, error: &serde_json::Error) -> ScriptError {
    let inner = ScriptError::from(error);
    // `text` borrows from `json`: its offset is where the step starts.
    let start = (text.as_ptr() as usize).saturating_sub(json.as_ptr() as usize);
    let before = json.get(..start).unwrap_or_default();
    let start_line = before.matches('\n').count() + 1;
    let start_column = before.len() - before.rfind('\n').map_or(0, |newline| newline + 1) + 1;
    let (line, column) = match inner.line {
        0 | 1 => (start_line, start_column + inner.column.saturating_sub(1)),
        n => (start_line + n - 1, inner.column),
    };
    ScriptError {
        line,
        column,
        message: format!("step {}: {}", index + 1, inner.message),
    }
}

/// Reads `at`: finite, non-negative seconds, at most a day.
fn offset<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let seconds = f64::deserialize(deserializer)
        .map_err(|e| serde::de::Error::custom(format!("invalid `at`: {e}")))?;
    if !(0.0..=MAX_AT.as_secs_f64()).contains(&seconds) {
        return Err(serde::de::Error::custom(format!(
            "invalid `at` {seconds}: seconds from the start, 0 to {}",
            MAX_AT.as_secs()
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn seconds<S: serde::Serializer>(at: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(at.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam() -> StreamName {
        StreamName::new("cam").unwrap()
    }

    #[test]
    fn steps_are_read_and_ordered_by_offset() {
        let script = Script::parse(
            r#"{"steps": [
                {"at": 3, "action": "unpublish", "stream": "cam"},
                {"at": 0.25, "action": "publish", "stream": "cam"},
                {"at": 3, "action": "director_fault", "fault": "hang"},
                {"at": 4, "action": "ignore_pings", "on": true}
            ]}"#,
        )
        .unwrap();
        let actions: Vec<_> = script.steps().iter().map(|s| s.action.clone()).collect();
        assert_eq!(
            actions,
            vec![
                Action::Publish { stream: cam() },
                Action::Unpublish { stream: cam() },
                Action::DirectorFault {
                    fault: DirectorFaultName::Hang,
                    requests: None
                },
                Action::IgnorePings { on: true },
            ]
        );
        assert_eq!(script.steps()[0].at, Duration::from_millis(250));
        assert_eq!(script.duration(), Duration::from_secs(4));
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let cases = [
            (
                "{\"steps\": [\n{\"at\": 1, \"action\": \"publish\"}\n]}",
                2,
                "missing field `stream`",
            ),
            (
                "{\"steps\": [\n{\"at\": 1, \"action\": \"publish\", \"stream\": \"cam\"},\n{\"at\": 2, \"action\": \"frezze\", \"stream\": \"cam\"}\n]}",
                3,
                "unknown variant `frezze`",
            ),
            (
                "{\"steps\": [\n{\"at\": -1, \"action\": \"cut_sockets\"}]}",
                2,
                "invalid `at` -1",
            ),
            (
                "{\"steps\": [\n{\"at\": 1, \"action\": \"cut_sockets\", \"stream\": \"cam\"}]}",
                2,
                "unknown field `stream`",
            ),
            (
                "{\"steps\": [\n{\"at\": 1, \"action\": \"publish\", \"stream\": \"a/b\"}]}",
                2,
                "invalid stream name",
            ),
            ("{\"steps\": [\n{\"at\": 1,", 2, "EOF"),
            ("{\"steps\": [], \"extra\": 1}", 1, "unknown field `extra`"),
        ];
        for (json, line, needle) in cases {
            let error = Script::parse(json).unwrap_err();
            assert_eq!(error.line, line, "{json}: {error}");
            assert!(error.message.contains(needle), "{json}: {error}");
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("line {line}, column "))
            );
        }
    }

    #[test]
    fn an_action_alone_is_a_control_body() {
        assert_eq!(
            Action::parse(r#"{"action": "layers", "stream": "cam", "active": 0}"#).unwrap(),
            Action::Layers {
                stream: cam(),
                active: 0
            }
        );
        assert!(Action::parse(r#"{"action": "layers", "stream": "cam"}"#).is_err());
    }

    #[test]
    fn a_script_round_trips_through_json() {
        let json = r#"{"steps":[{"at":1.5,"action":"director_fault","fault":"server_error","requests":2}]}"#;
        let script = Script::parse(json).unwrap();
        assert_eq!(serde_json::to_string(&script).unwrap(), json);
    }
}
