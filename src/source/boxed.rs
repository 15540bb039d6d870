//! Sources chosen at run time: [`BoxSource`] erases a source's type, and maps
//! its media and error into types shared by every choice; [`AnyError`] is such
//! a shared error.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};

use crate::source::{Classify, Retry, Session, SourceEvent, StreamSource};

/// The event stream of a [`BoxSource`] session.
pub type BoxEvents<M, E> = BoxStream<'static, SourceEvent<M, E>>;

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
}

/// A boxed attempt of a [`BoxSource`].
type BoxAttempt<M, E> = BoxFuture<'static, Result<Session<M, BoxEvents<M, E>>, E>>;

/// The object-safe face of a source, with its media and error mapped.
trait DynSource<M, E>: Send {
    fn connect(&mut self, attempt: u32) -> BoxAttempt<M, E>;
    fn describe(&self) -> String;
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
                    let events = events.map(move |event| event.map(&maps.0, &maps.1)).boxed();
                    Ok(Session { media, events })
                }
                Err(e) => Err((maps.1)(e)),
            })
            .boxed()
    }

    fn describe(&self) -> String {
        self.source.describe()
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
