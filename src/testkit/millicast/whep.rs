//! WHEP on the testkit server (feature `webrtc`): `POST /api/whep/{account}/{stream}` with an SDP
//! offer answers `201 Created` with the SDP answer of a publisher peer and a `Location` to
//! `DELETE` when the viewer leaves. Errors are plain text, as Millicast's: 401 without the
//! stream's token, 404 `Stream not found` for another account, 409 `Stream not found` while
//! nobody publishes, 400 for an offer no peer can answer.
//!
//! `PATCH {RESOURCE_PATH}/{id}` restarts ICE (RFC 9725 §4.3): an
//! `application/trickle-ice-sdpfrag` body with the viewer's new credentials and candidates and
//! `If-Match` (`*`, or the resource's current `ETag`) is answered `200` with the publisher
//! peer's new fragment and a new `ETag`, on the same DTLS session. 415 for another media type,
//! 428 without `If-Match`, 412 for a stale tag, 404 for an unknown resource, 400 for a fragment
//! that cannot be used; [`MillicastServer::refuse_whep_patch`](super::MillicastServer::refuse_whep_patch)
//! makes it answer a fixed status (405 or 501: no ICE restart here).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::faults::{self, WhepFault};
use super::state::Shared;
use super::wire_log::{WireEvent, follow_peer};
use crate::testkit::publisher::PublisherPeer;
use crate::webrtc::sdpfrag::{self, IceFragment};

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
    lock(shared).insert(
        id,
        Resource {
            stream: stream.to_owned(),
            peer,
            restarts: 0,
        },
    );
    shared.changed();
    tracing::debug!(%stream, resource = id, "WHEP session created");
    let created = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, format!("{RESOURCE_PATH}/{id}")),
            (header::ETAG, etag(id, 0)),
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
        stream: removed.as_ref().map(|r| r.stream.clone()),
        resource: Some(id),
        status: if removed.is_some() { 200 } else { 404 },
    });
    match removed {
        Some(Resource { stream, .. }) => {
            tracing::debug!(%stream, resource = id, "WHEP session deleted");
            StatusCode::OK.into_response()
        }
        None => (StatusCode::NOT_FOUND, "Resource not found").into_response(),
    }
}

/// The handler of `PATCH /api/whep/resource/{id}`: an ICE restart, logged on the wire log.
pub(super) async fn patch(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: String,
) -> Response {
    shared.media.whep_patches.fetch_add(1, Ordering::SeqCst);
    let (stream, response) = restart(&shared, id, &headers, body).await;
    shared.changed();
    shared.wire.record(WireEvent::Whep {
        method: "PATCH".to_owned(),
        stream,
        resource: Some(id),
        status: response.status().as_u16(),
    });
    response
}

/// The answer to an ICE restart of resource `id`, and the resource's stream.
async fn restart(
    shared: &Arc<Shared>,
    id: u64,
    headers: &HeaderMap,
    body: String,
) -> (Option<String>, Response) {
    let plain = |status: StatusCode, text: &'static str| (status, text).into_response();
    let stream = lock(shared).get(&id).map(|r| r.stream.clone());
    if let Some(status) = shared.media.patch_refusal() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::METHOD_NOT_ALLOWED);
        return (stream, plain(status, "ICE restart not supported"));
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if !shared.is_authorized(authorization) {
        return (stream, plain(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::trim);
    if media_type != Some(sdpfrag::CONTENT_TYPE) {
        return (
            stream,
            plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type"),
        );
    }
    let Some(if_match) = headers
        .get(header::IF_MATCH)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
    else {
        return (
            stream,
            plain(StatusCode::PRECONDITION_REQUIRED, "If-Match required"),
        );
    };
    if body.len() > sdpfrag::MAX_FRAGMENT {
        return (
            stream,
            plain(StatusCode::PAYLOAD_TOO_LARGE, "Fragment too large"),
        );
    }
    let fragment = match IceFragment::parse(&body) {
        Ok(fragment) => fragment,
        Err(error) => {
            tracing::debug!(%error, "WHEP ICE restart refused");
            return (
                stream,
                plain(StatusCode::BAD_REQUEST, "Invalid ICE fragment"),
            );
        }
    };
    // The peer's restart is awaited without the lock held.
    let restarting = {
        let resources = lock(shared);
        let Some(resource) = resources.get(&id) else {
            return (stream, plain(StatusCode::NOT_FOUND, "Resource not found"));
        };
        if if_match.trim() != "*" && if_match.trim() != etag(id, resource.restarts) {
            return (
                stream,
                plain(StatusCode::PRECONDITION_FAILED, "Precondition failed"),
            );
        }
        resource.peer.restart(fragment)
    };
    let ours = match restarting.await {
        Ok(ours) => ours,
        Err(error) => {
            tracing::debug!(%error, "WHEP ICE restart failed");
            return (
                stream,
                plain(StatusCode::BAD_REQUEST, "Invalid ICE fragment"),
            );
        }
    };
    let etag = {
        let mut resources = lock(shared);
        let Some(resource) = resources.get_mut(&id) else {
            return (stream, plain(StatusCode::NOT_FOUND, "Resource not found"));
        };
        resource.restarts += 1;
        etag(id, resource.restarts)
    };
    tracing::debug!(resource = id, "WHEP ICE restarted");
    let mids = sdpfrag::mids(&body);
    let mids = if mids.is_empty() {
        vec!["0".to_owned()]
    } else {
        mids
    };
    let answered = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, sdpfrag::CONTENT_TYPE.to_owned()),
            (header::ETAG, etag),
        ],
        ours.to_body(&mids),
    )
        .into_response();
    (stream, answered)
}

/// The entity tag of resource `id` after `restarts` ICE restarts.
fn etag(id: u64, restarts: u64) -> String {
    format!("\"{id}-{restarts}\"")
}

/// A WHEP session the server created.
pub(super) struct Resource {
    stream: String,
    peer: PublisherPeer,
    /// ICE restarts so far: the entity tag of its ICE session is [`etag`] of them.
    restarts: u64,
}

type Resources = std::collections::HashMap<u64, Resource>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Resources> {
    shared
        .media
        .whep
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Open WHEP sessions of `stream`.
pub(super) fn sessions(shared: &Shared, stream: &str) -> usize {
    lock(shared).values().filter(|r| r.stream == stream).count()
}

/// Cuts the UDP path of every WHEP session of `stream`, until each restarts ICE; how many.
pub(super) fn cut_paths(shared: &Shared, stream: &str) -> usize {
    lock(shared)
        .values()
        .filter(|r| r.stream == stream)
        .map(|r| r.peer.cut_path())
        .count()
}
