//! Not API: the harness the `relay_frame` fuzz target (and its seed test) drives. It runs a
//! sequence of inputs against two sans-IO relay sessions from one client address and a node
//! stream table, carrying out their actions as the shell would, and panics when a rule of the
//! relay does not hold. Hidden from the docs; it may change with the relay at any time.
//!
//! The input is lines (`\n`). A line starting with `@` goes to the second session. A line
//! `#t<ms>` moves time forward, `#pong`, `#ping`, `#binary`, `#close`, `#gone`, `#kick`,
//! `#shutdown`, `#overflow`, `#timeout` and `#director` are those events; any other line is a
//! text frame. What must hold after every input:
//!
//! - no panic; nothing comes out of a session once it closed;
//! - a connection views at most `max_views` and publishes at most `max_publishes` streams, its
//!   address views at most `max_views_per_client` over both, and the per-address table counts
//!   exactly what the sessions hold; the node tracks at most `max_streams`;
//! - a view or publish reaches the node only for a stream a publish rule covers, a publish only
//!   with that rule's token;
//! - frames admitted (answered with anything but `rate_limited`) stay within `burst` plus
//!   `rate_per_sec` × elapsed time;
//! - every `error` message is short and never carries the publish token; every frame sent
//!   parses back;
//! - once both leave and are dropped, the node and the per-address table are empty.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::relay::broker::Peer;
use crate::relay::config::RelayConfig;
use crate::relay::core::{Action, ClientTable, Node, Session};
use crate::relay::outlet::Outlet;
use crate::relay::protocol::{ErrorCode, Role, ServerFrame, parse_server_frame};

/// The publish token of the harness's `cam-*` rule (the fuzz corpus's `hello` seeds use it).
pub const TOKEN: &str = "publish-token-123456";
/// Inputs read at most per run.
const MAX_INPUTS: usize = 512;
/// The longest time step one `#t` moves, in ms.
const MAX_STEP_MS: u64 = 600_000;
/// The longest `error` message.
const MAX_MESSAGE: usize = 256;

fn config() -> RelayConfig {
    let mut config = RelayConfig::default().publish_token("cam-*", TOKEN);
    let limits = &mut config.limits;
    limits.max_frame = 1024;
    limits.max_views = 3;
    limits.max_publishes = 2;
    limits.max_views_per_client = 4;
    limits.max_streams = 5;
    limits.burst = 6;
    limits.rate_per_sec = 2.0;
    limits.keepalive_ms = 1_000;
    limits.idle_timeout_ms = 5_000;
    limits.hello_timeout_ms = 3_000;
    config
}

/// One connection: its session, its queue and what the harness saw it take.
struct Conn {
    session: Session,
    peer: Peer,
    queue: Arc<Outlet>,
    role: Option<Role>,
    viewing: HashSet<String>,
    published: HashSet<String>,
    closed: bool,
    admitted: u64,
    director: bool,
}

/// Runs `input` (see the [module docs](self)); panics when a rule does not hold.
pub fn session_sequence(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let config = Arc::new(config());
    let limits = config.limits;
    let clients = ClientTable::new(
        limits.max_connections_per_client,
        limits.max_views_per_client,
    );
    let client: IpAddr = IpAddr::from([192, 0, 2, 1]);
    let mut node = Node::new(limits.max_streams);
    #[allow(clippy::disallowed_methods)] // a fixed origin; time moves only by `#t`
    let t0 = Instant::now();
    let mut now = t0;
    let mut conns: Vec<Conn> = (1..=2)
        .map(|id| {
            let slot = clients
                .admit(client)
                .expect("two connections are within the cap");
            let (peer, queue) = Peer::detached(id, 64);
            Conn {
                session: Session::new(id, Arc::clone(&config), slot, now),
                peer,
                queue,
                role: None,
                viewing: HashSet::new(),
                published: HashSet::new(),
                closed: false,
                admitted: 0,
                director: false,
            }
        })
        .collect();
    for line in text.split('\n').take(MAX_INPUTS) {
        let (which, line) = match line.strip_prefix('@') {
            Some(rest) => (1, rest),
            None => (0, line),
        };
        if let Some(ms) = line.strip_prefix("#t") {
            let ms = ms.trim().parse::<u64>().unwrap_or(1).min(MAX_STEP_MS);
            now += Duration::from_millis(ms);
            for conn in &mut conns {
                fire_timers(conn, &mut node, &config, now);
            }
            continue;
        }
        let conn = &mut conns[which];
        let text_frame = !line.starts_with('#');
        match line {
            "#pong" => conn.session.handle_pong(now),
            "#ping" => conn.session.handle_ping(now),
            "#binary" => conn.session.handle_binary(now),
            "#close" => conn.session.handle_close(now),
            "#gone" => conn.session.handle_gone(now),
            "#kick" => conn.session.handle_kicked(now),
            "#shutdown" => conn.session.handle_shutdown(now),
            "#overflow" => conn.session.handle_overflow(now),
            "#timeout" => conn.session.handle_timeout(now),
            "#director" if conn.director => {
                conn.director = false;
                conn.session
                    .handle_director_answer(ServerFrame::Pong { id: None });
            }
            _ => conn.session.handle_text(now, line),
        }
        let admitted = carry_out(conn, &mut node, &config);
        if text_frame && admitted {
            conn.admitted += 1;
        }
        // What the node queued for either connection is read, as their sockets would.
        for conn in &mut conns {
            conn.queue.take_frames();
        }
        check(&conns, &clients, client, &node, &config, now - t0);
    }
    for conn in &mut conns {
        leave(conn, &mut node);
    }
    assert_eq!(clients.usage(client).map(|(_, views)| views), Some(0));
    drop(conns);
    assert_eq!(
        clients.len(),
        0,
        "an address entry outlived its connections"
    );
    let counts = node.counts();
    assert_eq!(
        (counts.streams, counts.views),
        (0, 0),
        "the node kept state of connections that left"
    );
}

/// Fires every deadline of `conn` up to `now`, each at its own instant.
fn fire_timers(conn: &mut Conn, node: &mut Node, config: &RelayConfig, now: Instant) {
    for _ in 0..64 {
        match conn.session.poll_timeout() {
            Some(wake) if wake <= now => {
                conn.session.handle_timeout(wake);
                carry_out(conn, node, config);
            }
            _ => return,
        }
    }
}

/// Carries out the session's actions as the shell does; whether any showed the input was
/// admitted (anything but a `rate_limited` error).
fn carry_out(conn: &mut Conn, node: &mut Node, config: &RelayConfig) -> bool {
    let mut admitted = false;
    let mut count = 0;
    while let Some(action) = conn.session.poll_action() {
        count += 1;
        assert!(count <= 16, "one input made more than 16 actions");
        assert!(!conn.closed, "an action after the close: {action:?}");
        match action {
            Action::Send(frame) => {
                sent(&frame);
                let limited = matches!(
                    frame,
                    ServerFrame::Error {
                        code: ErrorCode::RateLimited,
                        ..
                    }
                );
                admitted |= !limited;
            }
            Action::Joined(role) => {
                assert!(conn.role.is_none(), "joined twice");
                conn.role = Some(role);
                admitted = true;
            }
            Action::Publish { stream, details } => {
                admitted = true;
                assert_eq!(conn.role, Some(Role::Publisher), "a viewer published");
                let rule = config.publish_rule(&stream);
                let rule = rule.expect("a publish no rule covers reached the node");
                assert_eq!(rule.token.expose(), TOKEN);
                conn.published.insert(stream.as_str().to_owned());
                if let Err(error) = node.publish(stream.clone(), conn.peer.clone(), details) {
                    conn.published.remove(stream.as_str());
                    conn.session.handle_refused(&stream, &error);
                }
            }
            Action::Unpublish { stream, reason } => {
                admitted = true;
                assert!(conn.published.remove(stream.as_str()), "unpublished unheld");
                node.unpublish(&stream, conn.peer.id(), reason);
            }
            Action::View { stream } => {
                admitted = true;
                assert_eq!(conn.role, Some(Role::Viewer), "a publisher viewed");
                assert!(
                    config.publish_rule(&stream).is_some(),
                    "a view of a stream no rule covers reached the node"
                );
                conn.viewing.insert(stream.as_str().to_owned());
                node.unview(&stream, conn.peer.id());
                if let Err(error) = node.view(stream.clone(), conn.peer.clone()) {
                    conn.viewing.remove(stream.as_str());
                    conn.session.handle_refused(&stream, &error);
                }
            }
            Action::Unview { stream } => {
                admitted = true;
                assert!(conn.viewing.remove(stream.as_str()), "unviewed unviewed");
                node.unview(&stream, conn.peer.id());
            }
            Action::Director { .. } => {
                admitted = true;
                assert!(!conn.director, "two Director calls in flight");
                conn.director = true;
            }
            Action::Ping => {}
            Action::Close(end) => {
                if let Some(frame) = end.last_words() {
                    sent(&frame);
                }
                leave(conn, node);
            }
        }
    }
    admitted
}

/// A frame the session sends: short, secret-free errors, and text that parses back.
fn sent(frame: &ServerFrame) {
    if let ServerFrame::Error { message, .. } = frame {
        assert!(
            message.len() <= MAX_MESSAGE,
            "a long error message: {message:?}"
        );
        assert!(
            !message.contains(TOKEN),
            "the token in an error: {message:?}"
        );
    }
    let text = frame.to_text();
    assert!(parse_server_frame(&text).is_ok(), "unparseable {text}");
}

/// The connection is over: the node forgets what it held.
fn leave(conn: &mut Conn, node: &mut Node) {
    if conn.closed {
        return;
    }
    conn.closed = true;
    for action in conn.session.leave() {
        match action {
            Action::Unpublish { stream, reason } => {
                assert!(
                    conn.published.remove(stream.as_str()),
                    "left a stream it did not hold"
                );
                node.unpublish(&stream, conn.peer.id(), reason);
            }
            Action::Unview { stream } => {
                assert!(
                    conn.viewing.remove(stream.as_str()),
                    "left a view it did not hold"
                );
                node.unview(&stream, conn.peer.id());
            }
            other => panic!("leaving made {other:?}"),
        }
    }
    assert!(
        conn.viewing.is_empty() && conn.published.is_empty(),
        "leave forgot something"
    );
}

/// The limits, after every input.
fn check(
    conns: &[Conn],
    clients: &ClientTable,
    client: IpAddr,
    node: &Node,
    config: &RelayConfig,
    elapsed: Duration,
) {
    let limits = &config.limits;
    let mut views = 0;
    for conn in conns {
        assert!(conn.viewing.len() <= limits.max_views, "over max_views");
        assert!(
            conn.published.len() <= limits.max_publishes,
            "over max_publishes"
        );
        views += conn.viewing.len();
        let allowed = f64::from(limits.burst) + limits.rate_per_sec * elapsed.as_secs_f64() + 1.0;
        #[allow(clippy::cast_precision_loss)] // input counts are at most MAX_INPUTS
        let admitted = conn.admitted as f64;
        assert!(
            admitted <= allowed,
            "{admitted} frames admitted, over the rate ({allowed})"
        );
    }
    assert!(
        views <= limits.max_views_per_client,
        "over max_views_per_client"
    );
    let table = clients.usage(client).map(|(_, v)| v);
    assert_eq!(table, Some(views), "the per-address table is off");
    assert!(
        node.counts().streams <= limits.max_streams,
        "over max_streams"
    );
}
