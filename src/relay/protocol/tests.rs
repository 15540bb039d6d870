#![allow(clippy::unwrap_used)]

use super::*;
use crate::Secret;

#[test]
fn every_client_frame_of_the_protocol_parses() {
    let cases = [
        r#"{"type":"hello","v":1,"role":"publisher","token":"t0k"}"#,
        r#"{"type":"hello","v":1,"role":"viewer"}"#,
        r#"{"type":"publish","stream":"cam-1","details":{"sourceIds":["a"],"tracks":[{"trackId":"v","media":"video"}],"metadata":{"x":[1,2]}}}"#,
        r#"{"type":"publish","stream":"cam-1"}"#,
        r#"{"type":"close","stream":"cam-1"}"#,
        r#"{"type":"view","stream":"acct/cam_1.hd~x:y"}"#,
        r#"{"type":"unview","stream":"cam-1"}"#,
        r#"{"type":"director","stream":"cam-1","id":7}"#,
        r#"{"type":"ping"}"#,
        r#"{"type":"ping","id":3,"extra":"ignored"}"#,
    ];
    for text in cases {
        assert!(parse_client_frame(text).is_ok(), "{text}");
    }
}

#[test]
fn hello_keeps_its_token_secret() {
    let frame =
        parse_client_frame(r#"{"type":"hello","v":1,"role":"publisher","token":"hunter2"}"#)
            .unwrap();
    let ClientFrame::Hello { token, .. } = &frame else {
        panic!("not a hello")
    };
    assert_eq!(token.as_ref().map(Secret::expose), Some("hunter2"));
    assert!(!format!("{frame:?}").contains("hunter2"));
}

#[test]
fn hostile_inputs_give_errors_never_panics() {
    let deep = "[".repeat(100_000);
    let deep_details = format!(
        r#"{{"type":"publish","stream":"a","details":{{"metadata":{}}}}}"#,
        "[".repeat(5_000)
    );
    let long_name = format!(
        r#"{{"type":"view","stream":"{}"}}"#,
        "a".repeat(MAX_NAME + 1)
    );
    let huge_meta = format!(
        r#"{{"type":"publish","stream":"a","details":{{"metadata":"{}"}}}}"#,
        "x".repeat(MAX_DETAILS)
    );
    let many_ids = format!(
        r#"{{"type":"publish","stream":"a","details":{{"sourceIds":[{}]}}}}"#,
        vec!["\"s\""; MAX_LIST + 1].join(",")
    );
    let long_type = format!(r#"{{"type":"{}"}}"#, "z".repeat(10_000));
    let cases: Vec<(&str, ErrorCode)> = vec![
        ("", ErrorCode::Malformed),
        ("null", ErrorCode::Malformed),
        ("[]", ErrorCode::Malformed),
        ("\"hello\"", ErrorCode::Malformed),
        ("{", ErrorCode::Malformed),
        ("{}", ErrorCode::Malformed),
        (r#"{"type":null}"#, ErrorCode::Malformed),
        (r#"{"type":1}"#, ErrorCode::Malformed),
        (r#"{"type":"shutdown"}"#, ErrorCode::UnknownType),
        (&long_type, ErrorCode::UnknownType),
        (r#"{"type":"hello"}"#, ErrorCode::Malformed),
        (
            r#"{"type":"hello","v":-1,"role":"viewer"}"#,
            ErrorCode::Malformed,
        ),
        (
            r#"{"type":"hello","v":1e99,"role":"viewer"}"#,
            ErrorCode::Malformed,
        ),
        (
            r#"{"type":"hello","v":1,"role":"admin"}"#,
            ErrorCode::Malformed,
        ),
        (
            r#"{"type":"hello","v":1,"role":"viewer","token":5}"#,
            ErrorCode::Malformed,
        ),
        (r#"{"type":"view"}"#, ErrorCode::Malformed),
        (r#"{"type":"view","stream":""}"#, ErrorCode::InvalidStream),
        (
            r#"{"type":"view","stream":"cam *"}"#,
            ErrorCode::InvalidStream,
        ),
        (
            r#"{"type":"view","stream":"cam-*"}"#,
            ErrorCode::InvalidStream,
        ),
        (
            r#"{"type":"view","stream":"caméra"}"#,
            ErrorCode::InvalidStream,
        ),
        (
            r#"{"type":"view","stream":"a\u0000b"}"#,
            ErrorCode::InvalidStream,
        ),
        (&long_name, ErrorCode::InvalidStream),
        (r#"{"type":"view","stream":["a"]}"#, ErrorCode::Malformed),
        (
            r#"{"type":"publish","stream":"a","details":[]}"#,
            ErrorCode::Malformed,
        ),
        (
            r#"{"type":"publish","stream":"a","details":{"tracks":[{}]}}"#,
            ErrorCode::Malformed,
        ),
        (&huge_meta, ErrorCode::TooLarge),
        (&many_ids, ErrorCode::TooLarge),
        (&deep, ErrorCode::Malformed),
        (&deep_details, ErrorCode::Malformed),
        (
            r#"{"type":"ping","id":18446744073709551616}"#,
            ErrorCode::Malformed,
        ),
        ("\u{feff}{\"type\":\"ping\"}", ErrorCode::Malformed),
        (r#"{"type":"ping"} trailing"#, ErrorCode::Malformed),
        (r#"{"type":"ping","type":"view"}"#, ErrorCode::Malformed),
        ("\"\\ud800\"", ErrorCode::Malformed),
    ];
    for (text, code) in cases {
        let error = parse_client_frame(text).expect_err(&text[..text.len().min(60)]);
        assert_eq!(
            error.code(),
            code,
            "{}: {error}",
            &text[..text.len().min(60)]
        );
        assert!(error.to_string().len() < 400, "errors stay short");
    }
}

#[test]
fn every_prefix_of_a_valid_frame_is_refused_cleanly() {
    let text = r#"{"type":"publish","stream":"cam-1","details":{"sourceIds":["é"],"tracks":[{"trackId":"v","media":"video"}],"metadata":{"k":[1.5,true,null,"\u00e9"]}}}"#;
    for end in 0..text.len() {
        if let Some(prefix) = text.get(..end) {
            assert!(parse_client_frame(prefix).is_err(), "{prefix}");
        }
    }
    assert!(parse_client_frame(text).is_ok());
}

#[test]
fn server_frames_round_trip() {
    let stream = StreamName::new("cam-1").unwrap();
    let details = Details {
        source_ids: vec!["main".into()],
        tracks: vec![PublishedTrack {
            track_id: "v".into(),
            media: "video".into(),
        }],
        metadata: serde_json::json!({"title": "x"}),
    };
    let frames = [
        ServerFrame::Snapshot {
            stream: stream.clone(),
            live: true,
            details: Some(details.clone()),
        },
        ServerFrame::Publish {
            stream: stream.clone(),
            details,
        },
        ServerFrame::Close {
            stream: stream.clone(),
            reason: CloseReason::PublisherLost,
        },
        ServerFrame::Error {
            code: ErrorCode::SlowConsumer,
            message: "m".into(),
            stream: Some(stream),
            id: None,
            fatal: true,
        },
        ServerFrame::Pong { id: Some(4) },
    ];
    for frame in frames {
        assert_eq!(parse_server_frame(&frame.to_text()).unwrap(), frame);
    }
}

#[test]
fn unknown_codes_and_reasons_from_a_newer_server_are_kept_as_other() {
    let error = parse_server_frame(r#"{"type":"error","code":"quota","message":"m"}"#).unwrap();
    assert!(matches!(
        error,
        ServerFrame::Error {
            code: ErrorCode::Other,
            fatal: false,
            ..
        }
    ));
    let close = parse_server_frame(r#"{"type":"close","stream":"a","reason":"moved"}"#).unwrap();
    assert!(matches!(
        close,
        ServerFrame::Close {
            reason: CloseReason::Other,
            ..
        }
    ));
    assert!(parse_server_frame(r#"{"type":"telemetry"}"#).is_err());
}

#[test]
fn error_codes_are_snake_case_on_the_wire() {
    let json = serde_json::to_string(&ErrorCode::DirectorNotConfigured).unwrap();
    assert_eq!(json, "\"director_not_configured\"");
}

#[test]
fn a_malformed_frame_s_error_never_repeats_its_values() {
    let token = "s3cret-in-the-wrong-field";
    for text in [
        format!(r#"{{"type":"hello","v":"{token}","role":"viewer"}}"#),
        format!(r#"{{"type":"hello","v":1,"role":"{token}"}}"#),
        format!(r#"{{"type":"view","stream":["{token}"]}}"#),
        format!(r#"{{"type":"publish","stream":"cam","details":{{"sourceIds":"{token}"}}}}"#),
        format!(r#"{{"type":"director","stream":"cam","id":"{token}"}}"#),
    ] {
        let error = parse_client_frame(&text).unwrap_err();
        assert_eq!(error.code(), ErrorCode::Malformed, "{text}");
        assert!(!error.to_string().contains(token), "{error}");
    }
    let jwt = format!(r#"{{"type":"director","stream":"cam","urls":[],"jwt":7,"x":"{token}"}}"#);
    let error = parse_server_frame(&jwt).unwrap_err();
    assert!(!error.to_string().contains(token), "{error}");
    let missing = parse_client_frame(r#"{"type":"view"}"#).unwrap_err();
    assert!(
        missing.to_string().contains("missing field `stream`"),
        "{missing}"
    );
}

#[test]
fn an_unknown_type_is_echoed_only_by_its_first_half_and_at_most_max_echo_characters() {
    let echo = |text: &str| match parse_client_frame(text) {
        Err(ProtocolError::UnknownType(echo)) => echo,
        other => panic!("{other:?}"),
    };
    assert_eq!(echo(r#"{"type":"teleport"}"#), "tele");
    assert_eq!(echo(r#"{"type":"x"}"#), "");
    let token = "s3cret-publish-token-0123456789-abcdefghij";
    let echoed = echo(&format!(r#"{{"type":"{token}"}}"#));
    assert_eq!(echoed, &token[..MAX_ECHO]);
    let message = parse_client_frame(&format!(r#"{{"type":"{token}"}}"#))
        .unwrap_err()
        .to_string();
    assert!(!message.contains(token), "{message}");
}
