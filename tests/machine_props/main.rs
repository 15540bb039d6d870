//! Model-based property test of [`relive::Machine`].
//!
//! Random policies and random step sequences (every input, timeouts at the
//! machine's own deadline and at arbitrary instants, time going forward,
//! standing still and going backwards) drive one machine. After each step the
//! harness drains every output, as the contract says, and keeps a reference
//! model of what the outside world holds (an attempt in flight? a session?),
//! of the timers the machine should have (media time as a high-water mark
//! per timeline, ticks taken at their own instant), and of the counters the
//! give-up rules read (failures other than a missing publisher, the outage
//! clock, the wait for a publisher). The invariants of the crate's state table are
//! checked against that model after every step, and the machine must give
//! up exactly when, and why, the model does. Two rules that once lived
//! outside the machine are modelled here too: a live hint that comes while an
//! attempt is in flight (or a session is stalled for lack of progress) acts on
//! the next `Backoff`, and ticks during a stall the publisher caused
//! (`Inactive`, `StreamEnded`) do not end it.

mod checks;
mod harness;
mod race;
#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::Harness;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use relive::{Jitter, Policy, Retry};

/// How a progress tick's media time relates to the previous tick's, or to
/// the furthest point of the session's timeline.
#[derive(Clone, Copy, Debug)]
enum Media {
    /// This many ms after the previous tick.
    Advance(u16),
    /// The previous tick's media time again.
    Same,
    /// This many ms before the previous tick.
    Back(u16),
    /// This many ms before the furthest point (a flicker, or a new timeline
    /// beyond one second).
    BelowFurthest(u16),
    /// Exactly the furthest point: no progress.
    Furthest,
    /// This many ms after the previous tick, past the leap limit (10 s).
    Leap(u16),
}

/// One thing that happens to the machine.
#[derive(Clone, Copy, Debug)]
enum Step {
    Start,
    Stop,
    Pause,
    Resume,
    Connected,
    ConnectFailed(Retry),
    Progress(Media),
    Layers(u32),
    Active,
    Inactive,
    StreamEnded,
    TransportLost(Retry),
    SessionEnded,
    LiveHint,
    LiveHintWithdrawn,
    /// Moves the caller's clock by this many ms: forward, 0 (equal) or backwards.
    Wait(i32),
    /// `handle_timeout` exactly at `poll_timeout` (which may lie in the past).
    TimeoutAtDeadline,
    /// `handle_timeout` at the clock plus this many ms (the clock stays).
    TimeoutAt(i32),
    /// What a driver does: `handle_timeout(clock)` until nothing is due.
    FireDue,
}

/// The generated part: a policy and a seed. The steps need no state to be
/// generated; the reference model lives in [`Harness`], fed by the outputs.
#[derive(Clone, Debug)]
struct Setup {
    policy: Policy,
    seed: u64,
}

struct Generator;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn retry() -> impl Strategy<Value = Retry> {
    // `Never` ends a sequence's interesting part: keep it rarer.
    prop_oneof![
        2 => Just(Retry::Now),
        3 => Just(Retry::Later),
        3 => Just(Retry::WaitForPublisher),
        1 => Just(Retry::Never),
    ]
}

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    let timing = (
        1..3_000u64,
        1..5_000u64,
        0..3_000u64,
        1..5_000u64,
        1..10_000u64,
    );
    let backoff = (0..1_000u64, 1.0..3.0f64, 1..5_000u64, jitter());
    let patience = (
        prop_oneof![Just(0u64), 1..2_000u64],
        prop_oneof![Just(0u64), 1..3_000u64],
        proptest::option::of(1..6u32),
        proptest::option::of(1..20_000u64),
        proptest::option::of(1..3_000u64),
    );
    (timing, backoff, patience).prop_map(|(t, b, p)| {
        let (stall_after, first_media, grace, connect_timeout, reset_after) = t;
        let (initial, multiplier, extra_cap, jitter) = b;
        let (spread, reconnect_spread, max_attempts, max_outage, wait_for_publisher) = p;
        let mut builder = Policy::builder()
            .stall_after(ms(stall_after))
            .first_media_within(ms(first_media))
            .stall_grace(ms(grace))
            .connect_timeout(ms(connect_timeout))
            .reset_after(ms(reset_after))
            .backoff(ms(initial), multiplier, ms(initial + extra_cap))
            .jitter(jitter)
            .hint_spread(ms(spread))
            .reconnect_spread(ms(reconnect_spread))
            .wait_for_publisher(wait_for_publisher.map(ms))
            // The reference model is of one session or attempt at a time;
            // make-before-break has its own property (`race`).
            .make_before_break(false);
        if let Some(n) = max_attempts {
            builder = builder.give_up_after_attempts(n);
        }
        if let Some(d) = max_outage {
            builder = builder.give_up_after(ms(d));
        }
        builder
            .build()
            .expect("the strategy only builds valid policies")
    })
}

fn media() -> impl Strategy<Value = Media> {
    // Around the one-second jump that starts a new timeline, and at it.
    let below = prop_oneof![1..2_000u16, Just(1_000u16), Just(1_001u16)];
    prop_oneof![
        6 => (1..1_000u16).prop_map(Media::Advance),
        2 => Just(Media::Same),
        1 => (1..5_000u16).prop_map(Media::Back),
        1 => below.prop_map(Media::BelowFurthest),
        1 => Just(Media::Furthest),
        1 => (10_001..20_000u16).prop_map(Media::Leap),
    ]
}

fn step() -> BoxedStrategy<Step> {
    prop_oneof![
        2 => Just(Step::Start),
        1 => Just(Step::Stop),
        1 => Just(Step::Pause),
        1 => Just(Step::Resume),
        3 => Just(Step::Connected),
        2 => retry().prop_map(Step::ConnectFailed),
        6 => media().prop_map(Step::Progress),
        1 => prop_oneof![Just(0u32), 1..4u32].prop_map(Step::Layers),
        1 => Just(Step::Active),
        1 => Just(Step::Inactive),
        1 => Just(Step::StreamEnded),
        2 => retry().prop_map(Step::TransportLost),
        1 => Just(Step::SessionEnded),
        2 => Just(Step::LiveHint),
        1 => Just(Step::LiveHintWithdrawn),
        4 => prop_oneof![
            6 => 1..400i32,
            2 => Just(0i32),
            2 => -3_000..0i32,
            2 => 400..30_000i32,
        ]
        .prop_map(Step::Wait),
        3 => Just(Step::TimeoutAtDeadline),
        1 => (-3_000..3_000i32).prop_map(Step::TimeoutAt),
        3 => Just(Step::FireDue),
    ]
    .boxed()
}

impl ReferenceStateMachine for Generator {
    type State = Setup;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Setup> {
        (policy(), any::<u64>())
            .prop_map(|(policy, seed)| Setup { policy, seed })
            .boxed()
    }

    fn transitions(_: &Setup) -> BoxedStrategy<Step> {
        // Built once per thread: the tree of unions is costly to build per step.
        thread_local!(static STEP: BoxedStrategy<Step> = step());
        STEP.with(BoxedStrategy::clone)
    }

    fn apply(setup: Setup, _: &Step) -> Setup {
        setup
    }
}

struct MachineTest;

impl StateMachineTest for MachineTest {
    type SystemUnderTest = Harness;
    type Reference = Generator;

    fn init_test(setup: &Setup) -> Harness {
        Harness::new(setup)
    }

    fn apply(mut harness: Harness, _: &Setup, step: Step) -> Harness {
        harness.run(step);
        harness
    }
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: 10_000,
        // Shrinking a 60-step failure needs room; the cases stay fast.
        max_shrink_iters: 20_000,
        // ChaCha, unoptimised in a debug build, took most of the run time.
        rng_algorithm: RngAlgorithm::XorShift,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/machine_props.txt",
        ))),
        .. Config::default()
    })]

    #[test]
    fn the_machine_keeps_every_invariant_on_any_sequence(sequential 1..60 => MachineTest);
}

proptest! {
    #![proptest_config(Config {
        cases: 4_000,
        rng_algorithm: RngAlgorithm::XorShift,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/machine_props_race.txt",
        ))),
        .. Config::default()
    })]

    #[test]
    fn make_before_break_holds_at_most_a_session_and_one_attempt(
        policy in race::race_policy(),
        seed in any::<u64>(),
        steps in proptest::collection::vec(race::race_step(), 1..80),
    ) {
        race::outcomes(policy, seed, &steps);
    }
}

/// Guards the race property's generator: its sequences do reach a session and
/// an attempt held together, and each way out of it.
#[test]
fn random_sequences_make_the_machine_race_and_resolve_the_race() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{TestRng, TestRunner};

    let rng = TestRng::deterministic_rng(RngAlgorithm::XorShift);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let steps = proptest::collection::vec(race::race_step(), 1..80);
    let mut outcomes = BTreeSet::new();
    for _ in 0..2_000 {
        let policy = race::race_policy().new_tree(&mut runner).unwrap().current();
        let steps = steps.new_tree(&mut runner).unwrap().current();
        outcomes.extend(race::outcomes(policy, 9, &steps));
    }
    for wanted in [
        "replaced",
        "abandoned",
        "went on",
        "failed",
        "repair",
        "repaired",
    ] {
        assert!(outcomes.contains(wanted), "never {wanted}: {outcomes:?}");
    }
}

/// Guards the generator: a fixed run of sequences must reach every state by
/// every road the invariants talk about, or the property above proves little.
#[test]
fn random_sequences_reach_every_transition_that_the_invariants_talk_about() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{TestRng, TestRunner};

    let config = Config::default();
    let rng = TestRng::deterministic_rng(RngAlgorithm::XorShift);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let steps = proptest::collection::vec(step(), 1..60);
    let mut seen = BTreeSet::new();
    for _ in 0..2_000 {
        let setup = Generator::init_state()
            .new_tree(&mut runner)
            .expect("a setup")
            .current();
        let mut harness = Harness::new(&setup);
        harness.seen = Some(BTreeSet::new());
        for step in steps.new_tree(&mut runner).expect("steps").current() {
            harness.run(step);
        }
        seen.extend(harness.seen.take().into_iter().flatten());
    }
    let wanted = [
        "idle -> connecting: started",
        "connecting -> playing: connected",
        "connecting -> backoff: connect failed (retry later)",
        "connecting -> backoff: connect failed (wait for publisher)",
        "connecting -> connecting: connect failed (retry now)",
        "connecting -> backoff: connect timed out",
        "connecting -> idle: gave up: fatal error",
        "backoff -> connecting: backoff elapsed",
        "backoff -> connecting: live hint",
        "backoff -> backoff: live hint",
        "playing -> stalled: stall: no progress",
        "playing -> stalled: stall: no active layers",
        "playing -> stalled: stall: publisher inactive",
        "playing -> stalled: stall: stream ended",
        "playing -> backoff: session ended",
        "a kept live hint acted on the next backoff",
        "a kept live hint was withdrawn",
        "tick: a publisher-side stall does not end on progress",
        "tick: a leap forward is progress",
        "playing -> connecting: transport lost (retry later)",
        "playing -> backoff: transport lost (retry later)",
        "playing -> backoff: transport lost (retry now)",
        "playing -> backoff: transport lost (wait for publisher)",
        "spread after transport lost (retry later)",
        "spread after stalled too long: no progress",
        "spread after stalled too long: no active layers",
        "at once after a stable session was lost",
        "playing -> idle: gave up: fatal error",
        "stalled -> playing: media advances again",
        "stalled -> playing: layers are back",
        "stalled -> playing: publisher active",
        "stalled -> playing: live hint",
        "stalled -> playing: paused by the user",
        "stalled -> connecting: stalled too long: no progress",
        "stalled -> backoff: stalled too long: no active layers",
        "connecting -> idle: gave up: too many attempts",
        "connecting -> idle: gave up: outage too long",
        "connecting -> idle: gave up: publisher never came",
        "playing -> idle: gave up: too many attempts",
        "gave up on attempts after waiting for a publisher",
        "attempt past max after waiting for a publisher",
        "a publisher answer restarted the outage clock",
        "a pause held across start",
        "tick: a jump back starts a new timeline",
        "tick: back within a second, no progress",
        "tick: at the furthest point, no progress",
        "tick: ahead of the machine's clock",
        "tick: behind the machine's clock, counted",
        "tick: older than the last progress",
        "stop in connecting",
        "stop in playing",
        "stop in stalled",
        "stop in backoff",
        "now went backwards",
        "now stood still",
    ];
    let missing: Vec<_> = wanted.iter().filter(|w| !seen.contains(**w)).collect();
    assert!(
        missing.is_empty(),
        "never reached: {missing:#?}\nseen: {seen:#?}"
    );
}
