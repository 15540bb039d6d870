//! relive — keeps live-stream viewers watching.
#![forbid(unsafe_code)]

#[cfg(feature = "millicast")]
pub mod millicast;
#[cfg(feature = "testkit")]
pub mod testkit;
