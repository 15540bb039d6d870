//! What comes out of the machine ([`Output`]), with the reasons that travel
//! with each transition and the deadlines it asks to be woken for.

use crate::machine::{StallCause, State};
use crate::source::Retry;

/// Something the machine wants done or wants known, pulled with
/// [`Machine::poll_output`](crate::Machine::poll_output).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Start connect attempt number `attempt`; answer with `Connected` or `ConnectFailed`.
    /// It comes while `Connecting`, or while `Stalled` with make-before-break: then the
    /// stalled session stays up beside the attempt
    /// ([`Machine::is_racing`](crate::Machine::is_racing)) until one of them is dropped.
    Connect {
        /// The attempt number within the current outage, from 1.
        attempt: u32,
    },
    /// Keep the session that just connected: hand its media to the application
    /// and watch its events. Comes only in answer to `Connected` while
    /// `Connecting`, or while a make-before-break attempt is in flight (right
    /// after the `DropSession` of the frozen session it replaces); a session
    /// the machine does not keep is dropped.
    KeepSession,
    /// Abandon the connect attempt in flight.
    AbortConnect {
        /// Why.
        reason: Reason,
    },
    /// Repair the current session in place (a WHEP ICE restart): comes only
    /// for a session fed as [`Input::Repairable`](crate::Input::Repairable).
    /// Answer [`Input::RepairFailed`](crate::Input::RepairFailed) if the
    /// repair cannot start or fails; its success shows as progress.
    Repair {
        /// Why: the stall, the lost path or the network change it answers.
        reason: Reason,
    },
    /// Close the current session.
    DropSession {
        /// Why.
        reason: Reason,
    },
    /// The state changed.
    StateChanged {
        /// The state left.
        from: State,
        /// The state entered.
        to: State,
        /// Why.
        reason: Reason,
    },
    /// The machine stopped trying and is `Idle`.
    GaveUp {
        /// Why.
        reason: GiveUpReason,
    },
}

/// Why a transition happened, or why a session or attempt was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The user started the viewer.
    Started,
    /// The user stopped the viewer.
    UserStopped,
    /// The user paused playback while it was stalled for lack of progress.
    UserPaused,
    /// A connect attempt succeeded.
    Connected,
    /// A connect attempt failed.
    ConnectFailed(Retry),
    /// A connect attempt took longer than `connect_timeout`.
    ConnectTimedOut,
    /// The session stalled.
    Stall(StallCause),
    /// Media time advances again.
    ProgressResumed,
    /// Active layers are back.
    LayersBack,
    /// The source says its publisher is live again.
    PublisherActive,
    /// The session stayed stalled for `stall_grace`.
    GraceExpired(StallCause),
    /// The session's transport closed or failed.
    TransportLost(Retry),
    /// The session's events ended without a word: retried later.
    SessionEnded,
    /// The backoff delay elapsed.
    BackoffElapsed,
    /// A live hint cut the backoff short.
    LiveHint,
    /// The network changed: the backoff or the stall was cut short.
    NetworkChanged,
    /// A make-before-break attempt connected: its session replaces the frozen one.
    Replaced,
    /// The session's media path was lost (ICE consent): it may still be repaired.
    PathLost,
    /// Media came back on the session after an in-session repair.
    Repaired,
    /// The in-session repair failed or brought no media within `repair_within`.
    RepairFailed,
    /// The machine gave up.
    GaveUp(GiveUpReason),
}

/// Why the machine stopped trying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUpReason {
    /// An error that retrying cannot fix ([`Retry::Never`]: bad token, forbidden).
    Fatal,
    /// `give_up_after_attempts` consecutive attempts failed.
    MaxAttempts,
    /// The outage lasted longer than `give_up_after`.
    MaxOutage,
    /// Nobody published within `wait_for_publisher`.
    PublisherNeverCame,
}

/// Which deadline [`Machine::poll_timeout`](crate::Machine::poll_timeout) is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timer {
    /// The connect attempt in flight times out.
    ConnectTimeout,
    /// Media time has stood still for `stall_after` (or no first media).
    Stall,
    /// A stalled session's grace runs out.
    StallGrace,
    /// The first remedy of a frozen session starts: its repair in place, or
    /// the make-before-break attempt beside it.
    MakeBeforeBreak,
    /// A repair in place has not brought media within `repair_within`.
    Repair,
    /// The backoff delay ends.
    Backoff,
    /// Playback has been stable for `reset_after`: the attempt count starts over.
    Stable,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Started => f.write_str("started"),
            Reason::UserStopped => f.write_str("stopped by the user"),
            Reason::UserPaused => f.write_str("paused by the user"),
            Reason::Connected => f.write_str("connected"),
            Reason::ConnectFailed(r) => write!(f, "connect failed ({r})"),
            Reason::ConnectTimedOut => f.write_str("connect timed out"),
            Reason::Stall(c) => write!(f, "stall: {c}"),
            Reason::ProgressResumed => f.write_str("media advances again"),
            Reason::LayersBack => f.write_str("layers are back"),
            Reason::PublisherActive => f.write_str("publisher active"),
            Reason::GraceExpired(c) => write!(f, "stalled too long: {c}"),
            Reason::TransportLost(r) => write!(f, "transport lost ({r})"),
            Reason::SessionEnded => f.write_str("session ended"),
            Reason::BackoffElapsed => f.write_str("backoff elapsed"),
            Reason::LiveHint => f.write_str("live hint"),
            Reason::NetworkChanged => f.write_str("network changed"),
            Reason::Replaced => f.write_str("replaced by a new session"),
            Reason::PathLost => f.write_str("media path lost"),
            Reason::Repaired => f.write_str("repaired in place"),
            Reason::RepairFailed => f.write_str("repair failed"),
            Reason::GaveUp(g) => write!(f, "gave up: {g}"),
        }
    }
}

impl std::fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GiveUpReason::Fatal => "fatal error",
            GiveUpReason::MaxAttempts => "too many attempts",
            GiveUpReason::MaxOutage => "outage too long",
            GiveUpReason::PublisherNeverCame => "publisher never came",
        })
    }
}
