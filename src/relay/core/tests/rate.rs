//! The token bucket: a burst passes, then frames are refused, a flooder is closed, and time
//! refills the bucket.

use super::*;

fn flood_config() -> RelayConfig {
    let mut config = config();
    config.limits.burst = 5;
    config.limits.rate_per_sec = 0.5;
    config
}

#[test]
fn a_burst_passes_then_five_refusals_then_the_sixth_closes() {
    let mut sim = Sim::new(flood_config());
    let mut all = Vec::new();
    for id in 0..20 {
        all.extend(sim.text(&format!(r#"{{"type":"ping","id":{id}}}"#)));
    }
    let pongs = all
        .iter()
        .filter(|a| matches!(a, Action::Send(ServerFrame::Pong { .. })));
    assert_eq!(pongs.count(), 5, "the burst passes");
    let limited = errors(&all);
    assert_eq!(limited.len(), 6, "{limited:?}");
    assert!(
        limited[..5]
            .iter()
            .all(|e| *e == (ErrorCode::RateLimited, false))
    );
    assert_eq!(limited[5], (ErrorCode::RateLimited, true));
    assert_eq!(end(&all), Some(End::Fatal(ErrorCode::RateLimited)));
}

#[test]
fn time_refills_the_bucket_and_a_passing_frame_forgives_the_refusals() {
    let mut sim = Sim::new(flood_config());
    for _ in 0..5 {
        sim.text(r#"{"type":"ping"}"#);
    }
    // Five refusals: one short of the close.
    for _ in 0..5 {
        assert_eq!(
            errors(&sim.text(r#"{"type":"ping"}"#)),
            [(ErrorCode::RateLimited, false)]
        );
    }
    sim.advance(Duration::from_secs(2)); // 0.5 per second: one token
    assert!(errors(&sim.text(r#"{"type":"ping"}"#)).is_empty());
    for _ in 0..5 {
        assert_eq!(
            errors(&sim.text(r#"{"type":"ping"}"#)),
            [(ErrorCode::RateLimited, false)]
        );
    }
    assert_eq!(end(&sim.drain()), None, "the count started over");
}

#[test]
fn websocket_pings_and_binary_frames_count_towards_the_rate() {
    let mut sim = Sim::new(flood_config());
    for _ in 0..5 {
        sim.session.handle_ping(sim.now);
    }
    assert!(
        errors(&sim.drain()).is_empty(),
        "answered by the WebSocket layer"
    );
    sim.session.handle_binary(sim.now);
    assert_eq!(errors(&sim.drain()), [(ErrorCode::RateLimited, false)]);
}
