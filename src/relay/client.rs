//! [`RelayClient`]: a viewer of the relay that stays connected — it reconnects with the crate's
//! own jittered [`Backoff`](crate::Backoff), starting the delays over only after a connection
//! held, and stops on a refusal classified [`Retry::Never`](crate::Retry::Never) — views its streams again after each reconnect, and reports what the
//! relay says as [`RelayEvent`]s.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::millicast::wire::DirectorSuccess;
use crate::relay::RelayError;
use crate::relay::protocol::{CloseReason, Details, ErrorCode, StreamName};
use crate::{BackoffConfig, Jitter};

mod task;
use task::Task;

/// What a [`RelayClient`] reports, in order.
#[derive(Debug)]
#[non_exhaustive]
pub enum RelayEvent {
    /// Connected and welcomed; views are being (re)sent.
    Connected {
        /// The relay's number for this connection.
        session: u64,
    },
    /// The connection ended; the next try is in `retry_in`.
    Disconnected {
        /// Why.
        error: RelayError,
        /// When the client tries again.
        retry_in: Duration,
    },
    /// The state of a stream when the view was (re)sent.
    Snapshot {
        /// The stream.
        stream: StreamName,
        /// Its details if live.
        details: Option<Details>,
    },
    /// A publisher went live.
    Publish {
        /// The stream.
        stream: StreamName,
        /// Its details.
        details: Details,
    },
    /// A live publisher changed its details.
    Update {
        /// The stream.
        stream: StreamName,
        /// The new details.
        details: Details,
    },
    /// The stream is no longer live.
    Close {
        /// The stream.
        stream: StreamName,
        /// Why.
        reason: CloseReason,
    },
    /// The relay refused something.
    Refused {
        /// The error code.
        code: ErrorCode,
        /// The message.
        message: String,
        /// The stream concerned.
        stream: Option<StreamName>,
    },
    /// The relay is shutting down; the client reconnects after its backoff.
    Shutdown,
    /// The relay refused the client in a way it will refuse again (its
    /// [`Retry`](crate::Retry) class is `Never`: a forbidden origin, a bad token, an
    /// unsupported version): the client stops, and this is its last event.
    GaveUp {
        /// Why.
        error: RelayError,
    },
}

impl RelayEvent {
    /// The stream this event says is live now (`publish`, or a live `snapshot`).
    pub fn live_stream(&self) -> Option<&StreamName> {
        match self {
            RelayEvent::Publish { stream, .. }
            | RelayEvent::Snapshot {
                stream,
                details: Some(_),
            } => Some(stream),
            _ => None,
        }
    }
}

/// The client's reconnect delays by default: 250 ms doubling to 10 s, full jitter.
const DEFAULT_BACKOFF: BackoffConfig =
    BackoffConfig::exponential(Duration::from_millis(250), Duration::from_secs(10))
        .with_jitter(Jitter::Full);

/// Configures a [`RelayClient`].
#[derive(Clone, Debug)]
#[must_use]
pub struct RelayClientBuilder {
    pub(super) url: String,
    pub(super) streams: Vec<StreamName>,
    pub(super) origin: Option<String>,
    pub(super) keepalive: Duration,
    pub(super) timeout: Duration,
    pub(super) backoff: BackoffConfig,
    pub(super) reset_after: Duration,
}

impl RelayClientBuilder {
    /// Views `stream` (again after every reconnect).
    pub fn stream(mut self, stream: StreamName) -> Self {
        if !self.streams.contains(&stream) {
            self.streams.push(stream);
        }
        self
    }

    /// Sends this `Origin` header (relays with an origin allow-list).
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Pings every `every`; a relay silent for `every + timeout` is dead (default 10 s + 5 s).
    /// `timeout` also bounds connecting (default 5 s).
    pub fn keepalive(mut self, every: Duration, timeout: Duration) -> Self {
        self.keepalive = every.max(Duration::from_millis(10));
        self.timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// Reconnect delays (default: 250 ms doubling to 10 s, full jitter). The delays start
    /// over once a connection stayed up for [`reset_after`](RelayClientBuilder::reset_after).
    pub fn backoff(mut self, config: BackoffConfig) -> Self {
        self.backoff = config;
        self
    }

    /// How long a connection must stay up before the reconnect delays start over (default
    /// 10 s, as [`Policy::reset_after`](crate::Policy::reset_after)): a relay that accepts and
    /// drops at once keeps being backed off from.
    pub fn reset_after(mut self, reset_after: Duration) -> Self {
        self.reset_after = reset_after;
        self
    }

    /// Spawns the client's task on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like [`tokio::spawn`].
    pub fn spawn(self) -> RelayClient {
        let (commands_tx, commands) = mpsc::channel(32);
        let (events_tx, events) = mpsc::channel(256);
        let seed = RandomState::new().hash_one(&self.url);
        let task = Task::new(self, commands, events_tx, seed);
        RelayClient {
            commands: commands_tx,
            events,
            task: tokio::spawn(task.run()),
        }
    }
}

/// A viewer connection to a relay that reconnects by itself: a [`Stream`] of [`RelayEvent`]s.
/// Dropping it closes the connection.
///
/// ```no_run
/// # async fn demo() -> Result<(), relive::relay::RelayError> {
/// use futures::StreamExt;
/// use relive::relay::{RelayClient, RelayEvent, StreamName};
///
/// let mut client = RelayClient::builder("ws://127.0.0.1:8787/ws")
///     .stream(StreamName::new("cam-1")?)
///     .spawn();
/// while let Some(event) = client.next().await {
///     if let Some(stream) = event.live_stream() {
///         println!("{stream} is live: connect now");
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RelayClient {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<RelayEvent>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
pub(super) enum Command {
    View(StreamName),
    Director(
        StreamName,
        oneshot::Sender<Result<DirectorSuccess, RelayError>>,
    ),
}

impl RelayClient {
    /// A builder for a client of the relay at `url` (`ws://host:port/ws`).
    pub fn builder(url: impl Into<String>) -> RelayClientBuilder {
        RelayClientBuilder {
            url: url.into(),
            streams: Vec::new(),
            origin: None,
            keepalive: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            backoff: DEFAULT_BACKOFF,
            reset_after: Duration::from_secs(10),
        }
    }

    /// Also views `stream`, now and after every reconnect.
    pub async fn view(&self, stream: StreamName) -> Result<(), RelayError> {
        self.commands
            .send(Command::View(stream))
            .await
            .map_err(|_| RelayError::Stopped)
    }

    /// Asks the relay for a Millicast Director subscribe answer for `stream` (the relay holds
    /// the credentials). Needs a live connection.
    pub async fn director(&self, stream: StreamName) -> Result<DirectorSuccess, RelayError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Director(stream, tx))
            .await
            .map_err(|_| RelayError::Stopped)?;
        rx.await.map_err(|_| RelayError::Stopped)?
    }
}

impl Stream for RelayClient {
    type Item = RelayEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RelayEvent>> {
        self.events.poll_recv(cx)
    }
}

impl Drop for RelayClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}
