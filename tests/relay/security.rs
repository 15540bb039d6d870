//! Who may do what: publish tokens per stream and prefix, viewers never publish, origins.

use super::*;

#[tokio::test]
async fn a_bad_publish_token_is_refused_at_hello() {
    let relay = start(config()).await;
    let refused = RelayPublisher::connect(&relay.url(), "guess")
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            relive::relay::RelayError::Refused {
                code: ErrorCode::Unauthorized,
                ..
            }
        ),
        "{refused}"
    );
    assert_eq!(relay.health().publishers, 0);
}

#[tokio::test]
async fn a_token_only_publishes_the_streams_its_rule_covers() {
    let config = config()
        .publish_token("cam-9", "nine-only")
        .publish_token("mic-*", "mics");
    let relay = start(config).await;
    let (mut v, _) = viewer(&relay, &cam(1)).await;
    let mut mics = Raw::publisher(&relay, "mics").await;
    mics.send(r#"{"type":"publish","stream":"cam-1"}"#).await;
    assert!(!mics.error(ErrorCode::Unauthorized).await);
    mics.send(r#"{"type":"publish","stream":"other"}"#).await;
    assert!(
        !mics.error(ErrorCode::Forbidden).await,
        "no rule: nobody publishes it"
    );
    // The most specific rule wins: the cam-* token cannot publish cam-9.
    let mut cams = Raw::publisher(&relay, TOKEN).await;
    cams.send(r#"{"type":"publish","stream":"cam-9"}"#).await;
    assert!(!cams.error(ErrorCode::Unauthorized).await);
    cams.send(r#"{"type":"publish","stream":"cam-1"}"#).await;
    let publish = next_event(&mut v, "publish", |e| e.live_stream().is_some()).await;
    assert!(matches!(publish, RelayEvent::Publish { stream, .. } if stream == cam(1)));
    assert_eq!(
        relay.health().broker.live,
        1,
        "only the allowed publish went through"
    );
}

#[tokio::test]
async fn a_viewer_can_never_publish() {
    let relay = start(config()).await;
    let (mut watcher, _) = viewer(&relay, &cam(1)).await;
    let mut raw = Raw::connect(&relay).await;
    let hello = format!(r#"{{"type":"hello","v":1,"role":"viewer","token":"{TOKEN}"}}"#);
    raw.send(&hello).await;
    assert!(matches!(raw.frame().await, ServerFrame::Welcome { .. }));
    raw.send(r#"{"type":"publish","stream":"cam-1","details":{}}"#)
        .await;
    assert!(!raw.error(ErrorCode::Forbidden).await);
    raw.send(r#"{"type":"close","stream":"cam-1"}"#).await;
    assert!(!raw.error(ErrorCode::Forbidden).await);
    assert_eq!(relay.health().broker.live, 0);
    // The watcher heard nothing: the next thing it sees is a real publisher.
    let publisher = RelayPublisher::connect(&relay.url(), TOKEN).await.unwrap();
    publisher.publish(&cam(1), &details("real")).await.unwrap();
    let first = next_event(&mut watcher, "any event", |_| true).await;
    assert!(matches!(first, RelayEvent::Publish { details: d, .. } if d == details("real")));
}

#[tokio::test]
async fn publishers_cannot_view_and_close_only_what_they_publish() {
    let relay = start(config()).await;
    let mut raw = Raw::publisher(&relay, TOKEN).await;
    raw.send(r#"{"type":"view","stream":"cam-1"}"#).await;
    assert!(!raw.error(ErrorCode::Forbidden).await);
    raw.send(r#"{"type":"close","stream":"cam-1"}"#).await;
    assert!(!raw.error(ErrorCode::NotPublisher).await);
    raw.alive().await;
}

#[tokio::test]
async fn origins_off_the_allow_list_are_refused_before_the_upgrade() {
    let mut config = config();
    config.allowed_origins = vec!["https://player.example".to_owned()];
    let relay = start(config).await;
    let refused = RelayPublisher::connect_with(&relay.url(), TOKEN, Some("https://evil.example"))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("403"), "{refused}");
    let url = relay.url();
    let allowed = RelayPublisher::connect_with(&url, TOKEN, Some("https://player.example"));
    assert!(allowed.await.is_ok());
    // Not a browser (no Origin): let in, the token still decides.
    assert!(RelayPublisher::connect(&relay.url(), TOKEN).await.is_ok());
}

/// A refusal that will be refused again is not retried: the client says why and stops, instead
/// of knocking for ever.
#[tokio::test]
async fn a_relay_client_refused_for_its_origin_gives_up_instead_of_retrying() {
    let mut config = config();
    config.allowed_origins = vec!["https://player.example".to_owned()];
    let relay = start(config).await;
    let mut client = RelayClient::builder(relay.url())
        .origin("https://evil.example")
        .stream(cam(1))
        .spawn();
    let first = timeout(PATIENCE, client.next()).await.unwrap();
    assert!(
        matches!(
            first,
            Some(RelayEvent::GaveUp {
                error: relive::relay::RelayError::Http(403)
            })
        ),
        "{first:?}"
    );
    assert!(
        timeout(PATIENCE, client.next()).await.unwrap().is_none(),
        "the client ended"
    );
}
