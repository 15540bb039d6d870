//! [`WhepSource`]: a WHEP endpoint (WebRTC-HTTP Egress Protocol) as a [`StreamSource`], on the
//! same receive-only peer as Millicast.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{FutureExt, Stream};
use reqwest::header;
use tokio::sync::oneshot;

use crate::Secret;
use crate::http_settings::HttpSettings;
use crate::offer::{MediaEvent, PendingOffer};
use crate::source::{RepairFuture, Session, SourceEvent, StreamSource};
use crate::webrtc::error::WhepError;
use crate::webrtc::media::WebRtcMedia;
use crate::webrtc::peer::{PeerCommand, PeerControl};
use crate::webrtc::provider::ReceivePeers;
use crate::webrtc::sdpfrag::{self, IceFragment};

/// The largest answer body read.
const BODY_LIMIT: usize = 256 * 1024;
/// How long the best-effort `DELETE` of a left session may take.
const DELETE_TIMEOUT: Duration = Duration::from_secs(5);

/// A stream behind a WHEP endpoint: each connect attempt `POST`s a recvonly offer as
/// `application/sdp`, expects `201 Created` with the answer and a `Location`, and starts a
/// receive-only peer ([`ReceivePeers`]). When the session is dropped, the resource is
/// `DELETE`d (best effort, in the background).
///
/// | answer | relive |
/// |---|---|
/// | 201 + SDP + `Location` | session; progress from RTP |
/// | 404, 409 (`Stream not found`) | wait for the publisher |
/// | 401, 403 | give up (bad token) |
/// | 5xx, 408, 429, timeouts, connection failures | retry with backoff |
/// | other 4xx | give up (the server refuses our offer) |
///
/// WHEP has no event channel: a publisher that stops shows as media time standing still, and
/// the session is dropped after the stall grace.
///
/// **Repair in place** (RFC 9725 §4.3, on str0m's ICE restart): when the picture stalls, the
/// ICE path is lost or the network changes, the reconnect machine first asks for a repair
/// ([`Policy::repair`](crate::Policy::repair)): the peer makes new ICE credentials and the
/// resource is `PATCH`ed with them as an `application/trickle-ice-sdpfrag` body and
/// `If-Match: *`; a `200` carries the server's new credentials and candidates, which the peer
/// applies on the same DTLS session and tracks. No new `POST`, no new resource, the same
/// timeline. A `405` or `501` means the server has no ICE restart: remembered for this
/// source's endpoint, whose later sessions are not offered repairs. Any failure, or no media
/// within [`repair_within`](crate::Policy::repair_within), escalates to a new session.
///
/// ```no_run
/// # fn demo() {
/// use relive::webrtc::WhepSource;
/// use relive::{Policy, Reconnector};
///
/// let source = WhepSource::new("https://example.com/whep/stream").token("a bearer token");
/// let viewer = Reconnector::new(source, Policy::default()).spawn();
/// # }
/// ```
///
/// Every builder method takes effect for the connect attempts that start after it, even on a
/// source whose sessions are running (when `connect` is called directly): the settings are
/// copied on write, the running sessions keep theirs, and no setting is ever ignored.
pub struct WhepSource {
    config: Arc<Config>,
    /// Set once a resource of the endpoint answered an ICE restart with 405 or 501.
    no_restart: Arc<AtomicBool>,
}

#[derive(Clone)]
struct Config {
    endpoint: String,
    http: HttpSettings,
    peers: ReceivePeers,
}

impl WhepSource {
    /// Watches the WHEP endpoint at `endpoint` with default peers ([`ReceivePeers::new`]).
    pub fn new(endpoint: impl Into<String>) -> Self {
        WhepSource {
            config: Arc::new(Config {
                endpoint: endpoint.into(),
                http: HttpSettings::default(),
                peers: ReceivePeers::new(),
            }),
            no_restart: Arc::default(),
        }
    }

    /// Changes the settings of the attempts to come; running sessions keep a copy of theirs.
    fn configure(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// The bearer token sent as `Authorization: Bearer ...`. Never logged, never in errors.
    #[must_use]
    pub fn token(self, token: impl Into<String>) -> Self {
        let token = Secret::new(token);
        self.configure(|c| c.http.set_token(token))
    }

    /// The peers to make (bind address, queue, tick period).
    #[must_use]
    pub fn peers(self, peers: ReceivePeers) -> Self {
        self.configure(|c| c.peers = peers)
    }

    /// How long the `POST` may take (default 5 s). Ignored by a client given with
    /// [`http_client`](WhepSource::http_client), whose own timeouts apply.
    #[must_use]
    pub fn request_timeout(self, timeout: Duration) -> Self {
        self.configure(|c| c.http.set_request_timeout(timeout))
    }

    /// Shares one HTTP client among many sources (a client holds a connection
    /// pool and TLS roots: one per process is enough). Its own timeouts apply.
    #[must_use]
    pub fn http_client(self, client: reqwest::Client) -> Self {
        self.configure(|c| c.http.set_client(client))
    }
}

/// The endpoint without its query, which may carry a token.
fn redacted(endpoint: &str) -> &str {
    endpoint.split(['?', '#']).next().unwrap_or(endpoint)
}

impl fmt::Debug for WhepSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = if self.config.http.token().is_some() {
            "***"
        } else {
            "none"
        };
        f.debug_struct("WhepSource")
            .field("endpoint", &redacted(&self.config.endpoint))
            .field("token", &token)
            .finish_non_exhaustive()
    }
}

impl StreamSource for WhepSource {
    type Media = WebRtcMedia;
    type Events = WhepEvents;
    type Error = WhepError;

    fn connect(
        &mut self,
        attempt: u32,
    ) -> impl Future<Output = Result<Session<WebRtcMedia, WhepEvents>, WhepError>> + Send + 'static
    {
        let config = Arc::clone(&self.config);
        let no_restart = Arc::clone(&self.no_restart);
        let http = config.http.client().map_err(WhepError::Client);
        async move {
            let http = http?;
            tracing::debug!(attempt, "WHEP offer");
            let offer = config
                .peers
                .offer()
                .await
                .map_err(|e| WhepError::Media(e.0))?;
            // The fragment of a restart names the offer's media sections.
            let mids = sdpfrag::mids(offer.sdp());
            let (answer, resource) = post(&http, &config, offer.sdp()).await?;
            let (session, control) = offer.start(&answer).map_err(|e| WhepError::Media(e.0))?;
            Ok(Session {
                media: session.media,
                events: WhepEvents {
                    events: session.events,
                    ended: false,
                    repair: Arc::new(RepairLink {
                        control,
                        mids,
                        resource,
                        no_restart,
                    }),
                },
            })
        }
    }

    fn can_repair(&self, events: &WhepEvents) -> bool {
        !events.ended
            && !self.no_restart.load(Ordering::Relaxed)
            && !events.repair.control.is_closed()
    }

    fn repair(&mut self, events: &mut WhepEvents) -> Option<RepairFuture<WhepError>> {
        if !self.can_repair(events) {
            return None;
        }
        let link = Arc::clone(&events.repair);
        Some(async move { link.restart_ice().await }.boxed())
    }

    fn describe(&self) -> String {
        redacted(&self.config.endpoint).to_owned()
    }
}

/// The `POST`: the answer and the resource to delete on leave.
async fn post(
    http: &reqwest::Client,
    config: &Config,
    offer: &str,
) -> Result<(String, Resource), WhepError> {
    let mut request = http
        .post(&config.endpoint)
        .header(header::CONTENT_TYPE, "application/sdp")
        .header(header::ACCEPT, "application/sdp")
        .body(offer.to_owned());
    let token = config.http.token();
    if let Some(token) = &token {
        request = request.bearer_auth(token.expose());
    }
    let mut response = request.send().await?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let url = response.url().clone();
    let retry_after = crate::http_status::retry_after_of(&response);
    let body = read_at_most(&mut response, BODY_LIMIT).await?;
    if status != 201 {
        let retry_after_ms = retry_after.map(|d| d.as_millis() as u64);
        tracing::debug!(status, retry_after_ms, "WHEP offer refused");
        return Err(WhepError::from_status(status, &body, retry_after));
    }
    let location =
        location.ok_or_else(|| WhepError::BadResponse("201 without a Location".to_owned()))?;
    let resource = Resource {
        http: http.clone(),
        url: url
            .join(&location)
            .map_err(|_| WhepError::BadResponse("unusable Location".to_owned()))?,
        token,
    };
    if !body.trim_start().starts_with("v=0") {
        // `resource` is dropped here: the server's session is deleted.
        return Err(WhepError::BadResponse("the answer is not SDP".to_owned()));
    }
    Ok((body, resource))
}

/// The body as text, at most `limit` bytes.
async fn read_at_most(response: &mut reqwest::Response, limit: usize) -> Result<String, WhepError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Err(WhepError::BadResponse(format!("answer over {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// A created WHEP resource: `DELETE`d in the background when dropped.
struct Resource {
    http: reqwest::Client,
    url: reqwest::Url,
    token: Option<Secret>,
}

impl Drop for Resource {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!("no runtime to DELETE the WHEP resource");
            return;
        };
        let mut request = self.http.delete(self.url.clone()).timeout(DELETE_TIMEOUT);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        runtime.spawn(async move {
            match request.send().await {
                Ok(response) => {
                    tracing::debug!(status = response.status().as_u16(), "WHEP resource deleted");
                }
                Err(e) => tracing::debug!(error = %e.without_url(), "WHEP DELETE failed"),
            }
        });
    }
}

/// What a repair of one session needs: the peer to restart, the resource to `PATCH`.
/// Shared with a repair in flight, so the resource is `DELETE`d once both are gone.
struct RepairLink {
    control: PeerControl,
    /// The offer's mids, for the fragment's bundle group.
    mids: Vec<String>,
    resource: Resource,
    no_restart: Arc<AtomicBool>,
}

impl RepairLink {
    /// One ICE restart: the peer's new offer, the `PATCH` with its fragment, the server's
    /// fragment applied.
    async fn restart_ice(&self) -> Result<(), WhepError> {
        let offer = self.ask(PeerCommand::Restart).await?;
        let ours = IceFragment::parse(&offer).map_err(|e| WhepError::Media(e.to_string()))?;
        let theirs = self.patch(ours.to_body(&self.mids)).await?;
        self.ask(|reply| PeerCommand::Accept(theirs, reply)).await
    }

    /// Sends the peer a command and waits for its reply.
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, String>>) -> PeerCommand,
    ) -> Result<T, WhepError> {
        let gone = || WhepError::Media("the peer is gone".to_owned());
        let (tx, rx) = oneshot::channel();
        self.control.send(command(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?.map_err(WhepError::Media)
    }

    /// The `PATCH` of the resource with our fragment; the server's fragment.
    async fn patch(&self, body: String) -> Result<IceFragment, WhepError> {
        let resource = &self.resource;
        // RFC 9725 §4.3.2: an ICE restart matches any entity (`*`), so a client that only
        // restarts ICE (no trickle) needs none of the resource's entity tags.
        let mut request = resource
            .http
            .patch(resource.url.clone())
            .header(header::CONTENT_TYPE, sdpfrag::CONTENT_TYPE)
            .header(header::IF_MATCH, "*")
            .body(body);
        if let Some(token) = &resource.token {
            request = request.bearer_auth(token.expose());
        }
        let mut response = request.send().await?;
        let status = response.status().as_u16();
        if matches!(status, 405 | 501) {
            self.no_restart.store(true, Ordering::Relaxed);
            tracing::info!(
                status,
                "the WHEP server has no ICE restart; not asked again"
            );
            return Err(WhepError::RepairUnsupported { status });
        }
        let body = read_at_most(&mut response, sdpfrag::MAX_FRAGMENT).await?;
        if status != 200 {
            tracing::debug!(status, "WHEP ICE restart refused");
            return Err(WhepError::repair_refused(status, &body));
        }
        let fragment = IceFragment::parse(&body)
            .map_err(|e| WhepError::BadResponse(format!("ICE restart answer: {e}")))?;
        tracing::debug!("WHEP ICE restart answered");
        Ok(fragment)
    }
}

/// The events of one WHEP session: progress from RTP, and the loss of the media path.
/// Dropping it ends the peer and `DELETE`s the resource.
pub struct WhepEvents {
    events: BoxStream<'static, MediaEvent>,
    ended: bool,
    repair: Arc<RepairLink>,
}

impl fmt::Debug for WhepEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhepEvents")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Stream for WhepEvents {
    type Item = SourceEvent<WebRtcMedia, WhepError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let event = match self.events.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(MediaEvent::Progress(t))) => SourceEvent::Progress(t),
            Poll::Ready(Some(MediaEvent::Lost(why))) => SourceEvent::Lost(WhepError::Media(why)),
            Poll::Ready(Some(MediaEvent::PathLost(why))) => {
                SourceEvent::PathLost(WhepError::Media(why))
            }
            Poll::Ready(None) => SourceEvent::Lost(WhepError::Media("media path ended".to_owned())),
        };
        self.ended = matches!(event, SourceEvent::Lost(_));
        Poll::Ready(Some(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_shown_without_its_query() {
        let source = WhepSource::new("https://h/whep/s?token=hunter2#x").token("secret-token");
        let debug = format!("{source:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("secret-token"),
            "{debug}"
        );
        assert_eq!(source.describe(), "https://h/whep/s");
    }
}
