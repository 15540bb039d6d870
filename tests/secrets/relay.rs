//! The relay: publish tokens, subscribe tokens and relayed JWTs, with a refused token and a
//! Director call through the relay.

use futures::StreamExt;
use relive::Secret;
use relive::relay::{
    Details, DirectorConfig, RelayClient, RelayConfig, RelayEvent, RelayPublisher, RelayServer,
    StreamName, TokenRule,
};
use relive::testkit::millicast::MillicastServer;

use crate::assert_absent;
use crate::support::CapturedLogs;

const PUBLISH_TOKEN: &str = "publish-token-7c41aa";
const WRONG_TOKEN: &str = "wrong-token-e2210b";
const SUBSCRIBE_TOKEN: &str = "subscribe-token-0d93f1";

#[tokio::test]
async fn relay_tokens_and_relayed_jwts_appear_in_no_log_debug_or_error() {
    let captured = CapturedLogs::install();

    let millicast = MillicastServer::builder()
        .account("acct")
        .secure_token(SUBSCRIBE_TOKEN)
        .start()
        .await
        .unwrap();
    millicast.publish("cam-1");
    let mut director = DirectorConfig::new(millicast.director_url(), "acct");
    director.subscribe_tokens = vec![TokenRule {
        stream: "cam-*".to_owned(),
        token: Secret::new(SUBSCRIBE_TOKEN),
    }];
    let mut config = RelayConfig::default().publish_token("cam-*", PUBLISH_TOKEN);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.director = Some(director);
    let config_debug = format!("{config:?}");
    let relay = RelayServer::start(config).await.unwrap();

    let refused = RelayPublisher::connect(&relay.url(), WRONG_TOKEN)
        .await
        .unwrap_err();
    let cam = StreamName::new("cam-1").unwrap();
    let mut viewer = RelayClient::builder(relay.url())
        .stream(cam.clone())
        .spawn();
    let publisher = RelayPublisher::connect(&relay.url(), PUBLISH_TOKEN)
        .await
        .unwrap();
    publisher.publish(&cam, &Details::default()).await.unwrap();
    while let Some(event) = viewer.next().await {
        if let RelayEvent::Publish { .. } = event {
            break;
        }
    }
    let answer = viewer.director(cam.clone()).await.unwrap();
    let jwt = answer.jwt.expose().to_owned();
    let answer_debug = format!("{answer:?}");
    publisher.disconnect().await;
    relay.shutdown().await;

    let log = captured.text();
    assert!(
        log.contains("relay_conn{id="),
        "a span per connection: {log}"
    );
    assert!(log.contains("publish"), "the capture works: {log}");
    let everything = format!("{log}\n{config_debug}\n{refused}\n{refused:?}\n{answer_debug}");
    for secret in [
        PUBLISH_TOKEN,
        WRONG_TOKEN,
        SUBSCRIBE_TOKEN,
        &jwt,
        "Bearer ",
        "eyJ",
    ] {
        assert_absent(&everything, secret);
    }

    // Without the directives, tungstenite logs the `hello` frames (both sides) and the
    // relayed JWT.
    let unfiltered = CapturedLogs::unfiltered()
        .until("the hello frame and the relayed JWT", |log| {
            log.contains(&format!(r#""token":"{PUBLISH_TOKEN}""#)) && log.contains(&jwt)
        })
        .await;
    assert!(
        unfiltered
            .lines()
            .any(|l| l.contains("tungstenite::protocol: Received message")
                && l.contains(PUBLISH_TOKEN)),
        "{unfiltered}"
    );
}

/// A token sent where the protocol wants a number (`hello`'s `v`) is refused without being
/// repeated: not in the `error` frame, not in the INFO record of the refusal.
#[tokio::test]
async fn a_token_in_the_wrong_hello_field_is_not_echoed_by_the_refusal() {
    use futures::SinkExt;
    use relive::relay::ErrorCode;
    use relive::relay::protocol::{ServerFrame, parse_server_frame};
    use tokio_tungstenite::tungstenite::Message;

    const MISPLACED: &str = "misplaced-token-41c9e2";
    let captured = CapturedLogs::install();
    let mut config = RelayConfig::default().publish_token("cam-*", PUBLISH_TOKEN);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let relay = RelayServer::start(config).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(relay.url()).await.unwrap();
    let hello = format!(r#"{{"type":"hello","v":"{MISPLACED}","role":"publisher"}}"#);
    ws.send(Message::text(hello)).await.unwrap();
    let frame = loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => break parse_server_frame(text.as_str()).unwrap(),
            Some(Ok(_)) => {}
            other => panic!("no error frame: {other:?}"),
        }
    };
    let ServerFrame::Error { code, message, .. } = &frame else {
        panic!("expected an error, got {frame:?}");
    };
    assert_eq!(*code, ErrorCode::Malformed);
    relay.shutdown().await;
    let log = captured.text();
    assert!(log.contains("refused"), "the refusal is logged: {log}");
    assert!(log.contains("wrong type or value"), "{log}");
    assert_absent(&format!("{log}\n{message}\n{frame:?}"), MISPLACED);
}
