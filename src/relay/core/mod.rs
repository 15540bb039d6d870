//! The relay's rules as pure values, like the crate's [`Machine`](crate::Machine): a
//! [`Session`] per connection and a [`Node`] stream table take `(now, input)` and answer with
//! [`Action`]s and deadlines; the axum/tokio shell ([`connection`](super::connection)) and the
//! brokers only carry them out.
//!
//! - [`Session`]: `hello` and authentication, the role, what the role may do, per-connection
//!   limits (views, publishes, frame size), the token bucket, the hello, idle and publisher
//!   keepalive deadlines, the Director call in flight, and what a leaving connection undoes.
//! - [`Clients`](clients::Clients): what each client address holds (connections, views)
//!   against the per-address caps, and which address a connection counts under behind a
//!   trusted proxy ([`client_address`]).
//! - [`Node`]: which streams exist, who publishes each, who views it, `max_streams`, take-over
//!   (`replaced`), snapshot-then-events, and which streams start or stop being watched here
//!   (what a multi-node broker subscribes to).
//!
//! Nothing here awaits, spawns, reads a clock or logs: time comes in with each call, reasons go
//! out in the actions, and the shell logs them. Tests drive both on virtual time, one file per
//! situation (`core/tests/`), with no socket.

mod action;
mod clients;
mod node;
mod rate;
mod session;
#[cfg(test)]
mod tests;

pub(crate) use action::{Action, End};
pub(crate) use clients::{ClientSlot, ClientTable, client_address};
pub(crate) use node::Node;
pub(crate) use session::Session;
