//! What a transport implements to be kept alive by a [`Reconnector`](crate::Reconnector):
//! a [`StreamSource`] connects, and each [`Session`] streams [`SourceEvent`]s.
//!
//! Errors say how to retry through [`Classify`]; the machine never sees the error itself.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures::Stream;

mod boxed;
mod closure;

pub use boxed::{AnyError, BoxEvents, BoxSource};
pub use closure::{FnSource, source_fn};

/// How to retry after an error: the one thing the reconnect logic needs to know of it.
///
/// | class | when | what the machine does |
/// |---|---|---|
/// | `Now` | the server asked us to move (a redirect) | reconnects at once (within `reconnect_spread` when a stable session drops), once per outage; then as `Later` |
/// | `Later` | transport trouble: 5xx, timeouts, resets, closed sockets | backs off and retries |
/// | `WaitForPublisher` | nobody is publishing yet: "stream not being published", "Feed not found", WHEP 404/409 | backs off, reacts at once to a live hint, gives up only after `wait_for_publisher` |
/// | `Never` | retrying cannot help: bad or expired token, forbidden | gives up |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Retry {
    /// Reconnect at once.
    Now,
    /// Back off, then retry.
    Later,
    /// Nobody is publishing yet: wait for the publisher.
    WaitForPublisher,
    /// Give up.
    Never,
}

impl fmt::Display for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Retry::Now => "retry now",
            Retry::Later => "retry later",
            Retry::WaitForPublisher => "wait for publisher",
            Retry::Never => "fatal",
        })
    }
}

/// An error that knows its [`Retry`] class, like rustls's alert conversion.
pub trait Classify {
    /// How to retry after this error.
    fn retry(&self) -> Retry;

    /// How long the server asked to wait before the next attempt (HTTP
    /// `Retry-After` on a 503 or 429), if it did. The machine waits at least
    /// this long, capped by the policy's `retry_after_max`. None by default.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl Classify for std::io::Error {
    /// I/O failures are transport trouble: retry later.
    fn retry(&self) -> Retry {
        Retry::Later
    }
}

/// A live session handed out by [`StreamSource::connect`]: the media handle for
/// the application and the event stream the driver watches.
///
/// Dropping `events` ends the session: a source must close its transport then.
#[derive(Debug)]
pub struct Session<M, E> {
    /// What the application plays: tracks, a packet receiver, a player handle.
    /// Delivered as [`Event::Session`](crate::Event::Session).
    pub media: M,
    /// What happens on the session, watched by the driver.
    pub events: E,
}

/// Something a session saw. `M` is the source's media handle, `E` its error.
#[derive(Debug)]
#[non_exhaustive]
pub enum SourceEvent<M, E> {
    /// The media time of the session advanced to (or stands at) this value.
    Progress(Duration),
    /// The layers the server offers now; zero active layers means the feed is gone.
    Layers {
        /// How many layers are active across all media.
        active: u32,
    },
    /// The publisher is live (Millicast `active`).
    Active,
    /// The publisher stopped (Millicast `inactive`).
    Inactive,
    /// The stream is over (Millicast `stopped`).
    StreamEnded,
    /// The publisher is live, said by a side channel rather than this session.
    LiveHint,
    /// How many viewers the stream has; passed to the application.
    ViewerCount(u64),
    /// The session moved to a new transport without a gap (make-before-break,
    /// e.g. a Millicast `migrate`): here is the new media handle, which the
    /// application gets as a new [`Event::Session`](crate::Event::Session).
    /// The previous handle stops once the new one carries media.
    Migrated(M),
    /// The media path failed (ICE consent lost, a NAT rebinding) but the
    /// session may still be repaired in place ([`StreamSource::repair`]): the
    /// machine repairs it if it can, and otherwise treats it as [`Lost`](SourceEvent::Lost).
    /// The application gets the error as [`Event::Error`](crate::Event::Error).
    PathLost(E),
    /// The session's transport closed or failed; the session is over.
    Lost(E),
}

impl<M, E> SourceEvent<M, E> {
    /// The same event with its media handle (in `Migrated`) and error (in
    /// `Lost`) converted: what an adapter over another source needs.
    pub fn map<M2, E2>(
        self,
        media: impl FnOnce(M) -> M2,
        error: impl FnOnce(E) -> E2,
    ) -> SourceEvent<M2, E2> {
        match self {
            SourceEvent::Progress(t) => SourceEvent::Progress(t),
            SourceEvent::Layers { active } => SourceEvent::Layers { active },
            SourceEvent::Active => SourceEvent::Active,
            SourceEvent::Inactive => SourceEvent::Inactive,
            SourceEvent::StreamEnded => SourceEvent::StreamEnded,
            SourceEvent::LiveHint => SourceEvent::LiveHint,
            SourceEvent::ViewerCount(n) => SourceEvent::ViewerCount(n),
            SourceEvent::Migrated(m) => SourceEvent::Migrated(media(m)),
            SourceEvent::PathLost(e) => SourceEvent::PathLost(error(e)),
            SourceEvent::Lost(e) => SourceEvent::Lost(error(e)),
        }
    }
}

/// An in-session repair in flight ([`StreamSource::repair`]): `Ok` once the
/// transport has carried it out (media should follow on the same session),
/// `Err` when it failed.
pub type RepairFuture<E> = futures::future::BoxFuture<'static, Result<(), E>>;

/// A transport that a [`Reconnector`](crate::Reconnector) can keep alive.
///
/// `connect` is called once per attempt, never while another attempt or
/// session is alive. Its future is `'static`: it must own what it uses, so
/// clone what it needs out of `self` first (`let url = self.url.clone();
/// async move { .. }`), as an `async move` over `&mut self` does not compile.
/// For a source without a type of its own, [`source_fn`] takes a closure;
/// [`BoxSource`] picks one of several sources at run time. The future it returns is dropped to cancel an attempt
/// (on `stop()` or a connect timeout), so it must clean up on drop.
///
/// An event stream that ends without [`SourceEvent::Lost`] is
/// [`Input::SessionEnded`](crate::Input::SessionEnded) to the machine: a loss to
/// retry later.
///
/// # Example
///
/// A source whose sessions tick media time forever:
///
/// ```
/// use std::time::Duration;
/// use futures::stream::{self, Stream, StreamExt};
/// use relive::{Classify, Retry, Session, SourceEvent, StreamSource};
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("never fails")]
/// struct Never;
/// impl Classify for Never {
///     fn retry(&self) -> Retry { Retry::Later }
/// }
///
/// struct Clock;
/// impl StreamSource for Clock {
///     type Media = ();
///     type Events = stream::BoxStream<'static, SourceEvent<(), Never>>;
///     type Error = Never;
///
///     fn connect(&mut self, _attempt: u32)
///         -> impl Future<Output = Result<Session<(), Self::Events>, Never>> + Send + 'static
///     {
///         async {
///             let ticks = stream::iter(1u64..)
///                 .map(|n| SourceEvent::Progress(Duration::from_millis(250 * n)))
///                 .boxed();
///             Ok(Session { media: (), events: ticks })
///         }
///     }
/// }
/// ```
pub trait StreamSource: Send + 'static {
    /// The media handle given to the application with each new session.
    type Media: Send + 'static;
    /// The session's event stream.
    type Events: Stream<Item = SourceEvent<Self::Media, Self::Error>> + Send + Unpin + 'static;
    /// Why a connect attempt or a session failed.
    type Error: std::error::Error + Classify + Send + Sync + 'static;

    /// Starts connect attempt number `attempt` (from 1 within an outage).
    fn connect(
        &mut self,
        attempt: u32,
    ) -> impl Future<Output = Result<Session<Self::Media, Self::Events>, Self::Error>> + Send + 'static;

    /// A short name for logs (the `stream` field of the viewer's span). Never a secret.
    fn describe(&self) -> String {
        std::any::type_name::<Self>().to_owned()
    }

    /// Whether the session whose events are `events` can be repaired in place
    /// ([`repair`](StreamSource::repair)): asked once, when the session is kept.
    /// No by default.
    fn can_repair(&self, events: &Self::Events) -> bool {
        let _ = events;
        false
    }

    /// Starts an in-session repair of the session whose events are `events`
    /// (for WHEP, an ICE restart by `PATCH`), when the machine asks for one
    /// ([`Output::Repair`](crate::Output::Repair)) on a session that
    /// [`can_repair`](StreamSource::can_repair) said yes to. Media coming back
    /// shows as progress on the same events; an error (or `None`: not
    /// possible now) makes the machine escalate to a new session. The future
    /// is dropped to cancel the repair (the session dropped, the viewer
    /// stopped). None by default.
    fn repair(&mut self, events: &mut Self::Events) -> Option<RepairFuture<Self::Error>> {
        let _ = events;
        None
    }
}
