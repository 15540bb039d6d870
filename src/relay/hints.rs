//! Live hints from the relay for any [`Reconnector`](crate::Reconnector): when the relay says a
//! stream is live, a viewer waiting for it connects at once instead of at its backoff deadline.

use tokio::task::JoinHandle;

use futures::StreamExt;

use crate::relay::RelayError;
use crate::relay::client::{RelayClient, RelayEvent};
use crate::relay::protocol::StreamName;
use crate::{Control, State};

/// Starts a task that views `stream` on the relay at `relay_url` and gives `control` a
/// [`live_hint`](Control::live_hint) whenever its publisher goes live. Works with any
/// [`StreamSource`](crate::StreamSource): the hint only shortens the wait. The task ends when
/// the returned [`Hints`] or the viewer is dropped.
///
/// ```no_run
/// # async fn demo<S: relive::StreamSource>(source: S) -> Result<(), relive::relay::RelayError> {
/// use relive::{Policy, Reconnector};
///
/// let viewer = Reconnector::new(source, Policy::default()).spawn();
/// let _hints = relive::relay::hints("ws://127.0.0.1:8787/ws", "cam-1", viewer.control())?;
/// # Ok(()) }
/// ```
pub fn hints(
    relay_url: impl Into<String>,
    stream: impl AsRef<str>,
    control: Control,
) -> Result<Hints, RelayError> {
    let stream = StreamName::new(stream.as_ref())?;
    let client = RelayClient::builder(relay_url).stream(stream).spawn();
    Ok(Hints::spawn(client, control))
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
    let mut gate = HintGate::default();
    loop {
        tokio::select! {
            event = client.next() => match event {
                None => return,
                Some(event) => {
                    if let Some(stream) = event.live_stream() {
                        tracing::debug!(%stream, "relay: publisher live");
                        gate.arm();
                    } else if let RelayEvent::Close { .. } = event {
                        gate.disarm();
                    }
                }
            },
            // The viewer's task is gone: nothing left to hint.
            changed = state.changed() => if changed.is_err() { return },
        }
        if gate.fire(&control.state()) {
            tracing::info!("live hint from the relay");
            control.live_hint();
        }
    }
}

/// Holds a "publisher is live" news until the viewer can use it.
///
/// The machine acts on a hint only in `Backoff`. News that comes while an attempt is in
/// flight (one started before the publisher was back, bound to fail) must not be lost: it
/// waits, armed, for the `Backoff` that follows, and fires once. Playing makes it moot; the
/// publisher leaving again cancels it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct HintGate {
    armed: bool,
}

impl HintGate {
    pub(crate) fn arm(&mut self) {
        self.armed = true;
    }

    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }

    /// Whether to give a hint now, in `state`; firing disarms.
    pub(crate) fn fire(&mut self, state: &State) -> bool {
        match state {
            State::Backoff { .. } if self.armed => {
                self.armed = false;
                true
            }
            State::Playing { .. } => {
                self.armed = false;
                false
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn news_during_an_attempt_waits_for_the_backoff_and_fires_once() {
        #[allow(clippy::disallowed_methods)] // a fixed instant for state values
        let t = std::time::Instant::now();
        let connecting = State::Connecting {
            attempt: 1,
            since: t,
        };
        let backoff = State::Backoff {
            attempt: 2,
            until: t + Duration::from_secs(5),
            waiting_for_publisher: true,
        };
        let mut gate = HintGate::default();
        assert!(!gate.fire(&backoff), "nothing armed");
        gate.arm();
        assert!(!gate.fire(&connecting));
        assert!(gate.fire(&backoff));
        assert!(!gate.fire(&backoff), "once");
        gate.arm();
        assert!(!gate.fire(&State::Playing { since: t }));
        assert!(!gate.fire(&backoff), "playing made it moot");
        gate.arm();
        gate.disarm();
        assert!(!gate.fire(&backoff), "the publisher left again");
    }
}
