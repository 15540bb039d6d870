//! What each role may do: viewers never publish, publishers never view, and a token publishes
//! only the streams its most specific rule covers.

use super::*;

#[test]
fn a_viewer_can_never_publish_or_close() {
    let mut sim = Sim::viewer(config());
    let got = sim.text(r#"{"type":"publish","stream":"cam-1","details":{}}"#);
    assert_eq!(errors(&got), [(ErrorCode::Forbidden, false)]);
    let got = sim.text(r#"{"type":"close","stream":"cam-1"}"#);
    assert_eq!(errors(&got), [(ErrorCode::Forbidden, false)]);
}

#[test]
fn a_publisher_can_never_view_or_ask_the_director() {
    let mut sim = Sim::publisher(config(), TOKEN);
    for frame in [
        r#"{"type":"view","stream":"cam-1"}"#,
        r#"{"type":"unview","stream":"cam-1"}"#,
        r#"{"type":"director","stream":"cam-1","id":1}"#,
    ] {
        assert_eq!(
            errors(&sim.text(frame)),
            [(ErrorCode::Forbidden, false)],
            "{frame}"
        );
    }
}

#[test]
fn a_token_publishes_only_what_its_most_specific_rule_covers() {
    let config = config()
        .publish_token("cam-9", "nine-only")
        .publish_token("mic-*", "mics");
    let mut mics = Sim::publisher(config.clone(), "mics");
    let got = mics.text(r#"{"type":"publish","stream":"cam-1"}"#);
    assert_eq!(errors(&got), [(ErrorCode::Unauthorized, false)]);
    let got = mics.text(r#"{"type":"publish","stream":"other"}"#);
    assert_eq!(
        errors(&got),
        [(ErrorCode::Forbidden, false)],
        "no rule: nobody"
    );
    let mut cams = Sim::publisher(config, TOKEN);
    let got = cams.text(r#"{"type":"publish","stream":"cam-9"}"#);
    assert_eq!(
        errors(&got),
        [(ErrorCode::Unauthorized, false)],
        "cam-9 has its own"
    );
    let got = cams.text(r#"{"type":"publish","stream":"cam-1"}"#);
    assert!(matches!(&got[..], [Action::Publish { stream, .. }] if *stream == cam(1)));
}
