//! `GET /metrics`: the relay's counts in the Prometheus text format, through the `metrics`
//! facade's handles on a [`PrometheusRecorder`] that each server owns.
//!
//! Why no global recorder: `metrics::set_global_recorder` can be called once per process, and
//! tests (and applications) run several relays in one process; a global one would mix their
//! figures. So each [`Shared`](super::shared::Shared) builds its own recorder and registers its
//! handles on it through the facade's [`Recorder`] trait (no macro, no global).
//!
//! One place for every count: the counters `/healthz` reports live in `Shared` (atomics) and
//! are copied into the recorder when `/metrics` is rendered ([`Counter::absolute`]), so both
//! endpoints always agree. The fan-out latency histogram is the only series recorded as it
//! happens; its samples are folded into buckets at each render and by [`Metrics::upkeep`],
//! which the server runs every few seconds so that an unscraped relay does not accumulate
//! them.

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::relay::shared::Health;

/// The fan-out histogram's name.
const FANOUT: &str = "relay_fanout_seconds";

/// Bucket bounds of the fan-out latency, in seconds: 50 µs to 1 s.
const FANOUT_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// Every series: name, help, and whether it is a counter (else a gauge). The histogram is
/// described on its own.
const SERIES: [(&str, &str, bool); 17] = [
    ("relay_connections", "Open WebSocket connections.", false),
    (
        "relay_publishers",
        "Connections that said hello as publishers.",
        false,
    ),
    (
        "relay_viewers",
        "Connections that said hello as viewers.",
        false,
    ),
    (
        "relay_views",
        "Viewer subscriptions over all streams.",
        false,
    ),
    (
        "relay_streams",
        "Streams tracked (live, viewed, or both).",
        false,
    ),
    (
        "relay_live_streams",
        "Streams with a live publisher.",
        false,
    ),
    (
        "relay_client_addresses",
        "Client addresses with an open connection.",
        false,
    ),
    (
        "relay_refusals_total",
        "Error frames sent, by code (rate_limited is the rate limit).",
        true,
    ),
    (
        "relay_slow_consumers_total",
        "Connections kicked because they did not read.",
        true,
    ),
    (
        "relay_unavailable_total",
        "Upgrades answered 503 (relay full or shutting down).",
        true,
    ),
    (
        "relay_client_limited_total",
        "Upgrades answered 429 (the client address at its connection cap).",
        true,
    ),
    (
        "relay_header_timeouts_total",
        "TCP connections closed without a complete request head in time.",
        true,
    ),
    (
        "relay_shed_total",
        "Connections waiting for a request head closed at the open-file limit.",
        true,
    ),
    (
        "relay_accept_errors_total",
        "Failed accept calls (EMFILE at the open-file limit, aborted connections).",
        true,
    ),
    (
        "relay_broker_dropped_total",
        "Events a multi-node broker dropped because its queue was full.",
        true,
    ),
    (
        "relay_broker_disconnects_total",
        "Times a multi-node broker lost its shared store (Redis).",
        true,
    ),
    (
        "relay_broker_reconnects_total",
        "Times a multi-node broker connected to its shared store again.",
        true,
    ),
];

/// One relay's recorder and the handles it renders.
pub(crate) struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    fanout: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Metadata for handles registered by hand (the facade's macros would fill it in).
fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

impl Metrics {
    /// A recorder of its own, with the series described.
    pub(crate) fn new() -> Self {
        // It fails only for an empty bucket list, which this is not; if it ever did, the
        // histogram would render as a summary instead.
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(FANOUT.to_owned()),
                &FANOUT_BUCKETS,
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        for (name, help, counter) in SERIES {
            if counter {
                recorder.describe_counter(KeyName::from(name), None, help.into());
            } else {
                recorder.describe_gauge(KeyName::from(name), None, help.into());
            }
        }
        recorder.describe_histogram(
            KeyName::from(FANOUT),
            Some(Unit::Seconds),
            "From a publish frame's arrival to its hand-off to the last viewer queue here.".into(),
        );
        let fanout = recorder.register_histogram(&Key::from_name(FANOUT), &metadata());
        let handle = recorder.handle();
        Metrics {
            recorder,
            handle,
            fanout,
        }
    }

    /// A publish's fan-out took `seconds`.
    pub(crate) fn observe_fanout(&self, seconds: f64) {
        self.fanout.record(seconds);
    }

    /// Folds the histogram's pending samples into its buckets.
    pub(crate) fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &metadata())
    }

    fn gauge(&self, name: &'static str) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_name(name), &metadata())
    }

    /// The text of `GET /metrics` for these counts.
    pub(crate) fn render(&self, health: &Health) -> String {
        let gauges = [
            ("relay_connections", health.connections),
            ("relay_publishers", health.publishers),
            ("relay_viewers", health.viewers),
            ("relay_views", health.broker.views),
            ("relay_streams", health.broker.streams),
            ("relay_live_streams", health.broker.live),
            ("relay_client_addresses", health.client_addresses),
        ];
        for (name, value) in gauges {
            // Counts far below 2^53: exact as f64.
            #[allow(clippy::cast_precision_loss)]
            self.gauge(name).set(value as f64);
        }
        let counters = [
            ("relay_slow_consumers_total", health.slow_consumers),
            ("relay_unavailable_total", health.unavailable),
            ("relay_client_limited_total", health.client_limited),
            ("relay_header_timeouts_total", health.header_timeouts),
            ("relay_shed_total", health.shed),
            ("relay_accept_errors_total", health.accept_errors),
            ("relay_broker_dropped_total", health.broker.dropped),
            ("relay_broker_disconnects_total", health.broker.disconnects),
            ("relay_broker_reconnects_total", health.broker.reconnects),
        ];
        for (name, value) in counters {
            self.counter(name, Vec::new()).absolute(value);
        }
        for (code, count) in &health.refused {
            let labels = vec![Label::new("code", code.clone())];
            self.counter("relay_refusals_total", labels)
                .absolute(*count);
        }
        self.handle.render()
    }
}
