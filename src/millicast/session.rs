//! One live Millicast session: a task that watches the signaling socket and
//! the media path, turns what it sees into [`SourceEvent`]s, and carries out
//! `migrate` make-before-break.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::millicast::MillicastMedia;
use crate::millicast::error::MillicastError;
use crate::millicast::signaling::{self, Keepalive, Limits, Ws};
use crate::millicast::wire::{ServerMessage, SignalingEvent};
use crate::offer::MediaEvent;
use crate::source::SourceEvent;

/// What a session hands the driver.
pub(crate) type Item<M> = SourceEvent<MillicastMedia<M>, MillicastError>;

/// A connection that answered `view`: socket, media path and the events that
/// came before the answer.
pub(crate) struct Established<M> {
    pub(crate) ws: Ws,
    pub(crate) media_events: BoxStream<'static, MediaEvent>,
    pub(crate) media: MillicastMedia<M>,
    pub(crate) early: Vec<SignalingEvent>,
}

/// Makes a new connection, for `migrate`.
pub(crate) type Reconnect<M> = std::sync::Arc<
    dyn Fn() -> BoxFuture<'static, Result<Established<M>, MillicastError>> + Send + Sync,
>;

/// The events of one Millicast session. Dropping it ends the session's task,
/// which closes the socket and the media path.
pub struct MillicastEvents<M> {
    rx: mpsc::Receiver<Item<M>>,
    task: JoinHandle<()>,
}

impl<M> std::fmt::Debug for MillicastEvents<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MillicastEvents").finish_non_exhaustive()
    }
}

impl<M> Stream for MillicastEvents<M> {
    type Item = Item<M>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item<M>>> {
        self.rx.poll_recv(cx)
    }
}

impl<M> Drop for MillicastEvents<M> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the task of a session; returns its media handle and event stream.
pub(crate) fn spawn<M: Send + 'static>(
    established: Established<M>,
    limits: Limits,
    reconnect: Reconnect<M>,
) -> (MillicastMedia<M>, MillicastEvents<M>) {
    let (tx, rx) = mpsc::channel(64);
    let Established {
        ws,
        media_events,
        media,
        early,
    } = established;
    let live = Live { ws, media_events };
    let task = tokio::spawn(run(live, early, tx, limits, reconnect));
    (media, MillicastEvents { rx, task })
}

struct Live {
    ws: Ws,
    media_events: BoxStream<'static, MediaEvent>,
}

/// The session loop. Ends by sending `Lost` or when the events are dropped.
async fn run<M: Send + 'static>(
    mut live: Live,
    early: Vec<SignalingEvent>,
    tx: mpsc::Sender<Item<M>>,
    limits: Limits,
    reconnect: Reconnect<M>,
) {
    let mut keepalive = Keepalive::new(limits);
    let mut migrating: Option<BoxFuture<'static, Result<Established<M>, MillicastError>>> = None;
    let mut pending: Vec<SignalingEvent> = early;
    loop {
        for event in pending.drain(..) {
            if let Some(item) = map_event(event, &mut migrating, &reconnect)
                && tx.send(item).await.is_err()
            {
                return;
            }
        }
        let item = tokio::select! {
            biased;
            () = tx.closed() => return,
            frame = live.ws.next() => match frame {
                Some(Ok(message)) => {
                    if message.is_pong() {
                        keepalive.pong();
                    }
                    match signaling::read(message) {
                        Ok(Some(ServerMessage::Event(event))) => {
                            pending.push(event);
                            continue;
                        }
                        Ok(_) => continue,
                        Err(e) => SourceEvent::Lost(e),
                    }
                }
                Some(Err(e)) => SourceEvent::Lost(signaling::lost(e, &limits)),
                None => SourceEvent::Lost(MillicastError::Closed { code: None, reason: String::new() }),
            },
            media = live.media_events.next() => match media {
                // The media path's own time: after a `migrate` the new path
                // counts from zero, which the machine's continuity rule reads
                // as a new timeline (`timeline::classify`).
                Some(MediaEvent::Progress(t)) => SourceEvent::Progress(t),
                // Millicast documents no ICE restart: a lost path is a lost session.
                Some(MediaEvent::Lost(why) | MediaEvent::PathLost(why)) => {
                    SourceEvent::Lost(MillicastError::Media(why))
                }
                None => SourceEvent::Lost(MillicastError::Media("media path ended".to_owned())),
            },
            due = keepalive.due() => match due {
                Ok(()) => match keepalive.ping(&mut live.ws).await {
                    Ok(()) => continue,
                    Err(e) => SourceEvent::Lost(e),
                },
                Err(e) => SourceEvent::Lost(e),
            },
            result = poll_migration(&mut migrating) => {
                migrating = None;
                match result {
                    Ok(next) => {
                        tracing::info!("migrated to a new signaling session");
                        // Make-before-break: the new session is up; the old one
                        // is closed by dropping it here.
                        live = Live { ws: next.ws, media_events: next.media_events };
                        keepalive = Keepalive::new(limits);
                        pending.extend(next.early);
                        SourceEvent::Migrated(next.media)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "migrate failed; staying on the current session");
                        continue;
                    }
                }
            },
        };
        let lost = matches!(item, SourceEvent::Lost(_));
        if tx.send(item).await.is_err() || lost {
            return;
        }
    }
}

async fn poll_migration<T>(migrating: &mut Option<BoxFuture<'static, T>>) -> T {
    match migrating {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// A signaling event as a source event; `migrate` starts a new connection.
fn map_event<M>(
    event: SignalingEvent,
    migrating: &mut Option<BoxFuture<'static, Result<Established<M>, MillicastError>>>,
    reconnect: &Reconnect<M>,
) -> Option<Item<M>> {
    match event {
        // A secondary source of a multi-source stream coming and going is no
        // news for the main picture.
        SignalingEvent::Active {
            source_id: None, ..
        } => Some(SourceEvent::Active),
        SignalingEvent::Inactive {
            source_id: None, ..
        } => Some(SourceEvent::Inactive),
        SignalingEvent::Stopped => Some(SourceEvent::StreamEnded),
        SignalingEvent::Layers(layers) => Some(SourceEvent::Layers {
            active: layers.active_count(),
        }),
        SignalingEvent::ViewerCount(n) => Some(SourceEvent::ViewerCount(n)),
        SignalingEvent::Migrate => {
            if migrating.is_none() {
                tracing::info!("server asked to migrate; opening the new session first");
                *migrating = Some(reconnect());
            }
            None
        }
        other => {
            tracing::debug!(event = other.name(), "signaling event ignored");
            None
        }
    }
}
