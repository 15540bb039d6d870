//! Live hints from the relay for any [`Reconnector`](crate::Reconnector): when the relay says a
//! stream is live, a viewer waiting for it connects at once instead of at its backoff deadline.

use tokio::task::JoinHandle;

use futures::StreamExt;

use crate::Control;
use crate::relay::client::{RelayClient, RelayEvent};
use crate::relay::protocol::StreamName;

/// Starts a task that views `stream` on the relay at `relay_url` and gives `control` a
/// [`live_hint`](Control::live_hint) whenever its publisher goes live. Works with any
/// [`StreamSource`](crate::StreamSource): the hint only shortens the wait. The task ends when
/// the returned [`Hints`] or the viewer is dropped.
///
/// ```no_run
/// # async fn demo<S: relive::StreamSource>(source: S) -> Result<(), relive::relay::RelayError> {
/// use relive::relay::StreamName;
/// use relive::{Policy, Reconnector};
///
/// let viewer = Reconnector::new(source, Policy::default()).spawn();
/// let stream = StreamName::new("cam-1")?;
/// let _hints = relive::relay::hints("ws://127.0.0.1:8787/ws", &stream, viewer.control());
/// # Ok(()) }
/// ```
pub fn hints(relay_url: impl Into<String>, stream: &StreamName, control: Control) -> Hints {
    let client = RelayClient::builder(relay_url)
        .stream(stream.clone())
        .spawn();
    Hints::spawn(client, control)
}

/// The task that turns a relay's `publish` events into live hints; stops when dropped.
#[derive(Debug)]
pub struct Hints {
    task: JoinHandle<()>,
}

impl Hints {
    /// Feeds `control` from an already configured `client` (an origin, several streams, ...).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like [`tokio::spawn`].
    pub fn spawn(client: RelayClient, control: Control) -> Hints {
        Hints {
            task: tokio::spawn(run(client, control)),
        }
    }
}

impl Drop for Hints {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(mut client: RelayClient, control: Control) {
    let mut state = control.watch_state();
    loop {
        tokio::select! {
            event = client.next() => match event {
                None => return,
                // The machine decides what the news is worth in each state
                // (`Input::LiveHint`): at once in `Backoff`, kept while an
                // attempt is in flight, moot while playing.
                Some(event) => if let Some(stream) = event.live_stream() {
                    tracing::debug!(%stream, "relay: publisher live; live hint");
                    control.live_hint();
                } else if let RelayEvent::Close { .. } = event {
                    control.withdraw_live_hint();
                },
            },
            // The viewer's task is gone: nothing left to hint.
            changed = state.changed() => if changed.is_err() { return },
        }
    }
}
