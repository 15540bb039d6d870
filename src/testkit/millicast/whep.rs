//! WHEP on the testkit server (feature `webrtc`): `POST /api/whep/{account}/{stream}` with an SDP
//! offer answers `201 Created` with the SDP answer of a publisher peer and a `Location` to
//! `DELETE` when the viewer leaves. Errors are plain text, as Millicast's: 401 without the
//! stream's token, 404 `Stream not found` for another account, 409 `Stream not found` while
//! nobody publishes, 400 for an offer no peer can answer.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::faults::{self, WhepFault};
use super::state::Shared;
use super::wire_log::{WireEvent, follow_peer};

/// The path of WHEP resources; a resource is `{RESOURCE_PATH}/{id}`.
pub(super) const RESOURCE_PATH: &str = "/api/whep/resource";

/// The handler of `POST /api/whep/{account}/{stream}`, logged on the wire log.
pub(super) async fn offer(
    State(shared): State<Arc<Shared>>,
    Path((account, stream)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (response, resource) = answer(&shared, &account, &stream, &headers, &body);
    shared.wire.record(WireEvent::Whep {
        method: "POST".to_owned(),
        stream: Some(stream),
        resource,
        status: response.status().as_u16(),
    });
    response
}

/// The answer to a WHEP offer, and the resource it created.
fn answer(
    shared: &Arc<Shared>,
    account: &str,
    stream: &str,
    headers: &HeaderMap,
    body: &str,
) -> (Response, Option<u64>) {
    shared.media.whep_requests.fetch_add(1, Ordering::SeqCst);
    shared.changed();
    let fault = shared.take_whep_fault();
    let plain = |status: StatusCode, text: &'static str| (status, text).into_response();
    match fault {
        Some(WhepFault::Unavailable(retry_after)) => {
            let body = plain(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable");
            return (
                faults::busy(StatusCode::SERVICE_UNAVAILABLE, retry_after, body),
                None,
            );
        }
        Some(WhepFault::TooManyRequests(retry_after)) => {
            let body = plain(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            return (
                faults::busy(StatusCode::TOO_MANY_REQUESTS, retry_after, body),
                None,
            );
        }
        Some(WhepFault::Redirect(status)) => {
            return (
                faults::redirect(status, &format!("/api/whep/{account}/{stream}")),
                None,
            );
        }
        _ => {}
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if !shared.is_authorized(authorization) {
        return (
            (StatusCode::UNAUTHORIZED, "Unauthorized").into_response(),
            None,
        );
    }
    if account != shared.account {
        return (
            (StatusCode::NOT_FOUND, "Stream not found").into_response(),
            None,
        );
    }
    if !shared.is_live(stream) {
        return (
            (StatusCode::CONFLICT, "Stream not found").into_response(),
            None,
        );
    }
    let (peer, answer) = match shared.media.publisher(stream, body) {
        Ok(answered) => answered,
        Err(error) => {
            tracing::debug!(%error, "WHEP offer refused");
            let refused = (StatusCode::BAD_REQUEST, "Invalid SDP offer").into_response();
            return (refused, None);
        }
    };
    let id = shared.next_id();
    follow_peer(shared, stream, format!("whep-{id}"), &peer);
    lock(shared).insert(id, (stream.to_owned(), peer));
    shared.changed();
    tracing::debug!(%stream, resource = id, "WHEP session created");
    let created = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, format!("{RESOURCE_PATH}/{id}")),
        ],
        answer,
    )
        .into_response();
    (created, Some(id))
}

/// The handler of `DELETE /api/whep/resource/{id}`: ends the session's publisher peer.
pub(super) async fn delete(State(shared): State<Arc<Shared>>, Path(id): Path<u64>) -> Response {
    shared.media.whep_deletes.fetch_add(1, Ordering::SeqCst);
    let removed = lock(&shared).remove(&id);
    shared.changed();
    shared.wire.record(WireEvent::Whep {
        method: "DELETE".to_owned(),
        stream: removed.as_ref().map(|(stream, _)| stream.clone()),
        resource: Some(id),
        status: if removed.is_some() { 200 } else { 404 },
    });
    match removed {
        Some((stream, _peer)) => {
            tracing::debug!(%stream, resource = id, "WHEP session deleted");
            StatusCode::OK.into_response()
        }
        None => (StatusCode::NOT_FOUND, "Resource not found").into_response(),
    }
}

type Resources = std::collections::HashMap<u64, (String, crate::testkit::publisher::PublisherPeer)>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Resources> {
    shared
        .media
        .whep
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Open WHEP sessions of `stream`.
pub(super) fn sessions(shared: &Shared, stream: &str) -> usize {
    lock(shared).values().filter(|(s, _)| s == stream).count()
}
