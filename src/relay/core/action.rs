//! What a [`Session`](super::Session) asks its shell to do, and why a connection ends.

use crate::relay::protocol::{CloseReason, Details, ErrorCode, Role, ServerFrame, StreamName};

/// One thing for the shell to carry out, in the order the session queued them.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Action {
    /// Queue this frame for the connection (an `error` frame is also logged and counted).
    Send(ServerFrame),
    /// The `hello` was accepted: count the connection under `role` while it lives.
    Joined(Role),
    /// Ask the node to publish `stream`; a refusal comes back through
    /// [`Session::handle_refused`](super::Session::handle_refused).
    Publish {
        /// The stream.
        stream: StreamName,
        /// Its details.
        details: Details,
    },
    /// Ask the node to end this connection's `stream` for its viewers.
    Unpublish {
        /// The stream.
        stream: StreamName,
        /// What its viewers are told.
        reason: CloseReason,
    },
    /// Ask the node for a (fresh) view of `stream`: forget any earlier view of it, then view;
    /// a refusal comes back through [`Session::handle_refused`](super::Session::handle_refused).
    View {
        /// The stream.
        stream: StreamName,
    },
    /// Ask the node to forget this connection's view of `stream`.
    Unview {
        /// The stream.
        stream: StreamName,
    },
    /// Start the Director call for `stream`; its answer comes back through
    /// [`Session::handle_director_answer`](super::Session::handle_director_answer).
    Director {
        /// The stream.
        stream: StreamName,
        /// The request's id, echoed in the answer.
        id: Option<u64>,
    },
    /// Send a WebSocket ping (the keepalive).
    Ping,
    /// End the connection: write what [`End::last_words`] says, close, then call
    /// [`Session::leave`](super::Session::leave).
    Close(End),
}

/// Why a connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The socket failed or ended: nothing more to say.
    Gone,
    /// The client sent a close frame: the reply is flushed, then the socket dropped.
    Closed,
    /// A fatal `error` frame is queued.
    Fatal(ErrorCode),
    /// The client does not read: its queue filled or a write stalled.
    Slow,
    /// The relay shuts down.
    Shutdown,
    /// A frame beyond the hard limit: its unread rest makes the kernel reset the socket on
    /// close, so the close lingers a little for the client to read why.
    Overflow,
}

impl End {
    /// The frame written straight to the socket before the close, past the queue (a slow
    /// consumer's queue is full: the frame that tells it why cannot wait behind it).
    pub(crate) fn last_words(self) -> Option<ServerFrame> {
        match self {
            End::Slow => Some(ServerFrame::Error {
                code: ErrorCode::SlowConsumer,
                message: "outgoing queue full: not reading".to_owned(),
                stream: None,
                id: None,
                fatal: true,
            }),
            End::Shutdown => Some(ServerFrame::Shutdown {
                reason: "relay shutting down".to_owned(),
            }),
            End::Gone | End::Closed | End::Fatal(_) | End::Overflow => None,
        }
    }
}
