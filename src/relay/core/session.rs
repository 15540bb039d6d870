//! [`Session`]: what one connection may do, frame by frame — `hello` first, then what its role
//! allows, within its rate and its limits, alive as long as it answers — as a pure value.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::action::{Action, End};
use super::clients::ClientSlot;
use super::rate::TokenBucket;
use crate::Secret;
use crate::relay::broker::BrokerError;
use crate::relay::config::{RelayConfig, tokens_equal};
use crate::relay::protocol::{
    ClientFrame, CloseReason, Details, ErrorCode, PROTOCOL_VERSION, Role, ServerFrame, StreamName,
    WireLimits, parse_client_frame,
};

/// One connection's protocol state.
///
/// # The contract
///
/// Like [`Machine`](crate::Machine): `handle_*` calls that bring what happened with its `now`, then **after each one** drain
/// [`poll_action`](Session::poll_action) and carry out every [`Action`] in order, then read
/// [`poll_timeout`](Session::poll_timeout) and call [`handle_timeout`](Session::handle_timeout)
/// once it is reached (early, late or twice is harmless). Time never runs backwards inside:
/// each `now` is raised to the latest seen. Once an [`Action::Close`] is out, inputs are
/// ignored; the shell then calls [`leave`](Session::leave) and carries out what it returns.
#[derive(Debug)]
pub(crate) struct Session {
    id: u64,
    config: Arc<RelayConfig>,
    /// The connection's share of its client address's allowance: each stream in `viewing`
    /// holds one view of it.
    client: ClientSlot,
    now: Instant,
    /// `Some` until `hello`: when the connection must have said it.
    hello_at: Option<Instant>,
    role: Option<Role>,
    token: Option<Secret>,
    published: HashSet<StreamName>,
    viewing: HashSet<StreamName>,
    bucket: TokenBucket,
    /// Frames refused in a row for the rate; past `burst` the client is closed.
    violations: u32,
    last_seen: Instant,
    next_ping: Instant,
    director_busy: bool,
    closed: bool,
    out: VecDeque<Action>,
}

impl Session {
    /// A new connection with id `id`, admitted for its client address as `client`, accepted at
    /// `now`.
    pub(crate) fn new(id: u64, config: Arc<RelayConfig>, client: ClientSlot, now: Instant) -> Self {
        let limits = config.limits;
        Session {
            id,
            client,
            now,
            hello_at: Some(now + limits.hello_timeout()),
            role: None,
            token: None,
            published: HashSet::new(),
            viewing: HashSet::new(),
            bucket: TokenBucket::new(limits.rate_per_sec, limits.burst, now),
            violations: 0,
            last_seen: now,
            next_ping: now + limits.keepalive(),
            director_busy: false,
            closed: false,
            out: VecDeque::new(),
            config,
        }
    }

    /// The next action to carry out, in order.
    #[must_use]
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    /// When to call [`handle_timeout`](Session::handle_timeout) next; `None` once closed.
    #[must_use]
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let wake = self.idle_at().min(self.next_ping);
        Some(self.hello_at.map_or(wake, |at| at.min(wake)))
    }

    /// Silence after which the connection is dead: a publisher's viewers must not believe in a
    /// stream whose publisher stopped answering, so a publisher gets two keepalive periods (it
    /// missed at least one ping); a viewer gets `idle_timeout_ms`.
    fn silence(&self) -> Duration {
        let limits = &self.config.limits;
        match self.role {
            Some(Role::Publisher) => limits.idle_timeout().min(limits.keepalive() * 2),
            _ => limits.idle_timeout(),
        }
    }

    fn idle_at(&self) -> Instant {
        self.last_seen + self.silence()
    }

    /// Raises `now` to the latest seen; `false` once closed (the input is ignored).
    fn enter(&mut self, now: Instant) -> bool {
        self.now = self.now.max(now);
        !self.closed
    }

    /// A deadline may have passed: hello, silence, or the next keepalive ping.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if !self.enter(now) {
            return;
        }
        let now = self.now;
        if self.hello_at.is_some_and(|at| at <= now) {
            self.fatal(ErrorCode::HelloTimeout, "no hello in time");
        } else if self.idle_at() <= now {
            self.fatal(ErrorCode::IdleTimeout, "nothing received in time");
        } else if self.next_ping <= now {
            self.next_ping = now + self.config.limits.keepalive();
            self.out.push_back(Action::Ping);
        }
    }

    /// A pong came: the client is alive.
    pub(crate) fn handle_pong(&mut self, now: Instant) {
        if self.enter(now) {
            self.last_seen = self.now;
        }
    }

    /// A WebSocket ping came (the WebSocket layer answers it); it counts towards the rate.
    pub(crate) fn handle_ping(&mut self, now: Instant) {
        if self.enter(now) {
            self.last_seen = self.now;
            let _ = self.admit();
        }
    }

    /// A binary frame came: not part of the protocol.
    pub(crate) fn handle_binary(&mut self, now: Instant) {
        if self.enter(now) {
            self.last_seen = self.now;
            if self.admit() {
                let message = "binary frames are not part of the protocol";
                self.refuse(ErrorCode::Malformed, message, None);
            }
        }
    }

    /// A text frame came.
    pub(crate) fn handle_text(&mut self, now: Instant, text: &str) {
        if !self.enter(now) {
            return;
        }
        self.last_seen = self.now;
        if !self.admit() {
            return;
        }
        let max = self.config.limits.max_frame;
        if text.len() > max {
            let message = format!("frame of {} bytes over the {max}-byte limit", text.len());
            return self.refuse(ErrorCode::TooLarge, message, None);
        }
        match parse_client_frame(text) {
            Ok(frame) => self.frame(frame),
            Err(error) => self.refuse(error.code(), error.to_string(), None),
        }
    }

    /// A frame beyond the hard limit: the WebSocket layer stopped reading. Told, then closed.
    pub(crate) fn handle_overflow(&mut self, now: Instant) {
        if self.enter(now) {
            let hard = self.config.limits.hard_frame();
            self.send_error(
                ErrorCode::TooLarge,
                format!("frame over {hard} bytes"),
                None,
                true,
            );
            self.close(End::Overflow);
        }
    }

    /// The client sent a close frame.
    pub(crate) fn handle_close(&mut self, now: Instant) {
        if self.enter(now) {
            self.close(End::Closed);
        }
    }

    /// The socket failed or ended.
    pub(crate) fn handle_gone(&mut self, now: Instant) {
        if self.enter(now) {
            self.close(End::Gone);
        }
    }

    /// The node found this connection's queue full: it does not read.
    pub(crate) fn handle_kicked(&mut self, now: Instant) {
        if self.enter(now) {
            self.close(End::Slow);
        }
    }

    /// The relay shuts down.
    pub(crate) fn handle_shutdown(&mut self, now: Instant) {
        if self.enter(now) {
            self.close(End::Shutdown);
        }
    }

    /// The node refused an [`Action::Publish`] or [`Action::View`] of `stream`.
    pub(crate) fn handle_refused(&mut self, stream: &StreamName, error: &BrokerError) {
        if self.viewing.remove(stream) {
            self.client.give_view();
        }
        self.published.remove(stream);
        if self.closed {
            return;
        }
        let code = match error {
            BrokerError::TooManyStreams(_) => ErrorCode::TooManyStreams,
            _ => ErrorCode::Internal,
        };
        self.refuse(code, error.to_string(), Some(stream));
    }

    /// The Director call ended with `answer` (a `director` or an `error` frame).
    pub(crate) fn handle_director_answer(&mut self, answer: ServerFrame) {
        self.director_busy = false;
        if !self.closed {
            self.out.push_back(Action::Send(answer));
        }
    }

    /// The connection is over: what to undo in the node — its streams close for their viewers
    /// (`publisher_lost`), its views end. Returns the actions; the session is empty after.
    pub(crate) fn leave(&mut self) -> Vec<Action> {
        self.closed = true;
        let lost = CloseReason::PublisherLost;
        for _ in 0..self.viewing.len() {
            self.client.give_view();
        }
        let unpublish = self.published.drain().map(|stream| Action::Unpublish {
            stream,
            reason: lost,
        });
        let unview = self.viewing.drain().map(|stream| Action::Unview { stream });
        unpublish.chain(unview).collect()
    }

    /// Takes a frame's token from the bucket; refuses it when empty, and closes a flooder.
    fn admit(&mut self) -> bool {
        if self.bucket.take(self.now) {
            self.violations = 0;
            return true;
        }
        self.violations = self.violations.saturating_add(1);
        let fatal = self.violations > self.config.limits.burst;
        let message = "over the frame rate; frame dropped";
        self.send_error(ErrorCode::RateLimited, message.to_owned(), None, fatal);
        if fatal {
            self.close(End::Fatal(ErrorCode::RateLimited));
        }
        false
    }

    /// One parsed frame, by what it is and who sends it.
    fn frame(&mut self, frame: ClientFrame) {
        match (frame, self.role) {
            (ClientFrame::Ping { id }, _) => {
                self.out.push_back(Action::Send(ServerFrame::Pong { id }))
            }
            (
                ClientFrame::Hello {
                    version,
                    role,
                    token,
                },
                None,
            ) => self.hello(version, role, token),
            (ClientFrame::Hello { .. }, Some(_)) => {
                self.refuse(ErrorCode::DuplicateHello, "hello was already said", None);
            }
            (_, None) => self.refuse(ErrorCode::HelloRequired, "say hello first", None),
            (ClientFrame::Publish { stream, details }, Some(Role::Publisher)) => {
                self.publish(stream, details);
            }
            (ClientFrame::Close { stream }, Some(Role::Publisher)) => self.unpublish(stream),
            (ClientFrame::View { stream }, Some(Role::Viewer)) => self.view(stream),
            (ClientFrame::Unview { stream }, Some(Role::Viewer)) => {
                if self.viewing.remove(&stream) {
                    self.client.give_view();
                    self.out.push_back(Action::Unview { stream });
                }
            }
            (ClientFrame::Director { stream, id }, Some(Role::Viewer)) => self.director(stream, id),
            (ClientFrame::Publish { stream, .. } | ClientFrame::Close { stream }, Some(_)) => {
                self.refuse(
                    ErrorCode::Forbidden,
                    "viewers cannot publish",
                    Some(&stream),
                );
            }
            (
                ClientFrame::View { stream }
                | ClientFrame::Unview { stream }
                | ClientFrame::Director { stream, .. },
                Some(_),
            ) => {
                let message = "publishers cannot view; open a viewer connection";
                self.refuse(ErrorCode::Forbidden, message, Some(&stream));
            }
        }
    }

    fn hello(&mut self, version: u32, role: Role, token: Option<Secret>) {
        if version != PROTOCOL_VERSION {
            let message = format!("this relay speaks version {PROTOCOL_VERSION}");
            return self.fatal(ErrorCode::UnsupportedVersion, &message);
        }
        if role == Role::Publisher {
            let known = token
                .as_ref()
                .is_some_and(|t| self.config.is_any_publish_token(t));
            if !known {
                return self.fatal(ErrorCode::Unauthorized, "bad publish token");
            }
            self.token = token;
        }
        self.role = Some(role);
        self.hello_at = None;
        self.out.push_back(Action::Joined(role));
        let limits = self.config.limits;
        self.out.push_back(Action::Send(ServerFrame::Welcome {
            v: PROTOCOL_VERSION,
            role,
            session: self.id,
            limits: WireLimits {
                max_frame: limits.max_frame,
                rate_per_sec: limits.rate_per_sec,
                burst: limits.burst,
                idle_timeout_ms: limits.idle_timeout_ms,
            },
        }));
    }

    fn publish(&mut self, stream: StreamName, details: Details) {
        let Some(rule) = self.config.publish_rule(&stream) else {
            let message = "no publish rule for this stream";
            return self.refuse(ErrorCode::Forbidden, message, Some(&stream));
        };
        let allowed = self
            .token
            .as_ref()
            .is_some_and(|t| tokens_equal(&rule.token, t));
        if !allowed {
            let message = "token not valid for this stream";
            return self.refuse(ErrorCode::Unauthorized, message, Some(&stream));
        }
        let max = self.config.limits.max_publishes;
        if !self.published.contains(&stream) && self.published.len() >= max {
            let message = format!("at most {max} streams per connection");
            return self.refuse(ErrorCode::TooManyStreams, message, Some(&stream));
        }
        self.published.insert(stream.clone());
        self.out.push_back(Action::Publish { stream, details });
    }

    fn unpublish(&mut self, stream: StreamName) {
        if !self.published.remove(&stream) {
            let message = "not publishing this stream";
            return self.refuse(ErrorCode::NotPublisher, message, Some(&stream));
        }
        let reason = CloseReason::Unpublished;
        self.out.push_back(Action::Unpublish { stream, reason });
    }

    fn view(&mut self, stream: StreamName) {
        let max = self.config.limits.max_views;
        if !self.viewing.contains(&stream) && self.viewing.len() >= max {
            let message = format!("at most {max} streams per connection");
            return self.refuse(ErrorCode::TooManyStreams, message, Some(&stream));
        }
        if self.config.publish_rule(&stream).is_none() {
            // Nobody can ever publish it: no entry in the table, no subscription, no slot.
            let message = "no publish rule covers this stream: it can never be live";
            return self.refuse(ErrorCode::Forbidden, message, Some(&stream));
        }
        // A second `view` of the same stream gets a fresh snapshot, and takes nothing more.
        if !self.viewing.contains(&stream)
            && let Err(limit) = self.client.take_view()
        {
            return self.refuse(ErrorCode::ClientLimit, limit.to_string(), Some(&stream));
        }
        self.viewing.insert(stream.clone());
        self.out.push_back(Action::View { stream });
    }

    fn director(&mut self, stream: StreamName, id: Option<u64>) {
        let refused = if self.config.director.is_none() {
            Some((
                ErrorCode::DirectorNotConfigured,
                "this relay has no Director",
            ))
        } else if self.director_busy {
            Some((ErrorCode::Busy, "a Director call is already in flight"))
        } else {
            None
        };
        match refused {
            Some((code, message)) => self.out.push_back(Action::Send(ServerFrame::Error {
                code,
                message: message.to_owned(),
                stream: Some(stream),
                id,
                fatal: false,
            })),
            None => {
                self.director_busy = true;
                self.out.push_back(Action::Director { stream, id });
            }
        }
    }

    /// A non-fatal refusal.
    fn refuse(&mut self, code: ErrorCode, message: impl Into<String>, stream: Option<&StreamName>) {
        self.send_error(code, message.into(), stream, false);
    }

    /// A fatal refusal: the `error` frame, then the close.
    fn fatal(&mut self, code: ErrorCode, message: &str) {
        self.send_error(code, message.to_owned(), None, true);
        self.close(End::Fatal(code));
    }

    fn send_error(
        &mut self,
        code: ErrorCode,
        message: String,
        stream: Option<&StreamName>,
        fatal: bool,
    ) {
        self.out.push_back(Action::Send(ServerFrame::Error {
            code,
            message,
            stream: stream.cloned(),
            id: None,
            fatal,
        }));
    }

    fn close(&mut self, end: End) {
        if !self.closed {
            self.closed = true;
            self.out.push_back(Action::Close(end));
        }
    }
}
