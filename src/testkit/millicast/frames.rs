//! What the server says: signaling frames built from the shared wire types, the JWTs it mints and
//! its SDP answer.

use std::fmt::Write as _;

use serde_json::Value;

use crate::millicast::wire::{
    LayerEncoding, Layers, MediaLayers, ServerMessage, SignalingEvent, SourceTrack,
    SpatialTemporalLayer, base64url_encode,
};

pub(super) fn response(trans_id: u64, data: Value) -> String {
    ServerMessage::Response { trans_id, data }.to_text()
}

pub(super) fn error(trans_id: u64, message: &str) -> String {
    ServerMessage::Error {
        trans_id,
        message: message.to_owned(),
    }
    .to_text()
}

pub(super) fn event(event: SignalingEvent) -> String {
    ServerMessage::Event(event).to_text()
}

/// `active` for the main source with one video and one audio track.
pub(super) fn active(account: &str, stream: &str) -> String {
    let track = |media: &str| SourceTrack {
        track_id: media.to_owned(),
        media: media.to_owned(),
    };
    event(SignalingEvent::Active {
        stream_id: format!("{account}/{stream}"),
        source_id: None,
        tracks: vec![track("video"), track("audio")],
    })
}

pub(super) fn inactive(account: &str, stream: &str) -> String {
    event(SignalingEvent::Inactive {
        stream_id: format!("{account}/{stream}"),
        source_id: None,
    })
}

/// `layers` for video mid `0` with `active` simulcast encodings; with none, one encoding is listed
/// as inactive, as when the publisher's video stalls.
pub(super) fn layers(active: usize) -> String {
    let encodings: Vec<LayerEncoding> = (0..active.max(1)).map(encoding).collect();
    let media = if active == 0 {
        MediaLayers {
            inactive: encodings,
            ..MediaLayers::default()
        }
    } else {
        MediaLayers {
            layers: encodings.iter().flat_map(|e| e.layers.clone()).collect(),
            active: encodings,
            inactive: Vec::new(),
        }
    };
    event(SignalingEvent::Layers(Layers {
        medias: [("0".to_owned(), media)].into(),
    }))
}

/// Simulcast encoding `index`, highest quality first.
fn encoding(index: usize) -> LayerEncoding {
    let id = index.to_string();
    let scale = 1u32 << index.min(8);
    let (width, height) = (1280 / scale, 720 / scale);
    LayerEncoding {
        id: id.clone(),
        simulcast_idx: u32::try_from(index).ok(),
        bitrate: Some(2_000_000 / u64::from(scale)),
        width: Some(width),
        height: Some(height),
        layers: vec![SpatialTemporalLayer {
            encoding_id: id,
            spatial_layer_id: None,
            temporal_layer_id: Some(0),
            bitrate: Some(2_000_000 / u64::from(scale)),
            width: Some(width),
            height: Some(height),
        }],
    }
}

/// A valid event frame (an unknown event named `padding`) of exactly `bytes` bytes when
/// `bytes` is at least the frame's fixed part, else just that fixed part.
pub(super) fn oversized(bytes: usize) -> String {
    const HEAD: &str = r#"{"type":"event","name":"padding","data":{"pad":""#;
    const TAIL: &str = r#""}}"#;
    let pad = bytes.saturating_sub(HEAD.len() + TAIL.len());
    let mut frame = String::with_capacity(HEAD.len() + pad + TAIL.len());
    frame.push_str(HEAD);
    frame.extend(std::iter::repeat_n('x', pad));
    frame.push_str(TAIL);
    frame
}

/// A JWT-shaped token: `header.payload.signature` in base64url, the payload carrying
/// `millicast.streamName`. Not signed: only this server checks it, by lookup.
pub(super) fn mint_jwt(
    account: &str,
    stream: &str,
    subscriber_id: &str,
    random: [u64; 4],
) -> String {
    let header = serde_json::json!({"alg": "HS256", "typ": "JWT"});
    let payload = serde_json::json!({
        "millicast": {
            "type": "Subscribe",
            "streamAccountId": account,
            "streamName": stream,
            "subscriberId": subscriber_id,
        },
        "jti": format!("{:016x}{:016x}", random[0], random[1]),
    });
    let signature: Vec<u8> = random[2..]
        .iter()
        .flat_map(|word| word.to_be_bytes())
        .collect();
    format!(
        "{}.{}.{}",
        base64url_encode(header.to_string().as_bytes()),
        base64url_encode(payload.to_string().as_bytes()),
        base64url_encode(&signature)
    )
}

/// The SDP answer to a `view` offer.
///
/// A fixed, plausible sendonly answer (ICE-lite, `setup:passive`, one 127.0.0.1 host candidate,
/// video mid `0` VP8 and audio mid `1` Opus) that no media follows: the answer without feature
/// `webrtc`, or to an offer no publisher peer can answer (see `media.rs`).
pub(super) fn sdp_answer(_offer: &str, session_id: u64) -> String {
    let mut sdp = String::new();
    let mut line = |text: &str| {
        sdp.push_str(text);
        sdp.push_str("\r\n");
    };
    line("v=0");
    line(&format!("o=- {session_id} 2 IN IP4 127.0.0.1"));
    line("s=-");
    line("t=0 0");
    line("a=group:BUNDLE 0 1");
    line("a=msid-semantic: WMS *");
    line("a=ice-lite");
    media_section(
        &mut line,
        "video 9 UDP/TLS/RTP/SAVPF 96",
        "0",
        "96 VP8/90000",
    );
    media_section(
        &mut line,
        "audio 9 UDP/TLS/RTP/SAVPF 111",
        "1",
        "111 opus/48000/2",
    );
    sdp
}

fn media_section(line: &mut impl FnMut(&str), media: &str, mid: &str, rtpmap: &str) {
    let mut fingerprint = String::from("a=fingerprint:sha-256 ");
    for byte in 0u8..32 {
        let separator = if byte == 0 { "" } else { ":" };
        let _ = write!(fingerprint, "{separator}{:02X}", byte.wrapping_mul(37));
    }
    line(&format!("m={media}"));
    line("c=IN IP4 127.0.0.1");
    line("a=ice-ufrag:rlvk");
    line("a=ice-pwd:relivetestkitpassword0000");
    line(&fingerprint);
    line("a=setup:passive");
    line(&format!("a=mid:{mid}"));
    line("a=sendonly");
    line("a=rtcp-mux");
    line(&format!("a=rtpmap:{rtpmap}"));
    line("a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host");
    line("a=end-of-candidates");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::millicast::wire::{jwt_stream_name, parse_server_message};

    #[test]
    fn minted_jwt_names_its_stream() {
        let jwt = mint_jwt("acct", "cam", "sub1", [1, 2, 3, 4]);
        assert_eq!(jwt.split('.').count(), 3);
        assert_eq!(jwt_stream_name(&jwt).as_deref(), Some("cam"));
    }

    #[test]
    fn layers_frames_count_their_active_encodings() {
        for active in [0, 1, 3] {
            let ServerMessage::Event(SignalingEvent::Layers(layers)) =
                parse_server_message(&layers(active)).unwrap()
            else {
                panic!("not layers")
            };
            assert_eq!(layers.active_count() as usize, active);
        }
    }

    #[test]
    fn oversized_frame_has_the_asked_size_and_parses() {
        let frame = oversized(100_000);
        assert_eq!(frame.len(), 100_000);
        assert!(parse_server_message(&frame).is_ok());
    }

    #[test]
    fn sdp_answer_is_ice_lite_passive_with_both_mids() {
        let sdp = sdp_answer("offer", 7);
        for needle in [
            "a=ice-lite",
            "a=setup:passive",
            "a=mid:0",
            "a=mid:1",
            "typ host",
        ] {
            assert!(sdp.contains(needle), "{needle}");
        }
        assert!(sdp.lines().all(|line| !line.is_empty()));
    }
}
