//! [`MillicastSource`]: a Millicast stream as a [`StreamSource`].

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::Secret;
use crate::millicast::director;
use crate::millicast::error::MillicastError;
use crate::millicast::offer::{OfferProvider, PendingOffer, SignalingOnly};
use crate::millicast::session::{self, Established, MillicastEvents, Reconnect};
use crate::millicast::signaling::{self, Limits};
use crate::millicast::wire::{
    DirectorFailure, DirectorSuccess, SubscribeRequest, ViewCommand, jwt_stream_name,
};
use crate::millicast::{MillicastMedia, ViewInfo};
use crate::source::{Session, StreamSource};

/// The public Director.
pub const DEFAULT_DIRECTOR: &str = "https://director.millicast.com";

type Refresher = Arc<dyn Fn() -> BoxFuture<'static, Option<String>> + Send + Sync>;

/// A Millicast stream, watched through the Director API and the signaling
/// WebSocket. Each connect attempt makes a fresh Director call (a JWT is good
/// for one connection), opens the socket, sends `view` and hands the session over.
///
/// ```no_run
/// # async fn demo() {
/// use relive::millicast::MillicastSource;
/// use relive::{Policy, Reconnector};
///
/// let source = MillicastSource::new("k9Mwad", "multiview")
///     .token("a subscribe token"); // optional; never logged
/// let viewer = Reconnector::new(source, Policy::default()).spawn();
/// # }
/// ```
pub struct MillicastSource<P: OfferProvider = SignalingOnly> {
    shared: Arc<Shared<P>>,
    http: Option<reqwest::Client>,
}

struct Shared<P> {
    account: String,
    stream: String,
    director: String,
    request_timeout: Duration,
    limits: Limits,
    pinned_source_id: Option<String>,
    token: Mutex<Option<Secret>>,
    refresher: Option<Refresher>,
    provider: P,
}

impl MillicastSource<SignalingOnly> {
    /// Watches stream `stream` of account `account` on the public Director,
    /// signaling only (see [`offer_provider`](MillicastSource::offer_provider)).
    pub fn new(account: impl Into<String>, stream: impl Into<String>) -> Self {
        MillicastSource {
            shared: Arc::new(Shared {
                account: account.into(),
                stream: stream.into(),
                director: DEFAULT_DIRECTOR.to_owned(),
                request_timeout: Duration::from_secs(5),
                limits: Limits::default(),
                pinned_source_id: None,
                token: Mutex::new(None),
                refresher: None,
                provider: SignalingOnly,
            }),
            http: None,
        }
    }
}

impl<P: OfferProvider> MillicastSource<P> {
    fn configure(mut self, f: impl FnOnce(&mut Shared<P>)) -> Self {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => f(shared),
            // Shared only by a session in flight: configure a copy for what follows.
            None => tracing::warn!("MillicastSource reconfigured while in use; ignored"),
        }
        self
    }

    /// The subscribe token of a secured stream. Never logged, never in errors.
    #[must_use]
    pub fn token(self, token: impl Into<String>) -> Self {
        let token = Secret::new(token);
        self.configure(|s| s.token = Mutex::new(Some(token)))
    }

    /// Called when the Director refuses the token (401/403): returns a fresh
    /// token, or `None` to give up. Without a refresher, a refused token is fatal.
    #[must_use]
    pub fn token_refresher<F, Fut>(self, refresher: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        let refresher: Refresher = Arc::new(move || refresher().boxed());
        self.configure(|s| s.refresher = Some(refresher))
    }

    /// The Director's base URL (default [`DEFAULT_DIRECTOR`]); tests point it at 127.0.0.1.
    #[must_use]
    pub fn director_url(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.configure(|s| s.director = url)
    }

    /// How long one Director call may take (default 5 s).
    #[must_use]
    pub fn request_timeout(self, timeout: Duration) -> Self {
        self.configure(|s| s.request_timeout = timeout)
    }

    /// How often to ping the signaling socket and how long to wait for the pong
    /// (default 5 s and 5 s). A missing pong is a lost transport.
    #[must_use]
    pub fn keepalive(self, every: Duration, pong_timeout: Duration) -> Self {
        self.configure(|s| {
            s.limits.keepalive = every.max(Duration::from_millis(10));
            s.limits.pong_timeout = pong_timeout.max(Duration::from_millis(10));
        })
    }

    /// How long `view` may take to be answered (default 10 s).
    #[must_use]
    pub fn view_timeout(self, timeout: Duration) -> Self {
        self.configure(|s| s.limits.view_timeout = timeout)
    }

    /// The largest signaling frame accepted (default 1 MiB); larger ones end the session.
    #[must_use]
    pub fn max_frame(self, bytes: usize) -> Self {
        self.configure(|s| s.limits.max_frame = bytes.max(1024))
    }

    /// Shares one HTTP client among many sources (a client holds a connection
    /// pool and TLS roots: one per process is enough). Its own timeouts apply.
    #[must_use]
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Watch only this source of a multi-source stream.
    #[must_use]
    pub fn pinned_source(self, source_id: impl Into<String>) -> Self {
        let id = source_id.into();
        self.configure(|s| s.pinned_source_id = Some(id))
    }

    /// Uses `provider` for SDP offers and media (the `webrtc` feature has a real one).
    pub fn offer_provider<Q: OfferProvider>(self, provider: Q) -> MillicastSource<Q> {
        let s = &self.shared;
        MillicastSource {
            shared: Arc::new(Shared {
                account: s.account.clone(),
                stream: s.stream.clone(),
                director: s.director.clone(),
                request_timeout: s.request_timeout,
                limits: s.limits,
                pinned_source_id: s.pinned_source_id.clone(),
                token: Mutex::new(current_token(s)),
                refresher: s.refresher.clone(),
                provider,
            }),
            http: self.http,
        }
    }

    fn client(&mut self) -> Result<reqwest::Client, MillicastError> {
        if let Some(http) = &self.http {
            return Ok(http.clone());
        }
        let http = reqwest::Client::builder()
            .timeout(self.shared.request_timeout)
            .connect_timeout(self.shared.request_timeout)
            .build()
            .map_err(|e| MillicastError::Client(e.without_url().to_string()))?;
        self.http = Some(http.clone());
        Ok(http)
    }
}

impl<P> fmt::Debug for MillicastSource<P>
where
    P: OfferProvider,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let has_token = self
            .shared
            .token
            .lock()
            .map(|t| t.is_some())
            .unwrap_or(false);
        f.debug_struct("MillicastSource")
            .field("account", &self.shared.account)
            .field("stream", &self.shared.stream)
            .field("director", &self.shared.director)
            .field("token", &if has_token { "***" } else { "none" })
            .finish_non_exhaustive()
    }
}

impl<P: OfferProvider> StreamSource for MillicastSource<P> {
    type Media = MillicastMedia<P::Media>;
    type Events = MillicastEvents<P::Media>;
    type Error = MillicastError;

    fn connect(
        &mut self,
        attempt: u32,
    ) -> impl Future<Output = Result<Session<Self::Media, Self::Events>, MillicastError>> + Send + 'static
    {
        let shared = self.shared.clone();
        let http = self.client();
        let limits = shared.limits;
        async move {
            let http = http?;
            tracing::debug!(attempt, "director subscribe");
            let established = establish(shared.clone(), http.clone()).await?;
            let reconnect: Reconnect<P::Media> =
                Arc::new(move || establish(shared.clone(), http.clone()).boxed());
            let (media, events) = session::spawn(established, limits, reconnect);
            Ok(Session { media, events })
        }
    }

    fn describe(&self) -> String {
        format!("{}/{}", self.shared.account, self.shared.stream)
    }
}

/// One full connection: Director, socket, `view`, answer applied.
async fn establish<P: OfferProvider>(
    shared: Arc<Shared<P>>,
    http: reqwest::Client,
) -> Result<Established<P::Media>, MillicastError> {
    let director = subscribe(&shared, &http).await?;
    let url = director
        .signaling_url()
        .ok_or_else(|| MillicastError::Connect("no signaling URL".to_owned()))?;
    let stream_id = jwt_stream_name(director.jwt.expose()).unwrap_or_else(|| shared.stream.clone());
    let offer = shared
        .provider
        .create_offer(&director.ice_servers)
        .await
        .map_err(|e| MillicastError::Media(e.0))?;
    let mut ws = signaling::open(&url, &shared.limits).await?;
    let mut command = ViewCommand::new(offer.sdp(), stream_id);
    command.pinned_source_id = shared.pinned_source_id.clone();
    let (answer, early) = signaling::view(&mut ws, 1, &command, &shared.limits).await?;
    let media = offer
        .accept(&answer.sdp)
        .await
        .map_err(|e| MillicastError::Media(e.0))?;
    Ok(Established {
        ws,
        media_events: media.events,
        media: MillicastMedia {
            media: media.media,
            view: ViewInfo {
                subscriber_id: answer.subscriber_id,
                cluster_id: answer.cluster_id,
                stream_view_id: answer.stream_view_id,
            },
        },
        early,
    })
}

/// The Director call, with one retry on a refreshed token after a 401/403.
async fn subscribe<P>(
    shared: &Shared<P>,
    http: &reqwest::Client,
) -> Result<DirectorSuccess, MillicastError> {
    let request = SubscribeRequest {
        stream_account_id: shared.account.clone(),
        stream_name: shared.stream.clone(),
        unauthorized_subscribe: None,
    };
    let token = current_token(shared);
    match director::subscribe(http, &shared.director, &request, token.as_ref()).await {
        Err(MillicastError::Director(DirectorFailure::Unauthorized { .. }))
            if shared.refresher.is_some() =>
        {
            let refresh = shared.refresher.as_ref().map(|r| r());
            let fresh = match refresh {
                Some(refresh) => refresh.await.ok_or(MillicastError::TokenRefused)?,
                None => return Err(MillicastError::TokenRefused),
            };
            tracing::info!("subscribe token refreshed");
            let fresh = Secret::new(fresh);
            if let Ok(mut token) = shared.token.lock() {
                *token = Some(fresh.clone());
            }
            match director::subscribe(http, &shared.director, &request, Some(&fresh)).await {
                Err(MillicastError::Director(DirectorFailure::Unauthorized { .. })) => {
                    Err(MillicastError::TokenRefused)
                }
                other => other,
            }
        }
        other => other,
    }
}

fn current_token<P>(shared: &Shared<P>) -> Option<Secret> {
    shared.token.lock().ok().and_then(|t| t.clone())
}
