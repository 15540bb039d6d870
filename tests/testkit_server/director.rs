//! The Director: success, each failure shape, faults, hangs and the Host header.

use super::*;

#[tokio::test]
async fn success_gives_a_socket_url_on_the_request_host_and_a_fresh_jwt() {
    let server = MillicastServer::builder()
        .account("acct")
        .start()
        .await
        .unwrap();
    server.publish("cam");
    let first = director(&server, "cam").await.unwrap();
    let second = director(&server, "cam").await.unwrap();
    let prefix = format!("ws://{}/ws/v2/sub/", server.addr());
    assert!(first.urls[0].starts_with(&prefix), "{}", first.urls[0]);
    assert_ne!(first.jwt, second.jwt, "each call needs a fresh JWT");
    assert_eq!(jwt_stream_name(first.jwt.expose()).as_deref(), Some("cam"));
    assert_eq!(first.stream_account_id, "acct");
    assert!(first.ice_servers.is_empty());
    assert_eq!(server.director_requests(), 2);
}

#[tokio::test]
async fn not_published_is_400_with_the_documented_body() {
    let server = MillicastServer::start().await.unwrap();
    let (status, body) = director_call(&server.director_url(), "testkit", "cam", None).await;
    assert_eq!(status, 400);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status":"fail","data":{"message":"stream not being published"}})
    );
    server.publish("cam");
    server.unpublish("cam");
    assert!(matches!(
        director(&server, "cam").await,
        Err(DirectorFailure::NotPublished { status: 400, .. })
    ));
}

#[tokio::test]
async fn secured_stream_needs_the_bearer_token() {
    let server = MillicastServer::builder()
        .secure_token("s3cret")
        .start()
        .await
        .unwrap();
    server.publish("cam");
    let url = server.director_url();
    for bearer in [None, Some("wrong")] {
        let (status, body) = director_call(&url, "testkit", "cam", bearer).await;
        let failure = parse_director_response(status, &body).unwrap_err();
        assert_eq!(
            failure,
            DirectorFailure::Unauthorized {
                status: 401,
                message: "Unauthorized: Invalid token".into()
            }
        );
    }
    let (status, body) = director_call(&url, "testkit", "cam", Some("s3cret")).await;
    assert!(parse_director_response(status, &body).is_ok());
    server.set_secure_token(Some("rotated"));
    let (status, _) = director_call(&url, "testkit", "cam", Some("s3cret")).await;
    assert_eq!(status, 401, "an expired token must be refused");
}

#[tokio::test]
async fn faults_classify_by_status_and_heal_after_their_count() {
    let server = MillicastServer::start().await.unwrap();
    server.publish("cam");
    type Expect = fn(&DirectorFailure) -> bool;
    let cases: [(DirectorFault, Expect); 5] = [
        (DirectorFault::NotPublished, |f| {
            matches!(f, DirectorFailure::NotPublished { status: 400, .. })
        }),
        (DirectorFault::Unauthorized, |f| {
            matches!(f, DirectorFailure::Unauthorized { status: 401, .. })
        }),
        (DirectorFault::ServerError, |f| {
            matches!(f, DirectorFailure::Server { status: 500, .. })
        }),
        (DirectorFault::Html, |f| {
            matches!(f, DirectorFailure::Server { status: 502, .. })
        }),
        (
            DirectorFault::Empty,
            |f| matches!(f, DirectorFailure::Server { status: 503, message } if message == "empty body"),
        ),
    ];
    for (fault, expected) in cases {
        server.set_director_fault_for(fault, 1);
        let failure = director(&server, "cam").await.unwrap_err();
        assert!(expected(&failure), "{fault:?} gave {failure:?}");
        assert!(
            director(&server, "cam").await.is_ok(),
            "{fault:?} outlived its count"
        );
    }
    server.set_director_fault(Some(DirectorFault::ServerError));
    assert!(director(&server, "cam").await.is_err());
    assert!(director(&server, "cam").await.is_err());
    server.set_director_fault(None);
    assert!(director(&server, "cam").await.is_ok());
}

#[tokio::test]
async fn hang_times_out_in_the_client_until_released() {
    let server = MillicastServer::start().await.unwrap();
    server.publish("cam");
    server.set_director_fault(Some(DirectorFault::Hang));
    let client = reqwest::Client::new();
    let url = format!("{}/api/director/subscribe", server.director_url());
    let body = serde_json::json!({"streamAccountId":"testkit","streamName":"cam"});
    let error = client
        .post(&url)
        .json(&body)
        .timeout(CLIENT_TIMEOUT)
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    let hung = tokio::spawn(client.post(&url).json(&body).timeout(PATIENCE).send());
    server.wait_director_requests(2, PATIENCE).await.unwrap();
    server.set_director_fault(None);
    let response = hung.await.unwrap().unwrap();
    assert_eq!(
        response.status(),
        200,
        "a released request gets a normal answer"
    );
}

#[tokio::test]
async fn urls_follow_the_host_the_client_came_through() {
    let server = MillicastServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    server.publish("cam");
    let proxied = format!("http://{}", proxy.addr());
    let (status, body) = director_call(&proxied, "testkit", "cam", None).await;
    let success = parse_director_response(status, &body).unwrap();
    assert!(
        success.urls[0].starts_with(&format!("ws://{}/", proxy.addr())),
        "{}",
        success.urls[0]
    );
    let mut socket = connect(&success).await;
    server.wait_viewers("cam", 1, PATIENCE).await.unwrap();
    proxy.cut();
    assert_eq!(
        closed(&mut socket).await,
        None,
        "a cut path has no close frame"
    );
    server.wait_viewers("cam", 0, PATIENCE).await.unwrap();
}

#[tokio::test]
async fn shutdown_answers_a_hanging_request() {
    let server = MillicastServer::start().await.unwrap();
    server.set_director_fault(Some(DirectorFault::Hang));
    let url = server.director_url();
    let hung = tokio::spawn(async move { director_call(&url, "testkit", "cam", None).await });
    server.wait_director_requests(1, PATIENCE).await.unwrap();
    server.shutdown();
    let (status, _) = timeout(PATIENCE, hung)
        .await
        .expect("still hanging")
        .unwrap();
    assert_eq!(
        status, 400,
        "answered as a healthy Director would: not published"
    );
}
