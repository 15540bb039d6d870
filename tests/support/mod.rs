//! Helpers shared by every test binary (`tests/<area>/main.rs` includes this file as
//! `#[path = "../support/mod.rs"] mod support;`): the one patience for waits over real sockets,
//! a viewer with its event timeline, waits with generous timeouts (never sleeps to let things
//! settle), captured logs and relay event waits.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use futures::StreamExt;
use relive::{Event, Reason, State, StreamSource, Viewer};
use tokio::time::{Instant, timeout};

/// Upper bound for any wait on loopback, the only one of the tests on real time: a wait that
/// needs longer says so as a multiple of it. Tests pass in well under it; it is a timeout that
/// turns a hang into a failure with a timeline, never an assertion on how long something took.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// The same bound for tests on paused time (`start_paused`), where waiting is free: an hour of
/// virtual time, so that no backoff or grace of a real policy can outlast it.
pub const VIRTUAL_PATIENCE: Duration = Duration::from_secs(3600);

/// A viewer plus everything it reported, for assertions and failure messages.
pub struct Watch<S: StreamSource> {
    pub viewer: Viewer<S>,
    pub start: Instant,
    pub timeline: Vec<String>,
    pub sessions: usize,
    pub states: Vec<(State, Reason)>,
    pub errors: Vec<String>,
}

impl<S: StreamSource> Watch<S>
where
    S::Media: std::fmt::Debug,
{
    pub fn new(viewer: Viewer<S>) -> Self {
        Watch {
            viewer,
            start: Instant::now(),
            timeline: Vec::new(),
            sessions: 0,
            states: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Reads events until `f` accepts one; panics with the timeline if none comes.
    pub async fn until(
        &mut self,
        what: &str,
        mut f: impl FnMut(&Event<S::Media, S::Error>) -> bool,
    ) -> Event<S::Media, S::Error> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.viewer.next()).await {
                Ok(Some(event)) => {
                    self.record(&event);
                    if f(&event) {
                        return event;
                    }
                }
                _ => panic!("no {what}; timeline:\n{}", self.timeline.join("\n")),
            }
        }
    }

    /// Waits for a transition into a state matching `f`; returns its reason.
    pub async fn until_state(&mut self, what: &str, f: impl Fn(&State) -> bool) -> Reason {
        match self
            .until(what, |e| matches!(e, Event::State { to, .. } if f(to)))
            .await
        {
            Event::State { reason, .. } => reason,
            _ => unreachable!(),
        }
    }

    pub async fn until_playing(&mut self) -> Reason {
        self.until_state("playing", State::is_playing).await
    }

    fn record(&mut self, event: &Event<S::Media, S::Error>) {
        let t = self.start.elapsed().as_secs_f64();
        let line = match event {
            Event::State {
                from, to, reason, ..
            } => {
                self.states.push((*to, *reason));
                format!("{t:8.3}s {} -> {to} ({reason})", from.name())
            }
            Event::Session(_) => {
                self.sessions += 1;
                format!("{t:8.3}s session #{}", self.sessions)
            }
            Event::Error(e) => {
                self.errors.push(e.to_string());
                format!("{t:8.3}s error: {e}")
            }
            Event::GaveUp(r) => format!("{t:8.3}s gave up: {r}"),
            Event::ViewerCount(n) => format!("{t:8.3}s viewers: {n}"),
            _ => format!("{t:8.3}s other event"),
        };
        self.timeline.push(line);
    }

    pub fn dump(&self) -> String {
        self.timeline.join("\n")
    }
}

/// Every tracing event and `log` record of the process, kept in memory: for the tests that
/// prove secrets never reach a log. The first call installs, once per test binary, the global
/// subscriber and a `log` bridge at TRACE (as tracing-subscriber's `init()` does in an
/// application), with two captures of the same records, so that every test of the binary
/// can use them at once: [`CapturedLogs::install`] filters through
/// `relive::logging::secret_safe_filter("trace")` (everything at TRACE, with the directives
/// relive documents), [`CapturedLogs::unfiltered`] through plain `trace`.
#[derive(Clone, Default)]
pub struct CapturedLogs {
    text: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    written: std::sync::Arc<tokio::sync::Notify>,
}

/// The two captures of the process.
static CAPTURES: std::sync::OnceLock<(CapturedLogs, CapturedLogs)> = std::sync::OnceLock::new();

impl CapturedLogs {
    /// The capture at TRACE with relive's secret-safe directives.
    pub fn install() -> Self {
        Self::both().0.clone()
    }

    /// The capture at plain TRACE: what an application without the directives logs.
    pub fn unfiltered() -> Self {
        Self::both().1.clone()
    }

    fn both() -> &'static (CapturedLogs, CapturedLogs) {
        CAPTURES.get_or_init(|| {
            use tracing_subscriber::Layer as _;
            use tracing_subscriber::layer::SubscriberExt as _;
            let safe = CapturedLogs::default();
            let unfiltered = CapturedLogs::default();
            let layer = |capture: &CapturedLogs, filter: &str| {
                let writer = capture.clone();
                tracing_subscriber::fmt::layer()
                    .with_writer(move || writer.clone())
                    .with_ansi(false)
                    .with_filter(tracing_subscriber::EnvFilter::new(filter))
                    .boxed()
            };
            let subscriber = tracing_subscriber::registry().with(vec![
                layer(&safe, &relive::logging::secret_safe_filter("trace")),
                layer(&unfiltered, "trace"),
            ]);
            tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
            tracing_log::LogTracer::builder()
                .with_max_level(tracing_log::log::LevelFilter::Trace)
                .init()
                .expect("the only logger");
            (safe, unfiltered)
        })
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        let log = self.text.lock().map(|l| l.clone()).unwrap_or_default();
        String::from_utf8_lossy(&log).into_owned()
    }

    /// Waits until `done` accepts the capture (checked after every write); returns the
    /// capture then. Panics with it after [`PATIENCE`].
    pub async fn until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let written = self.written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            let text = self.text();
            if done(&text) {
                return text;
            }
            if tokio::time::timeout_at(deadline, written).await.is_err() {
                panic!("the capture never showed {what}:\n{}", self.text());
            }
        }
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut log) = self.text.lock() {
            log.extend_from_slice(buf);
        }
        self.written.notify_waiters();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The relay tests' stream `cam-{n}`.
#[cfg(feature = "relay")]
pub fn cam(n: u32) -> relive::relay::StreamName {
    relive::relay::StreamName::new(format!("cam-{n}")).expect("a valid stream name")
}

/// The relay tests' stream details: one video track, a title.
#[cfg(feature = "relay")]
pub fn details(title: &str) -> relive::relay::Details {
    relive::relay::Details {
        source_ids: vec!["main".into()],
        tracks: vec![relive::relay::PublishedTrack {
            track_id: "video0".into(),
            media: "video".into(),
        }],
        metadata: serde_json::json!({ "title": title }),
    }
}

/// The next relay event matching `f`; panics with what came instead after `patience`.
#[cfg(feature = "relay")]
pub async fn next_relay_event(
    client: &mut relive::relay::RelayClient,
    what: &str,
    patience: Duration,
    f: impl Fn(&relive::relay::RelayEvent) -> bool,
) -> relive::relay::RelayEvent {
    let mut seen = Vec::new();
    let deadline = Instant::now() + patience;
    loop {
        match timeout(deadline - Instant::now(), client.next()).await {
            Ok(Some(event)) if f(&event) => return event,
            Ok(Some(event)) => seen.push(format!("{event:?}")),
            _ => panic!("no {what}; saw {seen:#?}"),
        }
    }
}
