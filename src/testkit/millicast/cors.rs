//! CORS, so that a page served from another origin (a player under test on its own dev server)
//! can call the Director, WHEP and the control API: preflights are answered for every path, and
//! every answer allows any origin and exposes the headers a WHEP client reads.
//!
//! No credentials are involved (a subscribe token travels in `Authorization`, which a preflight
//! allows when asked), so `*` is a correct origin; the requested headers are echoed because
//! `Authorization` is never covered by a wildcard.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Methods the server answers.
const METHODS: &str = "GET, POST, PATCH, DELETE, OPTIONS";
/// Headers a browser script may read: WHEP's resource, entity tag and links, and back-off hints.
const EXPOSED: &str = "Location, ETag, Link, Retry-After, Content-Type, Accept-Patch";
/// Headers allowed when a preflight asks for none in particular.
const DEFAULT_ALLOWED: &str = "Authorization, Content-Type, If-Match";
/// How long a browser may cache a preflight, in seconds.
const MAX_AGE: &str = "600";

/// The headers of a preflight answer to a request asking for `requested` headers.
fn preflight_headers(requested: Option<&HeaderValue>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(METHODS),
    );
    let allowed = requested
        .filter(|value| !value.is_empty())
        .cloned()
        .unwrap_or(HeaderValue::from_static(DEFAULT_ALLOWED));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed);
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE),
    );
    headers
}

/// Adds the headers every answer carries.
fn add_common(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED),
    );
}

/// The middleware: answers preflights itself, adds the CORS headers to every other answer.
pub(super) async fn layer(request: Request<Body>, next: Next) -> Response {
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let requested = request
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS);
        (StatusCode::NO_CONTENT, preflight_headers(requested)).into_response()
    } else {
        next.run(request).await
    };
    add_common(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preflight_echoes_the_requested_headers_or_allows_the_usual_ones() {
        let asked = HeaderValue::from_static("authorization, content-type");
        let headers = preflight_headers(Some(&asked));
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_HEADERS], asked);
        assert!(
            headers[header::ACCESS_CONTROL_ALLOW_METHODS]
                .to_str()
                .unwrap()
                .contains("PATCH")
        );
        let headers = preflight_headers(None);
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_HEADERS],
            DEFAULT_ALLOWED
        );
    }

    #[test]
    fn every_answer_allows_any_origin_and_exposes_the_whep_headers() {
        let mut headers = HeaderMap::new();
        add_common(&mut headers);
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let exposed = headers[header::ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .unwrap();
        for name in ["Location", "ETag", "Link", "Retry-After"] {
            assert!(exposed.contains(name), "{name}");
        }
    }
}
