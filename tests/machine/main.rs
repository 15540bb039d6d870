//! Behaviour of the reconnect [`relive::Machine`] through its public API, one
//! module per situation, on a [`sim::Sim`] with a virtual clock. A failing
//! test prints the timeline of inputs and outputs that led there.

mod backoff;
mod give_up;
mod layers;
mod live_hint;
mod not_published;
mod pause;
mod sim;
mod stall;
mod stop;
mod time;

use std::time::Duration;

use relive::{Jitter, Policy, PolicyBuilder};

/// How often a player reports its media time in these tests.
const TICK: Duration = Duration::from_millis(250);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The test policy: the defaults, without jitter so that delays are exact.
///
/// stall_after 2 s, first_media_within 5 s, stall_grace 3 s, connect_timeout
/// 10 s, backoff 500 ms × 2 up to 10 s, reset_after 10 s, no hint spread.
fn policy() -> PolicyBuilder {
    Policy::builder().jitter(Jitter::None)
}

fn build(builder: PolicyBuilder) -> Policy {
    builder.build().expect("a valid test policy")
}
