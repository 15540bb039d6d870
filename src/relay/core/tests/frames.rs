//! Frames the protocol refuses: too large, binary, malformed, unknown, and beyond the hard
//! limit.

use super::*;

#[test]
fn malformed_unknown_and_invalid_frames_are_refused_without_closing() {
    let mut sim = Sim::viewer(config());
    for (text, code) in [
        ("not json", ErrorCode::Malformed),
        ("{\"type\":\"view\"", ErrorCode::Malformed),
        (r#"{"type":"launch"}"#, ErrorCode::UnknownType),
        (
            r#"{"type":"view","stream":"cam 1"}"#,
            ErrorCode::InvalidStream,
        ),
    ] {
        let got = sim.text(text);
        assert_eq!(errors(&got), [(code, false)], "{text}");
        assert_eq!(end(&got), None);
    }
    sim.session.handle_binary(sim.now);
    assert_eq!(errors(&sim.drain()), [(ErrorCode::Malformed, false)]);
}

#[test]
fn a_frame_over_max_frame_is_refused_and_one_beyond_the_hard_limit_closes() {
    let mut config = config();
    config.limits.max_frame = 4096;
    let mut sim = Sim::viewer(config);
    let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(5000));
    assert_eq!(errors(&sim.text(&big)), [(ErrorCode::TooLarge, false)]);
    assert_eq!(
        sim.text(r#"{"type":"ping"}"#),
        [Action::Send(ServerFrame::Pong { id: None })]
    );
    sim.session.handle_overflow(sim.now);
    let got = sim.drain();
    assert_eq!(errors(&got), [(ErrorCode::TooLarge, true)]);
    assert_eq!(end(&got), Some(End::Overflow));
}
