//! `POST /api/director/subscribe`: checks the token and the stream, mints a JWT and points the
//! viewer at the signaling socket on the same host it came through — or plays a fault.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::state::Shared;
use super::wire_log::WireEvent;
use super::{DirectorFault, stopped};
use super::{faults, frames};
use crate::Secret;
use crate::millicast::wire::{DirectorSuccess, SubscribeRequest};

/// The handler of `POST /api/director/subscribe`: the answer, logged on the wire log.
pub(super) async fn subscribe(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = respond(&shared, &headers, &body).await;
    if shared.wire.is_on() {
        let stream = serde_json::from_slice::<SubscribeRequest>(&body)
            .ok()
            .map(|request| request.stream_name);
        let status = response.status().as_u16();
        shared.wire.record(WireEvent::Director { stream, status });
    }
    response
}

/// The answer to a subscribe request: a fault's, or a healthy Director's.
async fn respond(shared: &Arc<Shared>, headers: &HeaderMap, body: &[u8]) -> Response {
    // Subscribe before taking the fault so that a release in between is not missed.
    let mut release = shared.hang_release.subscribe();
    shared.count_director_request();
    let fault = shared.take_fault();
    if fault == Some(DirectorFault::Hang) {
        tracing::debug!("director request hangs");
        let mut shutdown = shared.shutdown.subscribe();
        tokio::select! {
            _ = release.changed() => {}
            _ = stopped(&mut shutdown) => {}
        }
    } else if let Some(response) = fault.and_then(fault_response) {
        return response;
    }
    answer(shared, headers, body)
}

/// The answer of a healthy Director.
fn answer(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<SubscribeRequest>(body) else {
        return error(StatusCode::BAD_REQUEST, "Invalid request body");
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if !shared.is_authorized(authorization) {
        return fail(StatusCode::UNAUTHORIZED, "Unauthorized: Invalid token");
    }
    if request.stream_account_id != shared.account {
        return fail(StatusCode::BAD_REQUEST, "stream not found");
    }
    if !shared.is_live(&request.stream_name) {
        return fail(StatusCode::BAD_REQUEST, "stream not being published");
    }
    let id = shared.next_id();
    let random = [0, 1, 2, 3].map(|k| shared.random(id * 4 + k));
    let jwt = frames::mint_jwt(
        &shared.account,
        &request.stream_name,
        &id.to_string(),
        random,
    );
    shared.issue_token(&request.stream_name, jwt.clone());
    let host = request_host(headers).unwrap_or_else(|| shared.addr.to_string());
    tracing::debug!(stream = %request.stream_name, %host, "director issued a viewer token");
    let data = DirectorSuccess {
        urls: vec![format!("ws://{host}/ws/v2/sub/{id}")],
        jwt: Secret::new(jwt),
        ice_servers: Vec::new(),
        stream_account_id: shared.account.clone(),
        ws_url: None,
    };
    #[derive(Serialize)]
    struct Success {
        status: &'static str,
        data: DirectorSuccess,
    }
    let success = Success {
        status: "success",
        data,
    };
    (StatusCode::OK, axum::Json(success)).into_response()
}

/// The `Host` the client used, so that a client behind a proxy stays behind it. Only plain
/// `host[:port]` values are echoed into the URL.
fn request_host(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let plain = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    plain.then(|| host.to_owned())
}

/// The answer a fault gives at once; `None` for [`DirectorFault::Hang`], which the caller plays.
fn fault_response(fault: DirectorFault) -> Option<Response> {
    tracing::debug!(?fault, "director plays a fault");
    let response = match fault {
        DirectorFault::NotPublished => fail(StatusCode::BAD_REQUEST, "stream not being published"),
        DirectorFault::Unauthorized => {
            fail(StatusCode::UNAUTHORIZED, "Unauthorized: Invalid token")
        }
        DirectorFault::ServerError => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        }
        DirectorFault::Html => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><head><title>502 Bad Gateway</title></head>\
             <body><center><h1>502 Bad Gateway</h1></center></body></html>",
        )
            .into_response(),
        DirectorFault::Empty => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        DirectorFault::Unavailable(retry_after) => faults::busy(
            StatusCode::SERVICE_UNAVAILABLE,
            retry_after,
            error(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
        ),
        DirectorFault::TooManyRequests(retry_after) => faults::busy(
            StatusCode::TOO_MANY_REQUESTS,
            retry_after,
            error(StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
        ),
        DirectorFault::Redirect(status) => faults::redirect(status, "/api/director/subscribe"),
        DirectorFault::Hang => return None,
    };
    Some(response)
}

/// `{"status":"fail","data":{"message":...}}`
fn fail(status: StatusCode, message: &str) -> Response {
    let body = json!({"status": "fail", "data": {"message": message}});
    (status, axum::Json(body)).into_response()
}

/// `{"status":"error","message":...,"code":...}`
fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({"status": "error", "message": message, "code": status.as_u16()});
    (status, axum::Json(body)).into_response()
}
