//! [`Secret`]: a string that must never reach a log, shared by every adapter that holds a token.

use std::fmt;

/// A string that must never reach a log: a JWT, a subscribe or publish token, a TURN credential,
/// or a URL carrying one of those.
///
/// `Debug` and `Display` print `***`; [`Secret::expose`] gives the value to the code that sends it.
/// With the `millicast` or `testkit` feature (which bring serde) it serializes as the plain
/// string: serialization is transport, not logging.
///
/// ```
/// use relive::Secret;
///
/// let token = Secret::new("eyJhbGciOi.top.secret");
/// assert_eq!(format!("{token} {token:?}"), "*** Secret(***)");
/// assert_eq!(token.expose(), "eyJhbGciOi.top.secret");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
#[cfg_attr(
    any(feature = "millicast", feature = "testkit"),
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let secret = Secret::new("eyJhbGciOi.top.secret");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(secret.to_string(), "***");
        assert_eq!(secret.expose(), "eyJhbGciOi.top.secret");
    }

    #[cfg(any(feature = "millicast", feature = "testkit"))]
    #[test]
    #[allow(clippy::unwrap_used)]
    fn secret_serializes_as_plain_string() {
        let json = serde_json::to_string(&Secret::new("abc")).unwrap();
        assert_eq!(json, "\"abc\"");
        let back: Secret = serde_json::from_str(&json).unwrap();
        assert_eq!(back.expose(), "abc");
    }
}
