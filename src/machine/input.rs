//! What goes into the machine: [`Input`], each fed with the instant it happened.

use std::time::Duration;

use crate::source::Retry;

/// Something that happened, fed to [`Machine::handle_input`](crate::Machine::handle_input).
///
/// An input that does not fit the current state (a progress tick while in
/// `Backoff`, `Connected` while `Idle`) is ignored: it is stale, never an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// The user wants to watch: `Idle` → `Connecting`.
    Start,
    /// The user wants to stop: any state → `Idle`, dropping the session or attempt.
    Stop,
    /// The user paused playback: media time standing still is not a stall until `Resume`.
    Pause,
    /// The user resumed playback: the stall watchdog starts over from now.
    Resume,
    /// The connect attempt in flight succeeded: a session is up.
    Connected,
    /// The connect attempt in flight failed, with how to retry.
    ConnectFailed(Retry),
    /// The connect attempt in flight failed and the server said how long to
    /// wait (HTTP `Retry-After` on a 503 or 429): like
    /// [`ConnectFailed`](Input::ConnectFailed), and the next attempt comes no
    /// sooner than `retry_after`, capped by the policy's `retry_after_max`.
    /// Nothing shortens that wait: not a live hint, not a network change.
    ConnectFailedRetryAfter {
        /// How to retry.
        retry: Retry,
        /// The least time before the next attempt, as the server asked.
        retry_after: Duration,
    },
    /// The media time of the current session (RTP time, a player's clock).
    /// It counts as progress only past the furthest media time of the
    /// session's timeline (a frozen picture whose clock flickers is no
    /// progress), by the one rule of [`timeline::classify`](crate::timeline::classify):
    /// a jump back of more than [`MAX_REWIND`](crate::timeline::MAX_REWIND)
    /// starts a new timeline. A stall the publisher caused (`Inactive`,
    /// `StreamEnded`) does not end on progress: only on `Active` or a live hint.
    Progress(Duration),
    /// The current set of layers the server offers; zero means the feed is gone.
    Layers {
        /// How many layers are active across all media.
        active: u32,
    },
    /// The source says its publisher is live (Millicast `active`).
    Active,
    /// The source says its publisher stopped (Millicast `inactive`).
    Inactive,
    /// The source says the stream is over (Millicast `stopped`).
    StreamEnded,
    /// The session's transport closed or failed, with how to retry.
    TransportLost(Retry),
    /// The media path of the current session failed, but the session may be
    /// repaired in place ([`SourceEvent::PathLost`](crate::SourceEvent::PathLost)):
    /// a [`Repairable`](Input::Repairable) session, with repair on in the
    /// policy, gets one repair; any other session is lost as with
    /// [`TransportLost`](Input::TransportLost) and [`Retry::Later`].
    PathLost,
    /// The session just kept ([`Output::KeepSession`](crate::Output::KeepSession))
    /// can be repaired in place ([`Output::Repair`](crate::Output::Repair)):
    /// feed it right after that output, before any other input. A session
    /// never said to be repairable is never asked to repair.
    Repairable,
    /// The repair asked for by [`Output::Repair`](crate::Output::Repair)
    /// could not start or failed: the machine escalates to a new session.
    RepairFailed,
    /// The session's event stream ended without saying why: retried later,
    /// like a transport lost with [`Retry::Later`].
    SessionEnded,
    /// Someone outside the session (a relay, a push) says the publisher is live
    /// now. In `Backoff` it ends the wait (within `hint_spread`); while an
    /// attempt is in flight, or a session is stalled for lack of progress, it
    /// is kept and acts on the `Backoff` that follows; `Playing` makes it moot.
    LiveHint,
    /// The news of a [`LiveHint`](Input::LiveHint) is withdrawn (the publisher
    /// left again): a hint kept for later is forgotten.
    LiveHintWithdrawn,
    /// The device's network changed (an address or route came or went, the
    /// application heard the platform's "online"). In `Backoff` the wait ends
    /// at once (no sooner than a server's `Retry-After`). A
    /// [`Repairable`](Input::Repairable) session (with repair on in the
    /// policy) is repaired on the new path at once, playing or stalled for
    /// lack of media (an attempt beside it is abandoned; a repair in flight is
    /// asked for again). Any other session stalled for lack of media (not a
    /// publisher-side stall) is dropped and a new one started at once instead
    /// of waiting out `stall_grace`. Otherwise, while playing or with an
    /// attempt in flight, it changes nothing: media still flows, and the
    /// attempt is bounded by `connect_timeout`.
    NetworkChanged,
}
