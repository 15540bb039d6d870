//! Three relay nodes sharing stream state through a real Redis, over real sockets on
//! 127.0.0.1. Each test starts its own `redis-server` (it must be installed: the tests fail
//! with the install line otherwise) and its own nodes.
#![cfg(feature = "relay-redis")]
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub, dead_code)]

mod cluster;
mod leaks;
mod redis_cluster;
#[path = "../support/mod.rs"]
mod support;

use relive::relay::protocol::ServerFrame;
use relive::relay::{CloseReason, ErrorCode, RelayEvent, RelayPublisher};
use tokio::time::timeout;

use cluster::*;

#[tokio::test]
async fn a_publisher_on_one_node_reaches_viewers_on_the_others_then_closes() {
    let redis = Redis::start().await;
    let (a, b, c) = (
        Node::start(&redis).await,
        Node::start(&redis).await,
        Node::start(&redis).await,
    );
    let (mut on_b, now_b) = viewer(&b.url(), &cam(1)).await;
    let (mut on_c, now_c) = viewer(&c.url(), &cam(1)).await;
    assert_eq!((now_b, now_c), (None, None), "not live yet");
    let publisher = RelayPublisher::connect(&a.url(), TOKEN).await.unwrap();
    publisher.publish(&cam(1), &details("live")).await.unwrap();
    live_with(&mut on_b, &details("live")).await;
    live_with(&mut on_c, &details("live")).await;
    publisher
        .publish(&cam(1), &details("second"))
        .await
        .unwrap();
    for v in [&mut on_b, &mut on_c] {
        let update = next_event(v, "update", |e| matches!(e, RelayEvent::Update { .. })).await;
        assert!(matches!(update, RelayEvent::Update { details: d, .. } if d == details("second")));
    }
    publisher.close(&cam(1)).await.unwrap();
    for v in [&mut on_b, &mut on_c] {
        let close = next_event(v, "close", |e| matches!(e, RelayEvent::Close { .. })).await;
        let unpublished = CloseReason::Unpublished;
        assert!(matches!(close, RelayEvent::Close { reason, .. } if reason == unpublished));
    }
    assert_eq!(b.relay.health().broker.live, 0);
}

#[tokio::test]
async fn a_late_viewer_on_another_node_gets_the_current_details_from_the_key() {
    let redis = Redis::start().await;
    let (a, b, c) = (
        Node::start(&redis).await,
        Node::start(&redis).await,
        Node::start(&redis).await,
    );
    let (mut witness, _) = viewer(&b.url(), &cam(2)).await;
    let publisher = RelayPublisher::connect(&a.url(), TOKEN).await.unwrap();
    publisher.publish(&cam(2), &details("first")).await.unwrap();
    publisher
        .publish(&cam(2), &details("current"))
        .await
        .unwrap();
    // The key is written in the same Lua script that publishes the event: once the viewer on
    // B has the event, the key holds it.
    live_with(&mut witness, &details("current")).await;
    let (_late, now) = viewer(&c.url(), &cam(2)).await;
    assert_eq!(now, Some(details("current")));
    assert_eq!(c.relay.health().broker.live, 1);
}

/// The dead node is a child process of the `relive-relay` binary, killed with SIGKILL: no
/// close, no cleanup, its key just stops being refreshed.
#[tokio::test]
async fn a_killed_node_s_streams_close_as_publisher_lost_on_every_node() {
    let redis = Redis::start().await;
    let mut a = ChildNode::start(&redis).await;
    let (b, c) = (Node::start(&redis).await, Node::start(&redis).await);
    let (mut on_b, _) = viewer(&b.url(), &cam(3)).await;
    let (mut on_c, _) = viewer(&c.url(), &cam(3)).await;
    let publisher = RelayPublisher::connect(&a.url, TOKEN).await.unwrap();
    publisher.publish(&cam(3), &details("live")).await.unwrap();
    live_with(&mut on_b, &details("live")).await;
    live_with(&mut on_c, &details("live")).await;
    a.child.start_kill().unwrap();
    a.child.wait().await.unwrap();
    for v in [&mut on_b, &mut on_c] {
        let close = next_event(v, "close", |e| matches!(e, RelayEvent::Close { .. })).await;
        let lost = CloseReason::PublisherLost;
        assert!(matches!(close, RelayEvent::Close { reason, .. } if reason == lost));
    }
    // No wall-clock bound on when: the claim is that the close comes at all, with its reason,
    // from a node that closed nothing itself. How soon is the broker's `close_bound` (TTL plus
    // heartbeat), arithmetic that a loaded shared machine cannot time.
}

#[tokio::test]
async fn after_a_redis_restart_viewers_on_other_nodes_get_the_next_update_and_close() {
    let redis = Redis::start().await;
    let port = redis.port();
    let (a, b, c) = (
        Node::start(&redis).await,
        Node::start(&redis).await,
        Node::start(&redis).await,
    );
    let (mut on_b, _) = viewer(&b.url(), &cam(4)).await;
    let (mut on_c, _) = viewer(&c.url(), &cam(4)).await;
    let publisher = RelayPublisher::connect(&a.url(), TOKEN).await.unwrap();
    publisher
        .publish(&cam(4), &details("before"))
        .await
        .unwrap();
    live_with(&mut on_b, &details("before")).await;
    live_with(&mut on_c, &details("before")).await;
    redis.kill().await;
    // Local service goes on while Redis is away.
    let (_on_a, now) = viewer(&a.url(), &cam(4)).await;
    assert_eq!(now, Some(details("before")));
    let redis = Redis::start_on(port).await;
    for node in [&a, &b, &c] {
        timeout(PATIENCE, node.broker.connected()).await.unwrap();
        // Counted for /metrics: one drop, one reconnect (the count follows the flag closely).
        let counted = async {
            loop {
                let counts = relive::relay::Broker::counts(&*node.broker);
                if counts.reconnects > 0 {
                    break (counts.disconnects, counts.reconnects);
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        assert_eq!(timeout(PATIENCE, counted).await.unwrap(), (1, 1));
    }
    publisher.publish(&cam(4), &details("after")).await.unwrap();
    live_with(&mut on_b, &details("after")).await;
    live_with(&mut on_c, &details("after")).await;
    publisher.close(&cam(4)).await.unwrap();
    closed(&mut on_b).await;
    closed(&mut on_c).await;
    drop(redis);
}

/// Last writer wins: the second publisher takes a higher fencing epoch (`INCR`) and every
/// node follows it; the first one is told `replaced`.
#[tokio::test]
async fn of_two_publishers_on_two_nodes_the_last_one_wins_and_the_first_is_told() {
    let redis = Redis::start().await;
    let (a, b, c) = (
        Node::start(&redis).await,
        Node::start(&redis).await,
        Node::start(&redis).await,
    );
    let (mut on_c, _) = viewer(&c.url(), &cam(5)).await;
    let (mut on_a, _) = viewer(&a.url(), &cam(5)).await;
    let mut first = RelayPublisher::connect(&a.url(), TOKEN).await.unwrap();
    first.publish(&cam(5), &details("first")).await.unwrap();
    live_with(&mut on_c, &details("first")).await;
    let second = RelayPublisher::connect(&b.url(), TOKEN).await.unwrap();
    second.publish(&cam(5), &details("second")).await.unwrap();
    live_with(&mut on_c, &details("second")).await;
    live_with(&mut on_a, &details("second")).await;
    let replaced = timeout(PATIENCE, async {
        loop {
            match first.next_frame().await {
                Some(ServerFrame::Error { code, .. }) => return code,
                Some(_) => {}
                None => panic!("the first publisher was dropped instead of told"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(replaced, ErrorCode::Replaced);
    // The loser's close changes nothing: the stream stays live with the winner's details.
    first.close(&cam(5)).await.unwrap();
    second.publish(&cam(5), &details("still")).await.unwrap();
    let next = next_event(&mut on_c, "next event", |_| true).await;
    assert!(matches!(next, RelayEvent::Update { details: d, .. } if d == details("still")));
}

/// Redis unreachable from the start (nothing listens on its port): the node serves its own
/// publishers and viewers, keeps retrying, and `/healthz` reports the `dropped` count.
#[tokio::test]
async fn a_node_without_redis_still_serves_its_own_publishers_and_viewers() {
    let port = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let node = Node::start_with(&format!("redis://127.0.0.1:{port}")).await;
    assert!(!node.broker.is_connected());
    let (mut on_node, now) = viewer(&node.url(), &cam(6)).await;
    assert_eq!(now, None);
    let publisher = RelayPublisher::connect(&node.url(), TOKEN).await.unwrap();
    publisher.publish(&cam(6), &details("local")).await.unwrap();
    live_with(&mut on_node, &details("local")).await;
    let (_late, now) = viewer(&node.url(), &cam(6)).await;
    assert_eq!(now, Some(details("local")));
    publisher.close(&cam(6)).await.unwrap();
    closed(&mut on_node).await;
    let health = format!("http://{}/healthz", node.relay.addr());
    let health: serde_json::Value = reqwest::get(health).await.unwrap().json().await.unwrap();
    assert_eq!(health["dropped"], 0, "{health}");
    assert!(!node.broker.is_connected());
}

/// The heartbeat keeps a live stream's key alive: two TTLs later, no `close` reached the viewer
/// on another node and a late viewer still gets the details from the key.
#[tokio::test]
async fn a_live_stream_outlives_its_ttl_while_its_node_refreshes_the_key() {
    use futures::StreamExt;
    let redis = Redis::start().await;
    let (a, b, c) = (
        Node::start(&redis).await,
        Node::start(&redis).await,
        Node::start(&redis).await,
    );
    let (mut on_b, _) = viewer(&b.url(), &cam(7)).await;
    let publisher = RelayPublisher::connect(&a.url(), TOKEN).await.unwrap();
    publisher.publish(&cam(7), &details("live")).await.unwrap();
    live_with(&mut on_b, &details("live")).await;
    // Two TTLs pass; the key is seen alive (refreshed) all along, on Redis itself.
    let key = "relive:{cam-7}:live";
    let since = tokio::time::Instant::now();
    let mut refreshed = 0;
    let mut last = redis.pttl(key).await;
    while since.elapsed() < TTL * 2 + HEARTBEAT {
        tokio::time::sleep(HEARTBEAT / 2).await;
        let ttl = redis.pttl(key).await;
        assert!(ttl > 0, "the live key lapsed (PTTL {ttl})");
        refreshed += usize::from(ttl > last);
        last = ttl;
    }
    assert!(refreshed >= 2, "the key was refreshed {refreshed} times");
    // The next thing the viewer on B hears is this update: no `close` came before it.
    publisher.publish(&cam(7), &details("later")).await.unwrap();
    match timeout(PATIENCE, on_b.next()).await {
        Ok(Some(
            RelayEvent::Publish { details: d, .. } | RelayEvent::Update { details: d, .. },
        )) => {
            assert_eq!(d, details("later"));
        }
        other => panic!("expected the update first, got {other:?}"),
    }
    let (_late, now) = viewer(&c.url(), &cam(7)).await;
    assert_eq!(now, Some(details("later")));
}

/// The close reaches Redis when it is back — replayed by the publisher's node as an event and
/// a tombstone key — so viewers elsewhere hear `unpublished`, not the TTL's `publisher_lost`.
#[tokio::test]
async fn a_close_made_while_redis_is_away_reaches_the_other_nodes_as_unpublished() {
    let redis = Redis::start().await;
    let port = redis.port();
    let (a, b) = (Node::start(&redis).await, Node::start(&redis).await);
    let (mut on_b, _) = viewer(&b.url(), &cam(8)).await;
    let mut publisher = RelayPublisher::connect(&a.url(), TOKEN).await.unwrap();
    publisher.publish(&cam(8), &details("live")).await.unwrap();
    live_with(&mut on_b, &details("live")).await;
    redis.kill().await;
    publisher.close(&cam(8)).await.unwrap();
    // Answered after the close on the same socket: node A has applied it.
    let ping = relive::relay::protocol::ClientFrame::Ping { id: Some(9) };
    publisher.send(ping).await.unwrap();
    let pong = timeout(PATIENCE, publisher.next_frame()).await.unwrap();
    assert_eq!(pong, Some(ServerFrame::Pong { id: Some(9) }));
    let _redis = Redis::start_on(port).await;
    let close = next_event(&mut on_b, "close", |e| {
        matches!(e, RelayEvent::Close { .. })
    })
    .await;
    let unpublished = CloseReason::Unpublished;
    assert!(
        matches!(close, RelayEvent::Close { reason, .. } if reason == unpublished),
        "{close:?}"
    );
}
