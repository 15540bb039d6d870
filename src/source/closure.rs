//! A [`StreamSource`] from a closure: for a transport that needs no type of
//! its own, and for tests.

use std::fmt;
use std::future::Future;

use futures::Stream;

use crate::source::{Classify, Session, SourceEvent, StreamSource};

/// A [`StreamSource`] whose `connect` is `connect(attempt)`: the closure is
/// called once per attempt and returns the attempt's future.
///
/// The future must own what it uses (`'static`): clone what you need out of
/// the closure's captures *before* the `async move` block, as below.
///
/// ```
/// use std::time::Duration;
/// use futures::stream::{self, StreamExt};
/// use relive::{Classify, Retry, Session, SourceEvent, source_fn};
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("refused")]
/// struct Refused;
/// impl Classify for Refused {
///     fn retry(&self) -> Retry { Retry::Later }
/// }
///
/// let server = String::from("127.0.0.1:9000");
/// let source = source_fn(move |attempt| {
///     let server = server.clone(); // owned by the future, not borrowed from the closure
///     async move {
///         let tick = SourceEvent::<String, Refused>::Progress(Duration::from_millis(40));
///         let events = stream::iter([tick]).boxed();
///         Ok::<_, Refused>(Session { media: format!("{server}, attempt {attempt}"), events })
///     }
/// })
/// .describe_as("tcp 127.0.0.1:9000");
/// # fn is_source(_: &impl relive::StreamSource) {}
/// # is_source(&source);
/// ```
pub fn source_fn<F>(connect: F) -> FnSource<F> {
    FnSource {
        connect,
        name: None,
    }
}

/// The source [`source_fn`] makes.
pub struct FnSource<F> {
    connect: F,
    name: Option<String>,
}

impl<F> FnSource<F> {
    /// The name for logs (the viewer span's `stream` field); never a secret.
    #[must_use]
    pub fn describe_as(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl<F> fmt::Debug for FnSource<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnSource")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<F, Fut, M, Ev, E> StreamSource for FnSource<F>
where
    F: FnMut(u32) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Session<M, Ev>, E>> + Send + 'static,
    M: Send + 'static,
    Ev: Stream<Item = SourceEvent<M, E>> + Send + Unpin + 'static,
    E: std::error::Error + Classify + Send + Sync + 'static,
{
    type Media = M;
    type Events = Ev;
    type Error = E;

    fn connect(
        &mut self,
        attempt: u32,
    ) -> impl Future<Output = Result<Session<M, Ev>, E>> + Send + 'static {
        (self.connect)(attempt)
    }

    fn describe(&self) -> String {
        self.name.clone().unwrap_or_else(|| "source_fn".to_owned())
    }
}
