//! One table from an HTTP error status to its [`Retry`] class, for every adapter that speaks
//! HTTP (the Millicast Director, WHEP). What differs between protocols is an input, not a table.

use std::time::{Duration, SystemTime};

use crate::source::Retry;

/// What a protocol knows of an HTTP answer beyond its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StatusContext {
    /// The answer says nobody publishes the stream: the Director's 400/404 whose message says
    /// "not being published" / "not found", any WHEP 404/409.
    pub(crate) not_published: bool,
    /// The class of every status the table does not name: the Director retries them
    /// (`Later`: an odd answer from a proxy may pass), a WHEP server that refuses our offer
    /// will refuse it again (`Never`).
    pub(crate) otherwise: Retry,
}

/// How to retry after an HTTP answer with `status` that did not give a session.
///
/// | answer | class |
/// |---|---|
/// | not published (`context.not_published`) | `WaitForPublisher` |
/// | 401, 403 | `Never`: a source with a token refresher has tried it before the error surfaces |
/// | 408, 429, 5xx | `Later` |
/// | anything else | `context.otherwise` |
pub(crate) fn retry_for_status(status: u16, context: StatusContext) -> Retry {
    if context.not_published {
        return Retry::WaitForPublisher;
    }
    match status {
        401 | 403 => Retry::Never,
        408 | 429 | 500..=599 => Retry::Later,
        _ => context.otherwise,
    }
}

/// The wait a `Retry-After` header asks for (RFC 9110 §10.2.3), on the answers it means
/// something on: 503 and 429. `value` is the header; `date` the answer's `Date` header, the
/// server's own clock, against which an HTTP-date is read (so that a skewed client clock does not
/// matter); `now` is the client's clock, used only when the server sent no usable `Date`.
///
/// `delay-seconds` (one or more digits) is that many seconds, saturating; an HTTP-date is the time
/// from `date` (or `now`) to it, zero if it has passed. Anything else is `None`: a malformed header
/// is ignored, never an error. The cap is the machine's (`retry_after_max`), not this function's.
pub(crate) fn retry_after(
    status: u16,
    value: Option<&str>,
    date: Option<&str>,
    now: impl FnOnce() -> SystemTime,
) -> Option<Duration> {
    if !matches!(status, 429 | 503) {
        return None;
    }
    let value = value?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Longer than u64 is still "very long": the policy caps it.
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds));
    }
    let until = httpdate::parse_http_date(value).ok()?;
    let base = date
        .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
        .unwrap_or_else(now);
    Some(until.duration_since(base).unwrap_or(Duration::ZERO))
}

/// The client's wall clock, for an HTTP-date `Retry-After` on an answer without a `Date` header:
/// the one place this crate reads it (an HTTP-date is wall-clock time by definition).
pub(crate) fn wall_clock() -> SystemTime {
    #[allow(clippy::disallowed_methods)]
    SystemTime::now()
}

/// [`retry_after`] of a reqwest answer: its status, `Retry-After` and `Date` headers.
pub(crate) fn retry_after_of(response: &reqwest::Response) -> Option<Duration> {
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
    };
    retry_after(
        response.status().as_u16(),
        header(reqwest::header::RETRY_AFTER),
        header(reqwest::header::DATE),
        wall_clock,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never() -> SystemTime {
        panic!("the client's clock was read although the server sent a Date")
    }

    #[test]
    fn retry_after_in_seconds() {
        let d = |v: &str| retry_after(503, Some(v), None, never);
        assert_eq!(d("4"), Some(Duration::from_secs(4)));
        assert_eq!(d(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(d("0"), Some(Duration::ZERO));
        assert_eq!(
            d("99999999999999999999999999"),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in ["", "-1", "1.5", "4s", "soon", "\u{0}"] {
            assert_eq!(d(bad), None, "{bad:?}");
        }
        assert_eq!(retry_after(503, None, None, never), None);
    }

    #[test]
    fn retry_after_only_on_503_and_429() {
        assert_eq!(
            retry_after(429, Some("2"), None, never),
            Some(Duration::from_secs(2))
        );
        for status in [200, 301, 404, 500, 502] {
            assert_eq!(retry_after(status, Some("2"), None, never), None);
        }
    }

    #[test]
    fn retry_after_as_an_http_date_is_read_against_the_servers_date() {
        let date = "Wed, 02 Dec 2026 20:00:00 GMT";
        let later = "Wed, 02 Dec 2026 20:00:07 GMT";
        assert_eq!(
            retry_after(503, Some(later), Some(date), never),
            Some(Duration::from_secs(7))
        );
        // Past dates mean "now".
        assert_eq!(
            retry_after(503, Some(date), Some(later), never),
            Some(Duration::ZERO)
        );
        // No Date header: the client's clock.
        let now = || httpdate::parse_http_date(date).unwrap();
        assert_eq!(
            retry_after(503, Some(later), None, now),
            Some(Duration::from_secs(7))
        );
        // A malformed Date header falls back to the client's clock too.
        assert_eq!(
            retry_after(503, Some(later), Some("yesterday"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(503, Some("Wed, 32 Dec 2026"), Some(date), never),
            None
        );
    }

    fn context(otherwise: Retry) -> StatusContext {
        StatusContext {
            not_published: false,
            otherwise,
        }
    }

    #[test]
    fn the_table() {
        let cases = [
            (401, Retry::Never),
            (403, Retry::Never),
            (408, Retry::Later),
            (429, Retry::Later),
            (500, Retry::Later),
            (502, Retry::Later),
            (599, Retry::Later),
        ];
        for otherwise in [Retry::Later, Retry::Never] {
            for (status, class) in cases {
                assert_eq!(
                    retry_for_status(status, context(otherwise)),
                    class,
                    "{status}"
                );
            }
        }
    }

    #[test]
    fn unnamed_statuses_take_the_protocols_class() {
        for status in [200, 302, 400, 404, 409, 415, 600] {
            assert_eq!(
                retry_for_status(status, context(Retry::Later)),
                Retry::Later
            );
            assert_eq!(
                retry_for_status(status, context(Retry::Never)),
                Retry::Never
            );
        }
    }

    #[test]
    fn not_published_waits_whatever_the_status() {
        let waiting = StatusContext {
            not_published: true,
            ..context(Retry::Never)
        };
        for status in [400, 404, 409, 500] {
            assert_eq!(retry_for_status(status, waiting), Retry::WaitForPublisher);
        }
    }
}
