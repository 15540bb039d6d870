//! The Director proxy against the testkit Millicast server: the relay holds the account and the
//! subscribe token, the viewer gets `urls` and a `jwt`.
#![cfg(feature = "testkit")]

use relive::millicast::wire::jwt_stream_name;
use relive::relay::{DirectorConfig, RelayError, TokenRule};
use relive::testkit::millicast::MillicastServer;

use super::*;

async fn millicast() -> MillicastServer {
    MillicastServer::builder()
        .account("acct")
        .secure_token("sub-secret")
        .start()
        .await
        .unwrap()
}

fn proxied(server: &MillicastServer) -> RelayConfig {
    let mut director = DirectorConfig::new(server.director_url(), "acct");
    director.subscribe_tokens = vec![TokenRule {
        stream: "cam-*".to_owned(),
        token: relive::Secret::new("sub-secret"),
    }];
    let mut config = config();
    config.director = Some(director);
    config
}

#[tokio::test]
async fn the_relay_makes_the_director_call_and_hands_back_urls_and_jwt() {
    let server = millicast().await;
    server.publish("cam-1");
    let relay = start(proxied(&server)).await;
    let (client, _) = viewer(&relay, &cam(1)).await;
    let answer = client.director(cam(1)).await.unwrap();
    let expected = format!("ws://{}/ws/v2/sub/", server.addr());
    assert!(answer.urls[0].starts_with(&expected), "{:?}", answer.urls);
    assert_eq!(
        jwt_stream_name(answer.jwt.expose()).as_deref(),
        Some("cam-1")
    );
    assert!(answer.signaling_url().is_some());
    assert_eq!(server.director_requests(), 1);
    // The JWT is good for the signaling socket, like one the viewer got itself.
    let url = answer.signaling_url().unwrap();
    let opened = tokio_tungstenite::connect_async(url.expose()).await;
    assert!(opened.is_ok(), "the testkit accepted the relayed JWT");
}

#[tokio::test]
async fn director_failures_come_back_as_error_codes() {
    let server = millicast().await;
    let relay = start(proxied(&server)).await;
    let (client, _) = viewer(&relay, &cam(1)).await;
    let refused = client.director(cam(1)).await.unwrap_err();
    assert!(
        matches!(
            refused,
            RelayError::Refused {
                code: ErrorCode::NotPublished,
                ..
            }
        ),
        "{refused}"
    );
    // A stream without a subscribe token rule is requested unsecured: the Director says 401.
    let mic = StreamName::new("mic").unwrap();
    let refused = client.director(mic).await.unwrap_err();
    assert!(
        matches!(
            refused,
            RelayError::Refused {
                code: ErrorCode::DirectorUnauthorized,
                ..
            }
        ),
        "{refused}"
    );
    let plain = start(config()).await;
    let (client, _) = viewer(&plain, &cam(1)).await;
    let refused = client.director(cam(1)).await.unwrap_err();
    assert!(
        matches!(
            refused,
            RelayError::Refused {
                code: ErrorCode::DirectorNotConfigured,
                ..
            }
        ),
        "{refused}"
    );
}
