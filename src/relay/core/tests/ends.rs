//! How a connection is told it ends: a slow consumer and a shutdown get their frame written past
//! the queue; only the first end counts.

use super::*;

#[test]
fn a_kicked_connection_ends_slow_and_is_told_slow_consumer() {
    let mut sim = Sim::viewer(config());
    sim.session.handle_kicked(sim.now);
    sim.session.handle_shutdown(sim.now);
    assert_eq!(
        sim.drain(),
        [Action::Close(End::Slow)],
        "only the first end"
    );
    let words = End::Slow.last_words();
    assert!(matches!(
        words,
        Some(ServerFrame::Error {
            code: ErrorCode::SlowConsumer,
            fatal: true,
            ..
        })
    ));
}

#[test]
fn shutdown_says_shutdown_and_other_ends_say_nothing_more() {
    let mut sim = Sim::viewer(config());
    sim.session.handle_shutdown(sim.now);
    assert_eq!(sim.drain(), [Action::Close(End::Shutdown)]);
    assert!(matches!(
        End::Shutdown.last_words(),
        Some(ServerFrame::Shutdown { .. })
    ));
    for end in [
        End::Gone,
        End::Closed,
        End::Overflow,
        End::Fatal(ErrorCode::Unauthorized),
    ] {
        assert_eq!(end.last_words(), None);
    }
}
