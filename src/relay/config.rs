//! What a relay is told: where to listen, who may publish what, which origins may connect, the
//! Director it proxies and its limits. Plain data, read from JSON and checked once.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::Secret;
use crate::millicast::DEFAULT_DIRECTOR;
use crate::relay::RelayError;
use crate::relay::protocol::StreamName;

/// The whole configuration of a relay; JSON with these field names (every field optional).
///
/// ```
/// use relive::relay::RelayConfig;
/// let config = RelayConfig::from_json(r#"{
///     "listen": "127.0.0.1:8787",
///     "publish_tokens": [{"stream": "cam-*", "token": "s3cret"}],
///     "allowed_origins": ["https://player.example"],
///     "director": {"account_id": "k9Mwad", "subscribe_tokens": [{"stream": "cam-1", "token": "t"}]},
///     "limits": {"max_frame": 32768, "rate_per_sec": 10}
/// }"#).unwrap();
/// assert_eq!(config.limits.max_frame, 32768);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RelayConfig {
    /// Where to listen (default `127.0.0.1:8787`; port 0 picks a free port).
    pub listen: SocketAddr,
    /// Who may publish what: a stream may be published by a connection whose `hello` token is
    /// the token of the most specific rule matching the stream. No rule, no publisher.
    pub publish_tokens: Vec<TokenRule>,
    /// When not empty, a browser's `Origin` must be one of these (`https://host[:port]`, exact);
    /// clients that send no `Origin` (not browsers) are let in.
    pub allowed_origins: Vec<String>,
    /// The Director the relay calls for viewers; `None` refuses `director` requests.
    pub director: Option<DirectorConfig>,
    /// Reverse proxies (addresses or CIDRs: `10.0.0.1`, `10.0.0.0/8`, `::1/128`) whose
    /// forwarding headers are believed. A connection counts against the per-address caps
    /// (`limits.max_connections_per_client`, `limits.max_views_per_client`) under its TCP peer,
    /// unless that peer is on this list: then under the right-most address of `Forwarded: for=`
    /// (else `X-Forwarded-For`) that is not on it. Empty (the default): headers are ignored.
    pub trusted_proxies: Vec<IpNet>,
    /// Sizes, rates, queues and timeouts.
    pub limits: Limits,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            publish_tokens: Vec::new(),
            allowed_origins: Vec::new(),
            director: None,
            trusted_proxies: Vec::new(),
            limits: Limits::default(),
        }
    }
}

impl RelayConfig {
    /// Reads and checks a JSON configuration.
    pub fn from_json(text: &str) -> Result<Self, RelayError> {
        let config: RelayConfig =
            serde_json::from_str(text).map_err(|e| RelayError::Config(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Reads and checks a JSON configuration file.
    pub fn from_file(path: &Path) -> Result<Self, RelayError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RelayError::Config(format!("{}: {e}", path.display())))?;
        Self::from_json(&text)
    }

    /// Listens on `addr` (default `127.0.0.1:8787`; port 0 picks a free one, for tests).
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Accepts browsers whose `Origin` is `origin` (once any is given, others are refused).
    #[must_use]
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed_origins.push(origin.into());
        self
    }

    /// Proxies viewers' Director calls with these credentials.
    #[must_use]
    pub fn director(mut self, director: DirectorConfig) -> Self {
        self.director = Some(director);
        self
    }

    /// Believes the forwarding headers of connections from `proxy` (an address or a CIDR);
    /// see [`trusted_proxies`](RelayConfig::trusted_proxies).
    ///
    /// ```
    /// use relive::relay::RelayConfig;
    /// let config = RelayConfig::default().trust_proxy("10.0.0.0/8".parse().unwrap());
    /// assert_eq!(config.trusted_proxies.len(), 1);
    /// ```
    #[must_use]
    pub fn trust_proxy(mut self, proxy: IpNet) -> Self {
        self.trusted_proxies.push(proxy);
        self
    }

    /// Replaces the limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Lets streams matching `pattern` (`cam-1`, or a prefix `cam-*`) be published with `token`.
    ///
    /// Every setting is a builder method, checked as a whole by
    /// [`check`](RelayConfig::check) (and by the server when it starts):
    ///
    /// ```
    /// use relive::relay::RelayConfig;
    ///
    /// let config = RelayConfig::default()
    ///     .listen("127.0.0.1:0".parse().unwrap())
    ///     .publish_token("cam-*", "s3cret")
    ///     .allow_origin("https://player.example");
    /// assert!(config.check().is_ok());
    /// ```
    #[must_use]
    pub fn publish_token(mut self, pattern: &str, token: impl Into<String>) -> Self {
        self.publish_tokens.push(TokenRule {
            stream: pattern.to_owned(),
            token: Secret::new(token),
        });
        self
    }

    /// Checks what serde cannot: patterns, limits, origins.
    pub fn check(&self) -> Result<(), RelayError> {
        let rules = self.director.iter().flat_map(|d| &d.subscribe_tokens);
        for rule in self.publish_tokens.iter().chain(rules) {
            Pattern::parse(&rule.stream)?;
            if rule.token.expose().is_empty() {
                return Err(RelayError::Config(format!(
                    "empty token for {}",
                    rule.stream
                )));
            }
        }
        if let Some(origin) = self.allowed_origins.iter().find(|o| o.ends_with('/')) {
            return Err(RelayError::Config(format!(
                "origin {origin:?} must not end with '/'"
            )));
        }
        self.limits.check()
    }

    /// The publish token rule for `stream`: the most specific one that matches.
    pub(crate) fn publish_rule(&self, stream: &StreamName) -> Option<&TokenRule> {
        most_specific(&self.publish_tokens, stream)
    }

    /// Whether `token` is the token of any publish rule.
    pub(crate) fn is_any_publish_token(&self, token: &Secret) -> bool {
        self.publish_tokens
            .iter()
            .any(|rule| tokens_equal(&rule.token, token))
    }
}

/// A token for the streams that match a pattern: a name (`cam-1`) or a prefix (`cam-*`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRule {
    /// `name`, or `prefix*`; `*` alone matches every stream.
    pub stream: String,
    /// The token; never logged.
    pub token: Secret,
}

/// The Director the relay calls for its viewers; its credentials never leave the relay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DirectorConfig {
    /// Base URL (default the public Director).
    pub url: String,
    /// The Millicast account id of the streams.
    pub account_id: String,
    /// Subscribe tokens of secured streams, by name or prefix; streams without one are
    /// requested unsecured.
    pub subscribe_tokens: Vec<TokenRule>,
    /// How long one Director call may take, in milliseconds.
    pub request_timeout_ms: u64,
}

impl Default for DirectorConfig {
    fn default() -> Self {
        DirectorConfig {
            url: DEFAULT_DIRECTOR.to_owned(),
            account_id: String::new(),
            subscribe_tokens: Vec::new(),
            request_timeout_ms: 5_000,
        }
    }
}

impl DirectorConfig {
    /// A Director at `url` for `account_id`'s streams.
    pub fn new(url: impl Into<String>, account_id: impl Into<String>) -> Self {
        DirectorConfig {
            url: url.into(),
            account_id: account_id.into(),
            ..DirectorConfig::default()
        }
    }

    /// The subscribe token for `stream`: the most specific rule that matches.
    pub(crate) fn subscribe_token(&self, stream: &StreamName) -> Option<&Secret> {
        most_specific(&self.subscribe_tokens, stream).map(|rule| &rule.token)
    }
}

/// Every bound of the relay: nothing a client does grows memory past these.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// The largest frame accepted, in bytes (64 KiB); up to 4× that is refused with an error
    /// frame, beyond it the socket is closed.
    pub max_frame: usize,
    /// Frames that may wait for one connection once its socket's send buffer is full, before it
    /// counts as a slow consumer and is dropped (64).
    pub queue: usize,
    /// Frames per second a connection may send on average (20).
    pub rate_per_sec: f64,
    /// Frames a connection may send in a burst (40).
    pub burst: u32,
    /// Connections at once (20 000); more are refused with 503.
    pub max_connections: usize,
    /// Streams the relay tracks at once, live or viewed (100 000).
    pub max_streams: usize,
    /// Streams one connection may view (16).
    pub max_views: usize,
    /// WebSocket connections open at once from one client address (256); more are answered
    /// HTTP 429. The address is the TCP peer, or behind a trusted proxy the client it names (see
    /// [`RelayConfig::trusted_proxies`]).
    pub max_connections_per_client: usize,
    /// Streams viewed at once by all the connections of one client address (1 024); a view
    /// beyond is refused with `client_limit`.
    pub max_views_per_client: usize,
    /// Streams one connection may publish (16).
    pub max_publishes: usize,
    /// How often the server pings each connection, in ms (5 000). A publisher silent for two
    /// of these (no frame, no pong) is lost: its viewers get `close` (`publisher_lost`) within
    /// 2 × `keepalive_ms`.
    pub keepalive_ms: u64,
    /// Silence after which a viewer's connection is closed, in ms (45 000); a publisher's
    /// closes after the shorter of this and 2 × `keepalive_ms`.
    pub idle_timeout_ms: u64,
    /// How long a new connection may take to say `hello`, in ms (10 000).
    pub hello_timeout_ms: u64,
    /// How long shutdown waits for clients to take their `shutdown` frame, in ms (5 000).
    pub shutdown_grace_ms: u64,
    /// How long an accepted TCP connection may take to send a complete HTTP request head, in
    /// ms (10 000); the same bound applies to each later request of a keep-alive connection,
    /// and ends once it is upgraded to a WebSocket. Closed connections count in `/healthz`
    /// (`header_timeouts`).
    pub header_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: 64 * 1024,
            queue: 64,
            rate_per_sec: 20.0,
            burst: 40,
            max_connections: 20_000,
            max_streams: 100_000,
            max_views: 16,
            max_connections_per_client: 256,
            max_views_per_client: 1024,
            max_publishes: 16,
            keepalive_ms: 5_000,
            idle_timeout_ms: 45_000,
            hello_timeout_ms: 10_000,
            shutdown_grace_ms: 5_000,
            header_timeout_ms: 10_000,
        }
    }
}

impl Limits {
    fn check(&self) -> Result<(), RelayError> {
        let positive = [
            ("max_frame", self.max_frame >= 1024),
            ("queue", self.queue > 0),
            (
                "rate_per_sec",
                self.rate_per_sec.is_finite() && self.rate_per_sec > 0.0,
            ),
            ("burst", self.burst > 0),
            ("max_connections", self.max_connections > 0),
            ("max_streams", self.max_streams > 0),
            (
                "max_connections_per_client",
                self.max_connections_per_client > 0,
            ),
            ("max_views_per_client", self.max_views_per_client > 0),
            ("keepalive_ms", self.keepalive_ms > 0),
            ("idle_timeout_ms", self.idle_timeout_ms > self.keepalive_ms),
            ("hello_timeout_ms", self.hello_timeout_ms > 0),
            ("header_timeout_ms", self.header_timeout_ms > 0),
        ];
        match positive.iter().find(|(_, ok)| !ok) {
            Some((name, _)) => Err(RelayError::Config(format!(
                "limits.{name} is out of range (max_frame ≥ 1024, idle_timeout_ms > keepalive_ms, others > 0)"
            ))),
            None => Ok(()),
        }
    }

    pub(crate) fn keepalive(&self) -> Duration {
        Duration::from_millis(self.keepalive_ms)
    }

    pub(crate) fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    pub(crate) fn hello_timeout(&self) -> Duration {
        Duration::from_millis(self.hello_timeout_ms)
    }

    pub(crate) fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    pub(crate) fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// The hard limit: frames beyond it close the socket (the WebSocket layer refuses them).
    pub(crate) fn hard_frame(&self) -> usize {
        self.max_frame.saturating_mul(4)
    }
}

/// A stream pattern: an exact name, or a prefix ending in `*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pattern<'a> {
    Exact(&'a str),
    Prefix(&'a str),
}

impl<'a> Pattern<'a> {
    fn parse(text: &'a str) -> Result<Self, RelayError> {
        let bad = || {
            RelayError::Config(format!(
                "stream pattern {text:?} is not `name` or `prefix*`"
            ))
        };
        match text.strip_suffix('*') {
            Some("") => Ok(Pattern::Prefix("")),
            Some(prefix) => {
                StreamName::new(prefix).map_err(|_| bad())?;
                Ok(Pattern::Prefix(prefix))
            }
            None => {
                StreamName::new(text).map_err(|_| bad())?;
                Ok(Pattern::Exact(text))
            }
        }
    }

    /// How well `stream` matches: `None` not at all; higher is more specific.
    fn specificity(self, stream: &str) -> Option<usize> {
        match self {
            Pattern::Exact(name) => (name == stream).then_some(usize::MAX),
            Pattern::Prefix(prefix) => stream.starts_with(prefix).then_some(prefix.len()),
        }
    }
}

fn most_specific<'r>(rules: &'r [TokenRule], stream: &StreamName) -> Option<&'r TokenRule> {
    rules
        .iter()
        .filter_map(|rule| {
            let pattern = Pattern::parse(&rule.stream).ok()?;
            Some((pattern.specificity(stream.as_str())?, rule))
        })
        .max_by_key(|(specificity, _)| *specificity)
        .map(|(_, rule)| rule)
}

/// Compares two tokens in time that depends on their lengths only, not on where they differ.
pub(crate) fn tokens_equal(a: &Secret, b: &Secret) -> bool {
    let (a, b) = (a.expose().as_bytes(), b.expose().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn name(s: &str) -> StreamName {
        StreamName::new(s).unwrap()
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let config = RelayConfig::default()
            .publish_token("*", "any")
            .publish_token("cam-*", "cams")
            .publish_token("cam-1", "one");
        let token = |s: &str| {
            config
                .publish_rule(&name(s))
                .map(|r| r.token.expose().to_owned())
        };
        assert_eq!(token("cam-1").as_deref(), Some("one"));
        assert_eq!(token("cam-2").as_deref(), Some("cams"));
        assert_eq!(token("mic").as_deref(), Some("any"));
        let strict = RelayConfig::default().publish_token("cam-*", "cams");
        assert!(strict.publish_rule(&name("mic")).is_none());
    }

    #[test]
    fn bad_patterns_limits_and_unknown_fields_are_refused() {
        let bad = [
            r#"{"publish_tokens":[{"stream":"a b","token":"t"}]}"#,
            r#"{"publish_tokens":[{"stream":"*a","token":"t"}]}"#,
            r#"{"publish_tokens":[{"stream":"a","token":""}]}"#,
            r#"{"limits":{"max_frame":10}}"#,
            r#"{"limits":{"idle_timeout_ms":10,"keepalive_ms":20}}"#,
            r#"{"allowed_origins":["https://a/"]}"#,
            r#"{"listen":"nowhere"}"#,
            r#"{"lisen":"127.0.0.1:1"}"#,
        ];
        for text in bad {
            assert!(RelayConfig::from_json(text).is_err(), "{text}");
        }
        assert!(RelayConfig::from_json("{}").is_ok());
    }

    #[test]
    fn tokens_compare_by_value() {
        assert!(tokens_equal(&Secret::new("abc"), &Secret::new("abc")));
        assert!(!tokens_equal(&Secret::new("abc"), &Secret::new("abd")));
        assert!(!tokens_equal(&Secret::new("abc"), &Secret::new("abcd")));
    }
}
