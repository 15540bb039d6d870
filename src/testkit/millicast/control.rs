//! The control API (with [`MillicastServerBuilder::control_api`](super::MillicastServerBuilder::control_api)):
//! `POST /control/{action}` with the action's fields as a JSON object (or no body for an action
//! without fields) plays the same [`Action`] a fault script step does, at once.
//!
//! `200 {"ok":true,"action":{...}}` when done; `400 {"error":"..."}` for an unknown action, a
//! missing or wrong field, or a body that is not a JSON object; bodies over 64 KiB are refused
//! with 413 before they are read.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize as _;
use serde_json::{Map, Value, json};

use super::MillicastServer;
use super::state::Shared;
use crate::testkit::script::{Action, ScriptError};

/// The largest control body read.
pub(super) const MAX_BODY: usize = 64 * 1024;

/// The handler of `POST /control/{action}`.
pub(super) async fn action(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    match read(&name, &body) {
        Ok(action) => {
            action.apply(&MillicastServer::borrowed(shared));
            (
                StatusCode::OK,
                axum::Json(json!({"ok": true, "action": action})),
            )
                .into_response()
        }
        Err(error) => {
            tracing::debug!(%error, "control request refused");
            let body = json!({"error": error.to_string()});
            (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
        }
    }
}

/// The action a request names: the path's name with the body's fields.
fn read(name: &str, body: &[u8]) -> Result<Action, ScriptError> {
    let mut fields = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(body)? {
            Value::Object(fields) => fields,
            _ => {
                return Err(ScriptError {
                    line: 1,
                    column: 1,
                    message: "the body must be a JSON object of the action's fields".to_owned(),
                });
            }
        }
    };
    fields.insert("action".to_owned(), Value::from(name));
    Ok(Action::deserialize(Value::Object(fields))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::script::StreamName;

    #[test]
    fn the_path_names_the_action_and_the_body_gives_its_fields() {
        assert_eq!(read("cut_sockets", b"").unwrap(), Action::CutSockets {});
        assert_eq!(
            read("freeze", br#"{"stream":"cam"}"#).unwrap(),
            Action::Freeze {
                stream: StreamName::new("cam").unwrap()
            }
        );
        let error = read("freeze", b"").unwrap_err();
        assert!(error.message.contains("missing field `stream`"), "{error}");
        let error = read("melt", b"{}").unwrap_err();
        assert!(error.message.contains("unknown variant `melt`"), "{error}");
        assert!(read("freeze", b"[1]").is_err());
        assert!(read("freeze", b"{\"stream\":").is_err());
    }
}
