//! The faults that answer with a wait or a move: `Retry-After` (in seconds or as an HTTP-date) on
//! a 503 or 429, and 307/308 redirects, shared by the Director and WHEP endpoints.

use std::time::{Duration, SystemTime};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// How a fault writes its `Retry-After` header (RFC 9110 §10.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryAfter {
    /// `Retry-After: <n>`, in seconds.
    Seconds(u32),
    /// `Retry-After: <HTTP-date>`, `n` seconds after the answer's `Date` header (both written
    /// from one reading of the server's clock).
    HttpDate(u32),
}

/// How the WHEP endpoint misbehaves, for
/// [`MillicastServer::set_whep_fault`](super::MillicastServer::set_whep_fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WhepFault {
    /// A `POST` is answered `503 Service Unavailable` with this `Retry-After`.
    Unavailable(RetryAfter),
    /// A `POST` is answered `429 Too Many Requests` with this `Retry-After`.
    TooManyRequests(RetryAfter),
    /// A `POST` is answered with this redirect status (307 or 308) to the same endpoint; the
    /// request that follows it is answered normally when the fault was set for one request.
    Redirect(u16),
}

/// An answer with `status` and the `Retry-After` header `retry_after` asks for.
pub(super) fn busy(status: StatusCode, retry_after: RetryAfter, body: Response) -> Response {
    let mut response = body;
    *response.status_mut() = status;
    let headers = response.headers_mut();
    match retry_after {
        RetryAfter::Seconds(n) => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(n));
        }
        RetryAfter::HttpDate(n) => {
            let now = wall_clock();
            let until = now + Duration::from_secs(u64::from(n));
            for (name, at) in [(header::DATE, now), (header::RETRY_AFTER, until)] {
                if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(at)) {
                    headers.insert(name, value);
                }
            }
        }
    }
    response
}

/// A redirect with `status` (307 or 308; anything else counts as 307) to `location`.
pub(super) fn redirect(status: u16, location: &str) -> Response {
    let status = match status {
        308 => StatusCode::PERMANENT_REDIRECT,
        _ => StatusCode::TEMPORARY_REDIRECT,
    };
    let mut response = status.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The server's wall clock: an HTTP-date is wall-clock time by definition.
fn wall_clock() -> SystemTime {
    #[allow(clippy::disallowed_methods)]
    SystemTime::now()
}

/// Takes the fault for one request from `slot`, counting down a limited one.
pub(super) fn take<F: Copy>(slot: &mut Option<(F, Option<u32>)>) -> Option<F> {
    let (fault, remaining) = slot.as_mut()?;
    let fault = *fault;
    match remaining {
        Some(0) => {
            *slot = None;
            return None;
        }
        Some(n) => {
            *n -= 1;
            if *n == 0 {
                *slot = None;
            }
        }
        None => {}
    }
    Some(fault)
}
