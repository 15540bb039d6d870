//! One viewer's I/O around its machine, shared by both drivers (the per-viewer
//! task and the fleet's shards): the connect attempt, the kept session, and
//! the one exhaustive match that carries out the machine's outputs.
//!
//! It decides nothing. A driver feeds it what happened (an input, a timeout, a
//! connect result, a session event) with the time, and it hands the
//! application's events and state to the driver's [`Sink`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::Stream;

use crate::driver::Event;
use crate::machine::{Input, Machine, Output, Reason, State};
use crate::source::{Classify, RepairFuture, Session, SourceEvent, StreamSource};

/// A connect attempt in flight: exists only while the machine is connecting.
pub(crate) type Connecting<S> = Pin<
    Box<
        dyn Future<
                Output = Result<
                    Session<<S as StreamSource>::Media, <S as StreamSource>::Events>,
                    <S as StreamSource>::Error,
                >,
            > + Send,
    >,
>;

/// Where a driver sends what the application is told.
pub(crate) trait Sink<S: StreamSource> {
    /// An event for the application, in order.
    fn emit(&mut self, event: Event<S::Media, S::Error>);
    /// The viewer's state changed to `state`.
    fn state(&mut self, state: State);
    /// A span to carry out outputs in, when the driver has none around it.
    fn span(&self, source: &S) -> Option<tracing::Span> {
        let _ = source;
        None
    }
}

/// What one of the runner's futures produced.
pub(crate) enum Io<S: StreamSource> {
    /// The connect attempt finished.
    Connected(Result<Session<S::Media, S::Events>, S::Error>),
    /// The session said something (`None`: its events ended).
    Session(Option<SourceEvent<S::Media, S::Error>>),
    /// The repair in flight finished.
    Repaired(Result<(), S::Error>),
}

/// One viewer: its machine, its source, and the attempt or session alive now.
pub(crate) struct Runner<S: StreamSource> {
    source: S,
    machine: Machine,
    connecting: Option<Connecting<S>>,
    /// A session that connected, until the machine says to keep it.
    arrived: Option<Session<S::Media, S::Events>>,
    session: Option<S::Events>,
    /// The repair of `session` in flight: exists only while the machine waits for it.
    repairing: Option<RepairFuture<S::Error>>,
}

impl<S: StreamSource> Runner<S> {
    pub(crate) fn new(source: S, machine: Machine) -> Self {
        Runner {
            source,
            machine,
            connecting: None,
            arrived: None,
            session: None,
            repairing: None,
        }
    }

    pub(crate) fn machine(&self) -> &Machine {
        &self.machine
    }

    /// Feeds `input`, then carries out what it caused. Each of these calls
    /// says whether there were outputs (then the driver polls the runner:
    /// an attempt or session may be new).
    pub(crate) fn input(&mut self, now: Instant, input: Input, sink: &mut impl Sink<S>) -> bool {
        self.machine.handle_input(now, input);
        self.carry_out(now, sink)
    }

    /// A progress tick: the hot path. Outputs are carried out only when there
    /// are any (a tick that ends a stall has some).
    pub(crate) fn progress(
        &mut self,
        at: Instant,
        media: std::time::Duration,
        sink: &mut impl Sink<S>,
    ) -> bool {
        self.machine.handle_input(at, Input::Progress(media));
        self.carry_out(at, sink)
    }

    /// Wakes the machine at `now` (early or extra calls do nothing).
    pub(crate) fn timeout(&mut self, now: Instant, sink: &mut impl Sink<S>) -> bool {
        self.machine.handle_timeout(now);
        self.carry_out(now, sink)
    }

    /// Polls the connect attempt, then the session, for what happened.
    pub(crate) fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<Io<S>> {
        if let Some(connecting) = self.connecting.as_mut()
            && let Poll::Ready(result) = connecting.as_mut().poll(cx)
        {
            self.connecting = None;
            return Poll::Ready(Io::Connected(result));
        }
        if let Some(repairing) = self.repairing.as_mut()
            && let Poll::Ready(result) = repairing.as_mut().poll(cx)
        {
            self.repairing = None;
            return Poll::Ready(Io::Repaired(result));
        }
        if let Some(events) = self.session.as_mut()
            && let Poll::Ready(event) = Pin::new(events).poll_next(cx)
        {
            return Poll::Ready(Io::Session(event));
        }
        Poll::Pending
    }

    /// Feeds what [`poll_io`](Runner::poll_io) produced.
    pub(crate) fn on_io(&mut self, now: Instant, io: Io<S>, sink: &mut impl Sink<S>) -> bool {
        let input = match io {
            Io::Connected(result) => self.on_connect_result(result, sink),
            Io::Repaired(Ok(())) => {
                // Media coming back on the session shows the repair worked.
                tracing::info!("repair carried out; waiting for media");
                return false;
            }
            Io::Repaired(Err(error)) => {
                tracing::warn!(error = %error, "repair failed");
                sink.emit(Event::Error(error));
                Input::RepairFailed
            }
            Io::Session(event) => match self.on_session_event(event, sink) {
                Some(input) => input,
                None => return false,
            },
        };
        if let Input::Progress(media) = input {
            return self.progress(now, media, sink);
        }
        let acted = self.input(now, input, sink);
        // A session that connected but was not kept is closed here (the
        // machine said nothing at all to a stale `Connected`).
        self.arrived = None;
        acted
    }

    fn on_connect_result(
        &mut self,
        result: Result<Session<S::Media, S::Events>, S::Error>,
        sink: &mut impl Sink<S>,
    ) -> Input {
        match result {
            Ok(session) => {
                // Kept only if the machine says so (`Output::KeepSession`);
                // otherwise dropped, closing it, once the outputs are carried out.
                self.arrived = Some(session);
                Input::Connected
            }
            Err(error) => {
                let retry = error.retry();
                let retry_after = error.retry_after();
                let retry_after_ms = retry_after.map(|d| d.as_millis() as u64);
                tracing::warn!(error = %error, retry = %retry, retry_after_ms, "connect failed");
                sink.emit(Event::Error(error));
                match retry_after {
                    Some(retry_after) => Input::ConnectFailedRetryAfter { retry, retry_after },
                    None => Input::ConnectFailed(retry),
                }
            }
        }
    }

    fn on_session_event(
        &mut self,
        event: Option<SourceEvent<S::Media, S::Error>>,
        sink: &mut impl Sink<S>,
    ) -> Option<Input> {
        Some(match event {
            Some(SourceEvent::Progress(t)) => Input::Progress(t),
            Some(SourceEvent::Layers { active }) => Input::Layers { active },
            Some(SourceEvent::Active) => Input::Active,
            Some(SourceEvent::Inactive) => Input::Inactive,
            Some(SourceEvent::StreamEnded) => Input::StreamEnded,
            Some(SourceEvent::LiveHint) => Input::LiveHint,
            Some(SourceEvent::ViewerCount(n)) => {
                sink.emit(Event::ViewerCount(n));
                return None;
            }
            Some(SourceEvent::Migrated(media)) => {
                tracing::info!("session migrated to a new transport");
                sink.emit(Event::Session(media));
                return None;
            }
            Some(SourceEvent::PathLost(error)) => {
                tracing::warn!(error = %error, "media path lost");
                sink.emit(Event::Error(error));
                Input::PathLost
            }
            Some(SourceEvent::Lost(error)) => {
                let retry = error.retry();
                tracing::warn!(error = %error, retry = %retry, "session lost");
                sink.emit(Event::Error(error));
                Input::TransportLost(retry)
            }
            None => {
                tracing::warn!("session ended");
                // Ended streams are not polled again.
                self.session = None;
                Input::SessionEnded
            }
        })
    }

    /// Drains the machine's outputs and carries each out, in order; false
    /// when there were none.
    pub(crate) fn carry_out(&mut self, now: Instant, sink: &mut impl Sink<S>) -> bool {
        if !self.machine.has_output() {
            return false;
        }
        let span = sink.span(&self.source);
        let _entered = span.as_ref().map(tracing::Span::enter);
        loop {
            let refused = self.carry_out_outputs(now, sink);
            if !refused {
                break;
            }
            // A repair that cannot start fails at once, after the outputs before it.
            tracing::info!("the session offers no repair now");
            self.machine.handle_input(now, Input::RepairFailed);
        }
        // A session that connected but was not kept is closed here.
        self.arrived = None;
        true
    }

    /// Carries out the outputs queued now; true when an `Output::Repair` could not start.
    fn carry_out_outputs(&mut self, now: Instant, sink: &mut impl Sink<S>) -> bool {
        let mut refused = false;
        while let Some(output) = self.machine.poll_output() {
            match output {
                Output::Connect { attempt } => {
                    tracing::info!(attempt, "connecting");
                    self.connecting = Some(Box::pin(self.source.connect(attempt)));
                }
                Output::KeepSession => {
                    if let Some(session) = self.arrived.take() {
                        tracing::info!("session up");
                        // The machine hears at once whether this session can be
                        // repaired; the input yields no output of its own.
                        if self.source.can_repair(&session.events) {
                            self.machine.handle_input(now, Input::Repairable);
                        }
                        self.repairing = None;
                        self.session = Some(session.events);
                        sink.emit(Event::Session(session.media));
                    }
                }
                Output::Repair { reason } => {
                    tracing::info!(reason = %reason, "repairing the session");
                    self.repairing = self
                        .session
                        .as_mut()
                        .and_then(|events| self.source.repair(events));
                    refused |= self.repairing.is_none();
                }
                Output::AbortConnect { reason } => {
                    tracing::info!(reason = %reason, "connect attempt abandoned");
                    self.connecting = None;
                }
                Output::DropSession { reason } => {
                    tracing::info!(reason = %reason, "session dropped");
                    self.repairing = None;
                    self.session = None;
                }
                Output::StateChanged { from, to, reason } => {
                    self.changed(now, from, to, reason, sink);
                }
                Output::GaveUp { reason } => {
                    tracing::warn!(reason = %reason, "gave up");
                    sink.emit(Event::GaveUp(reason));
                }
            }
        }
        refused
    }

    fn changed(
        &self,
        now: Instant,
        from: State,
        to: State,
        reason: Reason,
        sink: &mut impl Sink<S>,
    ) {
        let retry_in = to.retry_in(now);
        let delay_ms = retry_in.map(|d| d.as_millis() as u64);
        tracing::info!(
            from = from.name(),
            to = to.name(),
            reason = %reason,
            attempt = self.machine.attempt(),
            delay_ms,
            "state"
        );
        sink.state(to);
        sink.emit(Event::State {
            from,
            to,
            reason,
            retry_in,
        });
    }
}
