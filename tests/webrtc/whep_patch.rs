//! The testkit's WHEP `PATCH` (ICE restart, RFC 9725 §4.3) as any WHEP client sees it, over
//! raw HTTP: a 201 carries an `ETag`; a restart fragment with `If-Match` is answered 200 with
//! the publisher's new credentials and a new tag; every wrong request gets its status.

use relive::offer::{OfferProvider, PendingOffer};
use relive::testkit::millicast::MillicastServer;
use reqwest::header;

use crate::{CAM, peers};

const FRAG: &str = "application/trickle-ice-sdpfrag";
const BODY: &str = "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
    a=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n\
    a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n";

/// A created resource: its URL and the `ETag` of the 201.
async fn created(server: &MillicastServer, http: &reqwest::Client) -> (String, String) {
    let offer = peers().create_offer(&[]).await.unwrap();
    let response = http
        .post(server.whep_url(CAM))
        .header(header::CONTENT_TYPE, "application/sdp")
        .body(offer.sdp().to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()[header::LOCATION].to_str().unwrap();
    let etag = response.headers()[header::ETAG]
        .to_str()
        .unwrap()
        .to_owned();
    (format!("http://{}{location}", server.addr()), etag)
}

async fn patch(
    http: &reqwest::Client,
    url: &str,
    content_type: &str,
    if_match: Option<&str>,
    body: &str,
) -> reqwest::Response {
    let mut request = http
        .patch(url)
        .header(header::CONTENT_TYPE, content_type)
        .body(body.to_owned());
    if let Some(tag) = if_match {
        request = request.header(header::IF_MATCH, tag);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn an_ice_restart_is_answered_with_new_credentials_and_a_new_tag() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let http = reqwest::Client::new();
    let (url, etag) = created(&server, &http).await;
    let response = patch(&http, &url, FRAG, Some(&etag), BODY).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[header::CONTENT_TYPE], FRAG);
    let new_tag = response.headers()[header::ETAG]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_tag, etag);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("a=ice-ufrag:") && body.contains("a=ice-pwd:"),
        "{body}"
    );
    assert!(
        body.contains("a=candidate:") && body.contains("a=mid:0"),
        "{body}"
    );
    // The old tag is stale now; `*` matches any.
    let stale = patch(&http, &url, FRAG, Some(&etag), BODY).await;
    assert_eq!(stale.status(), 412);
    let any = patch(&http, &url, FRAG, Some("*"), BODY).await;
    assert_eq!(any.status(), 200);
    assert_eq!(server.whep_patches(), 3);
    assert_eq!(server.whep_requests(), 1, "a PATCH is not a POST");
}

#[tokio::test]
async fn wrong_patches_get_their_status_and_change_nothing() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let http = reqwest::Client::new();
    let (url, etag) = created(&server, &http).await;
    let tag = Some(etag.as_str());
    let cases = [
        (patch(&http, &url, "application/sdp", tag, BODY).await, 415),
        (patch(&http, &url, FRAG, None, BODY).await, 428),
        (patch(&http, &url, FRAG, Some("\"other\""), BODY).await, 412),
        (
            patch(&http, &url, FRAG, tag, "a=candidate:garbage\r\n").await,
            400,
        ),
        (
            patch(&http, &url, FRAG, tag, &"a=x\r\n".repeat(5000)).await,
            413,
        ),
        (
            patch(&http, &format!("{url}9999"), FRAG, Some("*"), BODY).await,
            404,
        ),
    ];
    for (response, status) in cases {
        assert_eq!(response.status(), status, "{response:?}");
    }
    // The tag is unchanged: nothing restarted.
    assert_eq!(patch(&http, &url, FRAG, tag, BODY).await.status(), 200);
    // A server without ICE restart, until healed.
    server.refuse_whep_patch(Some(501));
    assert_eq!(
        patch(&http, &url, FRAG, Some("*"), BODY).await.status(),
        501
    );
    server.refuse_whep_patch(None);
    assert_eq!(
        patch(&http, &url, FRAG, Some("*"), BODY).await.status(),
        200
    );
    assert_eq!(server.whep_sessions(CAM), 1);
}
