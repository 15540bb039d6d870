//! [`MillicastSource`]: a Millicast stream as a [`StreamSource`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use crate::http_settings::{HttpSettings, TokenRefresher};
use crate::millicast::director;
use crate::millicast::error::MillicastError;
use crate::millicast::offer::SignalingOnly;
use crate::millicast::session::{self, Established, MillicastEvents, Reconnect};
use crate::millicast::signaling::{self, Limits};
use crate::millicast::wire::{
    DirectorFailure, DirectorSuccess, SubscribeRequest, ViewCommand, jwt_stream_name,
};
use crate::millicast::{MillicastMedia, ViewInfo};
use crate::offer::{OfferProvider, PendingOffer};
use crate::source::{Session, StreamSource};
use crate::{NetError, NetErrorKind, Secret};

/// The public Director.
pub const DEFAULT_DIRECTOR: &str = "https://director.millicast.com";

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
///
/// Every builder method takes effect for the connect attempts that start after it, even on a
/// source whose sessions are running (when `connect` is called directly): the settings are
/// copied on write, the running sessions keep theirs, and no setting is ever ignored.
pub struct MillicastSource<P: OfferProvider = SignalingOnly> {
    shared: Arc<Shared<P>>,
}

struct Shared<P> {
    account: String,
    stream: String,
    director: String,
    limits: Limits,
    pinned_source_id: Option<String>,
    http: HttpSettings,
    provider: Arc<P>,
}

/// By hand: a derive would ask `P: Clone`, but the provider is shared, never copied.
impl<P> Clone for Shared<P> {
    fn clone(&self) -> Self {
        Shared {
            account: self.account.clone(),
            stream: self.stream.clone(),
            director: self.director.clone(),
            limits: self.limits,
            pinned_source_id: self.pinned_source_id.clone(),
            http: self.http.clone(),
            provider: Arc::clone(&self.provider),
        }
    }
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
                limits: Limits::default(),
                pinned_source_id: None,
                http: HttpSettings::default(),
                provider: Arc::new(SignalingOnly),
            }),
        }
    }
}

impl<P: OfferProvider> MillicastSource<P> {
    /// Changes the settings of the attempts to come; running sessions keep a copy of theirs.
    fn configure(mut self, f: impl FnOnce(&mut Shared<P>)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// The subscribe token of a secured stream. Never logged, never in errors.
    #[must_use]
    pub fn token(self, token: impl Into<String>) -> Self {
        let token = Secret::new(token);
        self.configure(|s| s.http.set_token(token))
    }

    /// Called when the Director refuses the token (401/403): returns a fresh
    /// token, or `None` to give up. Without a refresher, a refused token is fatal.
    #[must_use]
    pub fn token_refresher<F, Fut>(self, refresher: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        let refresher: TokenRefresher = Arc::new(move || refresher().boxed());
        self.configure(|s| s.http.set_refresher(refresher))
    }

    /// The Director's base URL (default [`DEFAULT_DIRECTOR`]); tests point it at 127.0.0.1.
    #[must_use]
    pub fn director_url(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.configure(|s| s.director = url)
    }

    /// How long one Director call may take (default 5 s). Ignored by a client given with
    /// [`http_client`](MillicastSource::http_client), whose own timeouts apply.
    #[must_use]
    pub fn request_timeout(self, timeout: Duration) -> Self {
        self.configure(|s| s.http.set_request_timeout(timeout))
    }

    /// How often to ping the signaling socket and how long to wait for the pong
    /// (default 5 s and 5 s). A missing pong is a lost transport.
    ///
    /// In a test on paused time (`#[tokio::test(start_paused = true)]`) against
    /// a real socket, such as the testkit's server, the pong takes real time
    /// while tokio's clock jumps ahead whenever the runtime waits: give the pong
    /// a timeout longer than the test (`keepalive(Duration::from_secs(5),
    /// Duration::from_secs(24 * 3600))`), or every ping "times out".
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
    pub fn http_client(self, client: reqwest::Client) -> Self {
        self.configure(|s| s.http.set_client(client))
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
                limits: s.limits,
                pinned_source_id: s.pinned_source_id.clone(),
                http: s.http.clone(),
                provider: Arc::new(provider),
            }),
        }
    }
}

impl<P> fmt::Debug for MillicastSource<P>
where
    P: OfferProvider,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let has_token = self.shared.http.token().is_some();
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
        let http = shared.http.client().map_err(MillicastError::Client);
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
    let url = director.signaling_url().ok_or_else(|| {
        MillicastError::Connect(NetError::new(NetErrorKind::Other, "no signaling URL"))
    })?;
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
    let token = shared.http.token();
    match director::subscribe(http, &shared.director, &request, token.as_ref()).await {
        Err(MillicastError::Director(DirectorFailure::Unauthorized { .. }))
            if shared.http.refresher().is_some() =>
        {
            let refresh = shared.http.refresher().map(|r| r());
            let fresh = match refresh {
                Some(refresh) => refresh.await.ok_or(MillicastError::TokenRefused)?,
                None => return Err(MillicastError::TokenRefused),
            };
            tracing::info!("subscribe token refreshed");
            let fresh = Secret::new(fresh);
            shared.http.store_refreshed(fresh.clone());
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
