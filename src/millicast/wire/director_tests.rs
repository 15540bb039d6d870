//! Director shapes, as real servers send them and as proxies mangle them.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;

fn jwt_with(payload: &Value) -> String {
    let header = base64url_encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = base64url_encode(payload.to_string().as_bytes());
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

const SUCCESS: &str = r#"{"status":"success","data":{
        "urls":["wss://node.millicast.com/ws/v2/sub/12345"],
        "jwt":"aaa.bbb.ccc",
        "iceServers":[{"urls":["stun:stun.example:19302"]},
                      {"url":"turn:turn.example:3478","username":"u","credential":"p"}],
        "streamAccountId":"acct",
        "wsUrl":"wss://node.millicast.com/ws/v2/sub/12345",
        "extra":"ignored"}}"#;

#[test]
fn success_body_parses_with_all_fields() {
    let success = parse_director_response(200, SUCCESS.as_bytes()).unwrap();
    assert_eq!(success.urls, ["wss://node.millicast.com/ws/v2/sub/12345"]);
    assert_eq!(success.jwt.expose(), "aaa.bbb.ccc");
    assert_eq!(success.stream_account_id, "acct");
    assert_eq!(success.ice_servers.len(), 2);
    assert_eq!(success.ice_servers[1].urls, ["turn:turn.example:3478"]);
    assert_eq!(
        success.ice_servers[1].credential.as_ref().unwrap().expose(),
        "p"
    );
    assert!(success.ws_url.is_some());
}

#[test]
fn success_debug_hides_jwt_and_credential() {
    let success = parse_director_response(200, SUCCESS.as_bytes()).unwrap();
    let debug = format!("{success:?}");
    assert!(!debug.contains("aaa.bbb.ccc"), "{debug}");
    assert!(!debug.contains("\"p\""), "{debug}");
}

#[test]
fn signaling_url_appends_the_token() {
    let success = parse_director_response(200, SUCCESS.as_bytes()).unwrap();
    let url = success.signaling_url().unwrap();
    assert_eq!(
        url.expose(),
        "wss://node.millicast.com/ws/v2/sub/12345?token=aaa.bbb.ccc"
    );
}

#[test]
fn subscribe_request_is_camel_case() {
    let mut request = SubscribeRequest {
        stream_account_id: "acct".into(),
        stream_name: "cam".into(),
        unauthorized_subscribe: None,
    };
    let body = serde_json::to_value(&request).unwrap();
    assert_eq!(body, json!({"streamAccountId":"acct","streamName":"cam"}));
    request.unauthorized_subscribe = Some(true);
    let body = serde_json::to_value(&request).unwrap();
    assert_eq!(body["unauthorizedSubscribe"], json!(true));
}

#[test]
fn not_published_and_not_found_are_not_published() {
    for (status, message) in [
        (400, "stream not being published"),
        (400, "Stream Not Being Published"),
        (404, "stream not found"),
    ] {
        let body = json!({"status":"fail","data":{"message":message}}).to_string();
        let failure = parse_director_response(status, body.as_bytes()).unwrap_err();
        assert_eq!(
            failure,
            DirectorFailure::NotPublished {
                status,
                message: message.into()
            }
        );
    }
}

#[test]
fn other_400_is_unexpected() {
    let body = br#"{"status":"fail","data":{"message":"bad account"}}"#;
    let failure = parse_director_response(400, body).unwrap_err();
    assert!(matches!(
        failure,
        DirectorFailure::Unexpected { status: 400, .. }
    ));
}

#[test]
fn unauthorized_by_status_whatever_the_body() {
    let body = br#"{"status":"fail","data":{"message":"Unauthorized: Invalid token"}}"#;
    let failure = parse_director_response(401, body).unwrap_err();
    assert_eq!(
        failure,
        DirectorFailure::Unauthorized {
            status: 401,
            message: "Unauthorized: Invalid token".into()
        }
    );
    let failure = parse_director_response(403, b"<html>Forbidden</html>").unwrap_err();
    assert!(matches!(
        failure,
        DirectorFailure::Unauthorized { status: 403, .. }
    ));
}

#[test]
fn error_shape_on_5xx_is_server() {
    let body = br#"{"status":"error","message":"Internal error","code":500}"#;
    let failure = parse_director_response(500, body).unwrap_err();
    assert_eq!(
        failure,
        DirectorFailure::Server {
            status: 500,
            message: "Internal error".into()
        }
    );
}

#[test]
fn html_is_classified_by_status() {
    let html = b"<html><body><h1>502 Bad Gateway</h1></body></html>";
    let failure = parse_director_response(502, html).unwrap_err();
    assert_eq!(
        failure,
        DirectorFailure::Server {
            status: 502,
            message: format!("non-JSON body ({} bytes)", html.len())
        }
    );
    let failure = parse_director_response(404, html).unwrap_err();
    assert!(matches!(
        failure,
        DirectorFailure::Unexpected { status: 404, .. }
    ));
    let failure = parse_director_response(200, html).unwrap_err();
    assert!(matches!(
        failure,
        DirectorFailure::Unexpected { status: 200, .. }
    ));
}

#[test]
fn empty_body_is_classified_by_status() {
    let failure = parse_director_response(503, b"").unwrap_err();
    assert_eq!(
        failure,
        DirectorFailure::Server {
            status: 503,
            message: "empty body".into()
        }
    );
    let failure = parse_director_response(200, b"  ").unwrap_err();
    assert_eq!(
        failure,
        DirectorFailure::Unexpected {
            status: 200,
            message: "empty body".into()
        }
    );
}

#[test]
fn unusable_200_bodies_are_unexpected() {
    for body in [
        r#"{"status":"success","data":{"jwt":"x"}}"#,
        r#"{"status":"success","data":{"urls":["wss://a"]}}"#,
        r#"{"status":"fail","data":{"message":"stream not being published"}}"#,
        r#"{"status":"success"}"#,
        r#"[1,2,3]"#,
    ] {
        let failure = parse_director_response(200, body.as_bytes()).unwrap_err();
        assert!(
            matches!(failure, DirectorFailure::Unexpected { status: 200, .. }),
            "{body}"
        );
    }
}

#[test]
fn long_messages_are_cut() {
    let message = "x".repeat(5000);
    let body = json!({"status":"error","message":message}).to_string();
    let failure = parse_director_response(500, body.as_bytes()).unwrap_err();
    let DirectorFailure::Server { message, .. } = failure else {
        panic!("{failure:?}")
    };
    assert!(message.chars().count() <= 201);
}

#[test]
fn jwt_stream_name_reads_the_claim() {
    let jwt = jwt_with(&json!({"millicast":{"streamName":"cam1","type":"Subscribe"},"jti":"1"}));
    assert_eq!(jwt_stream_name(&jwt).as_deref(), Some("cam1"));
}

#[test]
fn jwt_stream_name_is_none_without_the_claim_or_on_garbage() {
    assert_eq!(jwt_stream_name(&jwt_with(&json!({"sub":"x"}))), None);
    assert_eq!(
        jwt_stream_name(&jwt_with(&json!({"millicast":{"streamName":7}}))),
        None
    );
    for garbage in [
        "",
        ".",
        "a.b.c",
        "a.%%%.c",
        "a.YQ.c",
        "no dots at all",
        "a.ZZZZZ.c",
    ] {
        assert_eq!(jwt_stream_name(garbage), None, "{garbage}");
    }
}
