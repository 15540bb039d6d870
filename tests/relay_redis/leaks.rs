//! Nothing a view leaves behind in Redis: views the stream table refuses never subscribe, and
//! every subscription ends with the last view of its stream.

use relive::relay::{ErrorCode, RelayClient, RelayEvent};

use crate::cluster::*;

#[tokio::test]
async fn refused_and_ended_views_leave_no_subscription_in_redis() {
    let redis = Redis::start().await;
    let node = Node::start_connected(&redis, 2).await;
    let mut client = RelayClient::builder(node.url());
    for n in 1..=6 {
        client = client.stream(cam(n));
    }
    let mut viewer = client.spawn();
    let (mut snapshots, mut refused) = (0, 0);
    while snapshots + refused < 6 {
        match next_event(&mut viewer, "snapshot or refusal", |e| {
            matches!(e, RelayEvent::Snapshot { .. } | RelayEvent::Refused { .. })
        })
        .await
        {
            RelayEvent::Snapshot { .. } => snapshots += 1,
            RelayEvent::Refused { code, .. } => {
                assert_eq!(code, ErrorCode::TooManyStreams);
                refused += 1;
            }
            _ => unreachable!(),
        }
    }
    assert_eq!((snapshots, refused), (2, 4), "max_streams is 2");
    let subscribed = ["relive:{cam-1}:events", "relive:{cam-2}:events"];
    redis.wait_channels("relive:*", &subscribed).await;
    let refused: Vec<String> = (3..=6)
        .map(|n| format!("relive:{{cam-{n}}}:events"))
        .collect();
    assert_eq!(redis.numsub(&refused).await, [0, 0, 0, 0]);
    drop(viewer);
    redis.wait_channels("relive:*", &[]).await;
    let all: Vec<String> = (1..=6)
        .map(|n| format!("relive:{{cam-{n}}}:events"))
        .collect();
    assert_eq!(redis.numsub(&all).await, [0; 6]);
    assert_eq!(node.relay.health().broker.streams, 0);
}
