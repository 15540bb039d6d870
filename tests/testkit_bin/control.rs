//! The control API plays the script's actions live; CORS lets a page elsewhere use it.

use serde_json::json;

use crate::child::{Testkit, is};
use crate::viewer;

#[tokio::test]
async fn control_requests_publish_and_close_sockets_with_a_close_frame() {
    let testkit = Testkit::start(&[]).await;
    let (status, answer) = testkit.control("publish", r#"{"stream":"cam"}"#).await;
    assert_eq!(
        (status, answer["ok"].clone()),
        (200, json!(true)),
        "{answer}"
    );
    let mut w = viewer(&testkit.base);
    w.until_playing().await;
    let view = testkit
        .until("an accepted view", 0, |r| {
            is(r, "view", &[("accepted", json!(true))])
        })
        .await;
    assert_eq!(testkit.control("close_sockets", "").await.0, 200);
    testkit
        .until("a close frame", view, |r| {
            is(r, "socket_closed", &[("how", json!("close_frame"))])
        })
        .await;
    testkit
        .until("the viewer back", view + 1, |r| {
            is(r, "view", &[("accepted", json!(true))])
        })
        .await;
}

#[tokio::test]
async fn a_bad_control_request_is_a_400_naming_the_action_or_field() {
    let testkit = Testkit::start(&[]).await;
    let (status, answer) = testkit.control("melt", "").await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("unknown variant `melt`"),
        "{answer}"
    );
    let (status, answer) = testkit.control("freeze", "").await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("missing field `stream`"),
        "{answer}"
    );
    let (status, _) = testkit
        .control("layers", r#"{"stream":"cam","active":"x"}"#)
        .await;
    assert_eq!(status, 400);
    let too_big = format!(r#"{{"stream":"cam","text":"{}"}}"#, "x".repeat(100_000));
    let response = reqwest::Client::new()
        .post(format!("{}/control/send_raw", testkit.base))
        .body(too_big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    // Nothing was played.
    assert!(!testkit.records().iter().any(|r| r["event"] == "action"));
}

#[tokio::test]
async fn a_preflight_from_another_origin_is_answered_and_whep_headers_are_exposed() {
    let testkit = Testkit::start(&["--publish", "cam"]).await;
    let client = reqwest::Client::new();
    for path in [
        "/api/director/subscribe",
        "/api/whep/testkit/cam",
        "/control/publish",
    ] {
        let response = client
            .request(reqwest::Method::OPTIONS, format!("{}{path}", testkit.base))
            .header("Origin", "http://player.localhost:3000")
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 204, "{path}");
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], "*", "{path}");
        assert_eq!(
            headers["access-control-allow-headers"],
            "authorization,content-type"
        );
        assert!(
            headers["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("DELETE")
        );
    }
    let response = client
        .post(format!("{}/api/director/subscribe", testkit.base))
        .header("Origin", "http://player.localhost:3000")
        .json(&json!({"streamAccountId": "testkit", "streamName": "cam"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    for name in ["Location", "ETag", "Link"] {
        assert!(exposed.contains(name), "{exposed}");
    }
}

#[tokio::test]
async fn a_whep_viewer_shows_its_post_peer_states_and_delete_in_the_log() {
    use relive::webrtc::WhepSource;
    let testkit = Testkit::start(&["--publish", "cam"]).await;
    let source = WhepSource::new(format!("{}/api/whep/testkit/cam", testkit.base));
    let policy = relive::Policy::builder().build().unwrap();
    let mut w = crate::support::Watch::new(relive::Reconnector::new(source, policy).spawn());
    w.until_playing().await;
    let post = testkit
        .until("a WHEP POST", 0, |r| {
            is(
                r,
                "whep",
                &[("method", json!("POST")), ("status", json!(201))],
            )
        })
        .await;
    let resource = testkit.records()[post]["resource"].clone();
    let session = json!(format!("whep-{resource}"));
    testkit
        .until("a connected peer", post, |r| {
            is(
                r,
                "peer",
                &[("session", session.clone()), ("state", json!("connected"))],
            )
        })
        .await;
    w.viewer.stop().await;
    testkit
        .until("the DELETE", post, |r| {
            is(
                r,
                "whep",
                &[
                    ("method", json!("DELETE")),
                    ("resource", resource.clone()),
                    ("status", json!(200)),
                ],
            )
        })
        .await;
    testkit
        .until("the peer ended", post, |r| {
            is(
                r,
                "peer",
                &[("session", session.clone()), ("state", json!("ended"))],
            )
        })
        .await;
}

#[tokio::test]
async fn busy_faults_answer_503_and_429_with_their_retry_after_then_heal() {
    let testkit = Testkit::start(&["--publish", "cam"]).await;
    let client = reqwest::Client::new();
    let subscribe = || {
        client
            .post(format!("{}/api/director/subscribe", testkit.base))
            .json(&serde_json::json!({"streamAccountId": "testkit", "streamName": "cam"}))
            .send()
    };
    let whep = || {
        client
            .post(format!("{}/api/whep/testkit/cam", testkit.base))
            .header("Content-Type", "application/sdp")
            .body("v=0\r\n")
            .send()
    };
    let (status, _) = testkit
        .control(
            "director_busy",
            r#"{"status":"unavailable","retry_after":4,"requests":1}"#,
        )
        .await;
    assert_eq!(status, 200);
    let busy = subscribe().await.unwrap();
    assert_eq!(busy.status().as_u16(), 503);
    assert_eq!(busy.headers()["retry-after"], "4");
    assert_eq!(
        subscribe().await.unwrap().status().as_u16(),
        200,
        "one request only"
    );

    let (status, _) = testkit
        .control(
            "whep_busy",
            r#"{"status":"too_many_requests","retry_after":30,"http_date":true}"#,
        )
        .await;
    assert_eq!(status, 200);
    for _ in 0..2 {
        let busy = whep().await.unwrap();
        assert_eq!(busy.status().as_u16(), 429);
        let date = busy.headers()["date"].to_str().unwrap().to_owned();
        let after = busy.headers()["retry-after"].to_str().unwrap().to_owned();
        assert!(after.ends_with(" GMT") && after != date, "{date} / {after}");
    }
    let (status, _) = testkit.control("whep_heal", "{}").await;
    assert_eq!(status, 200);
    assert_ne!(whep().await.unwrap().status().as_u16(), 429);
    let (status, answer) = testkit
        .control("director_busy", r#"{"status":"busy","retry_after":1}"#)
        .await;
    assert_eq!(status, 400, "{answer}");
}

/// A WHEP viewer with real media of `CAM` on the server at `base`, its media watched.
fn whep_viewer(base: &str) -> crate::support::Watch<relive::webrtc::WhepSource> {
    use std::time::Duration;
    let peers = relive::webrtc::ReceivePeers::new()
        .bind_ip(std::net::Ipv4Addr::LOCALHOST.into())
        .progress_every(Duration::from_millis(100));
    let source = relive::webrtc::WhepSource::new(format!("{base}/api/whep/testkit/{}", crate::CAM))
        .peers(peers)
        .request_timeout(Duration::from_secs(2));
    let policy = relive::Policy::builder()
        .stall_after(Duration::from_millis(600))
        .stall_grace(Duration::from_secs(30))
        .reconnect_spread(Duration::from_millis(100))
        .repair_within(Duration::from_secs(5))
        .build()
        .unwrap();
    crate::support::Watch::new(relive::Reconnector::new(source, policy).seed(5).spawn())
}

#[tokio::test]
async fn cut_media_paths_is_healed_by_a_patch_and_whep_refuse_patch_refuses_it() {
    let testkit = Testkit::start(&["--publish", "cam"]).await;
    let mut w = whep_viewer(&testkit.base);
    w.until_playing().await;
    let (status, answer) = testkit
        .control("cut_media_paths", r#"{"stream":"cam"}"#)
        .await;
    assert_eq!(status, 200, "{answer}");
    // The viewer restarts ICE on its resource: a PATCH answered 200, and no new POST.
    let patched = testkit
        .until("an ICE restart", 0, |r| {
            is(
                r,
                "whep",
                &[("method", json!("PATCH")), ("status", json!(200))],
            )
        })
        .await;
    let reason = w.until_playing().await;
    assert_eq!(reason, relive::Reason::Repaired, "{}", w.dump());
    let posts = |records: &[serde_json::Value]| {
        records
            .iter()
            .filter(|r| is(r, "whep", &[("method", json!("POST"))]))
            .count()
    };
    assert_eq!(posts(&testkit.records()), 1);
    // A server without ICE restart: the PATCH is refused, a new session replaces the cut one.
    let (status, _) = testkit
        .control("whep_refuse_patch", r#"{"status":405}"#)
        .await;
    assert_eq!(status, 200);
    testkit
        .control("cut_media_paths", r#"{"stream":"cam"}"#)
        .await;
    testkit
        .until("a refused ICE restart", patched + 1, |r| {
            is(
                r,
                "whep",
                &[("method", json!("PATCH")), ("status", json!(405))],
            )
        })
        .await;
    testkit
        .until("a new session", patched + 1, |r| {
            is(
                r,
                "whep",
                &[("method", json!("POST")), ("status", json!(201))],
            )
        })
        .await;
    let (status, answer) = testkit
        .control("whep_refuse_patch", r#"{"status":200}"#)
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("400 to 599"),
        "{answer}"
    );
}
