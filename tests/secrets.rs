//! Tokens and JWTs never reach logs, `Debug` or errors: a full session, traced
//! at TRACE level for every crate, with a refused token, a refresh, a reconnect
//! and a stop.
#![allow(clippy::unwrap_used)] // test helpers fail loudly, like the tests
#![cfg(all(feature = "millicast", feature = "testkit"))]

mod support;

use std::time::Duration;

use relive::millicast::MillicastSource;
use relive::testkit::millicast::MillicastServer;
use relive::{Policy, Reconnector, State};
use support::Watch;

const OLD_TOKEN: &str = "subscribe-token-OLD-5f1d2c";
const NEW_TOKEN: &str = "subscribe-token-NEW-93ab7e";

#[tokio::test]
async fn tokens_and_jwts_appear_in_no_log_debug_or_error() {
    let captured = support::CapturedLogs::install();

    let server = MillicastServer::builder()
        .secure_token(NEW_TOKEN)
        .start()
        .await
        .unwrap();
    server.publish("cam");
    let source = MillicastSource::new(server.account_id(), "cam")
        .director_url(server.director_url())
        .token(OLD_TOKEN)
        .token_refresher(|| async { Some(NEW_TOKEN.to_owned()) });
    let source_debug = format!("{source:?}");
    let policy = Policy::builder().progress_watchdog(false).build().unwrap();
    let mut w = Watch::new(Reconnector::new(source, policy).spawn());
    w.until_playing().await;
    server.drop_all_sockets();
    w.until_state("reconnecting", |s| !s.is_playing()).await;
    w.until_playing().await;
    w.viewer.stop().await;
    assert_eq!(w.viewer.state(), State::Idle);
    // The server's own JWT, to know what one looks like here.
    let jwt = fetch_jwt(&server).await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let log = captured.text();
    assert!(log.contains("state"), "the capture works: {log}");
    assert!(log.contains("viewer{stream="), "a span per viewer: {log}");
    let everything = format!(
        "{log}\n{source_debug}\n{}\n{}",
        w.dump(),
        w.errors.join("\n")
    );
    for secret in [OLD_TOKEN, NEW_TOKEN, jwt.as_str(), "token=", "Bearer "] {
        assert!(
            !everything.contains(secret),
            "{secret:?} leaked:\n{everything}"
        );
    }
    // Every JWT segment starts with base64 of `{"`.
    assert!(!everything.contains("eyJ"), "a JWT leaked:\n{everything}");
}

async fn fetch_jwt(server: &MillicastServer) -> String {
    let body = serde_json::json!({"streamAccountId": server.account_id(), "streamName": "cam"});
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/director/subscribe", server.director_url()))
        .bearer_auth(NEW_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwt = answer["data"]["jwt"].as_str().unwrap().to_owned();
    assert!(jwt.starts_with("eyJ"), "{jwt}");
    jwt
}
