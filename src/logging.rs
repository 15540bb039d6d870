//! Keeping tokens out of the logs of an application that uses relive.
//!
//! relive's own logs, `Debug` output and errors never hold a token, a JWT or a URL that
//! carries one: secrets are `Secret`s (shown as `***`), and
//! URLs and HTTP responses are left out of error text. Its dependencies are another matter.
//! An application that installs a standard subscriber — tracing-subscriber's `init()`, whose
//! default `tracing-log` feature forwards the `log` crate's records — and turns everything up
//! to TRACE also gets these TRACE records of `tungstenite` (measured in relive's secrets
//! tests, with everything at TRACE):
//!
//! | target | record | carries |
//! |---|---|---|
//! | `tungstenite::handshake::client` | `Request: "GET /ws/v2/sub/1?token=eyJ…"` | the Millicast signaling JWT |
//! | `tungstenite::protocol` | `Sending frame: …`, `Received message {…}` | a relay client's `hello` token, a relayed Director JWT, SDP with ICE passwords |
//! | `tungstenite::protocol::frame` | `writing frame` / `received frame` (payload in hex) | the same, hex-encoded |
//!
//! Both sides log them: relive's clients and the relay server's sockets. Nothing else
//! carries a secret at any level: tungstenite's DEBUG records (`Client handshake done.`,
//! `Received close frame`), `tokio_tungstenite` (file:line polling traces), `reqwest`,
//! `hyper_util` (pool keys, addresses), `str0m` and `axum`; `hyper` and `rustls` log nothing
//! in this build (no `tracing`/`log` features), and no record anywhere holds an
//! `authorization: Bearer …` header. [`QUIET_DEPENDENCIES`] therefore holds
//! tungstenite at DEBUG and leaves everything else as the application set it.
//!
//! In an application, with tracing-subscriber and its `env-filter` feature:
//!
//! ```
//! use tracing_subscriber::EnvFilter;
//!
//! // RUST_LOG=trace, say, without tungstenite's frames and handshake request:
//! let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
//! tracing_subscriber::fmt()
//!     .with_env_filter(EnvFilter::new(relive::logging::secret_safe_filter(&filter)))
//!     .init();
//! // or, for a fixed filter, the directive line itself:
//! let _fixed = EnvFilter::new("trace,tungstenite=debug");
//! ```
//!
//! `relive-relay` and the `watch` example do exactly this with `RUST_LOG`, so `RUST_LOG=trace`
//! does not bring the frames back. To see them anyway — on a test machine, with throwaway
//! tokens — name a module of tungstenite: `RUST_LOG=trace,tungstenite::protocol=trace`. A
//! directive for a longer target is more specific and wins over `tungstenite=debug`; so does
//! a span directive (`[viewer]=trace` enables every target inside the span), which is the
//! one form [`secret_safe_filter`] cannot cap.

/// `EnvFilter` directives that keep the dependency records that carry secrets (tungstenite's
/// TRACE records: the signaling URL with its JWT, every WebSocket frame) out of the logs,
/// leaving every other record of every crate as the rest of the filter says.
///
/// Append it last to a filter that enables TRACE: a directive for the same target given
/// earlier is replaced. Appended to a quieter filter (`info`) it would *raise* tungstenite to
/// DEBUG; [`secret_safe_filter`] appends it only where it lowers something.
///
/// ```
/// let filter = format!("trace,{}", relive::logging::QUIET_DEPENDENCIES);
/// assert_eq!(filter, "trace,tungstenite=debug");
/// assert_eq!(relive::logging::secret_safe_filter("trace"), filter);
/// ```
pub const QUIET_DEPENDENCIES: &str = "tungstenite=debug";

/// The targets of [`QUIET_DEPENDENCIES`] and the most verbose level that is safe for each.
const CAPS: &[(&str, Level)] = &[("tungstenite", Level::Debug)];

/// An `EnvFilter` directive string (`RUST_LOG` syntax) with [`QUIET_DEPENDENCIES`] applied:
/// each target that carries secrets is capped at its safe level, and never raised.
///
/// The filter comes back unchanged when it already keeps those records out (`info`,
/// `relive=trace`, `warn,tungstenite=info`); otherwise the cap is appended (`trace` →
/// `trace,tungstenite=debug`, `tungstenite=trace` → `tungstenite=trace,tungstenite=debug`,
/// in which the last directive wins). A directive for a module inside a capped crate
/// (`tungstenite::protocol=trace`) is kept: it is the explicit way to see those records.
/// Span directives (`[span]=trace`) are not capped, see the [module docs](self).
///
/// ```
/// use relive::logging::secret_safe_filter;
///
/// assert_eq!(secret_safe_filter("trace"), "trace,tungstenite=debug");
/// assert_eq!(secret_safe_filter("info,relive=trace"), "info,relive=trace");
/// assert_eq!(secret_safe_filter(""), "");
/// ```
pub fn secret_safe_filter(filter: &str) -> String {
    let mut out = filter.to_owned();
    for &(target, cap) in CAPS {
        if effective_level(filter, target) > cap {
            if !out.trim().is_empty() && !out.trim_end().ends_with(',') {
                out.push(',');
            }
            out.push_str(target);
            out.push('=');
            out.push_str(cap.name());
        }
    }
    out
}

/// A level of `EnvFilter`, ordered from quietest to most verbose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    fn parse(text: &str) -> Option<Level> {
        let levels = [
            ("off", Level::Off),
            ("error", Level::Error),
            ("warn", Level::Warn),
            ("info", Level::Info),
            ("debug", Level::Debug),
            ("trace", Level::Trace),
        ];
        levels
            .iter()
            .enumerate()
            .find_map(|(number, &(name, level))| {
                (text.eq_ignore_ascii_case(name) || text == number.to_string()).then_some(level)
            })
    }

    fn name(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}

/// The level `filter` gives the crate `target` through its static directives, as
/// `EnvFilter` picks it: the longest directive target that is a prefix of `target` (a bare
/// level has the empty target), the last of equals; `Off` if none matches.
fn effective_level(filter: &str, target: &str) -> Level {
    let mut best: Option<(usize, Level)> = None;
    for directive in filter.split(',').map(str::trim) {
        if directive.is_empty() || directive.contains('[') {
            continue; // span and field directives: dynamic, not capped
        }
        let (name, level) = match directive.split_once('=') {
            Some((name, level)) => match Level::parse(level.trim()) {
                Some(level) => (name.trim(), level),
                None => continue, // invalid: EnvFilter refuses or ignores it
            },
            None => match Level::parse(directive) {
                Some(level) => ("", level),
                None => (directive, Level::Trace), // a bare target enables all its levels
            },
        };
        if target.starts_with(name) && best.is_none_or(|(len, _)| name.len() >= len) {
            best = Some((name.len(), level));
        }
    }
    best.map_or(Level::Off, |(_, level)| level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_without_raising() {
        let cases = [
            ("trace", "trace,tungstenite=debug"),
            ("TRACE", "TRACE,tungstenite=debug"),
            ("5", "5,tungstenite=debug"),
            ("debug", "debug"),
            ("info", "info"),
            ("warn,relive=trace", "warn,relive=trace"),
            ("relive=trace", "relive=trace"),
            ("", ""),
            ("off", "off"),
            ("tungstenite", "tungstenite,tungstenite=debug"),
            ("tungstenite=trace", "tungstenite=trace,tungstenite=debug"),
            ("tung=trace", "tung=trace,tungstenite=debug"),
            ("trace,tungstenite=info", "trace,tungstenite=info"),
            (
                "info,tungstenite=trace,",
                "info,tungstenite=trace,tungstenite=debug",
            ),
            (
                "trace,tungstenite::protocol=trace",
                "trace,tungstenite::protocol=trace,tungstenite=debug",
            ),
            (
                "debug,tokio_tungstenite=trace",
                "debug,tokio_tungstenite=trace",
            ),
            ("[viewer]=trace", "[viewer]=trace"),
        ];
        for (filter, expected) in cases {
            assert_eq!(secret_safe_filter(filter), expected, "{filter:?}");
        }
    }

    #[test]
    fn a_more_specific_or_later_directive_decides() {
        assert_eq!(
            effective_level("trace,tungstenite=warn", "tungstenite"),
            Level::Warn
        );
        assert_eq!(
            effective_level("tungstenite=warn,trace", "tungstenite"),
            Level::Warn
        );
        assert_eq!(
            effective_level("tungstenite=warn,tungstenite=trace", "tungstenite"),
            Level::Trace
        );
        assert_eq!(
            effective_level("tungstenite::protocol=trace", "tungstenite"),
            Level::Off
        );
        assert_eq!(
            effective_level("tungstenite=bogus,info", "tungstenite"),
            Level::Info
        );
    }
}
