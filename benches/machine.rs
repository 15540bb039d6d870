//! What the core costs: a progress tick while playing (alone, with the
//! `poll_timeout` a driver reads after it, and a tick whose media time does
//! not pass the furthest point), a whole drop → backoff → connect → playing
//! cycle, and one backoff delay per jitter kind.
//!
//! A tick takes its `now` as it comes (no offset arithmetic): it compares the
//! media time with the furthest point of the timeline and, while playing,
//! stores the instant if it is later than the last progress.
//!
//! `cargo bench --bench machine -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use relive::{Backoff, Input, Jitter, Machine, Policy, Retry, State};

const TICK: Duration = Duration::from_millis(4);

/// The one real instant; every other is this plus a duration.
#[allow(clippy::disallowed_methods)]
fn base() -> Instant {
    Instant::now()
}

fn drain(machine: &mut Machine) -> usize {
    let mut n = 0;
    while let Some(output) = machine.poll_output() {
        black_box(output);
        n += 1;
    }
    n
}

/// A machine that is playing and has passed `reset_after` (steady state).
fn playing(t0: Instant) -> (Machine, Instant) {
    let mut machine = Machine::new(Policy::default(), 1);
    machine.handle_input(t0, Input::Start);
    drain(&mut machine);
    machine.handle_input(t0, Input::Connected);
    drain(&mut machine);
    let mut now = t0;
    let stable = t0 + Policy::default().reset_after();
    while now <= stable {
        now += TICK;
        machine.handle_input(now, Input::Progress(now - t0));
        if machine.poll_timeout().is_some_and(|d| d <= now) {
            machine.handle_timeout(now);
        }
    }
    assert!(machine.state().is_playing() && machine.attempt() == 0);
    (machine, now)
}

fn ticks(c: &mut Criterion) {
    let t0 = base();
    let mut group = c.benchmark_group("tick");

    // Each iteration also pays `now += TICK` and `media += TICK`, as a caller
    // does; this baseline is that cost alone, to subtract.
    let (_, mut now) = playing(t0);
    let mut media = now - t0;
    group.bench_function("baseline_clock_arithmetic", |b| {
        b.iter(|| {
            now += TICK;
            media += TICK;
            (black_box(now), black_box(media))
        })
    });

    let (mut machine, mut now) = playing(t0);
    let mut media = now - t0;
    group.bench_function("progress", |b| {
        b.iter(|| {
            now += TICK;
            media += TICK;
            machine.handle_input(black_box(now), Input::Progress(black_box(media)));
        })
    });

    // A frozen picture: media time stays at the furthest point, the tick only
    // compares. (The stall deadline passes unhandled: nothing wakes it here.)
    let (mut machine, mut now) = playing(t0);
    let media = now - t0;
    group.bench_function("progress_not_advancing", |b| {
        b.iter(|| {
            now += TICK;
            machine.handle_input(black_box(now), Input::Progress(black_box(media)));
        })
    });

    let (mut machine, mut now) = playing(t0);
    let mut media = now - t0;
    group.bench_function("progress+poll_timeout", |b| {
        b.iter(|| {
            now += TICK;
            media += TICK;
            machine.handle_input(black_box(now), Input::Progress(black_box(media)));
            black_box(machine.poll_timeout())
        })
    });
    group.finish();
}

fn cycle(c: &mut Criterion) {
    let t0 = base();
    let (mut machine, mut now) = playing(t0);
    let mut media = now - t0;
    c.bench_function("cycle/drop_backoff_connect_play", |b| {
        b.iter(|| {
            machine.handle_input(now, Input::TransportLost(Retry::Later));
            drain(&mut machine);
            // The first drop (after stable play) waits within the reconnect
            // spread; past it the session is unstable: a real backoff.
            if let State::Backoff { until, .. } = machine.state() {
                now = until;
                machine.handle_timeout(now);
                drain(&mut machine);
            }
            machine.handle_input(now, Input::Connected);
            drain(&mut machine);
            media += TICK;
            now += TICK;
            machine.handle_input(now, Input::Progress(media));
            black_box(drain(&mut machine))
        })
    });
}

fn delays(c: &mut Criterion) {
    let mut group = c.benchmark_group("backoff_delay");
    let kinds = [
        ("none", Jitter::None),
        ("full", Jitter::Full),
        ("equal", Jitter::Equal),
        ("decorrelated", Jitter::Decorrelated),
    ];
    for (name, jitter) in kinds {
        let policy = Policy::builder()
            .jitter(jitter)
            .build()
            .expect("a valid policy");
        let mut backoff = Backoff::new(*policy.backoff(), 7);
        group.bench_function(name, |b| {
            b.iter(|| {
                if backoff.failures() == 16 {
                    backoff.reset();
                }
                black_box(backoff.next_delay())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ticks, cycle, delays);
criterion_main!(benches);
