//! The write side of one relay connection, shared by the fan-out and the connection's own
//! socket: frames are written to the TCP socket by whoever delivers them, in one ordered
//! stream of bytes.
//!
//! Why: a fan-out to 10 000 viewers used to queue the frame for each viewer and wake each
//! viewer's task to write it — a task switch, a `select!` and a queue per delivery, on top of
//! the `sendto` itself. Server frames are not masked, so a text frame's bytes on the wire are
//! the same for every viewer: [`Frame`] holds them framed once, and [`Outlet::deliver`] writes
//! them to the socket at once (one `send(2)`, never waiting) when nothing is queued before them.
//! Only when the socket's buffer is full does a frame wait in the outlet's bounded queue, which
//! the connection's task then writes out as the socket drains; a queue that fills kicks the
//! viewer (it does not read), as before.
//!
//! The WebSocket library writes to the same socket (pongs, pings, the close, the connection's
//! last words): its writes go through [`Outlet::poll_write`], which first writes what is queued
//! and never leaves one of its frames half written (a short write keeps the rest queued, in
//! order), so a frame delivered by the fan-out always starts on a frame boundary. Once a close
//! frame is written, nothing more is delivered.
//!
//! Every write starts with `send(2)` on the socket itself ([`send`]), not with tokio's
//! `try_write`: tokio answers `WouldBlock` without asking the kernel whenever its cached
//! readiness says "not writable", and that cache lags behind the socket — it learns that a full
//! socket has room again only when its driver gets to the socket's event. A frame delivered in
//! that window would wait in the queue for the driver and the connection's task, though the
//! kernel could take it now. Only a real `EAGAIN` queues; the drain then writes through tokio's
//! `poll_write`, which asks the kernel again and, on its own `EAGAIN`, waits for the event.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Bytes;

use crate::relay::broker::Frame;

/// The write side of one connection; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Outlet {
    state: Mutex<State>,
    kick: Kick,
}

/// Something queued for the socket, in order.
#[derive(Debug)]
enum Chunk {
    /// A delivered frame (counts against the queue).
    Frame(Frame),
    /// The rest of a write of the WebSocket library that the socket took only in part.
    Rest(Bytes),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Frame(frame) => frame.wire(),
            Chunk::Rest(rest) => rest,
        }
    }
}

#[derive(Debug)]
struct State {
    /// The socket; `None` once the connection is over (or for an outlet without one).
    io: Option<TcpStream>,
    /// Frames may still be delivered: no close frame written, no write failed.
    open: bool,
    /// Why a write of the fan-out failed, for the connection to hear.
    failed: Option<io::ErrorKind>,
    queue: VecDeque<Chunk>,
    /// Bytes of the queue's first chunk already written.
    written: usize,
    /// Delivered frames in the queue.
    frames: usize,
    /// Delivered frames that may wait before the connection is kicked.
    cap: usize,
    /// The connection's task, waiting for something to write.
    waker: Option<Waker>,
}

impl State {
    /// Writes the queue to the socket until it is empty (`Ready(Ok)`), the socket is full
    /// (`Pending`, woken when it drains) or a write fails.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(kind) = self.failed {
            return Poll::Ready(Err(kind.into()));
        }
        let State {
            io,
            queue,
            written,
            frames,
            ..
        } = self;
        let Some(io) = io.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        while let Some(front) = queue.front() {
            let bytes = front.bytes();
            let rest = bytes.get(*written..).unwrap_or_default();
            let sent = match send(io, rest) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    // Full: tokio writes once more and, on its own EAGAIN, waits for the edge.
                    ready!(Pin::new(&mut *io).poll_write(cx, rest))
                }
                sent => sent,
            };
            match sent {
                Ok(0) if !rest.is_empty() => {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Ok(n) if n < rest.len() => *written += n,
                Ok(_) => {
                    if let Some(Chunk::Frame(_)) = queue.pop_front() {
                        *frames -= 1;
                    }
                    *written = 0;
                }
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Queues `chunk`; wakes the connection's task if the queue was empty.
    fn push(&mut self, chunk: Chunk) {
        if let Chunk::Frame(_) = chunk {
            self.frames += 1;
        }
        self.queue.push_back(chunk);
        if self.queue.len() == 1
            && let Some(waker) = self.waker.take()
        {
            waker.wake();
        }
    }
}

/// One `send(2)` of `bytes` on the socket, asking the kernel whatever tokio's readiness cache
/// says (see the [module docs](self)); never waits. A full socket is `WouldBlock`.
fn send(io: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    // No SIGPIPE from a viewer that went away, as std's and tokio's own writes.
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    const FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    const FLAGS: libc::c_int = 0;
    let socket = socket2::SockRef::from(io);
    loop {
        match socket.send_with_flags(bytes, FLAGS) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            sent => return sent,
        }
    }
}

/// Set when a connection must go because it does not read.
#[derive(Debug, Default)]
struct Kick {
    slow: AtomicBool,
    notify: Notify,
}

impl Outlet {
    /// The outlet of an accepted socket; `cap` delivered frames may wait when it is full.
    pub(crate) fn new(io: TcpStream, cap: usize) -> Outlet {
        Self::with(Some(io), cap)
    }

    /// An outlet with no socket: delivered frames wait (at most `cap`) until
    /// [`take_frames`](Outlet::take_frames) — for tests.
    pub(crate) fn detached(cap: usize) -> Outlet {
        Self::with(None, cap)
    }

    /// An outlet that takes nothing (a connection that is not here: a remote publisher).
    #[cfg(feature = "relay-redis")]
    pub(crate) fn closed() -> Outlet {
        let outlet = Self::with(None, 0);
        outlet.close();
        outlet
    }

    fn with(io: Option<TcpStream>, cap: usize) -> Outlet {
        Outlet {
            state: Mutex::new(State {
                io,
                open: true,
                failed: None,
                queue: VecDeque::new(),
                written: 0,
                frames: 0,
                cap,
                waker: None,
            }),
            kick: Kick::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state whole: a panic elsewhere changes nothing here.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `frame` to the socket now, or queues it behind what waits; never waits. `false`
    /// when the connection is over, kicked, or kicked now because its queue is full.
    pub(crate) fn deliver(&self, frame: &Frame) -> bool {
        let mut state = self.lock();
        if !state.open || self.is_kicked() {
            return false;
        }
        if state.queue.is_empty()
            && let Some(io) = &state.io
        {
            let wire = frame.wire();
            match send(io, wire) {
                Ok(n) if n == wire.len() => return true,
                Ok(n) => state.written = n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => {
                    // The connection hears it from its next drain (or its read).
                    state.failed = Some(error.kind());
                    state.open = false;
                    if let Some(waker) = state.waker.take() {
                        waker.wake();
                    }
                    return false;
                }
            }
            state.push(Chunk::Frame(frame.clone()));
            return true;
        }
        if state.frames >= state.cap {
            drop(state);
            self.kick.slow.store(true, Ordering::Release);
            self.kick.notify.notify_one();
            return false;
        }
        state.push(Chunk::Frame(frame.clone()));
        true
    }

    /// Whether the connection was kicked (its queue overflowed).
    pub(crate) fn is_kicked(&self) -> bool {
        self.kick.slow.load(Ordering::Acquire)
    }

    /// Resolves once the connection was kicked.
    pub(crate) async fn kicked(&self) {
        loop {
            let notified = self.kick.notify.notified();
            if self.is_kicked() {
                return;
            }
            notified.await;
        }
    }

    /// Resolves when the queue was written out (`Ok`) or a write failed; waits while the queue
    /// is empty. The connection's task polls it so that queued frames reach the socket.
    pub(crate) fn poll_written(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.lock();
        if state.queue.is_empty() && state.failed.is_none() {
            match &state.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => state.waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        state.poll_drain(cx)
    }

    /// Forgets the delivered frames still queued (a kicked connection's), all but one already
    /// begun, so that what follows starts on a frame boundary.
    pub(crate) fn discard(&self) {
        let mut state = self.lock();
        let keep = usize::from(state.written > 0);
        while state.queue.len() > keep {
            if let Some(Chunk::Frame(_)) = state.queue.pop_back() {
                state.frames -= 1;
            }
        }
    }

    /// The frames queued, taken out (an outlet without a socket keeps them all).
    pub(crate) fn take_frames(&self) -> Vec<Frame> {
        let mut state = self.lock();
        state.frames = 0;
        state.written = 0;
        state
            .queue
            .drain(..)
            .filter_map(|chunk| match chunk {
                Chunk::Frame(frame) => Some(frame),
                Chunk::Rest(_) => None,
            })
            .collect()
    }

    /// The connection is over: the socket closes (once its reader and writer are done with it).
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.open = false;
        state.queue.clear();
        state.frames = 0;
        state.io = None;
    }

    /// Reads from the socket, for the HTTP and WebSocket layers.
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut state = self.lock();
        match state.io.as_mut() {
            Some(io) => Pin::new(io).poll_read(cx, buf),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Writes `buf` for the HTTP or WebSocket layer, after what is queued; takes all of it or
    /// none (a short write queues the rest, so no frame of theirs is left half written).
    /// `frames`: `buf` is whole WebSocket frames (after the upgrade); a close frame among them
    /// ends deliveries.
    pub(crate) fn poll_write(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        frames: bool,
    ) -> Poll<io::Result<usize>> {
        let mut state = self.lock();
        ready!(state.poll_drain(cx))?;
        let Some(io) = state.io.as_mut() else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        let n = ready!(Pin::new(io).poll_write(cx, buf))?;
        if frames && has_close(buf) {
            state.open = false;
        }
        if let Some(rest) = buf.get(n..).filter(|rest| !rest.is_empty()) {
            state.push(Chunk::Rest(Bytes::copy_from_slice(rest)));
        }
        Poll::Ready(Ok(buf.len()))
    }

    /// Writes what is queued, then flushes the socket.
    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.lock();
        ready!(state.poll_drain(cx))?;
        match state.io.as_mut() {
            Some(io) => Pin::new(io).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Shuts the socket's write side down, after what is queued.
    pub(crate) fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.lock();
        ready!(state.poll_drain(cx))?;
        match state.io.as_mut() {
            Some(io) => Pin::new(io).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// Whether the server frames in `buf` (unmasked, starting on a frame boundary) include a
/// close frame (opcode 8). A frame cut at the end of `buf` is looked at as far as it goes.
fn has_close(mut buf: &[u8]) -> bool {
    while let [first, second, rest @ ..] = buf {
        if first & 0x0F == 0x8 {
            return true;
        }
        let (header, len) = match second & 0x7F {
            126 => match rest {
                [a, b, ..] => (2, u64::from(u16::from_be_bytes([*a, *b]))),
                _ => return false,
            },
            127 => match rest.first_chunk::<8>() {
                Some(len) => (8, u64::from_be_bytes(*len)),
                None => return false,
            },
            len => (0, u64::from(len)),
        };
        let masked = if second & 0x80 != 0 { 4 } else { 0 };
        let skip = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .saturating_add(header + masked);
        buf = rest.get(skip..).unwrap_or_default();
    }
    false
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::AsyncReadExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket};

    use super::*;

    /// An outlet over one end of a loopback connection, and the other end; small buffers, so
    /// that a few frames fill the socket.
    async fn pair(cap: usize) -> (Outlet, TcpStream) {
        let listener = tokio::net::TcpSocket::new_v4().unwrap();
        listener.set_send_buffer_size(4_096).unwrap();
        listener.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = listener.listen(8).unwrap();
        let client = tokio::net::TcpSocket::new_v4().unwrap();
        client.set_recv_buffer_size(4_096).unwrap();
        let (client, accepted) = tokio::join!(client.connect(addr), listener.accept());
        (Outlet::new(accepted.unwrap().0, cap), client.unwrap())
    }

    /// Every WebSocket message in `bytes`, as a client reads them.
    fn messages(bytes: Vec<u8>) -> Vec<Message> {
        let mut socket =
            WebSocket::from_raw_socket(std::io::Cursor::new(bytes), Role::Client, None);
        std::iter::from_fn(|| socket.read().ok()).collect()
    }

    #[tokio::test]
    async fn frames_a_full_socket_cannot_take_wait_and_arrive_in_order_after_the_librarys_own() {
        let (outlet, mut client) = pair(1_000).await;
        let mut sent = Vec::new();
        // Deliver until the socket is full and frames wait in the queue.
        while outlet.lock().queue.len() < 5 {
            let frame = Frame::from(format!("{:05}{}", sent.len(), "x".repeat(2_000)));
            assert!(outlet.deliver(&frame));
            sent.push(frame);
        }
        assert!(sent.len() > 5, "some were written at once");
        // The library's frame (a pong) goes after what waits, whole.
        let pong = [0x8A, 0x01, b'p'];
        let mut written = std::pin::pin!(std::future::poll_fn(|cx| {
            outlet.poll_write(cx, &pong, true)
        }));
        assert!(
            futures::poll!(written.as_mut()).is_pending(),
            "it waits its turn"
        );
        let reader = async {
            let mut bytes = Vec::new();
            let mut buf = vec![0; 65_536];
            loop {
                let n = client.read(&mut buf).await.unwrap();
                bytes.extend_from_slice(&buf[..n]);
                if bytes.ends_with(&pong) {
                    return bytes;
                }
            }
        };
        let (took, bytes) = tokio::join!(written, reader);
        assert_eq!(took.unwrap(), pong.len());
        let got = messages(bytes);
        assert_eq!(got.len(), sent.len() + 1);
        for (got, sent) in got.iter().zip(&sent) {
            assert_eq!(got.to_text().unwrap(), sent.as_str());
        }
        assert_eq!(got.last(), Some(&Message::Pong(b"p".to_vec().into())));
        assert!(outlet.lock().queue.is_empty());
    }

    #[tokio::test]
    async fn the_connections_task_writes_what_waits_as_the_socket_drains() {
        let (outlet, mut client) = pair(1_000).await;
        let mut sent = 0;
        while outlet.lock().queue.is_empty() {
            outlet.deliver(&Frame::from("y".repeat(3_000)));
            sent += 1;
        }
        outlet.deliver(&Frame::from("last"));
        let drained = async {
            loop {
                std::future::poll_fn(|cx| outlet.poll_written(cx))
                    .await
                    .unwrap();
                if outlet.lock().queue.is_empty() {
                    return;
                }
            }
        };
        let reader = async {
            let mut bytes = Vec::new();
            let mut buf = vec![0; 65_536];
            while !bytes.ends_with(b"last") {
                let n = client.read(&mut buf).await.unwrap();
                bytes.extend_from_slice(&buf[..n]);
            }
            bytes
        };
        let ((), bytes) = tokio::join!(drained, reader);
        let got = messages(bytes);
        assert_eq!(got.len(), sent + 1);
        assert_eq!(got.last().unwrap().to_text().unwrap(), "last");
    }

    /// tokio's cached readiness is refreshed only when its runtime turns; the outlet's writes
    /// must not wait on it. The test never yields to the runtime after tokio saw the socket
    /// full, so tokio believes it full throughout, while the viewer reads it empty.
    #[tokio::test]
    async fn a_socket_with_room_is_written_whatever_tokio_last_saw_of_it() {
        use std::io::Read;
        let (outlet, client) = pair(1_000).await;
        let mut client = client.into_std().unwrap();
        client.set_nonblocking(false).unwrap();
        let frame = Frame::from("y".repeat(3_000));
        // Deliver until tokio's own write finds the socket full (and forgets that it was
        // writable).
        let mut cx = Context::from_waker(Waker::noop());
        let mut sent = 0;
        loop {
            assert!(outlet.deliver(&frame));
            sent += 1;
            if outlet.poll_written(&mut cx).is_pending() && !outlet.lock().queue.is_empty() {
                break;
            }
            assert!(sent < 1_000, "never full");
        }
        // The viewer reads all that the socket took.
        let taken = {
            let state = outlet.lock();
            (sent - state.frames) * frame.wire().len() + state.written
        };
        let mut bytes = vec![0; taken];
        client.read_exact(&mut bytes).unwrap();
        // The waiting frame goes out as soon as the kernel has room (its acknowledgements
        // are processed), though tokio has heard nothing.
        let mut tries = 0;
        while outlet.poll_written(&mut cx).is_pending() && !outlet.lock().queue.is_empty() {
            tries += 1;
            assert!(tries < 10_000, "the waiting frame never went out");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // And a new frame is written at once, not queued.
        assert!(outlet.deliver(&Frame::from("last")));
        assert!(outlet.lock().queue.is_empty(), "written, not queued");
        drop(outlet);
        client.read_to_end(&mut bytes).unwrap();
        let got = messages(bytes);
        assert_eq!(got.len(), sent + 1);
        assert_eq!(got.last().unwrap().to_text().unwrap(), "last");
    }

    /// The fan-out (another thread) and the connection's task (its drain and the library's
    /// pongs, in one `select!` as in the connection) write one socket at once, through a small
    /// buffer: every frame arrives whole, each kind in its own order, none lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_fan_out_and_the_connections_own_writes_interleave_in_whole_frames() {
        const FRAMES: usize = 2_000;
        const PONGS: u8 = 200;
        let (outlet, mut client) = pair(100_000).await;
        let outlet = Arc::new(outlet);
        // Lengths that end writes at every offset of the socket's buffer.
        let frames: Vec<Frame> = (0..FRAMES)
            .map(|i| Frame::from(format!("{i:05}{}", "d".repeat(i * 37 % 3_000))))
            .collect();
        let total = frames.iter().map(|f| f.wire().len()).sum::<usize>() + 4 * usize::from(PONGS);
        let fan_out = {
            let (outlet, frames) = (Arc::clone(&outlet), frames.clone());
            std::thread::spawn(move || {
                for frame in &frames {
                    assert!(outlet.deliver(frame), "refused");
                }
            })
        };
        let stop = Arc::new(Notify::new());
        let connection = {
            let (outlet, stop) = (Arc::clone(&outlet), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut pongs = 0;
                loop {
                    let pong = [0x8A, 0x02, b'p', pongs];
                    tokio::select! {
                        () = stop.notified() => return,
                        written = std::future::poll_fn(|cx| outlet.poll_written(cx)) => {
                            written.unwrap();
                        }
                        took = std::future::poll_fn(|cx| outlet.poll_write(cx, &pong, true)),
                            if pongs < PONGS =>
                        {
                            assert_eq!(took.unwrap(), pong.len());
                            pongs += 1;
                            tokio::task::yield_now().await;
                        }
                    }
                }
            })
        };
        let mut bytes = Vec::with_capacity(total);
        let mut buf = vec![0; 1_024];
        while bytes.len() < total {
            let n = client.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed after {} of {total} bytes", bytes.len());
            bytes.extend_from_slice(&buf[..n]);
        }
        stop.notify_one();
        connection.await.unwrap();
        fan_out.join().unwrap();
        let (mut texts, mut pongs) = (Vec::new(), Vec::new());
        for message in messages(bytes) {
            match message {
                Message::Text(text) => texts.push(text),
                Message::Pong(payload) => pongs.push(payload),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(texts.len(), FRAMES);
        for (got, sent) in texts.iter().zip(&frames) {
            assert_eq!(got.as_str(), sent.as_str());
        }
        let expected: Vec<_> = (0..PONGS).map(|i| vec![b'p', i]).collect();
        assert_eq!(
            pongs.iter().map(|p| p.to_vec()).collect::<Vec<_>>(),
            expected
        );
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_is_kicked_when_its_queue_is_full() {
        let (outlet, _client) = pair(3).await;
        let frame = Frame::from("z".repeat(4_000));
        let mut delivered = 0;
        while outlet.deliver(&frame) {
            delivered += 1;
            assert!(delivered < 10_000, "never kicked");
        }
        assert!(outlet.is_kicked());
        assert_eq!(outlet.lock().frames, 3);
        outlet.discard();
        assert!(outlet.lock().queue.len() <= 1, "one begun at most");
    }

    #[tokio::test]
    async fn nothing_is_delivered_after_a_close_frame() {
        let (outlet, _client) = pair(8).await;
        assert!(outlet.deliver(&Frame::from("before")));
        let close = [0x88, 0x02, 0x03, 0xE8];
        std::future::poll_fn(|cx| outlet.poll_write(cx, &close, true))
            .await
            .unwrap();
        assert!(!outlet.deliver(&Frame::from("after")));
        assert!(!outlet.is_kicked());
    }

    #[test]
    fn a_close_frame_is_found_behind_other_frames() {
        let text = Frame::from("x".repeat(300));
        let mut buf = text.wire().to_vec();
        buf.extend_from_slice(&[0x8A, 0x00]); // pong
        assert!(!has_close(&buf));
        buf.extend_from_slice(&[0x88, 0x02, 0x03, 0xE8]);
        assert!(has_close(&buf));
        assert!(!has_close(&[0x81]));
        assert!(!has_close(&[0x81, 127, 0, 0]));
    }

    #[test]
    fn a_full_queue_kicks_and_a_kicked_outlet_takes_nothing() {
        let outlet = Outlet::detached(2);
        let frame = Frame::from("x");
        assert!(outlet.deliver(&frame));
        assert!(outlet.deliver(&frame));
        assert!(!outlet.is_kicked());
        assert!(!outlet.deliver(&frame), "the third overflows");
        assert!(outlet.is_kicked());
        assert_eq!(outlet.take_frames(), ["x", "x"]);
        assert!(!outlet.deliver(&frame));
    }

    #[test]
    fn a_closed_outlet_takes_nothing() {
        let outlet = Outlet::detached(2);
        outlet.close();
        assert!(!outlet.deliver(&Frame::from("x")));
        assert!(!outlet.is_kicked());
    }

    #[test]
    fn discarding_keeps_only_a_frame_already_begun() {
        let outlet = Outlet::detached(4);
        for _ in 0..3 {
            outlet.deliver(&Frame::from("x"));
        }
        outlet.lock().written = 1;
        outlet.discard();
        assert_eq!(outlet.lock().queue.len(), 1);
        outlet.lock().written = 0;
        outlet.discard();
        assert_eq!(outlet.lock().queue.len(), 0);
        assert_eq!(outlet.lock().frames, 0);
    }
}
