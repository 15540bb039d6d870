//! The properties the fuzz targets check: one public function per target, taking the raw input.
//!
//! This one file is used twice: as a module of the fuzz crate (by `fuzz_targets/*.rs`) and by the
//! main crate's `tests/fuzz_corpus.rs` (`#[path]`-included), which runs every seed through the
//! same functions on stable. A panic here is a bug report, so every assertion states something
//! the code under test promises in its docs or what the protocol defines, never a guess.
//!
//! Floats are the one place where JSON does not round-trip exactly: serde_json (without its
//! `float_roundtrip` feature) may read back a printed `f64` one step off, or even out of range.
//! Round trips of free-form `data` therefore compare floats by kind only; every other value,
//! and every typed message, must come back equal.

use relive::millicast::wire::{
    Command, DirectorFailure, DirectorSuccess, Layers, ServerMessage, SignalingEvent, ViewCommand,
    ViewResponse, base64url_encode, jwt_stream_name, parse_command, parse_director_response,
    parse_server_message,
};
use serde_json::Value;

/// The longest `message` a [`DirectorFailure`] may carry: "cut to 200 characters", plus the `…`
/// that marks the cut.
const MAX_FAILURE_MESSAGE: usize = 201;

/// A JWT shorter than this is too likely to appear in a failure text by coincidence (`HTTP 400`)
/// to be worth checking for.
const MIN_CHECKED_JWT: usize = 8;

/// `signaling_message`: a server frame, if the input is UTF-8.
///
/// - `parse_server_message` never panics; its error formats.
/// - `to_text` then `parse_server_message` gives the same message back (`Response` data: floats
///   by kind; a frame with floats may also fail to read back, see the module docs).
/// - An event's `name()` is the frame's `name`; `Layers::active_count` is the number of active
///   encodings over all medias (saturating).
/// - A `Response` whose data reads as a [`ViewResponse`] survives serialize → `from_data`.
pub fn signaling_message(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let message = match parse_server_message(text) {
        Ok(message) => message,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    match &message {
        ServerMessage::Response { data, .. } => check_view_response(data),
        ServerMessage::Event(event) => check_event(text, event),
        _ => {}
    }
    let frame = message.to_text();
    match parse_server_message(&frame) {
        Ok(again) => assert!(
            same_server_message(&message, &again),
            "round trip changed the message:\n  read    {message:?}\n  wrote   {frame}\n  re-read {again:?}"
        ),
        Err(error) => assert!(
            matches!(&message, ServerMessage::Response { data, .. } if has_float(data)),
            "to_text wrote a frame that does not parse ({error}):\n  read  {message:?}\n  wrote {frame}"
        ),
    }
}

fn check_event(text: &str, event: &SignalingEvent) {
    // `name` is read from the frame (objects only: that is the wire shape).
    let frame: Option<Value> = serde_json::from_str(text).ok();
    if let Some(name) = frame
        .as_ref()
        .and_then(Value::as_object)
        .and_then(|object| object.get("name"))
        .and_then(Value::as_str)
    {
        assert_eq!(
            event.name(),
            name,
            "SignalingEvent::name() is not the frame's name"
        );
    }
    if let SignalingEvent::Layers(layers) = event {
        check_active_count(layers);
    }
}

fn check_active_count(layers: &Layers) {
    let total: usize = layers.medias.values().map(|media| media.active.len()).sum();
    let expected = u32::try_from(total).unwrap_or(u32::MAX);
    assert_eq!(
        layers.active_count(),
        expected,
        "active_count is not the number of active encodings"
    );
}

fn check_view_response(data: &Value) {
    let view = match ViewResponse::from_data(data) {
        Ok(view) => view,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let written = match serde_json::to_value(&view) {
        Ok(written) => written,
        Err(error) => panic!("a ViewResponse does not serialize: {error}"),
    };
    match ViewResponse::from_data(&written) {
        Ok(again) => assert_eq!(again, view, "ViewResponse changed in a round trip"),
        Err(error) => panic!("a serialized ViewResponse does not read back ({error}): {written}"),
    }
}

fn same_server_message(a: &ServerMessage, b: &ServerMessage) -> bool {
    match (a, b) {
        (
            ServerMessage::Response {
                trans_id: id_a,
                data: data_a,
            },
            ServerMessage::Response {
                trans_id: id_b,
                data: data_b,
            },
        ) => id_a == id_b && same_json(data_a, data_b),
        _ => a == b,
    }
}

/// `director_response`: the first two bytes are the HTTP status (big-endian), the rest the body.
///
/// - The status decides the class: 2xx success or `Unexpected`, 401/403 `Unauthorized`, 5xx
///   `Server`, `NotPublished` only for 400/404, anything else `Unexpected`; `status()` echoes it.
/// - A success has a signaling URL, which is `urls[0]` (or `wsUrl`) with `token=<jwt>` at the end.
/// - A failure's message is at most 200 characters plus `…`.
/// - The JWT (`data.jwt`, when at least 8 characters) never reaches a failure's `Display` or
///   `Debug`, nor a success's `Debug`: swapping it for a stand-in changes none of them.
/// - `jwt_stream_name` never panics, and reads the claim of any payload it is given.
pub fn director_response(input: &[u8]) {
    let [high, low, body @ ..] = input else {
        return;
    };
    let status = u16::from_be_bytes([*high, *low]);
    check_jwt_stream_name(body);
    match parse_director_response(status, body) {
        Ok(success) => check_success(status, &success),
        Err(failure) => check_failure(status, &failure),
    }
    check_jwt_stays_secret(status, body);
}

fn check_success(status: u16, success: &DirectorSuccess) {
    assert!(
        (200..=299).contains(&status),
        "HTTP {status} parsed as a success"
    );
    let Some(base) = success.urls.first().or(success.ws_url.as_ref()) else {
        panic!("a success without a signaling url: {success:?}");
    };
    let Some(url) = success.signaling_url() else {
        panic!("signaling_url() is None although {base:?} is there");
    };
    let url = url.expose();
    assert!(url.contains("token="), "signaling url without token=");
    assert!(
        url.starts_with(base.as_str()),
        "signaling url lost its base"
    );
    assert!(
        url.ends_with(&format!("token={}", success.jwt.expose())),
        "signaling url does not end with token=<jwt>"
    );
    let _ = jwt_stream_name(success.jwt.expose());
}

fn check_failure(status: u16, failure: &DirectorFailure) {
    assert_eq!(failure.status(), status, "status() is not the HTTP status");
    let _ = failure.to_string();
    let message = match failure {
        DirectorFailure::Unauthorized { message, .. } => {
            assert!(matches!(status, 401 | 403), "HTTP {status} as Unauthorized");
            message
        }
        DirectorFailure::Server { message, .. } => {
            assert!((500..=599).contains(&status), "HTTP {status} as Server");
            message
        }
        DirectorFailure::NotPublished { message, .. } => {
            assert!(matches!(status, 400 | 404), "HTTP {status} as NotPublished");
            message
        }
        DirectorFailure::Unexpected { message, .. } => {
            assert!(
                !matches!(status, 401 | 403 | 500..=599),
                "HTTP {status} as Unexpected"
            );
            message
        }
        _ => return,
    };
    let length = message.chars().count();
    assert!(
        length <= MAX_FAILURE_MESSAGE,
        "a failure message of {length} characters (at most {MAX_FAILURE_MESSAGE}): {failure:?}"
    );
}

/// Whether the JWT can leak is asked as: does anything printed change when only the JWT does?
/// The body is read as JSON and written twice, once with its `data.jwt` and once with a stand-in
/// of the same encoded length (a body's length can show in a failure). Comparing the two texts,
/// rather than searching one for the JWT, cannot fire when the JWT happens to equal other text of
/// the body or of the message template (`{"jwt":"director"}`).
fn check_jwt_stays_secret(status: u16, body: &[u8]) {
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let Some(slot) = value.get_mut("data").and_then(|data| data.get_mut("jwt")) else {
        return;
    };
    let Some(jwt) = slot.as_str().map(str::to_owned) else {
        return;
    };
    if jwt.chars().count() < MIN_CHECKED_JWT {
        return;
    }
    let stand_in = stand_in_for(&jwt);
    let with_jwt = value.to_string();
    if let Some(slot) = value.get_mut("data").and_then(|data| data.get_mut("jwt")) {
        *slot = Value::from(stand_in);
    }
    let with_stand_in = value.to_string();
    assert_eq!(
        with_jwt.len(),
        with_stand_in.len(),
        "the stand-in is not the JWT's length"
    );
    match (
        parse_director_response(status, with_jwt.as_bytes()),
        parse_director_response(status, with_stand_in.as_bytes()),
    ) {
        (Ok(real), Ok(stood_in)) => assert_eq!(
            format!("{real:?}"),
            format!("{stood_in:?}"),
            "the JWT {jwt:?} shows in a success's Debug"
        ),
        (Err(real), Err(stood_in)) => {
            let (shown, shown_stood_in) = (real.to_string(), stood_in.to_string());
            assert!(
                !shown.contains(&jwt) || shown_stood_in.contains(&jwt),
                "the JWT {jwt:?} leaked into the failure text {shown:?}"
            );
            assert_eq!(shown, shown_stood_in, "the failure text depends on the JWT");
            assert_eq!(
                format!("{real:?}"),
                format!("{stood_in:?}"),
                "the failure's Debug depends on the JWT"
            );
        }
        (real, stood_in) => {
            panic!("the JWT's value changed the outcome: {real:?} vs {stood_in:?}")
        }
    }
}

/// A string other than `jwt` whose JSON encoding has the same length as the JWT's.
fn stand_in_for(jwt: &str) -> String {
    let encoded = Value::from(jwt).to_string().len() - 2;
    let stand_in = "x".repeat(encoded);
    if stand_in == jwt {
        "y".repeat(encoded)
    } else {
        stand_in
    }
}

/// `jwt_stream_name` on the body as text, and on a JWT whose payload is the body: that payload's
/// `millicast.streamName` must come back. And a name put into a JWT comes back out of it.
fn check_jwt_stream_name(body: &[u8]) {
    let _ = jwt_stream_name(&String::from_utf8_lossy(body));
    let claim = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|payload| {
            let name = payload.get("millicast")?.get("streamName")?.as_str()?;
            Some(name.to_owned())
        });
    let jwt = format!("e30.{}.sig", base64url_encode(body));
    assert_eq!(
        jwt_stream_name(&jwt),
        claim,
        "jwt_stream_name misread a payload"
    );
    if let Some(name) = claim {
        let payload = serde_json::json!({ "millicast": { "streamName": name } }).to_string();
        let jwt = format!("e30.{}.sig", base64url_encode(payload.as_bytes()));
        assert_eq!(
            jwt_stream_name(&jwt),
            Some(name),
            "a minted claim did not come back"
        );
    }
}

/// `command`: a command frame, if the input is UTF-8.
///
/// - `parse_command` never panics; its error formats.
/// - `to_text` then `parse_command` gives the same command back (`data`: floats by kind).
/// - A `view` whose data reads as a [`ViewCommand`] survives `Command::view` → `to_text` →
///   `parse_command` exactly.
pub fn command(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let command = match parse_command(text) {
        Ok(command) => command,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let frame = command.to_text();
    match parse_command(&frame) {
        Ok(again) => assert!(
            again.trans_id == command.trans_id
                && again.name == command.name
                && same_json(&again.data, &command.data),
            "round trip changed the command:\n  read    {command:?}\n  wrote   {frame}\n  re-read {again:?}"
        ),
        Err(error) => assert!(
            has_float(&command.data),
            "to_text wrote a frame that does not parse ({error}):\n  read  {command:?}\n  wrote {frame}"
        ),
    }
    if command.name == "view" {
        check_view_command(&command);
    }
}

fn check_view_command(command: &Command) {
    let Ok(view) = serde_json::from_value::<ViewCommand>(command.data.clone()) else {
        return;
    };
    let frame = match Command::view(command.trans_id, &view) {
        Ok(frame) => frame.to_text(),
        Err(error) => panic!("Command::view failed on a ViewCommand it read: {error}"),
    };
    let again = match parse_command(&frame) {
        Ok(again) => again,
        Err(error) => panic!("a view frame does not parse ({error}): {frame}"),
    };
    assert_eq!(again.trans_id, command.trans_id, "view lost its transId");
    assert_eq!(again.name, "view", "view lost its name");
    match serde_json::from_value::<ViewCommand>(again.data) {
        Ok(again) => assert_eq!(again, view, "ViewCommand changed in a round trip"),
        Err(error) => panic!("a written ViewCommand does not read back ({error}): {frame}"),
    }
}

/// Equal JSON, except that two floats only need to both be floats (see the module docs).
/// Integers print without `.` or exponent and floats always with one, so the kind survives.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            x.is_f64() && y.is_f64()
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| same_json(x, y)))
        }
        _ => a == b,
    }
}

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(number) => number.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(object) => object.values().any(has_float),
        _ => false,
    }
}

/// `relay_frame`: a relay client frame (and, from the same bytes, a server frame), if UTF-8.
///
/// - `parse_client_frame` and `parse_server_frame` never panic; their errors format and have a
///   code.
/// - `to_text` then `parse_client_frame` gives the same frame back (a frame whose metadata
///   holds floats may read back a float one step off, see the module docs).
/// - A `hello` token never shows in the frame's `Debug`: swapping it for another of the same
///   length leaves the `Debug` text unchanged.
/// - The checks of a frame `parse_client_frame` accepts (stream names, details bounds) hold
///   for what `to_text` wrote: it re-parses.
/// - The same for a server frame: `to_text` then `parse_server_frame` gives it back.
/// - An error repeats at most `MAX_ECHO` characters of the client's text, and at most half of
///   it: an unknown `type` is cut to such a prefix, never the whole value.
/// - The input, read as lines, is also a sequence of frames and events for two sans-IO relay
///   sessions and a node (`relive::relay::fuzzing::session_sequence`): no panic, and every
///   limit holds after every input (see that function's docs).
#[cfg(feature = "relay")]
pub fn relay_frame(input: &[u8]) {
    use relive::Secret;
    use relive::relay::protocol::{
        ClientFrame, MAX_ECHO, ProtocolError, parse_client_frame, parse_server_frame,
    };

    relive::relay::fuzzing::session_sequence(input);
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if let Ok(frame) = parse_server_frame(text) {
        let written = frame.to_text();
        let floats = serde_json::from_str::<Value>(&written).map_or(true, |v| has_float(&v));
        match parse_server_frame(&written) {
            Ok(again) => assert!(
                again == frame || floats,
                "server frame round trip changed it:\n  read    {frame:?}\n  wrote   {written}\n  re-read {again:?}"
            ),
            Err(error) => assert!(
                floats,
                "to_text wrote a server frame that does not parse ({error}):\n  read  {frame:?}\n  wrote {written}"
            ),
        }
    }
    let frame = match parse_client_frame(text) {
        Ok(frame) => frame,
        Err(error) => {
            let message = error.to_string();
            let _ = error.code();
            if let ProtocolError::UnknownType(echo) = &error {
                let kind = serde_json::from_str::<Value>(text)
                    .ok()
                    .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned));
                let echoed = echo.chars().count();
                assert!(echoed <= MAX_ECHO, "echo of {echoed} chars");
                if let Some(kind) = kind {
                    assert!(
                        kind.starts_with(echo.as_str()),
                        "the echo is not the type's start"
                    );
                    assert!(
                        echoed <= kind.chars().count() / 2,
                        "more than half of the type echoed"
                    );
                    if !kind.is_empty() {
                        assert!(
                            !message.contains(&format!("{kind:?}")),
                            "the whole type echoed"
                        );
                    }
                }
            }
            // Every message is short: a fixed text plus at most MAX_ECHO characters, each
            // escaped in at most 10 bytes (`\u{10ffff}`).
            assert!(
                message.len() <= 120 + 10 * MAX_ECHO,
                "a {}-byte error",
                message.len()
            );
            return;
        }
    };
    if let ClientFrame::Hello {
        token: Some(token), ..
    } = &frame
    {
        let mut other = frame.clone();
        let stand_in = "x".repeat(token.expose().len());
        let stand_in = if stand_in == token.expose() {
            "y".repeat(stand_in.len())
        } else {
            stand_in
        };
        if let ClientFrame::Hello { token, .. } = &mut other {
            *token = Some(Secret::new(stand_in));
        }
        assert_eq!(
            format!("{frame:?}"),
            format!("{other:?}"),
            "the hello token shows in Debug"
        );
    }
    let written = frame.to_text();
    let floats = serde_json::from_str::<Value>(&written).map_or(true, |v| has_float(&v));
    match parse_client_frame(&written) {
        Ok(again) => assert!(
            again == frame || floats,
            "round trip changed the frame:\n  read    {frame:?}\n  wrote   {written}\n  re-read {again:?}"
        ),
        Err(error) => assert!(
            floats,
            "to_text wrote a frame that does not parse ({error}):\n  read  {frame:?}\n  wrote {written}"
        ),
    }
}
