//! `relive-relay`: the relay server — publishers announce their live streams, viewers hear of
//! them at once (see `relive::relay::protocol` for the protocol).
//!
//! ```text
//! relive-relay --config relay.json                 # a JSON RelayConfig
//! relive-relay --listen 0.0.0.0:8787 --publish-token 'cam-*=s3cret' --allow-origin https://player.example
//! ```
//!
//! With the `relay-redis` feature, `--redis redis://127.0.0.1:6379` makes this node one of a
//! group of relay nodes that share their streams through Redis (see `relive::relay::RedisBroker`);
//! `--redis-cluster redis://127.0.0.1:7000` does the same through a Redis Cluster (any one of
//! its nodes; the others are discovered), with sharded pub/sub on Redis 7.
//!
//! Flags override the file. Tokens may also come from the environment
//! (`RELIVE_RELAY_PUBLISH_TOKENS`, `RELIVE_RELAY_SUBSCRIBE_TOKENS`, comma-separated
//! `PATTERN=TOKEN`), which other local users cannot read the way they can read a command line.
//! SIGTERM or ctrl-c shuts down gracefully: every client gets a `shutdown` frame first.
//!
//! Logs are filtered by `RUST_LOG` (else `--log`), with the `log` crate's records
//! (tungstenite, reqwest) included. The filter always passes through
//! `relive::logging::secret_safe_filter`, so `RUST_LOG=trace` does not log the WebSocket
//! frames that carry publish tokens and relayed JWTs; `RUST_LOG=trace,tungstenite::protocol=trace`
//! does, on purpose (see `relive::logging`).

#[path = "common/mod.rs"]
mod common;

use common::{log_filter, signal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

use clap::Parser;
use ipnet::IpNet;
use relive::Secret;
use relive::relay::{
    Broker, DirectorConfig, LocalBroker, RelayConfig, RelayError, RelayServer, TokenRule,
};

/// The relay server of relive: publishers announce, viewers resume at once.
#[derive(Debug, Parser)]
#[command(name = "relive-relay", version)]
struct Args {
    /// A JSON config file (a RelayConfig); flags override its values.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Where to listen.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Lets streams matching PATTERN (`cam-1`, `cam-*`) be published with TOKEN. Repeatable;
    /// replaces the file's list.
    #[arg(long = "publish-token", value_name = "PATTERN=TOKEN", value_parser = token_rule,
          env = "RELIVE_RELAY_PUBLISH_TOKENS", value_delimiter = ',', hide_env_values = true)]
    publish_tokens: Vec<TokenRule>,
    /// A browser origin allowed to connect (`https://host[:port]`). Repeatable; replaces the
    /// file's list.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// The Millicast Director base URL for the Director proxy.
    #[arg(long, value_name = "URL")]
    director_url: Option<String>,
    /// The Millicast account id of the streams (enables the Director proxy).
    #[arg(long, value_name = "ID")]
    director_account: Option<String>,
    /// A subscribe token for streams matching PATTERN. Repeatable; replaces the file's list.
    #[arg(long = "subscribe-token", value_name = "PATTERN=TOKEN", value_parser = token_rule,
          env = "RELIVE_RELAY_SUBSCRIBE_TOKENS", value_delimiter = ',', hide_env_values = true)]
    subscribe_tokens: Vec<TokenRule>,
    /// The largest frame accepted, in bytes.
    #[arg(long, value_name = "BYTES")]
    max_frame: Option<usize>,
    /// Frames per second per connection.
    #[arg(long, value_name = "N")]
    rate: Option<f64>,
    /// Frames per connection in a burst.
    #[arg(long, value_name = "N")]
    burst: Option<u32>,
    /// Connections at once.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Streams the relay tracks at once (live or viewed).
    #[arg(long, value_name = "N")]
    max_streams: Option<usize>,
    /// Streams one connection may view.
    #[arg(long, value_name = "N")]
    max_views: Option<usize>,
    /// WebSocket connections at once from one client address; more are answered 429.
    #[arg(long, value_name = "N")]
    max_connections_per_client: Option<usize>,
    /// Streams viewed at once by all the connections of one client address.
    #[arg(long, value_name = "N")]
    max_views_per_client: Option<usize>,
    /// A reverse proxy (address or CIDR) whose `Forwarded`/`X-Forwarded-For` names the client.
    /// Repeatable; replaces the file's list.
    #[arg(long = "trusted-proxy", value_name = "ADDR|CIDR", value_parser = proxy)]
    trusted_proxies: Vec<IpNet>,
    /// Frames queued per connection before it is dropped as a slow consumer.
    #[arg(long, value_name = "N")]
    queue: Option<usize>,
    /// How often each connection is pinged, in ms; a publisher that misses two is lost.
    #[arg(long, value_name = "MS")]
    keepalive_ms: Option<u64>,
    /// How long a TCP connection may take to send its HTTP request head, in ms; then it is
    /// closed (counted as `header_timeouts` in `/healthz`).
    #[arg(long, value_name = "MS")]
    header_timeout_ms: Option<u64>,
    /// Share stream state with other relay nodes through this Redis (`redis://host:port`).
    #[cfg(feature = "relay-redis")]
    #[arg(
        long,
        value_name = "URL",
        env = "RELIVE_RELAY_REDIS",
        hide_env_values = true
    )]
    redis: Option<String>,
    /// Share stream state through a Redis Cluster, given any one of its nodes
    /// (`redis://host:port`): keys and events go to the shard of each stream's slot.
    #[cfg(feature = "relay-redis")]
    #[arg(
        long,
        value_name = "URL",
        env = "RELIVE_RELAY_REDIS_CLUSTER",
        hide_env_values = true,
        conflicts_with = "redis"
    )]
    redis_cluster: Option<String>,
    /// How long a stream's key in Redis outlives its node's last refresh, in ms.
    #[cfg(feature = "relay-redis")]
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    redis_ttl_ms: u64,
    /// How often the node refreshes its keys and checks the streams it watches, in ms.
    #[cfg(feature = "relay-redis")]
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    redis_heartbeat_ms: u64,
    /// Log filter when RUST_LOG is not set (`info`, `relive=debug`, ...); tungstenite is
    /// held at DEBUG either way (its TRACE records carry tokens).
    #[arg(long, value_name = "FILTER", default_value = "info")]
    log: String,
}

/// An address (one host) or a CIDR.
fn proxy(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| "expected an IP address or a CIDR (10.0.0.0/8)".to_owned())
}

fn token_rule(text: &str) -> Result<TokenRule, String> {
    let (stream, token) = text
        .split_once('=')
        .ok_or_else(|| "expected PATTERN=TOKEN".to_owned())?;
    Ok(TokenRule {
        stream: stream.to_owned(),
        token: Secret::new(token),
    })
}

impl Args {
    /// The file's config with the flags applied over it, checked.
    fn into_config(self) -> Result<RelayConfig, RelayError> {
        let mut config = match &self.config {
            Some(path) => RelayConfig::from_file(path)?,
            None => RelayConfig::default(),
        };
        apply_limits(&mut config, &self);
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if !self.publish_tokens.is_empty() {
            config.publish_tokens = self.publish_tokens;
        }
        if !self.allowed_origins.is_empty() {
            config.allowed_origins = self.allowed_origins;
        }
        if !self.trusted_proxies.is_empty() {
            config.trusted_proxies = self.trusted_proxies;
        }
        let proxy = self.director_url.is_some()
            || self.director_account.is_some()
            || !self.subscribe_tokens.is_empty();
        if proxy {
            let mut director = config.director.take().unwrap_or_default();
            if let Some(url) = self.director_url {
                director.url = url;
            }
            if let Some(account) = self.director_account {
                director.account_id = account;
            }
            if !self.subscribe_tokens.is_empty() {
                director.subscribe_tokens = self.subscribe_tokens;
            }
            config.director = Some(director);
        }
        check_director(config.director.as_ref())?;
        config.check()?;
        Ok(config)
    }
}

/// The Redis settings from the flags: `None` without `--redis` or `--redis-cluster`.
#[cfg(feature = "relay-redis")]
fn redis_settings(args: &Args) -> Option<relive::relay::RedisConfig> {
    use relive::relay::RedisConfig;
    use std::time::Duration;
    let mut redis = match (&args.redis, &args.redis_cluster) {
        (Some(url), _) => RedisConfig::new(url.clone()),
        (None, Some(url)) => RedisConfig::cluster(url.clone()),
        (None, None) => return None,
    };
    redis.ttl = Duration::from_millis(args.redis_ttl_ms);
    redis.heartbeat = Duration::from_millis(args.redis_heartbeat_ms);
    Some(redis)
}

/// The broker: Redis-backed with `--redis`, else in process.
#[cfg(feature = "relay-redis")]
fn broker(
    redis: Option<relive::relay::RedisConfig>,
    max_streams: usize,
) -> Result<Arc<dyn Broker>, String> {
    match redis {
        Some(redis) => relive::relay::RedisBroker::start(redis, max_streams)
            .map(|broker| Arc::new(broker) as Arc<dyn Broker>)
            .map_err(|e| e.to_string()),
        None => Ok(Arc::new(LocalBroker::new(max_streams))),
    }
}

#[cfg(not(feature = "relay-redis"))]
fn redis_settings(_: &Args) {}

/// The broker: in process (built without `relay-redis`).
#[cfg(not(feature = "relay-redis"))]
fn broker(_: (), max_streams: usize) -> Result<Arc<dyn Broker>, String> {
    Ok(Arc::new(LocalBroker::new(max_streams)))
}

fn apply_limits(config: &mut RelayConfig, args: &Args) {
    let limits = &mut config.limits;
    limits.max_frame = args.max_frame.unwrap_or(limits.max_frame);
    limits.rate_per_sec = args.rate.unwrap_or(limits.rate_per_sec);
    limits.burst = args.burst.unwrap_or(limits.burst);
    limits.max_connections = args.max_connections.unwrap_or(limits.max_connections);
    limits.queue = args.queue.unwrap_or(limits.queue);
    limits.max_streams = args.max_streams.unwrap_or(limits.max_streams);
    limits.max_views = args.max_views.unwrap_or(limits.max_views);
    limits.max_connections_per_client = args
        .max_connections_per_client
        .unwrap_or(limits.max_connections_per_client);
    limits.max_views_per_client = args
        .max_views_per_client
        .unwrap_or(limits.max_views_per_client);
    limits.keepalive_ms = args.keepalive_ms.unwrap_or(limits.keepalive_ms);
    limits.header_timeout_ms = args.header_timeout_ms.unwrap_or(limits.header_timeout_ms);
}

fn check_director(director: Option<&DirectorConfig>) -> Result<(), RelayError> {
    match director {
        Some(d) if d.account_id.is_empty() => Err(RelayError::Config(
            "the Director proxy needs an account id (--director-account)".to_owned(),
        )),
        _ => Ok(()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    tracing_subscriber::fmt()
        .with_target(false)
        .with_env_filter(log_filter(rust_log.as_deref(), &args.log))
        .init();
    let redis = redis_settings(&args);
    let config = match args.into_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("relive-relay: {error}");
            return ExitCode::from(2);
        }
    };
    let broker = match broker(redis, config.limits.max_streams) {
        Ok(broker) => broker,
        Err(error) => {
            eprintln!("relive-relay: {error}");
            return ExitCode::from(2);
        }
    };
    let relay = match RelayServer::start_with_broker(config, broker).await {
        Ok(relay) => relay,
        Err(error) => {
            eprintln!("relive-relay: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("relive-relay listening on {}", relay.url());
    signal().await;
    tracing::info!("signal received; shutting down");
    relay.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("relive-relay").chain(list.iter().copied()))
            .expect("valid flags")
    }

    #[test]
    fn flags_override_the_file() {
        let path = std::env::temp_dir().join(format!("relive-relay-{}.json", std::process::id()));
        let file = r#"{"listen":"127.0.0.1:9000","publish_tokens":[{"stream":"cam-*","token":"file"}],
                       "limits":{"burst":7,"rate_per_sec":3}}"#;
        std::fs::write(&path, file).expect("temp file");
        let path_arg = path.to_string_lossy().into_owned();
        let config = args(&[
            "--config",
            &path_arg,
            "--listen",
            "127.0.0.1:9001",
            "--burst",
            "9",
            "--header-timeout-ms",
            "250",
            "--max-views-per-client",
            "5",
            "--trusted-proxy",
            "10.0.0.0/8",
            "--trusted-proxy",
            "::1",
        ])
        .into_config()
        .expect("valid config");
        assert_eq!(config.listen.port(), 9001);
        assert_eq!(config.limits.burst, 9);
        assert_eq!(config.limits.header_timeout_ms, 250);
        assert_eq!(config.limits.max_views_per_client, 5);
        let proxies: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "::1/128"]);
        assert!(Args::try_parse_from(["relive-relay", "--trusted-proxy", "nope"]).is_err());
        assert_eq!(config.limits.rate_per_sec, 3.0, "the file's value stays");
        assert_eq!(config.publish_tokens[0].token.expose(), "file");
        let config = args(&["--config", &path_arg, "--publish-token", "mic=flag"])
            .into_config()
            .expect("valid config");
        assert_eq!(config.publish_tokens.len(), 1);
        assert_eq!(config.publish_tokens[0].stream, "mic");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn rust_log_wins_and_tungstenite_frames_stay_out() {
        let shown = |rust_log, flag| log_filter(rust_log, flag).to_string();
        assert_eq!(shown(None, "info"), "info");
        assert_eq!(shown(Some("trace"), "info"), "tungstenite=debug,trace");
        assert_eq!(
            shown(Some("tungstenite=trace"), "info"),
            "tungstenite=debug"
        );
        assert_eq!(shown(Some("=bad"), "debug"), "debug", "an invalid RUST_LOG");
        assert_eq!(shown(None, "=bad"), "info", "an invalid --log");
    }

    #[test]
    fn a_director_needs_an_account_and_tokens_need_a_pattern() {
        assert!(
            args(&["--director-url", "http://127.0.0.1:1"])
                .into_config()
                .is_err()
        );
        let ok = args(&["--director-account", "acct", "--subscribe-token", "cam-*=t"]);
        let director = ok
            .into_config()
            .expect("valid")
            .director
            .expect("a director");
        assert_eq!(director.account_id, "acct");
        assert!(Args::try_parse_from(["relive-relay", "--publish-token", "no-equals"]).is_err());
    }
}
