//! The Director call: one `POST /api/director/subscribe` per attempt, giving a
//! fresh JWT and the signaling URL.

use crate::Secret;
use crate::millicast::error::MillicastError;
use crate::millicast::wire::{DirectorSuccess, SubscribeRequest, parse_director_response};

/// The largest Director body read; a real answer is a few hundred bytes.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// Calls the Director's subscribe endpoint.
pub(crate) async fn subscribe(
    http: &reqwest::Client,
    director: &str,
    request: &SubscribeRequest,
    token: Option<&Secret>,
) -> Result<DirectorSuccess, MillicastError> {
    let url = format!("{}/api/director/subscribe", director.trim_end_matches('/'));
    let mut call = http.post(url).json(request);
    if let Some(token) = token {
        // `bearer_auth` marks the header sensitive: it stays out of reqwest's Debug.
        call = call.bearer_auth(token.expose());
    }
    let mut response = call.send().await?;
    let status = response.status().as_u16();
    let retry_after = crate::http_status::retry_after_of(&response);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(MillicastError::DirectorTooLarge(MAX_BODY));
        }
        body.extend_from_slice(&chunk);
    }
    match (parse_director_response(status, &body), retry_after) {
        (Ok(success), _) => Ok(success),
        (Err(failure), Some(retry_after)) => Err(MillicastError::DirectorBusy {
            failure,
            retry_after,
        }),
        (Err(failure), None) => Err(failure.into()),
    }
}
