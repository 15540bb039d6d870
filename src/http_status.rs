//! One table from an HTTP error status to its [`Retry`] class, for every adapter that speaks
//! HTTP (the Millicast Director, WHEP). What differs between protocols is an input, not a table.

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

#[cfg(test)]
mod tests {
    use super::*;

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
