//! Sources chosen at run time: [`BoxSource`] erases a source's type, and maps
//! its media and error into types shared by every choice; [`AnyError`] is such
//! a shared error.

use std::any::Any;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};

use crate::source::{Classify, RepairFuture, Retry, Session, SourceEvent, StreamSource};

/// The event stream of a [`BoxSource`] session: the boxed source's own
/// events, mapped, which keep what its source needs to repair them.
pub struct BoxEvents<M, E> {
    inner: Box<dyn DynEvents<M, E>>,
}

impl<M, E> fmt::Debug for BoxEvents<M, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxEvents").finish_non_exhaustive()
    }
}

impl<M, E> Stream for BoxEvents<M, E> {
    type Item = SourceEvent<M, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_event(cx)
    }
}

/// The object-safe face of a boxed session's events.
trait DynEvents<M, E>: Send {
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<SourceEvent<M, E>>>;
    /// For the source that made them, to reach its own events type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn as_any(&self) -> &dyn Any;
}

/// A session's own events with the maps of its [`BoxSource`].
struct MappedEvents<Ev, FM, FE> {
    events: Ev,
    maps: Arc<(FM, FE)>,
}

impl<Ev, FM, FE, M0, E0, M, E> DynEvents<M, E> for MappedEvents<Ev, FM, FE>
where
    Ev: Stream<Item = SourceEvent<M0, E0>> + Send + Unpin + 'static,
    FM: Fn(M0) -> M + Send + Sync + 'static,
    FE: Fn(E0) -> E + Send + Sync + 'static,
{
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<SourceEvent<M, E>>> {
        let maps = &self.maps;
        self.events
            .poll_next_unpin(cx)
            .map(|event| event.map(|event| event.map(&maps.0, &maps.1)))
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Any [`StreamSource`] behind one type, so that the source can be chosen at
/// run time (Millicast or WHEP from a flag, a test double in tests).
///
/// [`new`](BoxSource::new) boxes a source whose media and error already are
/// `M` and `E`; [`map`](BoxSource::map) converts them, e.g. into an enum of
/// media handles and an [`AnyError`].
///
/// ```
/// use relive::testkit::{MemoryMedia, MemoryStream};
/// use relive::{AnyError, BoxSource, Policy, Reconnector};
///
/// #[derive(Debug)]
/// enum Media { Main(MemoryMedia), Backup(MemoryMedia) }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let (main, backup) = (MemoryStream::new(), MemoryStream::new());
/// let use_backup = std::env::args().any(|a| a == "--backup");
/// let source: BoxSource<Media, AnyError> = if use_backup {
///     BoxSource::map(backup.source(), Media::Backup, AnyError::new)
/// } else {
///     BoxSource::map(main.source(), Media::Main, AnyError::new)
/// };
/// let viewer = Reconnector::new(source, Policy::default()).spawn();
/// # drop(viewer);
/// # }
/// ```
pub struct BoxSource<M, E> {
    inner: Box<dyn DynSource<M, E>>,
}

impl<M: Send + 'static, E: Send + 'static> BoxSource<M, E> {
    /// Boxes `source`, whose media and error are `M` and `E`.
    pub fn new<S>(source: S) -> Self
    where
        S: StreamSource<Media = M, Error = E>,
    {
        BoxSource::map(source, |m| m, |e| e)
    }

    /// Boxes `source`, converting each media handle with `media` and each
    /// error with `error`.
    pub fn map<S, FM, FE>(source: S, media: FM, error: FE) -> Self
    where
        S: StreamSource,
        FM: Fn(S::Media) -> M + Send + Sync + 'static,
        FE: Fn(S::Error) -> E + Send + Sync + 'static,
    {
        BoxSource {
            inner: Box::new(Mapped {
                source,
                maps: Arc::new((media, error)),
            }),
        }
    }
}

impl<M, E> fmt::Debug for BoxSource<M, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BoxSource")
            .field(&self.inner.describe())
            .finish()
    }
}

impl<M, E> StreamSource for BoxSource<M, E>
where
    M: Send + 'static,
    E: std::error::Error + Classify + Send + Sync + 'static,
{
    type Media = M;
    type Events = BoxEvents<M, E>;
    type Error = E;

    fn connect(
        &mut self,
        attempt: u32,
    ) -> impl Future<Output = Result<Session<M, BoxEvents<M, E>>, E>> + Send + 'static {
        self.inner.connect(attempt)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn can_repair(&self, events: &BoxEvents<M, E>) -> bool {
        self.inner.can_repair(events)
    }

    fn repair(&mut self, events: &mut BoxEvents<M, E>) -> Option<RepairFuture<E>> {
        self.inner.repair(events)
    }
}

/// A boxed attempt of a [`BoxSource`].
type BoxAttempt<M, E> = BoxFuture<'static, Result<Session<M, BoxEvents<M, E>>, E>>;

/// The object-safe face of a source, with its media and error mapped.
trait DynSource<M, E>: Send {
    fn connect(&mut self, attempt: u32) -> BoxAttempt<M, E>;
    fn describe(&self) -> String;
    fn can_repair(&self, events: &BoxEvents<M, E>) -> bool;
    fn repair(&mut self, events: &mut BoxEvents<M, E>) -> Option<RepairFuture<E>>;
}

struct Mapped<S, FM, FE> {
    source: S,
    maps: Arc<(FM, FE)>,
}

impl<S, FM, FE, M, E> DynSource<M, E> for Mapped<S, FM, FE>
where
    S: StreamSource,
    FM: Fn(S::Media) -> M + Send + Sync + 'static,
    FE: Fn(S::Error) -> E + Send + Sync + 'static,
    M: Send + 'static,
    E: Send + 'static,
{
    fn connect(&mut self, attempt: u32) -> BoxAttempt<M, E> {
        let maps = Arc::clone(&self.maps);
        self.source
            .connect(attempt)
            .map(move |result| match result {
                Ok(Session { media, events }) => {
                    let media = (maps.0)(media);
                    let events = BoxEvents {
                        inner: Box::new(MappedEvents { events, maps }),
                    };
                    Ok(Session { media, events })
                }
                Err(e) => Err((maps.1)(e)),
            })
            .boxed()
    }

    fn describe(&self) -> String {
        self.source.describe()
    }

    fn can_repair(&self, events: &BoxEvents<M, E>) -> bool {
        events
            .inner
            .as_any()
            .downcast_ref::<MappedEvents<S::Events, FM, FE>>()
            .is_some_and(|own| self.source.can_repair(&own.events))
    }

    fn repair(&mut self, events: &mut BoxEvents<M, E>) -> Option<RepairFuture<E>> {
        let own = events
            .inner
            .as_any_mut()
            .downcast_mut::<MappedEvents<S::Events, FM, FE>>()?;
        let repair = self.source.repair(&mut own.events)?;
        let maps = Arc::clone(&self.maps);
        Some(
            repair
                .map(move |result| result.map_err(|e| (maps.1)(e)))
                .boxed(),
        )
    }
}

/// Any source's error, keeping its [`Retry`] class and its cause: the shared
/// error type of a [`BoxSource`] over sources with different errors.
#[derive(Debug)]
pub struct AnyError {
    retry: Retry,
    retry_after: Option<std::time::Duration>,
    inner: Box<dyn std::error::Error + Send + Sync>,
}

impl AnyError {
    /// Wraps `error`, reading its class once.
    pub fn new<E>(error: E) -> Self
    where
        E: std::error::Error + Classify + Send + Sync + 'static,
    {
        AnyError {
            retry: error.retry(),
            retry_after: error.retry_after(),
            inner: Box::new(error),
        }
    }

    /// The wrapped error, to downcast (`downcast_ref::<MillicastError>()`).
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.inner.as_ref()
    }
}

impl fmt::Display for AnyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl std::error::Error for AnyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The wrapped error stands in for this one: its cause is ours.
        self.inner.source()
    }
}

impl Classify for AnyError {
    fn retry(&self) -> Retry {
        self.retry
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after
    }
}
