//! The signaling socket: view, events, commands, pings and the ways a socket ends.

use super::*;

#[tokio::test]
async fn view_answers_with_sdp_then_active_and_one_layer() {
    let server = MillicastServer::builder()
        .account("acct")
        .start()
        .await
        .unwrap();
    server.publish("cam");
    let mut socket = connect(&director(&server, "cam").await.unwrap()).await;
    send_view(&mut socket, 7, "cam").await;
    let ServerMessage::Response { trans_id: 7, data } = next(&mut socket).await else {
        panic!()
    };
    let view = ViewResponse::from_data(&data).unwrap();
    assert!(view.sdp.contains("a=ice-lite") && view.sdp.contains("a=setup:passive"));
    assert!(
        !view.subscriber_id.is_empty()
            && !view.cluster_id.is_empty()
            && !view.stream_view_id.is_empty()
    );
    let Event::Active { stream_id, .. } = next_event(&mut socket).await else {
        panic!()
    };
    assert_eq!(stream_id, "acct/cam");
    let Event::Layers(layers) = next_event(&mut socket).await else {
        panic!()
    };
    assert_eq!(layers.active_count(), 1);
    assert_eq!((server.viewers("cam"), server.view_requests()), (1, 1));
}

#[tokio::test]
async fn view_on_an_unpublished_or_rejected_stream_is_feed_not_found() {
    let server = MillicastServer::start().await.unwrap();
    server.publish("cam");
    let session = director(&server, "cam").await.unwrap();
    server.unpublish("cam");
    let mut socket = connect(&session).await;
    send_view(&mut socket, 1, "cam").await;
    let expected = ServerMessage::Error {
        trans_id: 1,
        message: "Feed not found".into(),
    };
    assert_eq!(next(&mut socket).await, expected);
    server.publish("cam");
    server.reject_view(true);
    send_view(&mut socket, 2, "cam").await;
    assert_eq!(
        next(&mut socket).await,
        ServerMessage::Error {
            trans_id: 2,
            message: "Feed not found".into()
        }
    );
    server.reject_view(false);
    send_view(&mut socket, 3, "testkit/cam").await;
    assert!(matches!(
        next(&mut socket).await,
        ServerMessage::Response { trans_id: 3, .. }
    ));
}

#[tokio::test]
async fn events_reach_viewers_in_order() {
    let server = MillicastServer::start().await.unwrap();
    let mut socket = viewing(&server, "cam").await;
    server.send_viewercount("cam", 42);
    server.send_layers("cam", 0);
    server.migrate("cam");
    server.unpublish("cam");
    server.publish("cam");
    server.stop("cam");
    assert_eq!(next_event(&mut socket).await, Event::ViewerCount(42));
    let Event::Layers(layers) = next_event(&mut socket).await else {
        panic!()
    };
    assert_eq!(layers.active_count(), 0);
    assert_eq!(next_event(&mut socket).await, Event::Migrate);
    assert!(matches!(
        next_event(&mut socket).await,
        Event::Inactive { .. }
    ));
    assert!(matches!(
        next_event(&mut socket).await,
        Event::Active { .. }
    ));
    let Event::Layers(layers) = next_event(&mut socket).await else {
        panic!()
    };
    assert_eq!(layers.active_count(), 1);
    assert_eq!(next_event(&mut socket).await, Event::Stopped);
    assert!(!server.is_live("cam"));
}

#[tokio::test]
async fn other_commands_and_garbage() {
    let server = MillicastServer::start().await.unwrap();
    let mut socket = viewing(&server, "cam").await;
    socket.send(Message::text("{not json")).await.unwrap();
    socket.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    let select = Command::new(
        2,
        "select",
        &serde_json::json!({"layer":{"encodingId":"0"}}),
    )
    .unwrap();
    socket.send(Message::text(select.to_text())).await.unwrap();
    assert_eq!(
        next(&mut socket).await,
        ServerMessage::Response {
            trans_id: 2,
            data: serde_json::json!({})
        }
    );
    let bogus = Command::new(3, "dance", &serde_json::json!({})).unwrap();
    socket.send(Message::text(bogus.to_text())).await.unwrap();
    assert!(matches!(
        next(&mut socket).await,
        ServerMessage::Error { trans_id: 3, .. }
    ));
}

#[tokio::test]
async fn raw_and_oversized_frames_reach_every_socket() {
    let server = MillicastServer::start().await.unwrap();
    let mut socket = viewing(&server, "cam").await;
    server.send_raw("cam", "garbage{");
    server.send_oversized("cam", 200_000);
    let frame = timeout(PATIENCE, socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frame, Message::text("garbage{"));
    let frame = timeout(PATIENCE, socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frame.len(), 200_000);
}

#[tokio::test]
async fn ignored_pings_get_no_pong_while_events_still_flow() {
    let server = MillicastServer::start().await.unwrap();
    let mut socket = viewing(&server, "cam").await;
    socket.send(Message::Ping("one".into())).await.unwrap();
    let pong = timeout(PATIENCE, socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong("one".into()));

    server.ignore_pings(true);
    socket.send(Message::Ping("two".into())).await.unwrap();
    // A barrier instead of a quiet period: an event sent after the ping must come first, on
    // the same ordered socket, with no pong before it.
    server.send_viewercount("cam", 1);
    let text = loop {
        let frame = timeout(PATIENCE, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match frame {
            Message::Text(text) => break text,
            Message::Ping(_) => {}
            other => panic!("got {other:?} while pings are ignored"),
        }
    };
    assert_eq!(
        parse_server_message(text.as_str()).unwrap(),
        ServerMessage::Event(Event::ViewerCount(1))
    );

    server.ignore_pings(false);
    let pong = timeout(PATIENCE, socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        pong,
        Message::Pong("two".into()),
        "the held ping is answered once healed"
    );
}

#[tokio::test]
async fn close_all_sockets_closes_with_a_close_frame() {
    let server = MillicastServer::start().await.unwrap();
    let mut socket = viewing(&server, "cam").await;
    server.close_all_sockets();
    assert_eq!(closed(&mut socket).await, Some(CloseCode::Away));
    server.wait_viewers("cam", 0, PATIENCE).await.unwrap();
    let mut again = viewing(&server, "cam").await;
    server.send_viewercount("cam", 2);
    assert_eq!(
        next_event(&mut again).await,
        Event::ViewerCount(2),
        "new sockets are not dropped"
    );
}

#[tokio::test]
async fn cut_all_sockets_ends_them_without_a_close_frame() {
    let server = MillicastServer::start().await.unwrap();
    let mut socket = viewing(&server, "cam").await;
    server.cut_all_sockets();
    assert_eq!(closed(&mut socket).await, None);
    server.wait_viewers("cam", 0, PATIENCE).await.unwrap();
}

#[tokio::test]
async fn unknown_or_missing_token_is_401_before_the_upgrade() {
    let server = MillicastServer::start().await.unwrap();
    let base = format!("ws://{}/ws/v2/sub/1", server.addr());
    for url in [format!("{base}?token=forged.jwt.value"), base.clone()] {
        match connect_async(url.as_str()).await {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
            other => panic!(
                "expected 401, got {:?}",
                other.map(|(_, response)| response)
            ),
        }
    }
    assert_eq!(server.viewers("cam"), 0);
}

#[tokio::test]
async fn shutdown_closes_viewers_and_refuses_new_work() {
    let server = MillicastServer::start().await.unwrap();
    let mut socket = viewing(&server, "cam").await;
    let url = server.director_url();
    server.shutdown();
    assert_eq!(closed(&mut socket).await, Some(CloseCode::Away));
    let refused = reqwest::Client::new()
        .post(format!("{url}/api/director/subscribe"))
        .timeout(PATIENCE)
        .json(&serde_json::json!({"streamAccountId":"testkit","streamName":"cam"}))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let server = MillicastServer::start().await.unwrap();
    let mut socket = viewing(&server, "cam").await;
    let clone = server.clone();
    drop(server);
    clone.send_viewercount("cam", 3);
    assert_eq!(
        next_event(&mut socket).await,
        Event::ViewerCount(3),
        "a clone keeps it running"
    );
    drop(clone);
    assert_eq!(closed(&mut socket).await, Some(CloseCode::Away));
}

#[tokio::test]
async fn kill_ends_a_socket_even_while_the_client_reads_nothing() {
    let server = MillicastServer::start().await.unwrap();
    let socket = viewing(&server, "cam").await;
    // More than loopback buffers hold: the server's write blocks while the client never reads.
    server.send_oversized("cam", 32 << 20);
    // On this current-thread runtime, one yield lets the viewer task start that write.
    tokio::task::yield_now().await;
    server.cut_all_sockets();
    server.wait_viewers("cam", 0, PATIENCE).await.unwrap();
    drop(socket);
}
