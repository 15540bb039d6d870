//! The testkit Millicast server over real sockets: a reqwest Director client and a
//! tokio-tungstenite signaling client, as the relive client will use them.
#![cfg(all(feature = "testkit", feature = "millicast"))]
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use relive::millicast::wire::{
    Command, DirectorFailure, DirectorSuccess, ServerMessage, SignalingEvent as Event,
    SubscribeRequest, ViewCommand, ViewResponse, jwt_stream_name, parse_director_response,
    parse_server_message,
};
use relive::testkit::millicast::{DirectorFault, MillicastServer};
use relive::testkit::proxy::FaultProxy;
use support::PATIENCE;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{self, Message, protocol::frame::coding::CloseCode};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

mod director;
mod signaling;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A client's request timeout, for the test of a hanging Director: the client must give up.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(300);

async fn director_call(
    director_url: &str,
    account: &str,
    stream: &str,
    bearer: Option<&str>,
) -> (u16, Vec<u8>) {
    let body = SubscribeRequest {
        stream_account_id: account.into(),
        stream_name: stream.into(),
        unauthorized_subscribe: None,
    };
    let mut request = reqwest::Client::new()
        .post(format!("{director_url}/api/director/subscribe"))
        .timeout(PATIENCE)
        .json(&body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

async fn director(
    server: &MillicastServer,
    stream: &str,
) -> Result<DirectorSuccess, DirectorFailure> {
    let (status, body) =
        director_call(&server.director_url(), server.account_id(), stream, None).await;
    parse_director_response(status, &body)
}

async fn connect(success: &DirectorSuccess) -> Socket {
    let url = success.signaling_url().unwrap();
    connect_async(url.expose()).await.unwrap().0
}

/// The next text frame, parsed; pings and pongs are skipped.
async fn next(socket: &mut Socket) -> ServerMessage {
    loop {
        let message = timeout(PATIENCE, socket.next())
            .await
            .expect("no frame in time");
        match message.expect("socket ended").unwrap() {
            Message::Text(text) => return parse_server_message(text.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn next_event(socket: &mut Socket) -> Event {
    match next(socket).await {
        ServerMessage::Event(event) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn send_view(socket: &mut Socket, trans_id: u64, stream: &str) {
    let command = Command::view(trans_id, &ViewCommand::new("v=0\r\n", stream)).unwrap();
    socket.send(Message::text(command.to_text())).await.unwrap();
}

/// A live stream, a Director session and an accepted `view`, its events drained.
async fn viewing(server: &MillicastServer, stream: &str) -> Socket {
    server.publish(stream);
    let mut socket = connect(&director(server, stream).await.unwrap()).await;
    send_view(&mut socket, 1, stream).await;
    assert!(matches!(
        next(&mut socket).await,
        ServerMessage::Response { trans_id: 1, .. }
    ));
    assert!(matches!(
        next_event(&mut socket).await,
        Event::Active { .. }
    ));
    assert!(matches!(next_event(&mut socket).await, Event::Layers(_)));
    socket
}

/// Reads until the socket ends; returns the close frame's code if one came.
async fn closed(socket: &mut Socket) -> Option<CloseCode> {
    let mut code = None;
    loop {
        match timeout(PATIENCE, socket.next())
            .await
            .expect("socket did not end")
        {
            Some(Ok(Message::Close(frame))) => code = frame.map(|frame| frame.code),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return code,
        }
    }
}
