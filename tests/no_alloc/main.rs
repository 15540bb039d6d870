//! The machine's hot paths allocate nothing: a counting global allocator
//! watches the test thread while a playing machine takes 100 000 progress
//! ticks, while ticks flicker, jump back to a new timeline, arrive out of
//! order, stall and heal, and while it goes through drop → backoff → connect
//! → playing, both as a flapping session and through the reconnect spread
//! after stable play. The drivers too (feature `testkit`): a fleet of 1 000
//! playing viewers fed progress in bulk, and a `Reconnector` fed through
//! `report_progress`, each on a paused current-thread runtime, so that their
//! tasks run on the watched test thread.
//!
//! Unsafe code is needed here, and only here, to implement `GlobalAlloc`; the
//! library itself keeps `#![forbid(unsafe_code)]`.
#![allow(unsafe_code)]

#[path = "../support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use relive::{Input, Machine, Policy, Retry, State};

/// `System`, counting the allocations made by threads that asked to be watched.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Const-initialised and without `Drop`: reading it never allocates.
    static WATCHED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if WATCHED.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; counting touches no memory that is handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` was allocated by `System` with `layout` (every
        // allocation goes through this wrapper), as the caller guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One measurement at a time, so that the global count is ours alone.
static SERIAL: Mutex<()> = Mutex::new(());

/// How many allocations this thread made while running `f`.
fn allocations_during(f: impl FnOnce()) -> u64 {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    WATCHED.with(|w| w.set(true));
    f();
    WATCHED.with(|w| w.set(false));
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

/// Drains every output without keeping them; returns how many there were.
fn drain(machine: &mut Machine) -> usize {
    let mut n = 0;
    while let Some(output) = machine.poll_output() {
        black_box(output);
        n += 1;
    }
    n
}

fn playing_machine(t0: Instant) -> Machine {
    let mut machine = Machine::new(Policy::default(), 1);
    machine.handle_input(t0, Input::Start);
    drain(&mut machine);
    machine.handle_input(t0, Input::Connected);
    drain(&mut machine);
    assert!(machine.state().is_playing());
    machine
}

#[allow(clippy::disallowed_methods)] // one real base instant; all else is offsets
fn base() -> Instant {
    Instant::now()
}

#[test]
fn the_counter_sees_allocations_on_the_watched_thread() {
    let n = allocations_during(|| {
        black_box(Box::new(black_box(42u64)));
        black_box(Vec::<u8>::with_capacity(black_box(64)));
    });
    assert_eq!(n, 2);
}

#[test]
fn a_hundred_thousand_progress_ticks_allocate_nothing() {
    let t0 = base();
    let mut machine = playing_machine(t0);
    let tick = Duration::from_millis(4);
    let mut woken = 0u32;
    let n = allocations_during(|| {
        for i in 1..=100_000u32 {
            let now = t0 + tick * i;
            machine.handle_input(now, Input::Progress(tick * i));
            // As the driver does: wake the machine when its deadline is reached.
            if black_box(machine.poll_timeout()).is_some_and(|d| d <= now) {
                machine.handle_timeout(now);
                woken += 1;
            }
        }
    });
    assert_eq!(n, 0, "allocations in 100 000 ticks");
    // The only deadline reached was `reset_after`: playback became stable.
    assert_eq!(woken, 1);
    assert_eq!(machine.attempt(), 0);
    assert!(machine.state().is_playing());
    assert!(!machine.has_output());
}

#[test]
fn a_drop_backoff_connect_play_cycle_allocates_nothing_after_warm_up() {
    let t0 = base();
    let mut machine = playing_machine(t0);
    let mut now = t0;
    let mut media = Duration::ZERO;
    let mut cycle = |machine: &mut Machine| {
        now += Duration::from_millis(500);
        media += Duration::from_millis(500);
        machine.handle_input(now, Input::Progress(media));
        drain(machine);
        machine.handle_input(now, Input::TransportLost(Retry::Later));
        drain(machine);
        let backed_off = matches!(machine.state(), State::Backoff { .. });
        now = machine.poll_timeout().expect("a backoff deadline");
        machine.handle_timeout(now);
        let connects = drain(machine);
        machine.handle_input(now, Input::Connected);
        drain(machine);
        machine.handle_input(now, Input::Progress(media));
        drain(machine);
        backed_off && connects == 2 && machine.state().is_playing()
    };
    assert!(cycle(&mut machine), "warm-up cycle");
    let mut full_cycles = 0;
    let n = allocations_during(|| {
        for _ in 0..10_000 {
            full_cycles += u32::from(cycle(&mut machine));
        }
    });
    assert_eq!(n, 0, "allocations in 10 000 cycles");
    assert_eq!(full_cycles, 10_000, "each cycle went through backoff");
}

#[test]
fn ticks_that_flicker_jump_back_arrive_out_of_order_stall_and_heal_allocate_nothing() {
    let t0 = base();
    let mut machine = playing_machine(t0);
    let ms = Duration::from_millis;
    let mut now = t0;
    let mut media = Duration::ZERO;
    let mut stalls = 0u32;
    let mut heals = 0u32;
    let mut round = |machine: &mut Machine| {
        // Two seconds of healthy ticks, then one stamped before the one it follows.
        for _ in 0..20 {
            now += ms(100);
            media += ms(100);
            machine.handle_input(now, Input::Progress(media));
        }
        machine.handle_input(now - ms(50), Input::Progress(media + ms(1)));
        media += ms(1);
        // A frozen picture whose clock flickers: a stall.
        for i in 0..30u32 {
            now += ms(100);
            let flicker = if i % 2 == 0 { media - ms(20) } else { media };
            machine.handle_input(now, Input::Progress(flicker));
            if machine.poll_timeout().is_some_and(|d| d <= now) {
                // Counted on entry: a stalled machine has more deadlines (its
                // make-before-break attempt).
                let was_stalled = matches!(machine.state(), State::Stalled { .. });
                machine.handle_timeout(now);
                let stalled = matches!(machine.state(), State::Stalled { .. });
                stalls += u32::from(stalled && !was_stalled);
            }
            drain(machine);
        }
        // The publisher restarts: a new timeline, then media heals the stall.
        media = Duration::ZERO;
        machine.handle_input(now, Input::Progress(media));
        now += ms(100);
        media += ms(40);
        machine.handle_input(now, Input::Progress(media));
        heals += u32::from(machine.state().is_playing());
        drain(machine);
    };
    round(&mut machine);
    let n = allocations_during(|| {
        for _ in 0..1_000 {
            round(&mut machine);
        }
    });
    assert_eq!(n, 0, "allocations in 1 000 rounds");
    assert_eq!(
        (stalls, heals),
        (1_001, 1_001),
        "every round stalled and healed"
    );
}

#[test]
fn a_drop_after_stable_play_through_the_reconnect_spread_allocates_nothing() {
    let policy = Policy::builder()
        .reset_after(Duration::from_millis(1))
        .build()
        .expect("a valid policy");
    let t0 = base();
    let mut machine = Machine::new(policy, 1);
    machine.handle_input(t0, Input::Start);
    drain(&mut machine);
    let mut now = t0;
    let mut cycle = |machine: &mut Machine| {
        machine.handle_input(now, Input::Connected);
        drain(machine);
        now += Duration::from_millis(100);
        machine.handle_input(now, Input::Progress(Duration::from_millis(100)));
        // `reset_after` passed: the session is stable.
        machine.handle_timeout(now);
        drain(machine);
        let stable = machine.attempt() == 0;
        machine.handle_input(now, Input::TransportLost(Retry::Later));
        drain(machine);
        let spread = matches!(machine.state(), State::Backoff { attempt: 1, .. });
        now = machine.poll_timeout().expect("the spread's deadline");
        machine.handle_timeout(now);
        drain(machine);
        stable && spread && matches!(machine.state(), State::Connecting { attempt: 1, .. })
    };
    assert!(cycle(&mut machine), "warm-up cycle");
    let mut full_cycles = 0;
    let n = allocations_during(|| {
        for _ in 0..10_000 {
            full_cycles += u32::from(cycle(&mut machine));
        }
    });
    assert_eq!(n, 0, "allocations in 10 000 cycles");
    assert_eq!(full_cycles, 10_000, "each cycle went through the spread");
}

/// A paused current-thread runtime: its tasks run on the watched test thread,
/// and sleeping is free.
#[cfg(feature = "testkit")]
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
}

#[cfg(feature = "testkit")]
mod drivers {
    use std::time::Duration;

    use futures::{FutureExt, StreamExt};
    use relive::testkit::MemoryStream;
    use relive::{FleetBuilder, Policy, Reconnector, State};
    use tokio::time::sleep;

    use super::{allocations_during, paused_runtime};

    const TICK: Duration = Duration::from_millis(250);

    #[test]
    fn a_fleet_fed_progress_in_bulk_allocates_nothing_in_its_steady_state() {
        let rt = paused_runtime();
        let stream = MemoryStream::new();
        stream.publish();
        let source = stream.source().with_progress(false);
        let mut fleet =
            rt.block_on(async { FleetBuilder::new(Policy::default()).shards(2).spawn() });
        let ids: Vec<_> = (0..1_000).map(|_| fleet.add(source.clone())).collect();
        let mut batch: Vec<_> = ids.iter().map(|id| (*id, Duration::ZERO)).collect();
        let mut rounds = |fleet: &mut relive::Fleet<_>, n: u32| {
            rt.block_on(async {
                for _ in 0..n {
                    for (_, media) in &mut batch {
                        *media += TICK;
                    }
                    fleet.report_progress(&batch);
                    sleep(TICK).await;
                    // The application reads what comes (nothing, once playing).
                    while let Some(Some(event)) = fleet.next().now_or_never() {
                        std::hint::black_box(event);
                    }
                }
            });
        };
        // Warm-up: every viewer connects and plays, its stall deadline fires
        // early and re-arms a few times, playback becomes stable (reset_after),
        // and the timer wheel goes round more than a lap.
        rounds(&mut fleet, 80);
        let playing = |s: Option<State>| s.is_some_and(|s| s.is_playing());
        assert!(ids.iter().all(|id| playing(fleet.state(*id))));
        let n = allocations_during(|| rounds(&mut fleet, 400));
        assert_eq!(n, 0, "allocations in 400 rounds of 1 000 ticks");
        assert!(
            ids.iter().all(|id| playing(fleet.state(*id))),
            "a viewer stalled"
        );
        assert_eq!(fleet.ticks_refused(), 0);
    }

    #[test]
    fn report_progress_allocates_nothing() {
        let rt = paused_runtime();
        let stream = MemoryStream::new();
        stream.publish();
        let source = stream.source().with_progress(false);
        let mut viewer = rt.block_on(async { Reconnector::new(source, Policy::default()).spawn() });
        let mut media = Duration::ZERO;
        let mut rounds = |viewer: &mut relive::Viewer<_>, n: u32| {
            rt.block_on(async {
                for _ in 0..n {
                    media += TICK;
                    viewer.report_progress(media);
                    sleep(TICK).await;
                    while let Some(Some(event)) = viewer.next().now_or_never() {
                        std::hint::black_box(event);
                    }
                }
            });
        };
        rounds(&mut viewer, 80);
        assert!(viewer.state().is_playing());
        let n = allocations_during(|| rounds(&mut viewer, 4_000));
        assert_eq!(n, 0, "allocations in 4 000 reports");
        assert!(viewer.state().is_playing(), "{}", viewer.state());
    }
}
