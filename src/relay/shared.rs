//! What every connection of a relay shares — config, broker, Director, shutdown signal, counts,
//! the per-address table and the metrics recorder —
//! and the guards that keep the counts right: a [`Slot`] per open connection, a [`RoleGuard`]
//! per connection that said `hello`. Used by the axum app and by each connection's shell.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tokio::sync::watch;

use crate::relay::broker::{Broker, BrokerCounts};
use crate::relay::config::RelayConfig;
use crate::relay::core::ClientTable;
use crate::relay::director::DirectorProxy;
use crate::relay::metrics::Metrics;
use crate::relay::protocol::{ErrorCode, Role};

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) config: Arc<RelayConfig>,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) director: Option<Arc<DirectorProxy>>,
    pub(crate) shutdown: watch::Sender<bool>,
    /// Open connections (WebSocket tasks); shutdown waits for zero.
    pub(crate) connections: watch::Sender<usize>,
    /// What each client address holds, against the per-address caps.
    pub(crate) clients: ClientTable,
    /// This relay's own metrics recorder (`/metrics`).
    pub(crate) metrics: Metrics,
    publishers: AtomicUsize,
    viewers: AtomicUsize,
    next_id: AtomicU64,
    /// `error` frames sent, by code (a few dozen codes at most).
    refused: Mutex<BTreeMap<String, u64>>,
    slow_consumers: AtomicU64,
    unavailable: AtomicU64,
    client_limited: AtomicU64,
    header_timeouts: AtomicU64,
    shed: AtomicU64,
    accept_errors: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("connections", &*self.connections.borrow())
            .finish_non_exhaustive()
    }
}

/// What `GET /healthz` answers, as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Health {
    /// `"ok"`, or `"shutting_down"`.
    pub status: &'static str,
    /// Open WebSocket connections.
    pub connections: usize,
    /// Connections that said `hello` as publishers.
    pub publishers: usize,
    /// Connections that said `hello` as viewers.
    pub viewers: usize,
    /// What the broker holds.
    #[serde(flatten)]
    pub broker: BrokerCounts,
    /// `error` frames sent since the start, by code (`rate_limited`, `too_many_streams`, …).
    pub refused: BTreeMap<String, u64>,
    /// Connections dropped because they did not read (`slow_consumer`).
    pub slow_consumers: u64,
    /// Upgrades answered 503: the relay full or shutting down.
    pub unavailable: u64,
    /// Upgrades answered 429: the client address had `limits.max_connections_per_client`
    /// connections open.
    pub client_limited: u64,
    /// Client addresses with at least one open connection.
    pub client_addresses: usize,
    /// TCP connections closed because no request head (or upgrade) came within
    /// `limits.header_timeout_ms`.
    pub header_timeouts: u64,
    /// Connections waiting for a request head closed to free a descriptor at the open-file
    /// limit.
    pub shed: u64,
    /// Failed `accept` calls (`EMFILE` at the open-file limit, aborted connections, …).
    pub accept_errors: u64,
}

impl Shared {
    pub(crate) fn new(
        config: RelayConfig,
        broker: Arc<dyn Broker>,
        director: Option<Arc<DirectorProxy>>,
    ) -> Self {
        let limits = config.limits;
        Shared {
            clients: ClientTable::new(
                limits.max_connections_per_client,
                limits.max_views_per_client,
            ),
            metrics: Metrics::new(),
            config: Arc::new(config),
            broker,
            director,
            shutdown: watch::Sender::new(false),
            connections: watch::Sender::new(0),
            publishers: AtomicUsize::new(0),
            viewers: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            refused: Mutex::new(BTreeMap::new()),
            slow_consumers: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            client_limited: AtomicU64::new(0),
            header_timeouts: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
        }
    }

    /// Counts an `error` frame sent with `code`.
    pub(crate) fn count_refusal(&self, code: ErrorCode) {
        let name = serde_json::to_value(code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "other".to_owned());
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        *refused.entry(name).or_default() += 1;
    }

    /// Counts a connection dropped as a slow consumer.
    pub(crate) fn count_slow_consumer(&self) {
        self.slow_consumers.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an upgrade answered 503.
    pub(crate) fn count_unavailable(&self) {
        self.unavailable.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an upgrade answered 429 (the client address at its connection cap).
    pub(crate) fn count_client_limited(&self) {
        self.client_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection closed by the header timeout.
    pub(crate) fn count_header_timeout(&self) {
        self.header_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection shed at the open-file limit.
    pub(crate) fn count_shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed `accept`.
    pub(crate) fn count_accept_error(&self) {
        self.accept_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub(crate) fn health(&self) -> Health {
        Health {
            status: if self.is_shutting_down() {
                "shutting_down"
            } else {
                "ok"
            },
            connections: *self.connections.borrow(),
            publishers: self.publishers.load(Ordering::Relaxed),
            viewers: self.viewers.load(Ordering::Relaxed),
            broker: self.broker.counts(),
            refused: self
                .refused
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            slow_consumers: self.slow_consumers.load(Ordering::Relaxed),
            unavailable: self.unavailable.load(Ordering::Relaxed),
            client_limited: self.client_limited.load(Ordering::Relaxed),
            client_addresses: self.clients.len(),
            header_timeouts: self.header_timeouts.load(Ordering::Relaxed),
            shed: self.shed.load(Ordering::Relaxed),
            accept_errors: self.accept_errors.load(Ordering::Relaxed),
        }
    }

    /// Counts a connection that said `hello` as `role`, until the guard drops.
    pub(crate) fn count_role(self: &Arc<Self>, role: Role) -> RoleGuard {
        self.role_counter(role).fetch_add(1, Ordering::Relaxed);
        RoleGuard {
            shared: Arc::clone(self),
            role,
        }
    }

    fn role_counter(&self, role: Role) -> &AtomicUsize {
        match role {
            Role::Publisher => &self.publishers,
            Role::Viewer => &self.viewers,
        }
    }

    /// Reserves a connection slot, unless the relay is full.
    pub(crate) fn reserve(self: &Arc<Self>) -> Option<Slot> {
        let max = self.config.limits.max_connections;
        let reserved = self.connections.send_if_modified(|n| {
            let room = *n < max;
            if room {
                *n += 1;
            }
            room
        });
        reserved.then(|| Slot(Arc::clone(self)))
    }
}

/// A connection slot; frees itself when the connection ends.
pub(crate) struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Counts a connection under its role while it lives.
pub(crate) struct RoleGuard {
    shared: Arc<Shared>,
    role: Role,
}

impl Drop for RoleGuard {
    fn drop(&mut self) {
        self.shared
            .role_counter(self.role)
            .fetch_sub(1, Ordering::Relaxed);
    }
}
