//! Signaling shapes of the Millicast protocol: commands, responses, errors and lenient events.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;

fn event(text: &str) -> SignalingEvent {
    match parse_server_message(text).unwrap() {
        ServerMessage::Event(event) => event,
        other => panic!("not an event: {other:?}"),
    }
}

#[test]
fn view_command_frame_has_the_documented_shape() {
    let command = Command::view(1, &ViewCommand::new("v=0...", "cam")).unwrap();
    let frame: Value = serde_json::from_str(&command.to_text()).unwrap();
    assert_eq!(frame["type"], "cmd");
    assert_eq!(frame["transId"], 1);
    assert_eq!(frame["name"], "view");
    assert_eq!(frame["data"]["sdp"], "v=0...");
    assert_eq!(frame["data"]["streamId"], "cam");
    assert_eq!(frame["data"]["events"], json!(DEFAULT_EVENTS));
    assert!(frame["data"].get("pinnedSourceId").is_none());
    assert_eq!(parse_command(&command.to_text()).unwrap(), command);
}

#[test]
fn view_command_optional_fields_are_camel_case() {
    let mut view = ViewCommand::new("sdp", "cam");
    view.pinned_source_id = Some("main".into());
    view.excluded_source_ids = vec!["b".into()];
    view.layer = Some(LayerSelection {
        encoding_id: Some("h".into()),
        ..Default::default()
    });
    view.force_playout_delay = Some(PlayoutDelay { min: 0, max: 100 });
    view.abr = Some(false);
    let data = serde_json::to_value(&view).unwrap();
    assert_eq!(data["pinnedSourceId"], "main");
    assert_eq!(data["excludedSourceIds"], json!(["b"]));
    assert_eq!(data["layer"], json!({"encodingId":"h"}));
    assert_eq!(data["forcePlayoutDelay"], json!({"min":0,"max":100}));
    assert_eq!(data["abr"], json!(false));
    let minimal: ViewCommand = serde_json::from_value(json!({"sdp":"s","streamId":"c"})).unwrap();
    assert_eq!(minimal, ViewCommand::new("s", "c"));
}

#[test]
fn parse_command_rejects_non_commands() {
    assert!(matches!(
        parse_command(r#"{"type":"event","name":"x"}"#),
        Err(WireError::UnknownType(_))
    ));
    assert!(matches!(
        parse_command(r#"{"type":"cmd","name":"view"}"#),
        Err(WireError::MissingField("transId"))
    ));
    assert!(matches!(parse_command("{"), Err(WireError::Malformed(_))));
}

#[test]
fn view_response_parses() {
    let text = r#"{"type":"response","transId":1,"data":{"sdp":"v=0","subscriberId":"s","clusterId":"c","streamViewId":"v","x":1}}"#;
    let ServerMessage::Response { trans_id, data } = parse_server_message(text).unwrap() else {
        panic!("not a response")
    };
    assert_eq!(trans_id, 1);
    let view = ViewResponse::from_data(&data).unwrap();
    assert_eq!(
        (view.sdp.as_str(), view.subscriber_id.as_str()),
        ("v=0", "s")
    );
    assert_eq!(
        (view.cluster_id.as_str(), view.stream_view_id.as_str()),
        ("c", "v")
    );
    assert!(ViewResponse::from_data(&json!({})).is_err());
}

#[test]
fn error_frame_carries_the_plain_message() {
    let text = r#"{"type":"error","transId":"2","data":"Feed not found"}"#;
    let message = parse_server_message(text).unwrap();
    assert_eq!(
        message,
        ServerMessage::Error {
            trans_id: 2,
            message: "Feed not found".into()
        }
    );
    let text = r#"{"type":"error","transId":3,"data":{"message":"nope"}}"#;
    let ServerMessage::Error { message, .. } = parse_server_message(text).unwrap() else {
        panic!()
    };
    assert_eq!(message, "nope");
}

#[test]
fn malformed_and_unknown_frames_are_typed_errors() {
    assert!(matches!(
        parse_server_message("{not json"),
        Err(WireError::Malformed(_))
    ));
    assert!(matches!(
        parse_server_message("42"),
        Err(WireError::Malformed(_))
    ));
    assert!(matches!(
        parse_server_message(""),
        Err(WireError::Malformed(_))
    ));
    assert!(
        matches!(parse_server_message(r#"{"type":"bogus"}"#), Err(WireError::UnknownType(t)) if t == "bogus")
    );
    assert!(matches!(
        parse_server_message(r#"{"data":1}"#),
        Err(WireError::UnknownType(_))
    ));
    assert!(matches!(
        parse_server_message(r#"{"type":"response"}"#),
        Err(WireError::MissingField("transId"))
    ));
    assert!(matches!(
        parse_server_message(r#"{"type":"event"}"#),
        Err(WireError::MissingField("name"))
    ));
}

#[test]
fn active_and_inactive_parse_with_and_without_data() {
    let text = r#"{"type":"event","name":"active","data":{"streamId":"acct/cam","sourceId":null,"tracks":[{"trackId":"video","media":"video"}],"encryption":{}}}"#;
    let SignalingEvent::Active {
        stream_id,
        source_id,
        tracks,
    } = event(text)
    else {
        panic!()
    };
    assert_eq!((stream_id.as_str(), source_id), ("acct/cam", None));
    assert_eq!(
        tracks,
        [SourceTrack {
            track_id: "video".into(),
            media: "video".into()
        }]
    );
    let odd = event(r#"{"type":"event","name":"active","data":"??"}"#);
    assert_eq!(
        odd,
        SignalingEvent::Active {
            stream_id: String::new(),
            source_id: None,
            tracks: vec![]
        }
    );
    let inactive = event(
        r#"{"type":"event","name":"inactive","data":{"streamId":"acct/cam","sourceId":"b"}}"#,
    );
    assert_eq!(
        inactive,
        SignalingEvent::Inactive {
            stream_id: "acct/cam".into(),
            source_id: Some("b".into())
        }
    );
}

#[test]
fn payloadless_events_parse_with_any_data() {
    for (name, expected) in [
        ("stopped", SignalingEvent::Stopped),
        ("migrate", SignalingEvent::Migrate),
        ("vad", SignalingEvent::Vad),
        ("updated", SignalingEvent::Updated),
    ] {
        for data in ["", r#","data":null"#, r#","data":{}"#, r#","data":[1]"#] {
            let text = format!(r#"{{"type":"event","name":"{name}"{data}}}"#);
            assert_eq!(event(&text), expected, "{text}");
        }
    }
}

#[test]
fn viewercount_accepts_both_spellings() {
    assert_eq!(
        event(r#"{"type":"event","name":"viewercount","data":{"viewercount":5}}"#),
        SignalingEvent::ViewerCount(5)
    );
    assert_eq!(
        event(r#"{"type":"event","name":"viewercount","data":{"viewerCount":6}}"#),
        SignalingEvent::ViewerCount(6)
    );
    let odd = event(r#"{"type":"event","name":"viewercount","data":{"count":6}}"#);
    assert_eq!(odd, SignalingEvent::Unknown("viewercount".into()));
}

#[test]
fn layers_with_active_entries_counts_them() {
    let text = r#"{"type":"event","name":"layers","data":{"medias":{
            "0":{"active":[{"id":"h","simulcastIdx":0,"bitrate":2000000,"width":1280,"height":720,
                 "layers":[{"encodingId":"h","spatialLayerId":0,"temporalLayerId":1,"bitrate":1}]},
                {"id":1,"layers":[]}],
                 "inactive":[],"layers":[{"encodingId":"h","temporalLayerId":0}]},
            "1":{"active":[{"id":"a"}],"inactive":[{"id":"b"}],"layers":[]}}}}"#;
    let SignalingEvent::Layers(layers) = event(text) else {
        panic!()
    };
    assert_eq!(layers.active_count(), 3);
    assert_eq!(layers.medias["0"].active[0].width, Some(1280));
    assert_eq!(layers.medias["0"].active[1].id, "1");
    assert_eq!(layers.medias["0"].layers[0].temporal_layer_id, Some(0));
}

#[test]
fn layers_without_active_entries_count_zero() {
    let text = r#"{"type":"event","name":"layers","data":{"medias":{"0":{"active":[],"inactive":[{"id":"h"}],"layers":[]}}}}"#;
    let SignalingEvent::Layers(layers) = event(text) else {
        panic!()
    };
    assert_eq!(layers.active_count(), 0);
    let empty = event(r#"{"type":"event","name":"layers","data":{"medias":{}}}"#);
    assert_eq!(empty, SignalingEvent::Layers(Layers::default()));
}

#[test]
fn unreadable_layers_are_unknown_not_a_stall() {
    for data in [
        "null",
        r#"{}"#,
        r#"{"medias":[]}"#,
        r#"{"medias":{"0":{"active":"x"}}}"#,
    ] {
        let text = format!(r#"{{"type":"event","name":"layers","data":{data}}}"#);
        assert_eq!(
            event(&text),
            SignalingEvent::Unknown("layers".into()),
            "{data}"
        );
    }
}

#[test]
fn unknown_event_names_are_kept() {
    assert_eq!(
        event(r#"{"type":"event","name":"fancy","data":{"a":1}}"#),
        SignalingEvent::Unknown("fancy".into())
    );
}

#[test]
fn server_frames_round_trip() {
    let layers = Layers {
        medias: [(
            "0".to_owned(),
            MediaLayers {
                active: vec![LayerEncoding {
                    id: "h".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )]
        .into(),
    };
    let frames = [
        ServerMessage::Response {
            trans_id: 4,
            data: json!({"sdp":"x"}),
        },
        ServerMessage::Error {
            trans_id: 5,
            message: "Feed not found".into(),
        },
        ServerMessage::Event(SignalingEvent::Active {
            stream_id: "a/b".into(),
            source_id: None,
            tracks: vec![],
        }),
        ServerMessage::Event(SignalingEvent::Inactive {
            stream_id: "a/b".into(),
            source_id: Some("s".into()),
        }),
        ServerMessage::Event(SignalingEvent::Layers(layers)),
        ServerMessage::Event(SignalingEvent::ViewerCount(9)),
        ServerMessage::Event(SignalingEvent::Stopped),
        ServerMessage::Event(SignalingEvent::Migrate),
    ];
    for frame in frames {
        assert_eq!(parse_server_message(&frame.to_text()).unwrap(), frame);
    }
}
