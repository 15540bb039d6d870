//! A TCP proxy that breaks the path on command, for chaos tests.
//!
//! Put a [`FaultProxy`] between a client and a real server on 127.0.0.1, point the client at
//! [`FaultProxy::addr`], then cut, blackhole, slow down or corrupt the path while the test runs.
//!
//! ```no_run
//! # async fn demo(upstream: std::net::SocketAddr) -> std::io::Result<()> {
//! use relive::testkit::proxy::FaultProxy;
//! let proxy = FaultProxy::start(upstream).await?;
//! // ... connect a client to proxy.addr() ...
//! proxy.blackhole(true); // the path goes silent: no bytes either way, no pongs
//! proxy.blackhole(false); // and heals; bytes held meanwhile now flow
//! proxy.cut(); // every current connection is closed
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::error::Elapsed;

/// Garbage writes queued per connection before further ones are dropped.
const GARBAGE_QUEUE: usize = 16;
/// Bytes moved per read; one chunk is the unit of [`FaultProxy::delay`].
const CHUNK: usize = 16 * 1024;

/// A fault-injecting TCP proxy on 127.0.0.1 in front of one upstream address.
///
/// A cheap handle: clones control the same proxy, and it stops when the last clone is dropped or
/// on [`FaultProxy::shutdown`]. Every method takes effect at once, for the connections open now
/// and (for the switches) for the ones to come.
#[derive(Clone)]
pub struct FaultProxy {
    shared: Arc<Shared>,
    _stopper: Arc<Stopper>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.shared.addr)
            .field("upstream", &self.shared.upstream)
            .field("connections", &self.connections())
            .finish()
    }
}

struct Shared {
    addr: SocketAddr,
    upstream: SocketAddr,
    connections: Mutex<HashMap<u64, Connection>>,
    /// The number of registered connections, for waiters.
    count: watch::Sender<usize>,
    next_id: AtomicU64,
    blackhole: watch::Sender<bool>,
    /// What a blackhole holds back right now.
    held: watch::Sender<Held>,
    delay: watch::Sender<Duration>,
    refuse: AtomicBool,
    shutdown: watch::Sender<bool>,
}

/// What a [`FaultProxy`] blackhole holds back; see [`FaultProxy::held`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Held {
    /// Connections accepted while blackholed, not yet connected upstream.
    pub connects: usize,
    /// Bytes read while blackholed, not yet forwarded.
    pub bytes: usize,
}

/// The proxy's hold on one connection: dropping `_cut` closes it.
struct Connection {
    _cut: oneshot::Sender<()>,
    garbage: mpsc::Sender<Vec<u8>>,
}

/// Stops the proxy when the last handle goes.
struct Stopper(Arc<Shared>);

impl Drop for Stopper {
    fn drop(&mut self) {
        self.0.shutdown.send_replace(true);
    }
}

impl FaultProxy {
    /// Binds 127.0.0.1 on a free port and starts forwarding every accepted connection to
    /// `upstream`. Must be called within a tokio runtime.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let shared = Arc::new(Shared {
            addr: listener.local_addr()?,
            upstream,
            connections: Mutex::new(HashMap::new()),
            count: watch::Sender::new(0),
            next_id: AtomicU64::new(0),
            blackhole: watch::Sender::new(false),
            held: watch::Sender::new(Held::default()),
            delay: watch::Sender::new(Duration::ZERO),
            refuse: AtomicBool::new(false),
            shutdown: watch::Sender::new(false),
        });
        tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        tracing::debug!(addr = %shared.addr, %upstream, "fault proxy started");
        Ok(Self {
            _stopper: Arc::new(Stopper(Arc::clone(&shared))),
            shared,
        })
    }

    /// The address clients should connect to.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Closes every current connection now, both sides (a FIN, as when a middlebox gives up).
    /// New connections are still accepted.
    ///
    /// "Current" means registered: a client whose `connect` just returned may not be yet, so wait
    /// with [`FaultProxy::wait_connections`] (or a first round trip) before cutting.
    pub fn cut(&self) {
        let cut: Vec<Connection> = self.shared.lock().drain().map(|(_, conn)| conn).collect();
        tracing::debug!(connections = cut.len(), "fault proxy cut");
        self.shared.count.send_replace(0);
        drop(cut);
    }

    /// While on, the path goes silent: open connections stay open but no byte moves either way
    /// (bytes already read are held, not lost), and new connections are accepted but not
    /// connected upstream. Turning it off lets everything held flow again.
    pub fn blackhole(&self, on: bool) {
        self.shared.blackhole.send_replace(on);
    }

    /// Latency added before forwarding each chunk, in both directions; zero to remove it.
    pub fn delay(&self, delay: Duration) {
        self.shared.delay.send_replace(delay);
    }

    /// Writes `bytes` to the client side of every current connection, between forwarded chunks,
    /// as if the upstream had sent them.
    pub fn inject_garbage(&self, bytes: &[u8]) {
        for connection in self.shared.lock().values() {
            if connection.garbage.try_send(bytes.to_vec()).is_err() {
                tracing::debug!("fault proxy garbage queue full; dropped an injection");
            }
        }
    }

    /// While on, new connections are closed as soon as they are accepted.
    pub fn refuse(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::SeqCst);
    }

    /// Connections now open through the proxy.
    pub fn connections(&self) -> usize {
        self.shared.lock().len()
    }

    /// Waits until exactly `n` connections are open, at most `timeout`. Use it instead of
    /// sleeping after a client connects and before cutting or injecting.
    pub async fn wait_connections(&self, n: usize, timeout: Duration) -> Result<(), Elapsed> {
        let mut count = self.shared.count.subscribe();
        tokio::time::timeout(timeout, async move {
            // The sender lives as long as `self`; an error cannot happen while we hold it.
            let _ = count.wait_for(|&count| count == n).await;
        })
        .await
    }

    /// What the blackhole holds back now: connections parked before their upstream connect,
    /// and bytes read from one side and not yet written to the other.
    pub fn held(&self) -> Held {
        *self.shared.held.borrow()
    }

    /// Waits until what the blackhole holds satisfies `f`, at most `timeout`. Bytes held
    /// are proof that they did not cross: a test waits for them instead of watching a
    /// socket stay quiet for a while.
    pub async fn wait_held(
        &self,
        mut f: impl FnMut(&Held) -> bool,
        timeout: Duration,
    ) -> Result<Held, Elapsed> {
        let mut held = self.shared.held.subscribe();
        tokio::time::timeout(timeout, async move {
            // The sender lives as long as `self`: the wait cannot fail while we hold it.
            match held.wait_for(|h| f(h)).await {
                Ok(h) => *h,
                Err(_) => Held::default(),
            }
        })
        .await
    }

    /// Stops accepting and closes every connection. Dropping the last handle does the same.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Connection>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, connection: Connection) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut connections = self.lock();
        connections.insert(id, connection);
        self.count.send_replace(connections.len());
        id
    }

    fn unregister(&self, id: u64) {
        let mut connections = self.lock();
        if connections.remove(&id).is_some() {
            self.count.send_replace(connections.len());
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) if shared.refuse.load(Ordering::SeqCst) => drop(client),
                Ok((client, _)) => {
                    tokio::spawn(run_connection(Arc::clone(&shared), client));
                }
                Err(error) => {
                    tracing::debug!(%error, "fault proxy accept failed");
                    // Out of descriptors and the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
    tracing::debug!(addr = %shared.addr, "fault proxy stopped");
}

/// One client connection, from accept to close, cut or shutdown.
async fn run_connection(shared: Arc<Shared>, client: TcpStream) {
    let (cut_tx, cut_rx) = oneshot::channel();
    let (garbage_tx, garbage_rx) = mpsc::channel(GARBAGE_QUEUE);
    let id = shared.register(Connection {
        _cut: cut_tx,
        garbage: garbage_tx,
    });
    let mut shutdown = shared.shutdown.subscribe();
    tokio::select! {
        _ = cut_rx => {}
        _ = stopped(&mut shutdown) => {}
        result = relay(&shared, client, garbage_rx) => {
            if let Err(error) = result {
                tracing::debug!(%error, "fault proxy connection ended");
            }
        }
    }
    shared.unregister(id);
}

/// Forwards both ways until both sides finish; an error on either side ends both.
async fn relay(
    shared: &Shared,
    client: TcpStream,
    garbage: mpsc::Receiver<Vec<u8>>,
) -> io::Result<()> {
    // A blackholed path forwards nothing, not even the connect.
    let mut blackhole = shared.blackhole.subscribe();
    if *blackhole.borrow_and_update() {
        shared.held.send_modify(|h| h.connects += 1);
        let _ = blackhole.wait_for(|&on| !on).await;
        shared.held.send_modify(|h| h.connects -= 1);
    }
    let upstream = TcpStream::connect(shared.upstream).await?;
    upstream.set_nodelay(true)?;
    client.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let mut up = pin!(pump(shared, client_read, upstream_write, None));
    let mut down = pin!(pump(shared, upstream_read, client_write, Some(garbage)));
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            result = &mut up, if !up_done => { result?; up_done = true; }
            result = &mut down, if !down_done => { result?; down_done = true; }
        }
    }
    Ok(())
}

/// Copies `from` to `to` chunk by chunk, honouring blackhole and delay, and writes injected
/// garbage between chunks. At end of input it half-closes `to`.
async fn pump(
    shared: &Shared,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut garbage: Option<mpsc::Receiver<Vec<u8>>>,
) -> io::Result<()> {
    let mut buf = vec![0; CHUNK];
    let mut blackhole = shared.blackhole.subscribe();
    loop {
        let n = tokio::select! {
            biased;
            Some(bytes) = next_garbage(&mut garbage) => {
                to.write_all(&bytes).await?;
                continue;
            }
            n = from.read(&mut buf) => n?,
        };
        if n == 0 {
            return to.shutdown().await;
        }
        if *blackhole.borrow_and_update() {
            shared.held.send_modify(|h| h.bytes += n);
            let _ = blackhole.wait_for(|&on| !on).await;
            shared.held.send_modify(|h| h.bytes -= n);
        }
        let delay = *shared.delay.borrow();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        to.write_all(&buf[..n]).await?;
    }
}

/// Resolves once shutdown is signalled (the guard of `wait_for` must not live across awaits).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&stop| stop).await;
}

async fn next_garbage(garbage: &mut Option<mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match garbage {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}
