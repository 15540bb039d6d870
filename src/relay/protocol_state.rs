//! What one connection may do, frame by frame: `hello` first, then what its role allows, within
//! its rate and its limits. Every refusal is an `error` frame with a code.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::time::Instant;

use crate::Secret;
use crate::relay::broker::{BrokerError, Frame, Peer};
use crate::relay::config::tokens_equal;
use crate::relay::protocol::{
    ClientFrame, CloseReason, Details, ErrorCode, PROTOCOL_VERSION, Role, ServerFrame, StreamName,
    WireLimits, parse_client_frame,
};
use crate::relay::rate::TokenBucket;
use crate::relay::server::{RoleGuard, Shared};

/// Whether the connection goes on after a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Keep serving.
    Continue,
    /// A fatal `error` frame is queued: flush it and close.
    Fatal(ErrorCode),
}

/// One connection's state as the protocol sees it.
pub(crate) struct ProtocolState {
    pub(crate) shared: Arc<Shared>,
    pub(crate) peer: Peer,
    role: Option<(Role, RoleGuard)>,
    token: Option<Secret>,
    published: HashSet<StreamName>,
    viewing: HashSet<StreamName>,
    bucket: TokenBucket,
    /// Frames refused in a row for the rate; past `burst` the client is closed.
    violations: u32,
    director_busy: Arc<AtomicBool>,
}

impl ProtocolState {
    pub(crate) fn new(shared: Arc<Shared>, peer: Peer) -> Self {
        let limits = shared.config.limits;
        let bucket = TokenBucket::new(limits.rate_per_sec, limits.burst, now());
        ProtocolState {
            shared,
            peer,
            role: None,
            token: None,
            published: HashSet::new(),
            viewing: HashSet::new(),
            bucket,
            violations: 0,
            director_busy: Arc::new(AtomicBool::new(false)),
        }
    }

    pub(crate) fn has_hello(&self) -> bool {
        self.role.is_some()
    }

    /// Queues a frame for this connection (a full queue kicks it, as for any frame).
    pub(crate) fn send(&self, frame: &ServerFrame) {
        let frame: Frame = Arc::from(frame.to_text());
        self.peer.deliver(&frame);
    }

    /// Queues an `error` frame; a fatal one ends the connection.
    pub(crate) fn refuse(
        &self,
        code: ErrorCode,
        message: impl Into<String>,
        stream: Option<&StreamName>,
        fatal: bool,
    ) -> Flow {
        let message = message.into();
        tracing::info!(code = ?code, stream = stream.map(StreamName::as_str), fatal, %message, "refused");
        self.send(&ServerFrame::Error {
            code,
            message,
            stream: stream.cloned(),
            id: None,
            fatal,
        });
        if fatal {
            Flow::Fatal(code)
        } else {
            Flow::Continue
        }
    }

    /// Takes a frame's token from the bucket; refuses it when empty, and closes a flooder.
    pub(crate) fn admit(&mut self) -> Result<(), Flow> {
        if self.bucket.take(now()) {
            self.violations = 0;
            return Ok(());
        }
        self.violations = self.violations.saturating_add(1);
        let fatal = self.violations > self.shared.config.limits.burst;
        Err(self.refuse(
            ErrorCode::RateLimited,
            "over the frame rate; frame dropped",
            None,
            fatal,
        ))
    }

    /// Handles one text frame (already admitted and within `max_frame`).
    pub(crate) async fn handle(&mut self, text: &str) -> Flow {
        let frame = match parse_client_frame(text) {
            Ok(frame) => frame,
            Err(error) => return self.refuse(error.code(), error.to_string(), None, false),
        };
        match (frame, self.role.as_ref().map(|(role, _)| *role)) {
            (ClientFrame::Ping { id }, _) => {
                self.send(&ServerFrame::Pong { id });
                Flow::Continue
            }
            (
                ClientFrame::Hello {
                    version,
                    role,
                    token,
                },
                None,
            ) => self.hello(version, role, token),
            (ClientFrame::Hello { .. }, Some(_)) => self.refuse(
                ErrorCode::DuplicateHello,
                "hello was already said",
                None,
                false,
            ),
            (_, None) => self.refuse(ErrorCode::HelloRequired, "say hello first", None, false),
            (ClientFrame::Publish { stream, details }, Some(Role::Publisher)) => {
                self.publish(stream, details).await
            }
            (ClientFrame::Close { stream }, Some(Role::Publisher)) => self.close(stream).await,
            (ClientFrame::View { stream }, Some(Role::Viewer)) => self.view(stream).await,
            (ClientFrame::Unview { stream }, Some(Role::Viewer)) => {
                if self.viewing.remove(&stream) {
                    self.shared.broker.unview(&stream, self.peer.id());
                }
                Flow::Continue
            }
            (ClientFrame::Director { stream, id }, Some(Role::Viewer)) => self.director(stream, id),
            (ClientFrame::Publish { stream, .. } | ClientFrame::Close { stream }, Some(_)) => self
                .refuse(
                    ErrorCode::Forbidden,
                    "viewers cannot publish",
                    Some(&stream),
                    false,
                ),
            (ClientFrame::View { stream } | ClientFrame::Unview { stream }, Some(_))
            | (ClientFrame::Director { stream, .. }, Some(_)) => self.refuse(
                ErrorCode::Forbidden,
                "publishers cannot view; open a viewer connection",
                Some(&stream),
                false,
            ),
        }
    }

    fn hello(&mut self, version: u32, role: Role, token: Option<Secret>) -> Flow {
        if version != PROTOCOL_VERSION {
            let message = format!("this relay speaks version {PROTOCOL_VERSION}");
            return self.refuse(ErrorCode::UnsupportedVersion, message, None, true);
        }
        if role == Role::Publisher {
            let known = token
                .as_ref()
                .is_some_and(|t| self.shared.config.is_any_publish_token(t));
            if !known {
                return self.refuse(ErrorCode::Unauthorized, "bad publish token", None, true);
            }
            self.token = token;
        }
        self.role = Some((role, self.shared.count_role(role)));
        tracing::info!(role = ?role, "hello");
        let limits = self.shared.config.limits;
        self.send(&ServerFrame::Welcome {
            v: PROTOCOL_VERSION,
            role,
            session: self.peer.id(),
            limits: WireLimits {
                max_frame: limits.max_frame,
                rate_per_sec: limits.rate_per_sec,
                burst: limits.burst,
                idle_timeout_ms: limits.idle_timeout_ms,
            },
        });
        Flow::Continue
    }

    async fn publish(&mut self, stream: StreamName, details: Details) -> Flow {
        let Some(rule) = self.shared.config.publish_rule(&stream) else {
            return self.refuse(
                ErrorCode::Forbidden,
                "no publish rule for this stream",
                Some(&stream),
                false,
            );
        };
        let allowed = self
            .token
            .as_ref()
            .is_some_and(|t| tokens_equal(&rule.token, t));
        if !allowed {
            return self.refuse(
                ErrorCode::Unauthorized,
                "token not valid for this stream",
                Some(&stream),
                false,
            );
        }
        let max = self.shared.config.limits.max_publishes;
        if !self.published.contains(&stream) && self.published.len() >= max {
            let message = format!("at most {max} streams per connection");
            return self.refuse(ErrorCode::TooManyStreams, message, Some(&stream), false);
        }
        let broker = Arc::clone(&self.shared.broker);
        match broker
            .publish(stream.clone(), self.peer.clone(), details)
            .await
        {
            Ok(published) => {
                tracing::info!(%stream, ?published, "publish");
                self.published.insert(stream);
                Flow::Continue
            }
            Err(error) => self.broker_refused(&error, &stream),
        }
    }

    async fn close(&mut self, stream: StreamName) -> Flow {
        if !self.published.remove(&stream) {
            return self.refuse(
                ErrorCode::NotPublisher,
                "not publishing this stream",
                Some(&stream),
                false,
            );
        }
        let broker = Arc::clone(&self.shared.broker);
        broker
            .unpublish(stream.clone(), self.peer.id(), CloseReason::Unpublished)
            .await;
        tracing::info!(%stream, "close");
        Flow::Continue
    }

    async fn view(&mut self, stream: StreamName) -> Flow {
        let max = self.shared.config.limits.max_views;
        if !self.viewing.contains(&stream) && self.viewing.len() >= max {
            let message = format!("at most {max} streams per connection");
            return self.refuse(ErrorCode::TooManyStreams, message, Some(&stream), false);
        }
        // A second `view` of the same stream gets a fresh snapshot.
        self.shared.broker.unview(&stream, self.peer.id());
        let broker = Arc::clone(&self.shared.broker);
        match broker.view(stream.clone(), self.peer.clone()).await {
            Ok(()) => {
                tracing::debug!(%stream, "view");
                self.viewing.insert(stream);
                Flow::Continue
            }
            Err(error) => self.broker_refused(&error, &stream),
        }
    }

    fn broker_refused(&self, error: &BrokerError, stream: &StreamName) -> Flow {
        let code = match error {
            BrokerError::TooManyStreams(_) => ErrorCode::TooManyStreams,
            _ => ErrorCode::Internal,
        };
        self.refuse(code, error.to_string(), Some(stream), false)
    }

    /// Starts the Director call in its own task: the answer is queued like any frame.
    fn director(&self, stream: StreamName, id: Option<u64>) -> Flow {
        let refuse = |code, message: &str| {
            tracing::info!(code = ?code, %stream, %message, "director request refused");
            self.send(&ServerFrame::Error {
                code,
                message: message.to_owned(),
                stream: Some(stream.clone()),
                id,
                fatal: false,
            });
            Flow::Continue
        };
        let Some(proxy) = self.shared.director.clone() else {
            return refuse(
                ErrorCode::DirectorNotConfigured,
                "this relay has no Director",
            );
        };
        if self.director_busy.swap(true, Ordering::AcqRel) {
            return refuse(ErrorCode::Busy, "a Director call is already in flight");
        }
        let (busy, peer) = (Arc::clone(&self.director_busy), self.peer.clone());
        tokio::spawn(async move {
            let answer = proxy.subscribe(stream, id).await;
            peer.deliver(&Arc::from(answer.to_text()));
            busy.store(false, Ordering::Release);
        });
        Flow::Continue
    }

    /// The connection is over: its streams close for their viewers, its views end.
    pub(crate) async fn leave(&mut self) {
        let broker = Arc::clone(&self.shared.broker);
        for stream in self.published.drain() {
            if broker
                .unpublish(stream.clone(), self.peer.id(), CloseReason::PublisherLost)
                .await
            {
                tracing::info!(%stream, "publisher lost; viewers told");
            }
        }
        for stream in self.viewing.drain() {
            broker.unview(&stream, self.peer.id());
        }
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}
