//! How long a viewer takes to get the picture back once its publisher returns: relay live
//! hints against backoff polling alone (relive's default policy) and against the official JS
//! SDK's schedule (1 s doubling to 32 s, no jitter).
//!
//! Pure [`Machine`] on virtual time — no tokio, no sockets — so thousands of outages run in a
//! blink and every run is reproducible from its seed. Prints a markdown table:
//!
//! `cargo run --release --example resume_compare`
//!
//! The trace, for every seed: playing for 30 s; the publisher leaves (the session reports
//! `inactive`, like Millicast); it stays away 5, 20 or 60 s; it comes back. A connect attempt
//! takes [`CONNECT`] and succeeds when the publisher is live as it starts (the Director call
//! comes first). With hints, the relay's `publish` reaches the viewer as the publisher returns
//! and is fed to the machine as `relay::hints` feeds it: an `Input::LiveHint`, which the machine
//! applies at once in `Backoff`, or at the `Backoff` that follows an attempt already in flight.

use std::time::{Duration, Instant};

use relive::{Input, Jitter, Machine, Output, Policy};

/// One connect attempt: Director call, signaling socket, `view` (a good network).
const CONNECT: Duration = Duration::from_millis(200);
/// A player's progress ticks.
const TICK: Duration = Duration::from_millis(250);
/// When the publisher leaves: after playback has been stable for longer than `reset_after`.
const LEAVES_AT: Duration = Duration::from_secs(30);
const OUTAGES: [u64; 3] = [5, 20, 60];
const SEEDS: u64 = 2000;

struct Strategy {
    name: &'static str,
    policy: Policy,
    hints: bool,
}

fn strategies() -> Vec<Strategy> {
    let js = Policy::builder()
        .backoff(Duration::from_secs(1), 2.0, Duration::from_secs(32))
        .jitter(Jitter::None)
        // No jitter anywhere: every viewer's first reconnect comes at once.
        .reconnect_spread(Duration::ZERO)
        .build();
    let gentle = Policy::builder()
        .backoff(Duration::from_secs(1), 2.0, Duration::from_secs(60))
        .build();
    let (Ok(js), Ok(gentle)) = (js, gentle) else {
        unreachable!("valid policies")
    };
    vec![
        Strategy {
            name: "relay hints + default policy",
            policy: Policy::default(),
            hints: true,
        },
        Strategy {
            name: "relay hints + 60 s cap",
            policy: gentle,
            hints: true,
        },
        Strategy {
            name: "backoff polling, default policy",
            policy: Policy::default(),
            hints: false,
        },
        Strategy {
            name: "official JS SDK schedule",
            policy: js,
            hints: false,
        },
    ]
}

/// What one outage cost: time from the publisher's return to `Playing`, and connect attempts
/// made while it was away.
struct Outcome {
    resume: Duration,
    attempts: u32,
}

/// The simulated world around one machine.
struct World {
    machine: Machine,
    t0: Instant,
    now: Instant,
    back_at: Instant,
    left: bool,
    returned: bool,
    /// An attempt in flight: when it completes and whether it succeeds.
    attempt: Option<(Instant, bool)>,
    session: bool,
    media: Duration,
    next_tick: Instant,
    hints: bool,
    attempts: u32,
    resumed: Option<Instant>,
}

impl World {
    fn new(strategy: &Strategy, outage: Duration, seed: u64) -> Self {
        #[allow(clippy::disallowed_methods)]
        // the origin of virtual time; nothing reads the clock after
        let t0 = Instant::now();
        World {
            machine: Machine::new(strategy.policy, seed),
            t0,
            now: t0,
            back_at: t0 + LEAVES_AT + outage,
            left: false,
            returned: false,
            attempt: None,
            session: false,
            media: Duration::ZERO,
            next_tick: t0,
            hints: strategy.hints,
            attempts: 0,
            resumed: None,
        }
    }

    fn publisher_live(&self, at: Instant) -> bool {
        at < self.t0 + LEAVES_AT || at >= self.back_at
    }

    fn run(mut self) -> Outcome {
        self.input(Input::Start);
        while self.resumed.is_none() {
            let next = self.next_event();
            self.now = next;
            self.step();
        }
        let resumed = self.resumed.unwrap_or(self.back_at);
        Outcome {
            resume: resumed.duration_since(self.back_at),
            attempts: self.attempts,
        }
    }

    /// The earliest thing that happens next.
    fn next_event(&self) -> Instant {
        let leave = (!self.left).then_some(self.t0 + LEAVES_AT);
        let back = (self.now < self.back_at).then_some(self.back_at);
        let tick = self.session.then_some(self.next_tick);
        [
            self.machine.poll_timeout(),
            self.attempt.map(|(at, _)| at),
            leave,
            back,
            tick,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.now)
        .max(self.now)
    }

    /// Applies everything due at `now`.
    fn step(&mut self) {
        let now = self.now;
        if !self.left && now >= self.t0 + LEAVES_AT {
            self.left = true;
            if self.session {
                self.input(Input::Inactive);
            }
        }
        if !self.returned && now >= self.back_at {
            self.returned = true;
            if self.session {
                self.input(Input::Active);
            }
            if self.hints {
                self.input(Input::LiveHint);
            }
        }
        if let Some((at, ok)) = self.attempt
            && at <= now
        {
            self.attempt = None;
            if ok {
                self.session = true;
                self.media = Duration::ZERO;
                self.next_tick = now + TICK;
                self.input(Input::Connected);
            } else {
                self.input(Input::ConnectFailed(relive::Retry::WaitForPublisher));
            }
        }
        if self.session && self.next_tick <= now {
            self.next_tick = now + TICK;
            if self.publisher_live(now) {
                self.media += TICK;
            }
            self.input(Input::Progress(self.media));
        }
        if self.machine.poll_timeout().is_some_and(|t| t <= now) {
            self.machine.handle_timeout(now);
            self.drain();
        }
    }

    fn input(&mut self, input: Input) {
        self.machine.handle_input(self.now, input);
        self.drain();
    }

    /// Carries out the machine's outputs.
    fn drain(&mut self) {
        while let Some(output) = self.machine.poll_output() {
            match output {
                Output::Connect { .. } => {
                    if self.left && self.now < self.back_at {
                        self.attempts += 1;
                    }
                    let ok = self.publisher_live(self.now);
                    self.attempt = Some((self.now + CONNECT, ok));
                }
                Output::AbortConnect { .. } => self.attempt = None,
                Output::DropSession { .. } => self.session = false,
                Output::StateChanged { to, .. }
                    if to.is_playing() && self.now >= self.back_at && self.resumed.is_none() =>
                {
                    self.resumed = Some(self.now);
                }
                _ => {}
            }
        }
    }
}

fn main() {
    println!(
        "| publisher away | strategy | resume mean | resume p95 | resume max | attempts while away (mean) |"
    );
    println!("|---|---|---|---|---|---|");
    for outage in OUTAGES {
        for strategy in strategies() {
            let outcomes: Vec<Outcome> = (0..SEEDS)
                .map(|seed| World::new(&strategy, Duration::from_secs(outage), seed).run())
                .collect();
            let mut resumes: Vec<Duration> = outcomes.iter().map(|o| o.resume).collect();
            resumes.sort();
            let mean = resumes.iter().sum::<Duration>() / SEEDS as u32;
            let p95 = resumes[(resumes.len() * 95 / 100).min(resumes.len() - 1)];
            let max = resumes[resumes.len() - 1];
            let attempts =
                outcomes.iter().map(|o| f64::from(o.attempts)).sum::<f64>() / SEEDS as f64;
            println!(
                "| {outage} s | {} | {} | {} | {} | {attempts:.1} |",
                strategy.name,
                seconds(mean),
                seconds(p95),
                seconds(max),
            );
        }
    }
    println!(
        "\n{SEEDS} seeds per row; a connect attempt takes {} ms; the publisher leaves after {} s of playback.",
        CONNECT.as_millis(),
        LEAVES_AT.as_secs()
    );
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}
