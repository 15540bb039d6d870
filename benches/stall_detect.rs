//! Stall detection, on virtual time: relive's detector (a `Machine` with the
//! default policy, fed the player's clock 4×/s) against the seed blog's loop
//! (every 5 s, compare `currentTime` with the last poll; equal = stalled =
//! reconnect), on the same traces: freezes, user pauses, short hiccups.
//!
//! `cargo bench --bench stall_detect` prints the table of the README's "Results".

use std::time::{Duration, Instant};

use relive::{Input, Machine, Output, Policy, State};

const TICK: Duration = Duration::from_millis(250);
const POLL: Duration = Duration::from_secs(5);
/// Random phases of the trace against the seed's poll and relive's ticks.
const PHASES: u64 = 400;

#[derive(Clone, Copy)]
enum Trace {
    /// Media stops for this long, then flows again on the same session.
    Freeze(Duration),
    /// The user pauses for this long (the player knows; the seed's loop does not).
    Pause(Duration),
}

impl Trace {
    fn label(&self) -> String {
        match self {
            Trace::Freeze(d) if *d < Duration::from_secs(2) => {
                format!("hiccup {:.1} s", d.as_secs_f64())
            }
            Trace::Freeze(d) => format!("freeze {} s", d.as_secs()),
            Trace::Pause(d) => format!("user pause {} s", d.as_secs()),
        }
    }

    fn is_fault(&self) -> bool {
        matches!(self, Trace::Freeze(_))
    }
}

/// What one detector did on one run of a trace.
#[derive(Default)]
struct Seen {
    /// From the start of the freeze to "stalled" (relive) or to the reconnect (seed).
    detected_after: Option<Duration>,
    /// The session was dropped and reconnected.
    reconnected: bool,
}

const START: Duration = Duration::from_secs(30);

#[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
fn origin() -> Instant {
    Instant::now()
}

/// relive: ticks every 250 ms with the player's media time.
fn relive(trace: Trace, phase: Duration) -> Seen {
    let t0 = origin();
    let mut m = Machine::new(Policy::default(), 1);
    m.handle_input(t0, Input::Start);
    m.handle_input(t0, Input::Connected);
    drain(&mut m, &mut Seen::default(), t0, t0);
    let event_at = t0 + START + phase;
    let (length, paused) = match trace {
        Trace::Freeze(d) => (d, false),
        Trace::Pause(d) => (d, true),
    };
    let mut seen = Seen::default();
    let (mut now, mut media) = (t0, Duration::ZERO);
    let end = event_at + length + Duration::from_secs(30);
    while now < end {
        let next = now + TICK;
        // Deadlines that fall between two ticks.
        while let Some(wake) = m.poll_timeout().filter(|w| *w < next) {
            m.handle_timeout(wake);
            drain(&mut m, &mut seen, wake, event_at);
        }
        now = next;
        let frozen = now > event_at && now <= event_at + length;
        if paused && now > event_at && !m.is_paused() && frozen {
            m.handle_input(now, Input::Pause);
        }
        if paused && !frozen && m.is_paused() {
            m.handle_input(now, Input::Resume);
        }
        if !frozen {
            media += TICK;
        }
        m.handle_input(now, Input::Progress(media));
        drain(&mut m, &mut seen, now, event_at);
    }
    seen
}

fn drain(m: &mut Machine, seen: &mut Seen, now: Instant, event_at: Instant) {
    while let Some(out) = m.poll_output() {
        match out {
            Output::StateChanged {
                to: State::Stalled { .. },
                ..
            } if seen.detected_after.is_none() && now >= event_at => {
                seen.detected_after = Some(now - event_at);
            }
            Output::DropSession { .. } => seen.reconnected = true,
            Output::Connect { .. } => m.handle_input(now, Input::Connected),
            _ => {}
        }
    }
}

/// The seed's loop: every 5 s, `currentTime` unchanged since the last poll
/// means stalled, and it reconnects.
fn seed(trace: Trace, phase: Duration) -> Seen {
    let event_at = START + phase;
    let length = match trace {
        Trace::Freeze(d) | Trace::Pause(d) => d,
    };
    // The player's clock at time t: stands still during the event.
    let clock = |t: Duration| {
        if t <= event_at {
            t
        } else if t <= event_at + length {
            event_at
        } else {
            t - length
        }
    };
    let mut seen = Seen::default();
    let mut last = clock(Duration::ZERO);
    let mut t = POLL;
    while t < event_at + length + Duration::from_secs(30) {
        let now = clock(t);
        if now == last && t > event_at {
            seen.detected_after = Some(t - event_at);
            seen.reconnected = true;
            break;
        }
        last = now;
        t += POLL;
    }
    seen
}

struct Row {
    detected: usize,
    latencies: Vec<Duration>,
    reconnects: usize,
}

fn run(trace: Trace, detector: fn(Trace, Duration) -> Seen) -> Row {
    let mut row = Row {
        detected: 0,
        latencies: Vec::new(),
        reconnects: 0,
    };
    for i in 0..PHASES {
        // Phases spread evenly over one poll period.
        let phase = POLL * u32::try_from(i).unwrap_or(0) / u32::try_from(PHASES).unwrap_or(1);
        let seen = detector(trace, phase);
        if let Some(d) = seen.detected_after {
            row.detected += 1;
            row.latencies.push(d);
        }
        row.reconnects += usize::from(seen.reconnected);
    }
    row.latencies.sort();
    row
}

fn cell(row: &Row, fault: bool) -> String {
    let pct = |n: usize| 100.0 * n as f64 / PHASES as f64;
    if row.latencies.is_empty() {
        return format!("not flagged · {:.1} % reconnects", pct(row.reconnects));
    }
    let mean = row.latencies.iter().sum::<Duration>() / row.latencies.len() as u32;
    let max = row.latencies[row.latencies.len() - 1];
    let what = if fault { "detected" } else { "FALSE ALARM" };
    format!(
        "{what} {:.1} % · mean {:.2} s, max {:.2} s · {:.1} % reconnects",
        pct(row.detected),
        mean.as_secs_f64(),
        max.as_secs_f64(),
        pct(row.reconnects)
    )
}

fn main() {
    let s = Duration::from_secs;
    let traces = [
        Trace::Freeze(Duration::from_millis(500)),
        Trace::Freeze(Duration::from_millis(1500)),
        Trace::Freeze(s(3)),
        Trace::Freeze(s(5)),
        Trace::Freeze(s(10)),
        Trace::Freeze(s(20)),
        Trace::Pause(s(10)),
        Trace::Pause(s(60)),
    ];
    let p = Policy::default();
    println!(
        "Stall detection over {PHASES} phases per trace; relive: stall_after {:?}, grace {:?}, ticks every {:?}; seed: 5 s currentTime poll.\n",
        p.stall_after(),
        p.stall_grace(),
        TICK
    );
    println!("| trace | relive | seed blog (5 s poll) |");
    println!("|---|---|---|");
    for trace in traces {
        let ours = run(trace, relive);
        let theirs = run(trace, seed);
        println!(
            "| {} | {} | {} |",
            trace.label(),
            cell(&ours, trace.is_fault()),
            cell(&theirs, trace.is_fault())
        );
    }
}
