//! Tokens, JWTs and other credentials never reach logs, `Debug` or errors: whole sessions
//! traced at TRACE for every crate, the `log` crate's records included (as an application's
//! `tracing_subscriber::fmt().init()` sees them), filtered with the directives
//! `relive::logging` documents. The same records without those directives do hold the
//! secrets: the directives are what keeps them out. One module per adapter.
#![allow(clippy::unwrap_used)] // test helpers fail loudly, like the tests

#[path = "../support/mod.rs"]
mod support;

#[cfg(all(feature = "millicast", feature = "testkit"))]
mod millicast;
#[cfg(all(feature = "relay", feature = "testkit"))]
mod relay;
#[cfg(all(feature = "webrtc", feature = "testkit"))]
mod whep;

/// Panics if `everything` holds `secret`, as text or hex-encoded (tungstenite logs frame
/// payloads in hex).
#[cfg(all(feature = "millicast", feature = "testkit"))]
fn assert_absent(everything: &str, secret: &str) {
    assert!(
        !everything.contains(secret),
        "{secret:?} leaked:\n{everything}"
    );
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(
        !everything.contains(&hex),
        "{secret:?} leaked hex-encoded:\n{everything}"
    );
}
