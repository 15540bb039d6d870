//! Real local servers and scripted sources for tests, examples and users' own
//! tests, like tokio's `test-util`.
//!
//! - [`MemoryStream`]: an in-memory live stream with a script (publish, freeze,
//!   drop sessions, fail attempts) and its [`MemorySource`].

mod memory;

pub use memory::{MemoryError, MemoryMedia, MemorySource, MemoryStream};
