//! [`HttpSettings`]: the HTTP side shared by the sources that call an HTTP endpoint per attempt
//! (the Millicast Director, WHEP): the client, its timeout, the bearer token and its refresher.
//!
//! A source keeps its settings behind an `Arc` that its sessions share, and changes them copy on
//! write (`Arc::make_mut`): a builder call always takes effect for the attempts that follow, and
//! a session already running keeps the settings it started with. Nothing is ever dropped.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::Secret;

/// Gives a fresh token after the server refused one, or `None` to give up.
pub(crate) type TokenRefresher = Arc<dyn Fn() -> BoxFuture<'static, Option<String>> + Send + Sync>;

/// The default time one HTTP call may take.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP client, timeout, bearer token and token refresher of a source.
#[derive(Clone)]
pub(crate) struct HttpSettings {
    /// A client given by the application; its own timeouts apply.
    shared_client: Option<reqwest::Client>,
    /// The client built from `request_timeout` at the first attempt; reset when that changes.
    built_client: Arc<Mutex<Option<reqwest::Client>>>,
    request_timeout: Duration,
    /// The current token, shared with the sessions started from these settings so that a token
    /// refreshed by one attempt serves the next; a new token set by the builder starts a new cell.
    token: Arc<Mutex<Option<Secret>>>,
    refresher: Option<TokenRefresher>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            shared_client: None,
            built_client: Arc::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            token: Arc::default(),
            refresher: None,
        }
    }
}

impl HttpSettings {
    /// Sets the bearer token.
    pub(crate) fn set_token(&mut self, token: Secret) {
        self.token = Arc::new(Mutex::new(Some(token)));
    }

    /// Remembers a token a refresher gave, for the attempts that follow.
    pub(crate) fn store_refreshed(&self, token: Secret) {
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = Some(token);
    }

    /// The current bearer token.
    pub(crate) fn token(&self) -> Option<Secret> {
        self.token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sets the token refresher.
    pub(crate) fn set_refresher(&mut self, refresher: TokenRefresher) {
        self.refresher = Some(refresher);
    }

    /// The token refresher, if any.
    pub(crate) fn refresher(&self) -> Option<&TokenRefresher> {
        self.refresher.as_ref()
    }

    /// Sets the timeout of each call of the client built by the source.
    pub(crate) fn set_request_timeout(&mut self, timeout: Duration) {
        self.request_timeout = timeout;
        self.built_client = Arc::default();
    }

    /// Uses the application's client (and its timeouts) instead of building one.
    pub(crate) fn set_client(&mut self, client: reqwest::Client) {
        self.shared_client = Some(client);
    }

    /// The client to call with: the application's, or one built once with `request_timeout`
    /// (the error is the build failure, without any URL).
    pub(crate) fn client(&self) -> Result<reqwest::Client, crate::NetError> {
        if let Some(client) = &self.shared_client {
            return Ok(client.clone());
        }
        let mut built = self
            .built_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = &*built {
            return Ok(client.clone());
        }
        let client = reqwest::Client::builder()
            .timeout(self.request_timeout)
            .connect_timeout(self.request_timeout)
            .build()
            .map_err(crate::NetError::from_reqwest)?;
        *built = Some(client.clone());
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_made_on_write_keeps_every_setting() {
        let mut settings = HttpSettings::default();
        settings.set_token(Secret::new("old"));
        let mut shared = Arc::new(settings);
        let session = Arc::clone(&shared);
        Arc::make_mut(&mut shared).set_token(Secret::new("new"));
        Arc::make_mut(&mut shared).set_request_timeout(Duration::from_millis(300));
        assert_eq!(
            shared.token().map(|t| t.expose().to_owned()).as_deref(),
            Some("new")
        );
        assert_eq!(shared.request_timeout, Duration::from_millis(300));
        assert_eq!(
            session.token().map(|t| t.expose().to_owned()).as_deref(),
            Some("old")
        );
        assert_eq!(session.request_timeout, DEFAULT_REQUEST_TIMEOUT);
    }

    #[test]
    fn a_refreshed_token_serves_the_copies_that_share_its_cell() {
        let shared = Arc::new(HttpSettings::default());
        let mut copy = Arc::clone(&shared);
        Arc::make_mut(&mut copy).set_request_timeout(Duration::from_secs(1));
        shared.store_refreshed(Secret::new("fresh"));
        assert_eq!(
            copy.token().map(|t| t.expose().to_owned()).as_deref(),
            Some("fresh")
        );
    }
}
