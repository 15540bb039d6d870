//! Behaviour of the reconnect [`relive::Machine`] through its public API, one
//! module per situation, on a [`sim::Sim`] with a virtual clock. A failing
//! test prints the timeline of inputs and outputs that led there.

mod backoff;
mod give_up;
mod layers;
mod live_hint;
mod make_before_break;
mod network;
mod not_published;
mod pause;
mod repair;
mod retry_after;
mod sim;
mod stall;
mod stop;
mod time;
mod timeline;

use std::time::Duration;

use relive::{Jitter, Policy, PolicyBuilder};

/// How often a player reports its media time in these tests.
const TICK: Duration = Duration::from_millis(250);

/// The default `reconnect_spread`: the widest delay before the first
/// reconnect after a session that played stably is lost.
const SPREAD: Duration = Duration::from_millis(1_500);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The test policy: the defaults, without backoff jitter so that the delays
/// between attempts are exact.
///
/// stall_after 2 s, first_media_within 5 s, stall_grace 3 s, connect_timeout
/// 10 s, backoff 1 s × 2 up to 10 s, reset_after 10 s, no hint spread, and the
/// default `reconnect_spread` of 1.5 s (random, but fixed by the sim's seed).
/// Tests that rely on the first reconnect being immediate pin
/// `reconnect_spread(Duration::ZERO)` themselves, see [`at_once`].
/// Make-before-break is off, so that a stall plays its grace out alone; its
/// own tests ([`make_before_break`]) turn it on.
fn policy() -> PolicyBuilder {
    Policy::builder()
        .jitter(Jitter::None)
        .make_before_break(false)
}

/// [`policy`] with the first reconnect after stable play at once (the
/// behaviour before `reconnect_spread`).
fn at_once() -> PolicyBuilder {
    policy().reconnect_spread(Duration::ZERO)
}

fn build(builder: PolicyBuilder) -> Policy {
    builder.build().expect("a valid test policy")
}

#[test]
fn the_test_policy_is_the_default_policy_without_jitter() {
    let p = build(policy());
    let d = Policy::default();
    assert_eq!(p.backoff().jitter(), Jitter::None);
    assert_eq!(
        build(
            policy()
                .jitter(d.backoff().jitter())
                .make_before_break(true)
        ),
        d
    );
}

#[test]
fn the_defaults_are_what_these_tests_assume() {
    let d = Policy::default();
    assert_eq!(d.stall_after(), secs(2));
    assert_eq!(d.first_media_within(), secs(5));
    assert_eq!(d.stall_grace(), secs(3));
    assert_eq!(d.connect_timeout(), secs(10));
    assert_eq!(d.backoff().initial(), secs(1));
    assert!((d.backoff().multiplier() - 2.0).abs() < f64::EPSILON);
    assert_eq!(d.backoff().cap(), secs(10));
    assert_eq!(d.backoff().jitter(), Jitter::Decorrelated);
    assert_eq!(d.reconnect_spread(), SPREAD);
    assert_eq!(d.reset_after(), secs(10));
    assert_eq!(d.hint_spread(), Duration::ZERO);
    assert_eq!(d.give_up(), relive::GiveUpRule::NEVER);
    assert_eq!(d.wait_for_publisher(), None);
    assert!(d.progress_watchdog());
    assert!(d.make_before_break());
    assert_eq!(d.retry_after_max(), secs(60));
}

#[cfg(all(target_pointer_width = "64", target_os = "linux"))]
#[test]
fn the_machine_is_248_bytes_on_64_bit_linux() {
    assert_eq!(relive::MACHINE_SIZE, 248);
    assert_eq!(relive::MACHINE_SIZE, std::mem::size_of::<relive::Machine>());
}
