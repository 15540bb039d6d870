//! A real Millicast-protocol server on 127.0.0.1, in process: the Director and the signaling
//! WebSocket on one port, driven by the test through a [`MillicastServer`] handle.
//!
//! It speaks the Millicast protocol as the service does (shapes from [`crate::millicast::wire`]), so a client
//! that works against it speaks the real protocol; and it misbehaves on command (Director faults,
//! rejected views, ignored pings, dropped sockets, garbage frames) so that tests can prove the
//! client survives. With feature `webrtc`, each accepted `view` (and each WHEP offer, on
//! `POST /api/whep/{account}/{stream}`) gets a publisher peer that sends real RTP over UDP, which
//! the test steers per stream: [`publish`](MillicastServer::publish) sends,
//! [`freeze`](MillicastServer::freeze) keeps the connection but stops RTP,
//! [`unpublish`](MillicastServer::unpublish) and [`stop`](MillicastServer::stop) stop it with
//! their events, [`blackhole_media`](MillicastServer::blackhole_media) kills the UDP path.
//! Without it, the SDP answer is a fixed text and no media follows.
//!
//! # Paused time
//!
//! The server's sockets are real: on a runtime with paused time
//! (`#[tokio::test(start_paused = true)]`), tokio's clock jumps to the next timer whenever the
//! runtime waits for them, so a viewer's 5 s pong timeout expires before any real pong can
//! arrive. Give the source a pong timeout longer than the test
//! ([`MillicastSource::keepalive`](crate::millicast::MillicastSource::keepalive)`(Duration::from_secs(5),
//! Duration::from_secs(24 * 3600))`); everything else works on virtual time.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use relive::testkit::millicast::MillicastServer;
//!
//! let server = MillicastServer::builder().account("acct").start().await?;
//! server.publish("cam");
//! // point the client at server.director_url(), account "acct", stream "cam" ...
//! server.wait_viewers("cam", 1, Duration::from_secs(5)).await.expect("viewer joined");
//! server.unpublish("cam"); // viewers get `inactive`; the Director answers "not being published"
//! # Ok(()) }
//! ```

mod control;
mod cors;
mod director;
mod faults;
mod frames;
mod media;
mod signaling;
mod state;
#[cfg(feature = "webrtc")]
mod whep;
mod wire_log;

pub use wire_log::{PeerState, SocketEnd, WireEvent, WireRecord};

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::error::Elapsed;

use crate::millicast::wire::SignalingEvent;
pub use faults::{RetryAfter, WhepFault};
use media::Switch;
use state::{Audience, Control, Shared};

/// How the Director misbehaves, for [`MillicastServer::set_director_fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirectorFault {
    /// 400 `{"status":"fail","data":{"message":"stream not being published"}}`, live or not.
    NotPublished,
    /// 401 `{"status":"fail","data":{"message":"Unauthorized: Invalid token"}}`, whatever the token.
    Unauthorized,
    /// 500 `{"status":"error","message":"Internal server error","code":500}`.
    ServerError,
    /// 502 with a proxy's HTML error page.
    Html,
    /// 503 with an empty body.
    Empty,
    /// 503 `{"status":"error","message":"Service unavailable",...}` with this `Retry-After`.
    Unavailable(RetryAfter),
    /// 429 `{"status":"error","message":"Too many requests",...}` with this `Retry-After`.
    TooManyRequests(RetryAfter),
    /// A redirect with this status (307 or 308) to the same endpoint, which a client follows
    /// with its body; the request after it is answered normally when the fault was set for one
    /// request ([`MillicastServer::set_director_fault_for`]).
    Redirect(u16),
    /// No answer until the fault is changed or cleared (then a normal answer) or the server
    /// shuts down: for client timeouts.
    Hang,
}

/// Configures a [`MillicastServer`] before it starts.
#[derive(Clone)]
pub struct MillicastServerBuilder {
    account: String,
    secure_token: Option<String>,
    bind: SocketAddr,
    wire_log: Option<mpsc::Sender<WireRecord>>,
    control_api: bool,
}

impl std::fmt::Debug for MillicastServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MillicastServerBuilder")
            .field("account", &self.account)
            .field("secured", &self.secure_token.is_some())
            .field("bind", &self.bind)
            .field("wire_log", &self.wire_log.is_some())
            .field("control_api", &self.control_api)
            .finish()
    }
}

impl MillicastServerBuilder {
    /// The stream account id (default `"testkit"`); the Director answers `stream not found` for
    /// any other.
    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = account.into();
        self
    }

    /// Makes every stream secured: the Director then requires `Authorization: Bearer <token>`.
    pub fn secure_token(mut self, token: impl Into<String>) -> Self {
        self.secure_token = Some(token.into());
        self
    }

    /// The address to listen on (default `127.0.0.1:0`, a free port): for a server that other
    /// processes find at a known port, like `relive-testkit --listen`.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Sends a [`WireRecord`] of everything viewers do (and every [`Action`](crate::testkit::script::Action)
    /// played) to `sender`; a record that finds the channel full is dropped and counted
    /// ([`MillicastServer::wire_records_dropped`]).
    pub fn wire_log(mut self, sender: mpsc::Sender<WireRecord>) -> Self {
        self.wire_log = Some(sender);
        self
    }

    /// Serves the control API, `POST /control/{action}`: the fault script's actions, live. Off
    /// by default: anyone who reaches the port can then steer the server.
    pub fn control_api(mut self, on: bool) -> Self {
        self.control_api = on;
        self
    }

    /// Binds the address (127.0.0.1 on a free port unless [`bind`](Self::bind) says otherwise)
    /// and starts serving. Must be called within a tokio runtime.
    pub async fn start(self) -> io::Result<MillicastServer> {
        let listener = TcpListener::bind(self.bind).await?;
        let addr = listener.local_addr()?;
        let wire = wire_log::WireLog::new(self.wire_log);
        let shared = Arc::new(Shared::new(self.account, addr, self.secure_token, wire));
        let router = Router::new()
            .route("/api/director/subscribe", post(director::subscribe))
            .route("/ws/v2/sub/{n}", get(signaling::connect));
        let router = if self.control_api {
            router.route(
                "/control/{action}",
                post(control::action).layer(DefaultBodyLimit::max(control::MAX_BODY)),
            )
        } else {
            router
        };
        #[cfg(feature = "webrtc")]
        let router = router
            .route("/api/whep/{account}/{stream}", post(whep::offer))
            .route(
                &format!("{}/{{id}}", whep::RESOURCE_PATH),
                axum::routing::delete(whep::delete).patch(whep::patch),
            );
        let router = router
            .with_state(Arc::clone(&shared))
            .layer(axum::middleware::from_fn(cors::layer));
        let mut shutdown = shared.shutdown.subscribe();
        let serve = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stopped(&mut shutdown).await });
        tokio::spawn(async move {
            if let Err(error) = serve.await {
                tracing::warn!(%error, "millicast testkit server failed");
            }
        });
        tracing::debug!(%addr, "millicast testkit server started");
        Ok(MillicastServer {
            _stopper: Some(Arc::new(Stopper(Arc::clone(&shared)))),
            shared,
        })
    }
}

/// A running in-process Millicast server and the handle that drives it.
///
/// Cheap to clone; every clone controls the same server, which stops on
/// [`MillicastServer::shutdown`] or when the last clone is dropped. Control methods are
/// synchronous and take effect at once; frames to viewers go through per-viewer queues of 256
/// (a viewer whose queue is full misses the frame, with a warning).
///
/// Events (`publish`, `unpublish`, `stop`, `send_layers`, `send_viewercount`, `migrate`) go to the
/// sockets of the stream whose `view` was accepted; `send_raw` and `send_oversized` to every open
/// socket of the stream.
#[derive(Clone)]
pub struct MillicastServer {
    shared: Arc<Shared>,
    /// `None` in the server's own handles (the control API's), which must not keep it alive.
    _stopper: Option<Arc<Stopper>>,
}

impl std::fmt::Debug for MillicastServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MillicastServer")
            .field("addr", &self.shared.addr)
            .field("account", &self.shared.account)
            .finish_non_exhaustive()
    }
}

/// Stops the server when the last handle goes.
struct Stopper(Arc<Shared>);

impl Drop for Stopper {
    fn drop(&mut self) {
        self.0.shutdown.send_replace(true);
    }
}

/// Resolves once shutdown is signalled.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&stop| stop).await;
}

impl MillicastServer {
    /// A builder, to choose the account or secure the streams.
    pub fn builder() -> MillicastServerBuilder {
        MillicastServerBuilder {
            account: "testkit".to_owned(),
            secure_token: None,
            bind: SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
            wire_log: None,
            control_api: false,
        }
    }

    /// A handle for the server's own handlers, which does not keep the server running.
    fn borrowed(shared: Arc<Shared>) -> Self {
        MillicastServer {
            shared,
            _stopper: None,
        }
    }

    /// Logs that `action` was played (a [`WireEvent::Action`]).
    pub(crate) fn note_action(&self, action: &crate::testkit::script::Action) {
        self.shared.wire.record(WireEvent::Action {
            action: action.clone(),
        });
    }

    /// Wire records dropped because the [`wire_log`](MillicastServerBuilder::wire_log) channel
    /// was full.
    pub fn wire_records_dropped(&self) -> u64 {
        self.shared.wire.dropped()
    }

    /// Starts a server with account `"testkit"` and unsecured streams.
    pub async fn start() -> io::Result<Self> {
        Self::builder().start().await
    }

    /// The Director base URL, such as `http://127.0.0.1:40123` (the client appends
    /// `/api/director/subscribe`).
    pub fn director_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The address the server listens on, for a [`FaultProxy`](crate::testkit::proxy::FaultProxy).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The stream account id.
    pub fn account_id(&self) -> &str {
        &self.shared.account
    }

    /// Makes `name` live: the Director gives sessions for it, `view` succeeds, and its viewers get
    /// `active` and `layers` (one active layer).
    pub fn publish(&self, name: &str) {
        self.shared.set_live(name, true);
        self.shared.media.set(name, Switch::Live(true));
        self.event(name, &frames::active(&self.shared.account, name));
        self.event(name, &frames::layers(1));
    }

    /// The publisher leaves: viewers get `inactive`; the Director and `view` answer "not
    /// published" until the next [`publish`](Self::publish).
    pub fn unpublish(&self, name: &str) {
        self.shared.set_live(name, false);
        self.shared.media.set(name, Switch::Live(false));
        self.event(name, &frames::inactive(&self.shared.account, name));
    }

    /// The stream is gone for good: viewers get `stopped`; it is no longer live.
    pub fn stop(&self, name: &str) {
        self.shared.set_live(name, false);
        self.shared.media.set(name, Switch::Live(false));
        self.event(name, &frames::event(SignalingEvent::Stopped));
    }

    /// The publisher's encoder freezes: the peers of `name` keep their connections but send no
    /// RTP, and no event says so — only media time standing still shows it. (Media needs
    /// feature `webrtc`.)
    pub fn freeze(&self, name: &str) {
        self.shared.media.set(name, Switch::Frozen(true));
    }

    /// Ends a [`freeze`](Self::freeze): RTP flows again on the same connections, with media time
    /// jumped ahead by the frozen time, as a real encoder's would.
    pub fn unfreeze(&self, name: &str) {
        self.shared.media.set(name, Switch::Frozen(false));
    }

    /// The media of every current session of `name` goes silent for good — no RTP, no event,
    /// connections and signaling up — while sessions that start after it get media as usual:
    /// a stuck forwarder or a dead media path that only a new session cures. (Media needs
    /// feature `webrtc`.)
    pub fn freeze_sessions(&self, name: &str) {
        self.shared.media.set(name, Switch::FreezeSessions);
    }

    /// While on, the UDP path of every media peer of `name` (current and new) drops everything,
    /// both ways: a dead network path under a live signaling socket.
    pub fn blackhole_media(&self, name: &str, on: bool) {
        self.shared.media.set(name, Switch::Blackhole(on));
    }

    /// The video codec that media peers of `name` answered from now on send: VP8 (the
    /// default) or H.264, each the testkit's [clip](crate::testkit::clip). As with a real
    /// publisher, the stream decides its codec; viewers connected before keep theirs. (Media
    /// needs feature `webrtc`.)
    #[cfg(feature = "webrtc")]
    pub fn set_video_codec(&self, name: &str, codec: crate::testkit::clip::ClipCodec) {
        self.shared.media.set(name, Switch::Video(codec));
    }

    /// Whether `name` is live.
    pub fn is_live(&self, name: &str) -> bool {
        self.shared.is_live(name)
    }

    /// Sends `layers` with `active` active video encodings (0 = the classic "feed gone").
    pub fn send_layers(&self, name: &str, active: usize) {
        self.event(name, &frames::layers(active));
    }

    /// Sends `viewercount` with `count`.
    pub fn send_viewercount(&self, name: &str, count: u64) {
        self.event(name, &frames::event(SignalingEvent::ViewerCount(count)));
    }

    /// Sends `migrate`: the server asks its viewers to move to a new session.
    pub fn migrate(&self, name: &str) {
        self.event(name, &frames::event(SignalingEvent::Migrate));
    }

    /// Sends `text` as it is, as one text frame, to every open socket of `name`: for garbage and
    /// odd-shape tests.
    pub fn send_raw(&self, name: &str, text: &str) {
        self.shared.broadcast(name, Audience::AllSockets, text);
    }

    /// Sends one valid event frame (an unknown `padding` event) of `bytes` bytes to every open
    /// socket of `name`: for the client's message size limit.
    pub fn send_oversized(&self, name: &str, bytes: usize) {
        self.shared
            .broadcast(name, Audience::AllSockets, &frames::oversized(bytes));
    }

    fn event(&self, name: &str, frame: &str) {
        self.shared.broadcast(name, Audience::Viewing, frame);
    }

    /// Makes every Director request play `fault` until changed; `None` heals it. Any change
    /// releases the requests hanging on [`DirectorFault::Hang`].
    pub fn set_director_fault(&self, fault: Option<DirectorFault>) {
        self.shared.set_fault(fault.map(|fault| (fault, None)));
    }

    /// Makes only the next `requests` Director requests play `fault`.
    pub fn set_director_fault_for(&self, fault: DirectorFault, requests: u32) {
        self.shared.set_fault(Some((fault, Some(requests))));
    }

    /// Makes every WHEP `POST` play `fault` until changed; `None` heals it.
    #[cfg(feature = "webrtc")]
    pub fn set_whep_fault(&self, fault: Option<WhepFault>) {
        self.shared.set_whep_fault(fault.map(|fault| (fault, None)));
    }

    /// Makes only the next `requests` WHEP requests the fault is about play `fault`.
    #[cfg(feature = "webrtc")]
    pub fn set_whep_fault_for(&self, fault: WhepFault, requests: u32) {
        self.shared.set_whep_fault(Some((fault, Some(requests))));
    }

    /// Makes every WHEP `PATCH` (ICE restart) answer `status` — 405 or 501 say the server has
    /// no ICE restart — until called with `None`. `POST`s are not affected.
    #[cfg(feature = "webrtc")]
    pub fn refuse_whep_patch(&self, status: Option<u16>) {
        self.shared.media.set_patch_refusal(status);
    }

    /// Cuts the UDP path of every WHEP session of stream `name` (both ways), as a viewer's
    /// network change does, until each viewer restarts ICE with a `PATCH`; how many were cut.
    /// Unlike [`blackhole_media`](Self::blackhole_media), new sessions and restarted ones work.
    #[cfg(feature = "webrtc")]
    pub fn cut_media_paths(&self, name: &str) -> usize {
        whep::cut_paths(&self.shared, name)
    }

    /// Changes the subscribe token the Director requires (`None`: unsecured), as when a token
    /// expires and the app must refresh it.
    pub fn set_secure_token(&self, token: Option<&str>) {
        self.shared.set_secure_token(token.map(str::to_owned));
    }

    /// While on, every `view` is answered `Feed not found`, live or not.
    pub fn reject_view(&self, on: bool) {
        self.shared.set_reject_view(on);
    }

    /// While on, viewer sockets are not read at all — the only way to leave a ping unanswered,
    /// since the WebSocket layer queues the pong as it reads the ping. So commands go unanswered
    /// too, while events are still sent: a half-dead server.
    pub fn ignore_pings(&self, on: bool) {
        self.shared.ignore_pings.send_replace(on);
    }

    /// Closes every open viewer socket with a close frame (1001, going away).
    pub fn close_all_sockets(&self) {
        self.shared.control_all(Control::Close);
    }

    /// Drops every open viewer socket without a close frame, like a crashed server.
    pub fn cut_all_sockets(&self) {
        self.shared.control_all(Control::Kill);
    }

    /// Director requests received so far, faulted or not.
    pub fn director_requests(&self) -> u64 {
        self.shared.director_requests()
    }

    /// `view` commands received so far, accepted or not.
    pub fn view_requests(&self) -> u64 {
        self.shared.view_requests()
    }

    /// The WHEP endpoint of stream `name`: `http://{addr}/api/whep/{account}/{name}`.
    #[cfg(feature = "webrtc")]
    pub fn whep_url(&self, name: &str) -> String {
        format!(
            "http://{}/api/whep/{}/{name}",
            self.shared.addr, self.shared.account
        )
    }

    /// WHEP `POST`s received so far, answered or not.
    #[cfg(feature = "webrtc")]
    pub fn whep_requests(&self) -> u64 {
        self.shared
            .media
            .whep_requests
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// WHEP `DELETE`s received so far.
    #[cfg(feature = "webrtc")]
    pub fn whep_deletes(&self) -> u64 {
        self.shared
            .media
            .whep_deletes
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// WHEP `PATCH`es (ICE restarts) received so far, answered or not.
    #[cfg(feature = "webrtc")]
    pub fn whep_patches(&self) -> u64 {
        self.shared
            .media
            .whep_patches
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Open WHEP sessions (resources not deleted) of `name`.
    #[cfg(feature = "webrtc")]
    pub fn whep_sessions(&self, name: &str) -> usize {
        whep::sessions(&self.shared, name)
    }

    /// Waits until `name` has exactly `n` open WHEP sessions, at most `timeout`.
    #[cfg(feature = "webrtc")]
    pub async fn wait_whep_sessions(
        &self,
        name: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<(), Elapsed> {
        self.wait_until(timeout, || self.whep_sessions(name) == n)
            .await
    }

    /// Open viewer sockets of `name`.
    pub fn viewers(&self, name: &str) -> usize {
        self.shared.viewers(name)
    }

    /// Waits until exactly `n` sockets of `name` are open, at most `timeout`.
    pub async fn wait_viewers(
        &self,
        name: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<(), Elapsed> {
        self.wait_until(timeout, || self.viewers(name) == n).await
    }

    /// Waits until at least `n` Director requests were received, at most `timeout`.
    pub async fn wait_director_requests(&self, n: u64, timeout: Duration) -> Result<(), Elapsed> {
        self.wait_until(timeout, || self.director_requests() >= n)
            .await
    }

    async fn wait_until(&self, timeout: Duration, done: impl Fn() -> bool) -> Result<(), Elapsed> {
        let mut changes = self.shared.changes.subscribe();
        tokio::time::timeout(timeout, async move {
            while !done() {
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await
    }

    /// Stops the server: no new connections, viewer sockets closed with a close frame, hanging
    /// Director requests answered. Dropping the last handle does the same.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }
}
