//! [`RelayServer`]: the axum app — `GET /ws` upgrades to the relay protocol, `GET /healthz`
//! reports counts as JSON, `GET /metrics` the same in the Prometheus text format — and the
//! handle that shuts it down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::relay::broker::Broker;
use crate::relay::config::RelayConfig;
use crate::relay::core::client_address;
use crate::relay::director::DirectorProxy;
use crate::relay::listener::{RelayListener, Remote};
use crate::relay::shared::{Health, Shared};
use crate::relay::{LocalBroker, RelayError, connection};

/// A running relay: the handle of an in-process server, for tests, benches and the
/// `relive-relay` binary.
///
/// ```no_run
/// # async fn demo() -> Result<(), relive::relay::RelayError> {
/// use relive::relay::{RelayConfig, RelayServer};
///
/// let config = RelayConfig::default()
///     .listen("127.0.0.1:0".parse().unwrap())
///     .publish_token("cam-*", "s3cret");
/// let relay = RelayServer::start(config).await?;
/// println!("relay on {}", relay.url());
/// relay.shutdown().await; // every client gets a `shutdown` frame first
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RelayServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    serve: JoinHandle<()>,
}

impl RelayServer {
    /// Binds `config.listen` and serves, with an in-process [`LocalBroker`].
    pub async fn start(config: RelayConfig) -> Result<RelayServer, RelayError> {
        let broker = Arc::new(LocalBroker::new(config.limits.max_streams));
        Self::start_with_broker(config, broker).await
    }

    /// Like [`start`](RelayServer::start), with the stream state in `broker`.
    pub async fn start_with_broker(
        config: RelayConfig,
        broker: Arc<dyn Broker>,
    ) -> Result<RelayServer, RelayError> {
        config.check()?;
        if config.publish_tokens.is_empty() {
            tracing::warn!("no publish_tokens configured: nobody can publish");
        }
        let director = match &config.director {
            Some(director) => Some(Arc::new(DirectorProxy::new(director.clone())?)),
            None => None,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(RelayError::Bind)?;
        let addr = listener.local_addr().map_err(RelayError::Bind)?;
        let shared = Arc::new(Shared::new(config, broker, director));
        let listener =
            RelayListener::new(listener, Arc::clone(&shared)).map_err(RelayError::Bind)?;
        let router = Router::new()
            .route("/ws", get(upgrade))
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics))
            .with_state(Arc::clone(&shared));
        let mut stop = shared.shutdown.subscribe();
        let app = router.into_make_service_with_connect_info::<Remote>();
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(async move { while stop.wait_for(|s| *s).await.is_err() {} });
        let upkeep = Arc::clone(&shared);
        let serve = tokio::spawn(async move {
            // The histogram's samples are folded in at each scrape; unscraped, they would pile up.
            let mut tick = tokio::time::interval(METRICS_UPKEEP);
            let upkeep = async move {
                loop {
                    tick.tick().await;
                    upkeep.metrics.upkeep();
                }
            };
            tokio::select! {
                served = serve => if let Err(error) = served {
                    tracing::error!(%error, "relay server failed");
                },
                () = upkeep => {}
            }
        });
        tracing::info!(%addr, "relay listening");
        Ok(RelayServer {
            addr,
            shared,
            serve,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The WebSocket URL clients connect to: `ws://ADDR/ws`.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The counts `/healthz` reports.
    pub fn health(&self) -> Health {
        self.shared.health()
    }

    /// Stops: no new connections, every client gets a `shutdown` frame and a close (1001), and
    /// this returns once all are closed or `shutdown_grace_ms` passed.
    pub async fn shutdown(self) {
        let grace = self.shared.config.limits.shutdown_grace();
        let mut open = self.shared.connections.subscribe();
        self.shared.shutdown.send_replace(true);
        tracing::info!(connections = *open.borrow(), "relay shutting down");
        let closed = tokio::time::timeout(grace, open.wait_for(|n| *n == 0))
            .await
            .is_ok();
        if !closed {
            tracing::warn!(
                left = *open.borrow(),
                "shutdown grace over; dropping the rest"
            );
        }
        let _ = tokio::time::timeout(grace, self.serve).await;
    }
}

/// How often the metrics recorder folds pending histogram samples.
const METRICS_UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /healthz`.
async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.health()).into_response()
}

/// `GET /metrics`: the Prometheus text format (version 0.0.4).
async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let text = shared.metrics.render(&shared.health());
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// The values of every `name` header line that is text (others are skipped: a line that is
/// not text cannot name an address).
fn lines<'h>(headers: &'h HeaderMap, name: &str) -> Vec<&'h str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// `GET /ws`: checks the origin and the connection limit, then upgrades with the frame limits.
async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(Remote {
        addr: remote,
        outlet,
    }): ConnectInfo<Remote>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    if shared.is_shutting_down() {
        shared.count_unavailable();
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    if !origin_allowed(&shared.config.allowed_origins, &headers) {
        tracing::info!(%remote, "connection refused: origin not allowed");
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let (client, malformed) = client_address(
        remote.ip(),
        &shared.config.trusted_proxies,
        &lines(&headers, "forwarded"),
        &lines(&headers, "x-forwarded-for"),
    );
    if let Some(error) = malformed {
        tracing::info!(%remote, %error, "forwarding header ignored; counting the proxy's address");
    }
    let client_slot = match shared.clients.admit(client) {
        Ok(slot) => slot,
        Err(limit) => {
            tracing::info!(%remote, %client, %limit, "connection refused: client limit");
            shared.count_client_limited();
            return (
                StatusCode::TOO_MANY_REQUESTS,
                "too many connections from this client",
            )
                .into_response();
        }
    };
    let Some(slot) = shared.reserve() else {
        tracing::warn!(%remote, "connection refused: relay full");
        shared.count_unavailable();
        return (StatusCode::SERVICE_UNAVAILABLE, "relay full").into_response();
    };
    let hard = shared.config.limits.hard_frame();
    upgrade
        .max_message_size(hard)
        .max_frame_size(hard)
        // Small buffers: most connections idle, and memory per connection is what scales.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(hard.saturating_mul(2))
        .on_upgrade(move |socket| {
            connection::run(shared, slot, client_slot, socket, outlet, remote)
        })
}

/// No list, or no `Origin` header (not a browser), or an `Origin` on the list.
fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    if allowed.is_empty() {
        return true;
    }
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => origin
            .to_str()
            .is_ok_and(|origin| allowed.iter().any(|a| a == origin)),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn origins_are_checked_only_when_listed_and_present() {
        let allowed = vec!["https://a.example".to_owned()];
        let mut headers = HeaderMap::new();
        assert!(origin_allowed(&[], &headers));
        assert!(origin_allowed(&allowed, &headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://a.example"),
        );
        assert!(origin_allowed(&allowed, &headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!origin_allowed(&allowed, &headers));
        assert!(origin_allowed(&[], &headers));
    }
}
