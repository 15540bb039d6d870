//! The relay's TCP listener for `axum::serve`: every accepted connection gets a header
//! timeout, and accept errors are logged, counted and backed off.
//!
//! Why a listener wrapper: hyper has `http1::Builder::header_read_timeout`, but axum 0.8's
//! `serve` builds its own hyper-util connection builder per connection and exposes none of its
//! settings; its only extension point is [`axum::serve::Listener`]. So the deadline lives in the
//! accepted IO ([`HeadIo`]): armed at accept, it fails the next read or write once it passes,
//! and hyper then drops the connection (the socket closes). It is disarmed when the blank line
//! ending a request head has been read, and re-armed when the response starts (the next request
//! of a keep-alive connection gets the same limit) — except for a `101 Switching Protocols`
//! response: the upgrade is done and the WebSocket's own limits (`hello_timeout_ms`, keepalive)
//! take over. A client that does not read its response within the limit is closed too.
//!
//! axum's own `TcpListener` loop logs accept errors at ERROR on every failure and sleeps 1 s;
//! this one counts them, logs the first of a burst at WARN (with the error kind) and the burst's
//! end, and sleeps 50 ms doubling to 1 s, so an `EMFILE` storm neither spins nor floods the log.
//!
//! At the open-file limit (`EMFILE`/`ENFILE`) it first sheds: the oldest connection still
//! waiting for a request head is closed, which frees a descriptor, and the accept is tried
//! again at once. So `/healthz` and a real viewer get in while idle sockets hold every
//! descriptor. Why the oldest, not the newest: a real client sends its request with its
//! connect, so the one idle longest is the least likely to be one, and it is the nearest to
//! its header timeout anyway; the newest may be the health check just accepted, not yet read.
//! Only connections already polled (read at least once, found idle) are shed, and upgraded
//! WebSockets never. Shed connections count in `/healthz` (`shed`).

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

use crate::relay::outlet::Outlet;
use crate::relay::shared::Shared;

/// The first sleep after an accept error.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest sleep after accept errors.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The pause after shedding a connection: its task must run to close the descriptor.
const SHED_PAUSE: Duration = Duration::from_millis(1);

/// Whether `error` says the process (or the system) is out of file descriptors: `EMFILE` or
/// `ENFILE`, which have no `io::ErrorKind` of their own (the numbers are those of Linux and the
/// BSDs).
fn out_of_descriptors(error: &io::Error) -> bool {
    cfg!(unix) && matches!(error.raw_os_error(), Some(23 | 24))
}

/// The accepted connections that may be shed, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Sheddable {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<ShedFlag>>>,
}

/// One accepted connection's side of [`Sheddable`].
#[derive(Debug, Default)]
struct ShedFlag {
    /// Waiting for a request head: may be shed.
    idle: AtomicBool,
    shed: AtomicBool,
    /// Set by each poll while idle; taken by the shedding.
    waker: Mutex<Option<Waker>>,
}

impl Sheddable {
    fn register(&self) -> (u64, Arc<ShedFlag>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let flag = Arc::new(ShedFlag::default());
        self.lock().insert(id, Arc::clone(&flag));
        (id, flag)
    }

    fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<ShedFlag>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the oldest idle connection (one read at least once) shed and wakes it; `false`
    /// if none is idle.
    fn shed_oldest(&self) -> bool {
        let open = self.lock();
        for flag in open.values() {
            if !flag.idle.load(Ordering::Relaxed) || flag.shed.load(Ordering::Relaxed) {
                continue;
            }
            let waker = flag
                .waker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(waker) = waker {
                flag.shed.store(true, Ordering::Relaxed);
                waker.wake();
                return true;
            }
        }
        false
    }
}

/// Something that accepts connections, one at a time: a [`TcpListener`], or a fake in tests.
pub(crate) trait TryAccept: Send + 'static {
    /// The accepted connection.
    type Io: Send + 'static;
    /// Accepts one connection, or fails.
    fn try_accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, SocketAddr)>> + Send;
}

impl TryAccept for TcpListener {
    type Io = TcpStream;
    async fn try_accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept().await
    }
}

/// Accepts until a connection comes, counting, logging and backing off on errors.
pub(crate) struct AcceptLoop<A> {
    inner: A,
    shared: Arc<Shared>,
    sheddable: Arc<Sheddable>,
    /// Errors since the last accepted connection.
    burst: u64,
    /// The next sleep after an error.
    backoff: Duration,
}

impl<A: TryAccept> AcceptLoop<A> {
    pub(crate) fn new(inner: A, shared: Arc<Shared>) -> Self {
        AcceptLoop {
            inner,
            shared,
            sheddable: Arc::default(),
            burst: 0,
            backoff: BACKOFF_MIN,
        }
    }

    /// The next connection; never fails.
    pub(crate) async fn next(&mut self) -> (A::Io, SocketAddr) {
        loop {
            match self.inner.try_accept().await {
                Ok(accepted) => {
                    if self.burst > 0 {
                        tracing::warn!(errors = self.burst, "accepting again after errors");
                    }
                    self.burst = 0;
                    self.backoff = BACKOFF_MIN;
                    return accepted;
                }
                Err(error) => {
                    self.shared.count_accept_error();
                    self.burst += 1;
                    if self.burst == 1 {
                        tracing::warn!(kind = ?error.kind(), %error, "accept failed; backing off");
                    }
                    if out_of_descriptors(&error) && self.sheddable.shed_oldest() {
                        self.shared.count_shed();
                        tracing::debug!("out of file descriptors: shed the oldest idle connection");
                        tokio::time::sleep(SHED_PAUSE).await;
                        continue;
                    }
                    // One peer gave up before we took it: nothing to wait for.
                    if !is_connection_error(&error) {
                        tokio::time::sleep(self.backoff).await;
                        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
        }
    }
}

/// Errors about one connection, not the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The relay's listener for `axum::serve`: [`AcceptLoop`] over a [`TcpListener`], each
/// connection wrapped in a [`HeadIo`].
pub(crate) struct RelayListener {
    accept: AcceptLoop<TcpListener>,
    addr: SocketAddr,
    header_timeout: Duration,
}

impl RelayListener {
    pub(crate) fn new(listener: TcpListener, shared: Arc<Shared>) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let header_timeout = shared.config.limits.header_timeout();
        Ok(RelayListener {
            accept: AcceptLoop::new(listener, shared),
            addr,
            header_timeout,
        })
    }
}

impl axum::serve::Listener for RelayListener {
    type Io = HeadIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (HeadIo, SocketAddr) {
        let (stream, remote) = self.accept.next().await;
        let _ = stream.set_nodelay(true);
        let io = HeadIo::new(
            stream,
            Arc::clone(&self.accept.shared),
            Arc::clone(&self.accept.sheddable),
            self.header_timeout,
        );
        (io, remote)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// The peer's address and the connection's [`Outlet`], as axum's `ConnectInfo` for
/// connections of a [`RelayListener`]: an upgraded connection's frames are written there.
#[derive(Clone, Debug)]
pub(crate) struct Remote {
    pub(crate) addr: SocketAddr,
    pub(crate) outlet: Arc<Outlet>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, RelayListener>>
    for Remote
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, RelayListener>) -> Self {
        Remote {
            addr: *stream.remote_addr(),
            outlet: Arc::clone(&stream.io().outlet),
        }
    }
}

/// Where a connection is in its HTTP exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head (the deadline armed); `1` after a `\n`, `2` after `\n\r`.
    Head(u8),
    /// The head is read; the response has not started (no deadline).
    Handling,
    /// Upgraded (`101`): no deadline any more.
    Upgraded,
}

/// An accepted TCP connection with a header deadline; see the [module docs](self). Its socket
/// is in its [`Outlet`], which the fan-out writes to as well.
pub(crate) struct HeadIo {
    outlet: Arc<Outlet>,
    shared: Arc<Shared>,
    sheddable: Arc<Sheddable>,
    shed_id: u64,
    shed: Arc<ShedFlag>,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    phase: Phase,
    expired: bool,
}

impl std::fmt::Debug for HeadIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadIo")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl HeadIo {
    fn new(
        inner: TcpStream,
        shared: Arc<Shared>,
        sheddable: Arc<Sheddable>,
        timeout: Duration,
    ) -> Self {
        let (shed_id, shed) = sheddable.register();
        let queue = shared.config.limits.queue;
        HeadIo {
            outlet: Arc::new(Outlet::new(inner, queue)),
            shared,
            sheddable,
            shed_id,
            shed,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            phase: Phase::Head(0),
            expired: false,
        }
    }

    /// An error once the deadline passed while a head is awaited (counted once); registers
    /// the waker with the deadline otherwise.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.expired {
            return Err(timed_out());
        }
        // An upgraded WebSocket has no deadline and is never shed: its reads and writes, the
        // relay's hot path, touch nothing else here.
        if self.phase == Phase::Upgraded {
            return Ok(());
        }
        if self.shed.shed.load(Ordering::Relaxed) {
            self.expired = true;
            tracing::debug!("connection shed: out of file descriptors");
            return Err(io::Error::other("shed at the open-file limit"));
        }
        let idle = matches!(self.phase, Phase::Head(_));
        self.shed.idle.store(idle, Ordering::Relaxed);
        if idle {
            *self
                .shed
                .waker
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        }
        if matches!(self.phase, Phase::Head(_)) && self.deadline.as_mut().poll(cx).is_ready() {
            self.expired = true;
            self.shared.count_header_timeout();
            tracing::debug!("connection closed: no request head within the header timeout");
            return Err(timed_out());
        }
        Ok(())
    }

    /// A response starts (a write beginning with a status line): `101` ends the deadline for
    /// good, anything else re-arms it for the next request. Other writes change nothing.
    fn responding(&mut self, written: &[u8]) {
        if self.phase == Phase::Upgraded || !written.starts_with(b"HTTP/1.") {
            return;
        }
        if written.get(8..12) == Some(b" 101".as_slice()) {
            self.phase = Phase::Upgraded;
            // Never shed from now on: out of the shedding's list at once.
            self.shed.idle.store(false, Ordering::Relaxed);
            self.sheddable.forget(self.shed_id);
        } else {
            self.phase = Phase::Head(0);
            let next = tokio::time::Instant::now() + self.timeout;
            self.deadline.as_mut().reset(next);
        }
    }
}

impl Drop for HeadIo {
    fn drop(&mut self) {
        self.sheddable.forget(self.shed_id);
        // The socket closes now, whoever still holds the outlet.
        self.outlet.close();
    }
}

/// The phase after reading `read` in `phase`: a head ends at its blank line (`\n\n` or
/// `\n\r\n`, as httparse accepts both).
fn scan(phase: Phase, read: &[u8]) -> Phase {
    let Phase::Head(mut state) = phase else {
        return phase;
    };
    for &byte in read {
        state = match (state, byte) {
            (1 | 2, b'\n') => return Phase::Handling,
            (_, b'\n') => 1,
            (1, b'\r') => 2,
            _ => 0,
        };
    }
    Phase::Head(state)
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "header timeout")
}

impl AsyncRead for HeadIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        let before = buf.filled().len();
        ready!(this.outlet.poll_read(cx, buf))?;
        this.phase = scan(this.phase, buf.filled().get(before..).unwrap_or_default());
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for HeadIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check(cx)?;
        // After the upgrade, what the WebSocket layer writes is whole frames.
        let frames = this.phase == Phase::Upgraded;
        this.responding(buf);
        this.outlet.poll_write(cx, buf, frames)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        this.outlet.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().outlet.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::relay::{LocalBroker, RelayConfig};

    /// Accepts from a script: `Err` kinds first, then `()` connections.
    struct Script(VecDeque<io::Result<((), SocketAddr)>>);

    impl TryAccept for Script {
        type Io = ();
        async fn try_accept(&mut self) -> io::Result<((), SocketAddr)> {
            match self.0.pop_front() {
                Some(next) => next,
                None => std::future::pending().await,
            }
        }
    }

    fn error(kind: io::ErrorKind) -> io::Result<((), SocketAddr)> {
        Err(io::Error::from(kind))
    }

    #[tokio::test(start_paused = true)]
    async fn accept_errors_are_counted_and_backed_off_never_fatal() {
        let shared = Arc::new(Shared::new(
            RelayConfig::default(),
            Arc::new(LocalBroker::new(10)),
            None,
        ));
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut script: VecDeque<_> = (0..7)
            .map(|_| error(io::ErrorKind::Other)) // EMFILE has no kind of its own
            .collect();
        script.push_back(error(io::ErrorKind::ConnectionAborted));
        script.push_back(Ok(((), addr)));
        script.push_back(error(io::ErrorKind::Other));
        script.push_back(Ok(((), addr)));
        let mut accept = AcceptLoop::new(Script(script), Arc::clone(&shared));
        let start = tokio::time::Instant::now();
        assert_eq!(accept.next().await.1, addr);
        // 50 + 100 + 200 + 400 + 800 + 1000 + 1000 ms; none for the aborted connection.
        assert_eq!(start.elapsed(), Duration::from_millis(3_550));
        let start = tokio::time::Instant::now();
        assert_eq!(accept.next().await.1, addr);
        assert_eq!(start.elapsed(), BACKOFF_MIN, "a success resets the backoff");
        assert_eq!(shared.health().accept_errors, 9);
    }

    #[test]
    fn the_oldest_idle_connection_already_read_is_shed_and_woken() {
        let sheddable = Sheddable::default();
        let polled = |flag: &ShedFlag, idle: bool| {
            flag.idle.store(idle, Ordering::Relaxed);
            *flag.waker.lock().unwrap() = Some(Waker::noop().clone());
        };
        let (_, unread) = sheddable.register();
        let (_, busy) = sheddable.register();
        polled(&busy, false);
        let (_, old) = sheddable.register();
        polled(&old, true);
        let (young_id, young) = sheddable.register();
        polled(&young, true);
        unread.idle.store(true, Ordering::Relaxed);
        assert!(sheddable.shed_oldest());
        assert!(
            old.shed.load(Ordering::Relaxed),
            "the oldest idle one that was read"
        );
        assert!(
            !unread.shed.load(Ordering::Relaxed),
            "never read: maybe a request on its way"
        );
        assert!(!busy.shed.load(Ordering::Relaxed), "not idle");
        assert!(sheddable.shed_oldest());
        assert!(young.shed.load(Ordering::Relaxed));
        assert!(!sheddable.shed_oldest(), "nothing left to shed");
        sheddable.forget(young_id);
        assert_eq!(sheddable.lock().len(), 3);
    }

    #[test]
    fn a_head_ends_at_its_blank_line() {
        let head = scan(Phase::Head(0), b"GET / HTTP/1.1\r\nHost: a\r\n");
        assert_eq!(head, Phase::Head(1));
        assert_eq!(scan(head, b"\r"), Phase::Head(2));
        assert_eq!(scan(Phase::Head(2), b"\n"), Phase::Handling);
        assert_eq!(scan(Phase::Head(0), b"GET / HTTP/1.1\n\n"), Phase::Handling);
        assert_eq!(scan(Phase::Head(0), b"GET / HTT\r\r\n"), Phase::Head(1));
        assert_eq!(scan(Phase::Upgraded, b"\n\n"), Phase::Upgraded);
    }
}
