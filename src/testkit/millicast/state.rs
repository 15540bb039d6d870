//! The server's state in one place: live streams, issued tokens, open viewer sockets, faults and
//! counters, behind one mutex that is never held across an await.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::{mpsc, oneshot, watch};

use super::DirectorFault;
use super::faults::{self, WhepFault};
use super::media::Media;
use super::wire_log::WireLog;

/// Frames queued per viewer before further broadcasts to it are dropped.
pub(super) const VIEWER_QUEUE: usize = 256;

/// How a viewer socket is to end when the test asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Control {
    /// Send a close frame first.
    Close,
    /// Drop the connection without a close frame.
    Kill,
}

/// Which viewers of a stream a frame goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Audience {
    /// Only sockets with an accepted `view` (events).
    Viewing,
    /// Every open socket (raw test frames).
    AllSockets,
}

/// Everything the handle, the Director and the viewer tasks share.
pub(super) struct Shared {
    pub(super) account: String,
    pub(super) addr: SocketAddr,
    state: Mutex<State>,
    /// Bumped on every change a `wait_*` helper may wait for.
    pub(super) changes: watch::Sender<u64>,
    /// Bumped on every `set_director_fault*`: releases hanging Director requests.
    pub(super) hang_release: watch::Sender<u64>,
    pub(super) ignore_pings: watch::Sender<bool>,
    pub(super) shutdown: watch::Sender<bool>,
    /// Publisher peers and their switches (real media with feature `webrtc`).
    pub(super) media: Media,
    /// Where the wire log goes (nowhere unless asked).
    pub(super) wire: WireLog,
    director_requests: AtomicU64,
    view_requests: AtomicU64,
    next_id: AtomicU64,
    random: RandomState,
}

#[derive(Default)]
struct State {
    live: HashSet<String>,
    /// Issued JWT → the stream it is for.
    tokens: HashMap<String, String>,
    viewers: HashMap<u64, Viewer>,
    fault: Option<(DirectorFault, Option<u32>)>,
    whep_fault: Option<(WhepFault, Option<u32>)>,
    secure_token: Option<String>,
    reject_view: bool,
}

struct Viewer {
    stream: String,
    viewing: bool,
    frames: mpsc::Sender<String>,
    control: Option<oneshot::Sender<Control>>,
}

/// Removes a viewer from the state when its task ends, however it ends.
pub(super) struct Registration<'a> {
    shared: &'a Shared,
    pub(super) id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.shared.lock().viewers.remove(&self.id);
        self.shared.changed();
    }
}

impl Shared {
    pub(super) fn new(
        account: String,
        addr: SocketAddr,
        secure_token: Option<String>,
        wire: WireLog,
    ) -> Self {
        Self {
            account,
            addr,
            state: Mutex::new(State {
                secure_token,
                ..State::default()
            }),
            changes: watch::Sender::new(0),
            hang_release: watch::Sender::new(0),
            ignore_pings: watch::Sender::new(false),
            shutdown: watch::Sender::new(false),
            media: Media::default(),
            wire,
            director_requests: AtomicU64::new(0),
            view_requests: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            random: RandomState::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A fresh id, unique within this server.
    pub(super) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A random-looking number, different per server and per `n`.
    pub(super) fn random(&self, n: u64) -> u64 {
        self.random.hash_one(n)
    }

    pub(super) fn set_live(&self, stream: &str, live: bool) {
        let mut state = self.lock();
        if live {
            state.live.insert(stream.to_owned());
        } else {
            state.live.remove(stream);
        }
    }

    pub(super) fn is_live(&self, stream: &str) -> bool {
        self.lock().live.contains(stream)
    }

    pub(super) fn set_secure_token(&self, token: Option<String>) {
        self.lock().secure_token = token;
    }

    /// Whether an `Authorization` header value is acceptable.
    pub(super) fn is_authorized(&self, authorization: Option<&str>) -> bool {
        match &self.lock().secure_token {
            None => true,
            Some(token) => {
                authorization.and_then(|value| value.strip_prefix("Bearer ")) == Some(token)
            }
        }
    }

    pub(super) fn issue_token(&self, stream: &str, jwt: String) {
        self.lock().tokens.insert(jwt, stream.to_owned());
    }

    pub(super) fn stream_for_token(&self, jwt: &str) -> Option<String> {
        self.lock().tokens.get(jwt).cloned()
    }

    pub(super) fn set_fault(&self, fault: Option<(DirectorFault, Option<u32>)>) {
        self.lock().fault = fault;
        self.hang_release.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The fault for this Director request, if any, counting it down.
    pub(super) fn take_fault(&self) -> Option<DirectorFault> {
        faults::take(&mut self.lock().fault)
    }

    #[cfg_attr(not(feature = "webrtc"), allow(dead_code))]
    pub(super) fn set_whep_fault(&self, fault: Option<(WhepFault, Option<u32>)>) {
        self.lock().whep_fault = fault;
    }

    /// The WHEP fault for this `POST`, counting it down.
    #[cfg_attr(not(feature = "webrtc"), allow(dead_code))]
    pub(super) fn take_whep_fault(&self) -> Option<WhepFault> {
        faults::take(&mut self.lock().whep_fault)
    }

    pub(super) fn set_reject_view(&self, on: bool) {
        self.lock().reject_view = on;
    }

    pub(super) fn count_director_request(&self) {
        self.director_requests.fetch_add(1, Ordering::SeqCst);
        self.changed();
    }

    pub(super) fn director_requests(&self) -> u64 {
        self.director_requests.load(Ordering::SeqCst)
    }

    pub(super) fn count_view_request(&self) {
        self.view_requests.fetch_add(1, Ordering::SeqCst);
        self.changed();
    }

    pub(super) fn view_requests(&self) -> u64 {
        self.view_requests.load(Ordering::SeqCst)
    }

    pub(super) fn register_viewer(
        &self,
        stream: &str,
        frames: mpsc::Sender<String>,
        control: oneshot::Sender<Control>,
    ) -> Registration<'_> {
        let id = self.next_id();
        let viewer = Viewer {
            stream: stream.to_owned(),
            viewing: false,
            frames,
            control: Some(control),
        };
        self.lock().viewers.insert(id, viewer);
        self.changed();
        Registration { shared: self, id }
    }

    /// Accepts a `view` from viewer `id` if its stream is live and views are not rejected;
    /// from then on it receives the stream's events.
    pub(super) fn try_view(&self, id: u64) -> bool {
        let mut state = self.lock();
        let State {
            live,
            viewers,
            reject_view,
            ..
        } = &mut *state;
        match viewers.get_mut(&id) {
            Some(viewer) if !*reject_view && live.contains(&viewer.stream) => {
                viewer.viewing = true;
                true
            }
            _ => false,
        }
    }

    pub(super) fn viewers(&self, stream: &str) -> usize {
        let state = self.lock();
        state
            .viewers
            .values()
            .filter(|viewer| viewer.stream == stream)
            .count()
    }

    /// Queues `frame` for the viewers of `stream`; a viewer whose queue is full misses it.
    pub(super) fn broadcast(&self, stream: &str, audience: Audience, frame: &str) {
        let state = self.lock();
        let targets = state.viewers.iter().filter(|(_, viewer)| {
            viewer.stream == stream && (audience == Audience::AllSockets || viewer.viewing)
        });
        for (id, viewer) in targets {
            if viewer.frames.try_send(frame.to_owned()).is_err() {
                tracing::warn!(viewer = id, stream, "viewer queue full; frame dropped");
            }
        }
    }

    /// Ends every open viewer socket.
    pub(super) fn control_all(&self, control: Control) {
        let mut state = self.lock();
        for viewer in state.viewers.values_mut() {
            if let Some(sender) = viewer.control.take() {
                let _ = sender.send(control);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(secure_token: Option<&str>) -> Shared {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        Shared::new(
            "acct".into(),
            addr,
            secure_token.map(str::to_owned),
            WireLog::new(None),
        )
    }

    #[test]
    fn a_counted_fault_plays_exactly_its_count() {
        let shared = shared(None);
        shared.set_fault(Some((DirectorFault::Html, Some(2))));
        assert_eq!(shared.take_fault(), Some(DirectorFault::Html));
        assert_eq!(shared.take_fault(), Some(DirectorFault::Html));
        assert_eq!(shared.take_fault(), None);
        shared.set_fault(Some((DirectorFault::Empty, Some(0))));
        assert_eq!(shared.take_fault(), None);
        shared.set_fault(Some((DirectorFault::Hang, None)));
        assert_eq!(shared.take_fault(), Some(DirectorFault::Hang));
        assert_eq!(shared.take_fault(), Some(DirectorFault::Hang));
    }

    #[test]
    fn bearer_must_match_exactly_when_secured() {
        assert!(shared(None).is_authorized(None));
        let secured = shared(Some("t"));
        assert!(secured.is_authorized(Some("Bearer t")));
        for header in [
            None,
            Some("t"),
            Some("Bearer tt"),
            Some("bearer t"),
            Some("Bearer "),
        ] {
            assert!(!secured.is_authorized(header), "{header:?}");
        }
    }

    #[test]
    fn a_view_is_accepted_only_on_a_live_stream_without_rejection() {
        let shared = shared(None);
        let (frames, _frames_rx) = mpsc::channel(1);
        let (control, _control_rx) = oneshot::channel();
        let registration = shared.register_viewer("cam", frames, control);
        assert!(!shared.try_view(registration.id));
        shared.set_live("cam", true);
        shared.set_reject_view(true);
        assert!(!shared.try_view(registration.id));
        shared.set_reject_view(false);
        assert!(shared.try_view(registration.id));
        assert_eq!(shared.viewers("cam"), 1);
        drop(registration);
        assert_eq!(shared.viewers("cam"), 0);
    }
}
