//! `Sim`: one machine on a virtual clock that a test moves by hand or jumps to
//! the machine's own deadlines. Every output is drained at once into a
//! timeline, which is printed when the test panics.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use relive::{Input, Machine, Output, Policy, Reason, State};

/// One line of the timeline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Entry {
    /// An input the test fed (progress ticks are folded, see `Ticks`).
    In(Input),
    /// Consecutive progress ticks: how many, and the last media time.
    Ticks(u32, Duration),
    /// A `handle_timeout` call.
    Timeout,
    /// An output the machine gave.
    Out(Output),
}

/// A machine, a virtual clock and the timeline of everything that happened.
pub(crate) struct Sim {
    machine: Machine,
    t0: Instant,
    now: Instant,
    /// The media time of the next advancing tick.
    media: Duration,
    timeline: Vec<(Duration, Entry)>,
}

impl Sim {
    /// A machine with a fixed seed, at virtual time zero.
    pub(crate) fn new(policy: Policy) -> Sim {
        Sim::with_seed(policy, 7)
    }

    pub(crate) fn with_seed(policy: Policy, seed: u64) -> Sim {
        // The only real clock read; everything after is `t0 + offset`.
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        Sim {
            machine: Machine::new(policy, seed),
            t0,
            now: t0,
            media: Duration::ZERO,
            timeline: Vec::new(),
        }
    }

    pub(crate) fn machine(&self) -> &Machine {
        &self.machine
    }

    pub(crate) fn state(&self) -> State {
        self.machine.state()
    }

    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the start.
    pub(crate) fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// How far `t` is from the start (zero before it).
    pub(crate) fn offset(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.t0)
    }

    /// Feeds `input` now; returns its outputs.
    pub(crate) fn input(&mut self, input: Input) -> Vec<Output> {
        let now = self.now;
        self.input_at(now, input)
    }

    /// Feeds `input` as if observed at `t`, which may be in the past; the clock stays.
    pub(crate) fn input_at(&mut self, t: Instant, input: Input) -> Vec<Output> {
        self.log(t, Entry::In(input));
        self.machine.handle_input(t, input);
        self.drain(t)
    }

    /// Calls `handle_timeout(t)`, whatever the deadline; the clock stays.
    pub(crate) fn timeout_at(&mut self, t: Instant) -> Vec<Output> {
        self.log(t, Entry::Timeout);
        self.machine.handle_timeout(t);
        self.drain(t)
    }

    /// Moves the clock to the machine's next deadline and wakes it there.
    pub(crate) fn jump_to_deadline(&mut self) -> Vec<Output> {
        let deadline = self
            .machine
            .poll_timeout()
            .expect("the machine has no deadline to jump to");
        self.now = self.now.max(deadline);
        self.timeout_at(deadline)
    }

    /// Moves the clock forward by `d`, waking the machine at every deadline on
    /// the way, as a driver does. Returns the outputs.
    pub(crate) fn advance(&mut self, d: Duration) -> Vec<Output> {
        let end = self.now + d;
        let mut outputs = Vec::new();
        for _ in 0..100_000 {
            match self.machine.poll_timeout() {
                Some(deadline) if deadline <= end => {
                    self.now = self.now.max(deadline);
                    let now = self.now;
                    outputs.extend(self.timeout_at(now));
                }
                _ => {
                    self.now = end;
                    return outputs;
                }
            }
        }
        panic!("deadlines keep coming due before {:?}", self.offset(end));
    }

    /// Advancing progress ticks every `tick` for `d`: healthy playback.
    pub(crate) fn play(&mut self, d: Duration, tick: Duration) -> Vec<Output> {
        self.ticks(d, tick, true)
    }

    /// Ticks every `tick` for `d` whose media time stands still: a frozen picture.
    pub(crate) fn freeze(&mut self, d: Duration, tick: Duration) -> Vec<Output> {
        self.ticks(d, tick, false)
    }

    /// One progress tick now with media time `media`.
    pub(crate) fn progress(&mut self, media: Duration) -> Vec<Output> {
        self.media = media;
        self.input(Input::Progress(media))
    }

    fn ticks(&mut self, d: Duration, tick: Duration, advancing: bool) -> Vec<Output> {
        let mut outputs = Vec::new();
        let end = self.now + d;
        while self.now + tick <= end {
            outputs.extend(self.advance(tick));
            if advancing {
                self.media += tick;
            }
            let media = self.media;
            outputs.extend(self.input(Input::Progress(media)));
        }
        outputs.extend(self.advance(end - self.now));
        outputs
    }

    /// Start, connect at once and show the first frame: `Playing`, attempt 1.
    pub(crate) fn start_playing(&mut self) {
        self.input(Input::Start);
        self.connect_and_play();
    }

    /// Answers the attempt in flight with a session that shows a first frame.
    pub(crate) fn connect_and_play(&mut self) {
        self.input(Input::Connected);
        self.media = Duration::from_millis(40);
        let media = self.media;
        self.input(Input::Progress(media));
        assert!(self.state().is_playing(), "not playing after connect");
    }

    /// Every output so far, with its offset from the start.
    pub(crate) fn outputs(&self) -> Vec<(Duration, Output)> {
        self.timeline
            .iter()
            .filter_map(|(at, e)| match e {
                Entry::Out(o) => Some((*at, *o)),
                _ => None,
            })
            .collect()
    }

    /// The attempt numbers of every `Connect`, with their offsets.
    pub(crate) fn connects(&self) -> Vec<(Duration, u32)> {
        self.outputs()
            .into_iter()
            .filter_map(|(at, o)| match o {
                Output::Connect { attempt } => Some((at, attempt)),
                _ => None,
            })
            .collect()
    }

    /// When the first transition into a state matching `to` happened, and why.
    pub(crate) fn entered(&self, to: impl Fn(&State) -> bool) -> Option<(Duration, Reason)> {
        self.outputs().into_iter().find_map(|(at, o)| match o {
            Output::StateChanged { to: s, reason, .. } if to(&s) => Some((at, reason)),
            _ => None,
        })
    }

    fn drain(&mut self, t: Instant) -> Vec<Output> {
        let mut outputs = Vec::new();
        while let Some(output) = self.machine.poll_output() {
            self.log(t, Entry::Out(output));
            outputs.push(output);
        }
        assert_eq!(self.machine.outputs_overwritten(), 0, "outputs were lost");
        outputs
    }

    fn log(&mut self, t: Instant, entry: Entry) {
        let at = self.offset(t);
        if let Entry::In(Input::Progress(media)) = entry
            && let Some((last_at, Entry::Ticks(n, last))) = self.timeline.last_mut()
        {
            *last_at = at;
            *n += 1;
            *last = media;
            return;
        }
        let entry = match entry {
            Entry::In(Input::Progress(media)) => Entry::Ticks(1, media),
            other => other,
        };
        self.timeline.push((at, entry));
    }

    /// The timeline, one line per entry.
    pub(crate) fn render(&self) -> String {
        let mut out = String::from("timeline (ms from start):\n");
        for (at, entry) in &self.timeline {
            let ms = at.as_secs_f64() * 1e3;
            let line = match entry {
                Entry::In(input) => format!("   in  {input:?}"),
                Entry::Ticks(n, media) => format!("   in  {n} progress tick(s), up to {media:?}"),
                Entry::Timeout => "   --  handle_timeout".to_owned(),
                Entry::Out(output) => format!("  out  {}", self.describe(output)),
            };
            let _ = writeln!(out, "{ms:>10.1} {line}");
        }
        let state = self.describe_state(&self.state());
        let _ = writeln!(out, "now +{:?}, state {state}", self.elapsed());
        out
    }

    /// An output with its instants shown as offsets, which read better.
    fn describe(&self, output: &Output) -> String {
        match output {
            Output::StateChanged { from, to, reason } => format!(
                "{} -> {} ({reason})",
                self.describe_state(from),
                self.describe_state(to)
            ),
            other => format!("{other:?}"),
        }
    }

    fn describe_state(&self, state: &State) -> String {
        match state {
            State::Backoff { until, .. } => format!("{state} until +{:?}", self.offset(*until)),
            State::Connecting { since, .. }
            | State::Playing { since }
            | State::Stalled { since, .. } => {
                format!("{state} since +{:?}", self.offset(*since))
            }
            State::Idle => state.to_string(),
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.render());
        }
    }
}
