//! Herd benchmark, on virtual time and deterministic: 10 000 viewers lose their
//! stream at the same instant; the publisher is back after T. Each viewer is a
//! real `relive::Machine`; connect attempts take one 50 ms round trip and fail
//! as "not published" until the publisher is back.
//!
//! `cargo bench --bench herd` prints the tables of the README's "Results" and
//! writes `target/herd/attempts.csv` (attempts per 100 ms window) for
//! `benches/plot_herd.py`.
//!
//! A second scenario freezes the picture of 10 000 playing viewers at the same
//! instant (media time stops, every session stays up; a new session shows
//! media at once): make-before-break starts a second attempt per viewer, and
//! the table shows whether the audience returns spread out — peak attempts per
//! 100 ms against the no-jitter, no-spread schedule — and how soon a new
//! picture comes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use relive::{Input, Jitter, Machine, Output, Policy, Retry};

const VIEWERS: usize = 10_000;
const RTT: Duration = Duration::from_millis(50);
const WINDOW: Duration = Duration::from_millis(100);
const HORIZON: Duration = Duration::from_secs(180);

/// One schedule to compare.
struct Contender {
    name: String,
    policy: Option<Policy>,
}

fn contenders() -> Vec<Contender> {
    let with = |jitter, initial_ms: u64, spread_ms: u64| {
        Some(
            Policy::builder()
                .jitter(jitter)
                .backoff(
                    Duration::from_millis(initial_ms),
                    2.0,
                    Policy::default().backoff().cap(),
                )
                .reconnect_spread(Duration::from_millis(spread_ms))
                .progress_watchdog(false)
                .build()
                .expect("valid"),
        )
    };
    let d = Policy::default();
    let (initial, spread) = (
        d.backoff().initial().as_millis() as u64,
        d.reconnect_spread().as_millis() as u64,
    );
    vec![
        Contender {
            name: "JS SDK (1 s ×2 → 32 s, no jitter)".into(),
            policy: None,
        },
        Contender {
            name: "relive, no jitter, no reconnect spread".into(),
            policy: with(Jitter::None, initial, 0),
        },
        Contender {
            name: "relive, full jitter, no reconnect spread".into(),
            policy: with(Jitter::Full, initial, 0),
        },
        Contender {
            name: "relive, full jitter".into(),
            policy: with(Jitter::Full, initial, spread),
        },
        Contender {
            name: "relive, equal jitter".into(),
            policy: with(Jitter::Equal, initial, spread),
        },
        Contender {
            name: "**relive default** (decorrelated)".into(),
            policy: with(Jitter::Decorrelated, initial, spread),
        },
    ]
}

/// What one run measured.
struct Outcome {
    /// Attempts per 100 ms window since the drop.
    windows: Vec<u32>,
    attempts: u64,
    /// Time from the publisher's return to Playing, per viewer (sorted).
    resume: Vec<Duration>,
}

impl Outcome {
    fn peak(&self) -> u32 {
        self.windows.iter().copied().max().unwrap_or(0)
    }

    fn quantile(&self, q: f64) -> Duration {
        let i = ((self.resume.len() as f64 * q).ceil() as usize).clamp(1, self.resume.len());
        self.resume[i - 1]
    }

    fn count(&mut self, at: Duration) {
        let w = (at.as_millis() / WINDOW.as_millis()) as usize;
        if self.windows.len() <= w {
            self.windows.resize(w + 1, 0);
        }
        self.windows[w] += 1;
        self.attempts += 1;
    }
}

/// The official JS SDK's schedule: every viewer retries at 1, 3, 7, 15, 31,
/// 63 s... after the drop (1 s doubling to 32 s, no jitter).
fn js_sdk(back: Duration) -> Outcome {
    let mut out = Outcome {
        windows: Vec::new(),
        attempts: 0,
        resume: Vec::new(),
    };
    for _ in 0..VIEWERS {
        let (mut at, mut delay) = (Duration::ZERO, Duration::from_secs(1));
        loop {
            at += delay;
            out.count(at);
            if at >= back {
                out.resume.push(at + RTT - back);
                break;
            }
            delay = (delay * 2).min(Duration::from_secs(32));
        }
    }
    out.resume.sort();
    out
}

/// Every viewer a `Machine`, driven by one event queue on virtual time.
fn machines(policy: &Policy, back: Duration) -> Outcome {
    let t0 = base_instant();
    let drop_at = t0 + Duration::from_secs(60);
    let policy = std::sync::Arc::new(*policy);
    let mut viewers: Vec<Machine> = (0..VIEWERS)
        .map(|i| Machine::with_shared_policy(policy.clone(), i as u64 + 1))
        .collect();
    // Everyone plays stably before the drop.
    for m in &mut viewers {
        m.handle_input(t0, Input::Start);
        m.handle_input(t0 + RTT, Input::Connected);
        m.handle_timeout(drop_at - Duration::from_secs(1));
        while m.poll_output().is_some() {}
    }
    let mut out = Outcome {
        windows: Vec::new(),
        attempts: 0,
        resume: Vec::new(),
    };
    // (when, viewer, is a connect result)
    let mut queue = BinaryHeap::new();
    let mut results: Vec<Option<Instant>> = vec![None; VIEWERS];
    for (i, m) in viewers.iter_mut().enumerate() {
        m.handle_input(drop_at, Input::TransportLost(Retry::Later));
        carry_out(m, i, drop_at, drop_at, &mut out, &mut results, &mut queue);
    }
    let back_at = drop_at + back;
    while let Some(Reverse((at, i, version))) = queue.pop() {
        if at > drop_at + HORIZON {
            break;
        }
        let m = &mut viewers[i];
        if results[i] == Some(at) && version == 1 {
            results[i] = None;
            if at >= back_at {
                m.handle_input(at, Input::Connected);
                out.resume.push(at - back_at);
            } else {
                m.handle_input(at, Input::ConnectFailed(Retry::WaitForPublisher));
            }
        } else if version == 0 && m.poll_timeout() == Some(at) {
            m.handle_timeout(at);
        } else {
            continue;
        }
        carry_out(m, i, at, drop_at, &mut out, &mut results, &mut queue);
    }
    out.resume.sort();
    out
}

fn carry_out(
    m: &mut Machine,
    i: usize,
    now: Instant,
    drop_at: Instant,
    out: &mut Outcome,
    results: &mut [Option<Instant>],
    queue: &mut BinaryHeap<Reverse<(Instant, usize, u8)>>,
) {
    while let Some(output) = m.poll_output() {
        if let Output::Connect { .. } = output {
            out.count(now - drop_at);
            results[i] = Some(now + RTT);
            queue.push(Reverse((now + RTT, i, 1)));
        }
    }
    if let Some(wake) = m.poll_timeout()
        && !m.state().is_playing()
    {
        queue.push(Reverse((wake, i, 0)));
    }
}

/// Schedules compared when every picture freezes together.
fn frozen_contenders() -> Vec<(String, Policy)> {
    let b = || Policy::builder();
    let build = |builder: relive::PolicyBuilder| builder.build().expect("valid");
    vec![
        (
            "make-before-break, no jitter, no reconnect spread".into(),
            build(b().jitter(Jitter::None).reconnect_spread(Duration::ZERO)),
        ),
        (
            "make-before-break off (before: stall_grace, then the spread)".into(),
            build(b().make_before_break(false)),
        ),
        (
            "**relive default** (make-before-break, 1.5 s spread)".into(),
            Policy::default(),
        ),
    ]
}

/// Every viewer plays, ticking once a second, until all pictures freeze at
/// once at 60 s; a new session shows media one round trip after its attempt.
fn frozen(policy: &Policy) -> Outcome {
    let t0 = base_instant();
    let freeze_at = t0 + Duration::from_secs(60);
    let policy = std::sync::Arc::new(*policy);
    let mut viewers: Vec<Machine> = (0..VIEWERS)
        .map(|i| Machine::with_shared_policy(policy.clone(), i as u64 + 1))
        .collect();
    for m in &mut viewers {
        m.handle_input(t0, Input::Start);
        m.handle_input(t0, Input::Connected);
        for k in 1..=60 {
            let t = t0 + Duration::from_secs(k);
            m.handle_timeout(t);
            m.handle_input(t, Input::Progress(Duration::from_secs(k)));
        }
        while m.poll_output().is_some() {}
    }
    let mut out = Outcome {
        windows: Vec::new(),
        attempts: 0,
        resume: Vec::new(),
    };
    let mut queue = BinaryHeap::new();
    let mut results: Vec<Option<Instant>> = vec![None; VIEWERS];
    let mut done = vec![false; VIEWERS];
    for (i, m) in viewers.iter().enumerate() {
        if let Some(wake) = m.poll_timeout() {
            queue.push(Reverse((wake, i, 0u8)));
        }
    }
    while let Some(Reverse((at, i, version))) = queue.pop() {
        if at > freeze_at + HORIZON {
            break;
        }
        let m = &mut viewers[i];
        if done[i] {
            continue;
        }
        if results[i] == Some(at) && version == 1 {
            results[i] = None;
            m.handle_input(at, Input::Connected);
            m.handle_input(at, Input::Progress(Duration::from_millis(40)));
        } else if version == 0 && m.poll_timeout() == Some(at) {
            m.handle_timeout(at);
        } else {
            continue;
        }
        while let Some(output) = m.poll_output() {
            match output {
                Output::Connect { .. } => {
                    out.count(at - freeze_at);
                    results[i] = Some(at + RTT);
                    queue.push(Reverse((at + RTT, i, 1)));
                }
                Output::AbortConnect { .. } => results[i] = None,
                _ => {}
            }
        }
        if results[i].is_none() && m.state().is_playing() && at > freeze_at {
            done[i] = true;
            out.resume.push(at - freeze_at);
        } else if let Some(wake) = m.poll_timeout() {
            queue.push(Reverse((wake, i, 0)));
        }
    }
    out.resume.sort();
    out
}

#[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
fn base_instant() -> Instant {
    Instant::now()
}

fn main() {
    let mut csv = String::from("back_s,schedule,window_start_ms,attempts\n");
    println!(
        "Herd: {VIEWERS} viewers dropped at once; publisher back after T; 50 ms round trip.\n"
    );
    for back in [Duration::from_secs(5), Duration::from_secs(30)] {
        println!("#### Publisher back after {} s\n", back.as_secs());
        println!(
            "| schedule | peak attempts / 100 ms | vs no-jitter JS SDK | total attempts | 50 % playing | 99 % | 100 % |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let mut baseline = None;
        for c in contenders() {
            let out = match &c.policy {
                None => js_sdk(back),
                Some(p) => machines(p, back),
            };
            let base = *baseline.get_or_insert(out.peak());
            println!(
                "| {} | {} | {:.2}× | {} | {:.2} s | {:.2} s | {:.2} s |",
                c.name,
                out.peak(),
                f64::from(out.peak()) / f64::from(base),
                out.attempts,
                out.quantile(0.5).as_secs_f64(),
                out.quantile(0.99).as_secs_f64(),
                out.quantile(1.0).as_secs_f64(),
            );
            for (w, n) in out.windows.iter().enumerate() {
                let _ = writeln!(csv, "{},\"{}\",{},{}", back.as_secs(), c.name, w * 100, n);
            }
        }
        println!();
    }
    println!("#### Every picture frozen at once (sessions stay up)\n");
    println!(
        "| schedule | peak attempts / 100 ms | vs no jitter, no spread | total attempts | new picture, 50 % | 99 % | 100 % |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut frozen_csv = String::from("schedule,window_start_ms,attempts\n");
    let mut baseline = None;
    for (name, policy) in frozen_contenders() {
        let out = frozen(&policy);
        let base = *baseline.get_or_insert(out.peak());
        println!(
            "| {name} | {} | {:.2}× | {} | {:.2} s | {:.2} s | {:.2} s |",
            out.peak(),
            f64::from(out.peak()) / f64::from(base),
            out.attempts,
            out.quantile(0.5).as_secs_f64(),
            out.quantile(0.99).as_secs_f64(),
            out.quantile(1.0).as_secs_f64(),
        );
        for (w, n) in out.windows.iter().enumerate() {
            let _ = writeln!(frozen_csv, "\"{name}\",{},{}", w * 100, n);
        }
    }
    println!();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/herd");
    if std::fs::create_dir_all(&dir).is_ok()
        && std::fs::write(dir.join("attempts.csv"), csv).is_ok()
        && std::fs::write(dir.join("frozen.csv"), frozen_csv).is_ok()
    {
        println!("attempts per window written to target/herd/attempts.csv and frozen.csv");
    }
}
