//! Millicast: a full session with a refused token, a refresh, a reconnect and a stop.

use relive::millicast::MillicastSource;
use relive::testkit::millicast::MillicastServer;
use relive::{Policy, Reconnector, State};

use crate::assert_absent;
use crate::support::{CapturedLogs, Watch};

const OLD_TOKEN: &str = "subscribe-token-OLD-5f1d2c";
const NEW_TOKEN: &str = "subscribe-token-NEW-93ab7e";

#[tokio::test]
async fn tokens_and_jwts_appear_in_no_log_debug_or_error() {
    let captured = CapturedLogs::install();

    let server = MillicastServer::builder()
        .secure_token(NEW_TOKEN)
        .start()
        .await
        .unwrap();
    server.publish("secrets-cam");
    let source = MillicastSource::new(server.account_id(), "secrets-cam")
        .director_url(server.director_url())
        .token(OLD_TOKEN)
        .token_refresher(|| async { Some(NEW_TOKEN.to_owned()) });
    let source_debug = format!("{source:?}");
    let policy = Policy::builder().progress_watchdog(false).build().unwrap();
    let mut w = Watch::new(Reconnector::new(source, policy).spawn());
    w.until_playing().await;
    server.close_all_sockets();
    w.until_state("reconnecting", |s| !s.is_playing()).await;
    w.until_playing().await;
    w.viewer.stop().await;
    assert_eq!(w.viewer.state(), State::Idle);
    // The server's own JWT, to know what one looks like here.
    let jwt = fetch_jwt(&server).await;
    // The server has logged the end of every socket of the viewer: its side of each
    // session, close frames included, is in the capture.
    let sessions = w.sessions;
    assert!(sessions >= 2, "{}", w.dump());
    let log = captured
        .until("every viewer socket closed", |log| {
            let closed = log
                .lines()
                .filter(|l| l.contains("viewer socket closed") && l.contains("stream=secrets-cam"))
                .count();
            closed >= sessions
        })
        .await;
    assert!(log.contains("state"), "the capture works: {log}");
    assert!(log.contains("viewer{stream="), "a span per viewer: {log}");
    assert!(
        log.contains("tungstenite::handshake::client: Client handshake done."),
        "the `log` records of tungstenite below TRACE stay: {log}"
    );
    let everything = format!(
        "{log}\n{source_debug}\n{}\n{}",
        w.dump(),
        w.errors.join("\n")
    );
    // Every JWT segment starts with `eyJ`, base64 of `{"`; SDP carries ICE passwords.
    for secret in [
        OLD_TOKEN,
        NEW_TOKEN,
        &jwt,
        "token=",
        "Bearer ",
        "eyJ",
        "a=ice-pwd",
    ] {
        assert_absent(&everything, secret);
    }

    // Without the directives, tungstenite's handshake record holds the signaling JWT.
    CapturedLogs::unfiltered()
        .until("the signaling URL with its JWT", |log| {
            log.lines().any(|l| {
                l.contains("tungstenite::handshake::client: Request:")
                    && l.contains("/ws/v2/sub/")
                    && l.contains("?token=eyJ")
            })
        })
        .await;
}

async fn fetch_jwt(server: &MillicastServer) -> String {
    let body =
        serde_json::json!({"streamAccountId": server.account_id(), "streamName": "secrets-cam"});
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
