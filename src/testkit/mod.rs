//! Real local servers and scripted sources for tests, examples and users' own tests.

#[cfg(feature = "millicast")]
pub mod millicast;
pub mod proxy;
