//! [`RedisConfig`]: where the shared Redis is and how fresh its state is kept, and the errors of
//! starting a [`RedisBroker`](super::RedisBroker).

use std::time::Duration;

use crate::Secret;

/// Where the Redis of a group of relay nodes is, and how its shared state is kept fresh.
///
/// ```
/// use relive::relay::RedisConfig;
/// let config = RedisConfig::new("redis://127.0.0.1:6379");
/// assert!(config.check().is_ok());
/// assert!(!format!("{config:?}").contains("127.0.0.1"), "the URL may hold a password");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`; a secret, since it may hold a password.
    pub url: Secret,
    /// How long a stream's key outlives its last refresh (default 5 s).
    pub ttl: Duration,
    /// How often a node refreshes its streams' keys and checks those it watches (default 1 s).
    /// A dead node's streams close for every viewer within `ttl + heartbeat`.
    pub heartbeat: Duration,
    /// Commands queued for Redis at most; beyond, they are dropped and counted (default 4096).
    pub queue: usize,
    /// How long a first viewer of a stream waits for Redis to answer before it gets what this
    /// node knows (default 1 s).
    pub view_wait: Duration,
    /// Whether `url` is one node of a Redis Cluster (the others are discovered from it):
    /// commands go to the shard of each stream's hash slot, watched keys are read one `MGET`
    /// per slot, and events use sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`) when the servers
    /// have it (Redis 7), classic pub/sub otherwise. See [`RedisConfig::cluster`].
    pub cluster: bool,
}

impl RedisConfig {
    /// The defaults, with Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: Secret::new(url),
            ttl: Duration::from_secs(5),
            heartbeat: Duration::from_secs(1),
            queue: 4096,
            view_wait: Duration::from_secs(1),
            cluster: false,
        }
    }

    /// The defaults, with `url` one node of a Redis Cluster.
    ///
    /// ```
    /// use relive::relay::RedisConfig;
    /// let config = RedisConfig::cluster("redis://127.0.0.1:7000");
    /// assert!(config.cluster && config.check().is_ok());
    /// ```
    pub fn cluster(url: impl Into<String>) -> Self {
        RedisConfig {
            cluster: true,
            ..RedisConfig::new(url)
        }
    }

    /// Checks the URL and that the heartbeat is shorter than the TTL.
    pub fn check(&self) -> Result<(), RedisError> {
        ::redis::Client::open(self.url.expose()).map_err(|_| RedisError::Url)?;
        let ms = |d: Duration| d.as_millis();
        if ms(self.heartbeat) == 0 || self.heartbeat >= self.ttl {
            return Err(RedisError::Config("heartbeat must be > 0 and < ttl"));
        }
        if self.queue == 0 || ms(self.view_wait) == 0 {
            return Err(RedisError::Config("queue and view_wait must be > 0"));
        }
        Ok(())
    }

    /// Upper bound between a node's death and `close` for every viewer of its streams.
    pub fn close_bound(&self) -> Duration {
        self.ttl + self.heartbeat
    }
}

/// Why a [`RedisBroker`](super::RedisBroker) could not start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The URL does not parse (it is not repeated here: it may hold a password).
    #[error("invalid Redis URL")]
    Url,
    /// A setting is out of range.
    #[error("invalid Redis settings: {0}")]
    Config(&'static str),
}
