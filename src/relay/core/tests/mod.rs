//! Situation tests of the relay core, one file per situation, on virtual time: a [`Sim`] owns a
//! session and an `Instant` it moves by hand, firing every deadline that passes on the way.
//! No socket, no runtime, no clock.
//!
//! They live inside the crate (not in a `tests/` binary) because the core is the relay's
//! private seam: its types are `pub(crate)`, free to change with the shell, and no user drives
//! a relay session by hand.
#![allow(clippy::unwrap_used)]

mod client_caps;
mod director;
mod ends;
mod forwarded;
mod frames;
mod hello;
mod keepalive;
mod leave;
mod node_streams;
mod publish;
mod rate;
mod roles;
mod views;

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Action, ClientTable, End, Session};
use crate::relay::RelayConfig;
use crate::relay::protocol::{ErrorCode, ServerFrame, StreamName};

const TOKEN: &str = "cam-token";
/// The client address of a [`Sim::new`] session.
const CLIENT: &str = "192.0.2.7";

/// A relay config whose `cam-*` streams are published with [`TOKEN`].
fn config() -> RelayConfig {
    RelayConfig::default().publish_token("cam-*", TOKEN)
}

fn cam(n: u32) -> StreamName {
    StreamName::new(format!("cam-{n}")).unwrap()
}

/// One session on virtual time.
struct Sim {
    session: Session,
    t0: Instant,
    now: Instant,
}

impl Sim {
    fn new(config: RelayConfig) -> Sim {
        let limits = config.limits;
        let clients = ClientTable::new(
            limits.max_connections_per_client,
            limits.max_views_per_client,
        );
        Sim::from(&clients, config, CLIENT)
    }

    /// A session admitted from `client` into `clients`.
    fn from(clients: &ClientTable, config: RelayConfig, client: &str) -> Sim {
        #[allow(clippy::disallowed_methods)] // a fixed origin; the tests move time by hand
        let t0 = Instant::now();
        let slot = clients.admit(client.parse().unwrap()).unwrap();
        Sim {
            session: Session::new(7, Arc::new(config), slot, t0),
            t0,
            now: t0,
        }
    }

    /// A session past a viewer's `hello`.
    fn viewer(config: RelayConfig) -> Sim {
        Sim::new(config).hello_viewer()
    }

    /// This session past a viewer's `hello`.
    fn hello_viewer(self) -> Sim {
        let mut sim = self;
        let welcome = sim.text(r#"{"type":"hello","v":1,"role":"viewer"}"#);
        assert_eq!(
            welcome[0],
            Action::Joined(crate::relay::protocol::Role::Viewer)
        );
        sim
    }

    /// A session past a publisher's `hello` with `token`.
    fn publisher(config: RelayConfig, token: &str) -> Sim {
        let mut sim = Sim::new(config);
        let hello = format!(r#"{{"type":"hello","v":1,"role":"publisher","token":"{token}"}}"#);
        let welcome = sim.text(&hello);
        assert_eq!(
            welcome[0],
            Action::Joined(crate::relay::protocol::Role::Publisher)
        );
        sim
    }

    fn drain(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.session.poll_action()).collect()
    }

    /// A text frame now; what the session asks for.
    fn text(&mut self, text: &str) -> Vec<Action> {
        self.session.handle_text(self.now, text);
        self.drain()
    }

    /// Moves time forward by `by`, firing each deadline on the way at its own instant; the
    /// actions with the time (since the start) each came at.
    fn advance(&mut self, by: Duration) -> Vec<(Duration, Action)> {
        let target = self.now + by;
        let mut got = Vec::new();
        while let Some(wake) = self.session.poll_timeout().filter(|w| *w <= target) {
            self.now = self.now.max(wake);
            self.session.handle_timeout(self.now);
            let at = self.now - self.t0;
            got.extend(self.drain().into_iter().map(|a| (at, a)));
        }
        self.now = target;
        got
    }

    /// Time since the start.
    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }
}

/// The `error` frames among `actions`: code and whether fatal.
fn errors(actions: &[Action]) -> Vec<(ErrorCode, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(ServerFrame::Error { code, fatal, .. }) => Some((*code, *fatal)),
            _ => None,
        })
        .collect()
}

/// How the actions end the connection, if they do.
fn end(actions: &[Action]) -> Option<End> {
    actions.iter().find_map(|a| match a {
        Action::Close(end) => Some(*end),
        _ => None,
    })
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
