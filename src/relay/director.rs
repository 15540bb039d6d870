//! The Director proxy: the relay makes the Millicast subscribe call for a viewer, with the
//! account and subscribe tokens that stay on the server, and hands back `urls` and `jwt`.

use std::time::Duration;

use crate::millicast::MillicastError;
use crate::millicast::director;
use crate::millicast::wire::{DirectorFailure, SubscribeRequest};
use crate::relay::RelayError;
use crate::relay::config::DirectorConfig;
use crate::relay::protocol::{ErrorCode, ServerFrame, StreamName};

/// Calls the Director for viewers; one per relay.
#[derive(Debug)]
pub(crate) struct DirectorProxy {
    config: DirectorConfig,
    http: reqwest::Client,
}

impl DirectorProxy {
    pub(crate) fn new(config: DirectorConfig) -> Result<Self, RelayError> {
        let timeout = Duration::from_millis(config.request_timeout_ms.max(1));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| RelayError::Config(format!("http client: {}", e.without_url())))?;
        Ok(DirectorProxy { config, http })
    }

    /// The subscribe answer for `stream` as a `director` frame, or the `error` frame saying why
    /// not.
    pub(crate) async fn subscribe(&self, stream: StreamName, id: Option<u64>) -> ServerFrame {
        let request = SubscribeRequest {
            stream_account_id: self.config.account_id.clone(),
            stream_name: stream.as_str().to_owned(),
            unauthorized_subscribe: None,
        };
        let token = self.config.subscribe_token(&stream);
        let result = director::subscribe(&self.http, &self.config.url, &request, token).await;
        match result {
            Ok(success) => {
                tracing::debug!(%stream, "director answered for a viewer");
                ServerFrame::Director {
                    stream,
                    id,
                    urls: success.urls,
                    jwt: success.jwt,
                    ice_servers: success.ice_servers,
                }
            }
            Err(error) => {
                tracing::info!(%stream, %error, "director call failed");
                ServerFrame::Error {
                    code: code(&error),
                    message: error.to_string(),
                    stream: Some(stream),
                    id,
                    fatal: false,
                }
            }
        }
    }
}

fn code(error: &MillicastError) -> ErrorCode {
    match error {
        MillicastError::Director(DirectorFailure::NotPublished { .. }) => ErrorCode::NotPublished,
        MillicastError::Director(DirectorFailure::Unauthorized { .. }) => {
            ErrorCode::DirectorUnauthorized
        }
        _ => ErrorCode::DirectorFailed,
    }
}
