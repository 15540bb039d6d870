//! Millicast (Dolby.io real-time streaming) signaling: the Director API and the
//! WebSocket `view` command with its events.

pub mod wire;
