//! `/metrics`: the Prometheus text of each relay's own counts — two relays in one process do
//! not mix their figures — and the fan-out histogram after a publish.

use super::*;

/// `GET /metrics` as text.
async fn metrics(relay: &RelayServer) -> String {
    let url = format!("http://{}/metrics", relay.addr());
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    response.text().await.unwrap()
}

/// The value of the sample `series` in `text`; `None` when absent.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

#[tokio::test]
async fn each_relay_renders_its_own_counts_and_the_fanout_histogram() {
    let one = start(config()).await;
    let two = start(config()).await;
    let mut raw = Raw::viewer(&one).await;
    raw.send(r#"{"type":"teleport"}"#).await;
    assert!(!raw.error(ErrorCode::UnknownType).await);
    let (mut watcher, _) = viewer(&one, &cam(1)).await;
    let publisher = RelayPublisher::connect(&one.url(), TOKEN).await.unwrap();
    publisher.publish(&cam(1), &details("x")).await.unwrap();
    next_event(&mut watcher, "publish", |e| e.live_stream().is_some()).await;
    // The publish's fan-out is timed once the broker returns: poll until it shows.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let text = loop {
        let text = metrics(&one).await;
        if sample(&text, "relay_fanout_seconds_count") == Some(1.0) {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no fan-out sample:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        sample(&text, r#"relay_refusals_total{code="unknown_type"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "relay_connections"), Some(3.0), "{text}");
    assert_eq!(sample(&text, "relay_live_streams"), Some(1.0), "{text}");
    assert!(
        text.contains("# TYPE relay_fanout_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains(r#"relay_fanout_seconds_bucket{le="+Inf"} 1"#),
        "{text}"
    );
    // The other relay, in the same process, saw none of it.
    let other = metrics(&two).await;
    assert_eq!(
        sample(&other, r#"relay_refusals_total{code="unknown_type"}"#),
        None,
        "{other}"
    );
    assert_eq!(sample(&other, "relay_connections"), Some(0.0), "{other}");
    assert_eq!(
        sample(&other, "relay_fanout_seconds_count"),
        Some(0.0),
        "{other}"
    );
    // And /healthz agrees with /metrics.
    assert_eq!(one.health().refused.get("unknown_type"), Some(&1));
}
