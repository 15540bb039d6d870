//! Media on loopback: how fast a viewer gets RTP again after each kind of interruption, with
//! the real WebRTC peer against the testkit server and its publisher peers.
//!
//! ```sh
//! cargo bench --bench media --features webrtc,testkit           # 20 runs of each
//! MEDIA_BENCH_RUNS=50 cargo bench --bench media --features webrtc,testkit
//! ```
//!
//! - first media: a new viewer of a live stream, from `start` to its first RTP packet
//!   (Director, WebSocket, `view`, ICE, DTLS, first packet);
//! - encoder restart: a frozen publisher resumes on the same session, to the next packet;
//! - publisher restart: the publisher leaves (`inactive`, RTP stops) and comes back (`active`)
//!   within the stall grace, to the first packet on the same session;
//! - reconnect cycle: every signaling socket dropped, to the first packet of the new session;
//! - first keyframe / first RTP packet: from `Event::Session` of a new viewer to its first
//!   decodable video frame (a keyframe, requested at the first video packet), beside the same
//!   for a viewer in RTP delivery to its first packet — runs interleaved;
//! - CPU per delivered frame: the process's CPU time (publisher included) over 10 s of one
//!   viewer, in frame delivery and in RTP delivery, one after the other;
//! - silent freeze → new media: a new viewer with the default policy plays, then the media of
//!   its session goes silent for good (`freeze_sessions`: RTP stops, signaling stays up), to
//!   the first packet of a new session — make-before-break off (before: `stall_after` +
//!   `stall_grace` + a backoff), on with the default `reconnect_spread`, and on with no
//!   spread; the three interleaved run by run. `MEDIA_BENCH_ONLY=freeze` runs only this.
//! - cut path → media (WHEP): a WHEP viewer plays, then its session's UDP path is cut both
//!   ways (`cut_media_paths`, as when the viewer's network changes) — with repair on, an ICE
//!   restart (`PATCH`) brings the media back on the same session; with repair off, a new
//!   session does (make-before-break), the baseline; interleaved run by run, no spread. Both
//!   from the cut to the first frame after it, and for the restart also from the stall (when
//!   the machine asks for the repair) to that frame. `MEDIA_BENCH_ONLY=restart` runs only this.

use std::net::Ipv4Addr;
use std::time::Duration;

use futures::StreamExt;
use relive::millicast::{MillicastMedia, MillicastSource};
use relive::testkit::millicast::MillicastServer;
use relive::webrtc::{ReceivePeers, TrackKind, WebRtcMedia, WhepSource};
use relive::{Event, Policy, Reconnector, State, Viewer};
use tokio::time::{Instant, timeout};

type Source = MillicastSource<ReceivePeers>;
type Media = MillicastMedia<WebRtcMedia>;

const CAM: &str = "cam";
const PATIENCE: Duration = Duration::from_secs(20);

fn policy() -> Policy {
    Policy::builder()
        .stall_after(Duration::from_millis(600))
        .first_media_within(Duration::from_secs(3))
        .stall_grace(Duration::from_secs(30))
        .backoff(Duration::from_millis(50), 2.0, Duration::from_millis(250))
        .build()
        .expect("a valid policy")
}

/// A viewer and the media of its current session.
struct Bench {
    server: MillicastServer,
    viewer: Viewer<Source>,
    media: Option<Media>,
}

impl Bench {
    async fn start(server: &MillicastServer) -> Bench {
        Bench::with_peers(server, ReceivePeers::new()).await
    }

    async fn with_peers(server: &MillicastServer, peers: ReceivePeers) -> Bench {
        Bench::with(server, peers, policy())
    }

    fn with(server: &MillicastServer, peers: ReceivePeers, policy: Policy) -> Bench {
        let peers = peers.bind_ip(Ipv4Addr::LOCALHOST.into());
        let source = MillicastSource::new(server.account_id(), CAM)
            .director_url(server.director_url())
            .offer_provider(peers);
        Bench {
            server: server.clone(),
            viewer: Reconnector::new(source, policy).spawn(),
            media: None,
        }
    }

    /// Waits for the first RTP packet of a session newer than the current one.
    async fn packet_of_a_new_session(&mut self) -> Instant {
        let wait = async {
            loop {
                match self.viewer.next().await {
                    Some(Event::Session(media)) => {
                        self.media = Some(media);
                        return self.first_packet().await;
                    }
                    Some(_) => {}
                    None => panic!("viewer ended"),
                }
            }
        };
        timeout(PATIENCE, wait).await.expect("a new session")
    }

    /// Waits for the next RTP packet of the current (or a new) session.
    async fn first_packet(&mut self) -> Instant {
        let wait = async {
            loop {
                let packet = async {
                    match self.media.as_mut() {
                        Some(media) => media.media.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    Some(_) = packet => return Instant::now(),
                    event = self.viewer.next() => match event {
                        Some(Event::Session(media)) => self.media = Some(media),
                        Some(_) => {}
                        None => panic!("viewer ended"),
                    },
                }
            }
        };
        timeout(PATIENCE, wait)
            .await
            .expect("media within the patience")
    }

    async fn until_state(&mut self, f: impl Fn(&State) -> bool) {
        let wait = async {
            while let Some(event) = self.viewer.next().await {
                match event {
                    Event::Session(media) => self.media = Some(media),
                    Event::State { to, .. } if f(&to) => return,
                    _ => {}
                }
            }
        };
        timeout(PATIENCE, wait)
            .await
            .expect("the state within the patience");
    }

    /// Waits until the viewer is playing (at once if it is).
    async fn until_playing(&mut self) {
        if !self.viewer.state().is_playing() {
            self.until_state(State::is_playing).await;
        }
    }

    /// Waits for the next `Event::Session`: when it came, and its media.
    async fn session(&mut self) -> (Instant, Media) {
        let wait = async {
            loop {
                match self.viewer.next().await {
                    Some(Event::Session(media)) => return (Instant::now(), media),
                    Some(_) => {}
                    None => panic!("viewer ended"),
                }
            }
        };
        timeout(PATIENCE, wait).await.expect("a session")
    }

    /// Reads frames until media time has advanced by `d`.
    async fn play_for(&mut self, d: Duration) {
        let media = &mut self.media.as_mut().expect("a session").media;
        let wait = async {
            let first = media.recv().await.expect("a frame").pts;
            while let Some(frame) = media.recv().await {
                if frame.pts >= first + d {
                    return;
                }
            }
            panic!("the session ended");
        };
        timeout(PATIENCE, wait).await.expect("media plays");
    }

    fn forget_media(&mut self) {
        if let Some(media) = self.media.as_mut() {
            while media.media.try_recv().is_some() {}
        }
    }
}

async fn first_media(runs: usize) -> Vec<Duration> {
    let server = MillicastServer::start().await.expect("server");
    server.publish(CAM);
    let mut samples = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let mut bench = Bench::start(&server).await;
        samples.push(bench.first_packet().await - start);
        bench.viewer.stop().await;
    }
    samples
}

async fn encoder_restart(bench: &mut Bench, runs: usize) -> Vec<Duration> {
    let mut samples = Vec::new();
    for _ in 0..runs {
        bench.until_playing().await;
        bench.server.freeze(CAM);
        bench
            .until_state(|s| matches!(s, State::Stalled { .. }))
            .await;
        bench.forget_media();
        let start = Instant::now();
        bench.server.unfreeze(CAM);
        samples.push(bench.first_packet().await - start);
    }
    samples
}

async fn publisher_restart(bench: &mut Bench, runs: usize) -> Vec<Duration> {
    let mut samples = Vec::new();
    for _ in 0..runs {
        bench.until_playing().await;
        bench.server.unpublish(CAM);
        bench
            .until_state(|s| matches!(s, State::Stalled { .. }))
            .await;
        bench.forget_media();
        let start = Instant::now();
        bench.server.publish(CAM);
        samples.push(bench.first_packet().await - start);
    }
    samples
}

async fn reconnect_cycle(bench: &mut Bench, runs: usize) -> Vec<Duration> {
    let mut samples = Vec::new();
    for _ in 0..runs {
        bench.first_packet().await;
        bench.media = None;
        let start = Instant::now();
        bench.server.close_all_sockets();
        samples.push(bench.first_packet().await - start);
    }
    samples
}

/// A silent freeze of the session's media to the first packet of a new session, for each
/// policy, interleaved run by run: a fresh viewer per run, playing before the freeze.
async fn silent_freeze(runs: usize, policies: &[Policy]) -> Vec<Vec<Duration>> {
    let mut samples = vec![Vec::new(); policies.len()];
    for _ in 0..runs {
        for (policy, samples) in policies.iter().zip(samples.iter_mut()) {
            let server = MillicastServer::start().await.expect("server");
            server.publish(CAM);
            let mut bench = Bench::with(&server, ReceivePeers::new(), *policy);
            bench.first_packet().await;
            bench.until_playing().await;
            // The picture has moved: a freeze is a stall after `stall_after`, not after
            // `first_media_within`.
            bench.play_for(Duration::from_millis(500)).await;
            let start = Instant::now();
            server.freeze_sessions(CAM);
            samples.push(bench.packet_of_a_new_session().await - start);
            bench.viewer.stop().await;
            server.shutdown();
        }
    }
    samples
}

/// Cut path → media on WHEP, for each policy and whether the application says the network
/// changed at the cut: (from the cut, from the stall or the change) per run.
async fn cut_path(runs: usize, cases: &[(Policy, bool)]) -> Vec<(Vec<Duration>, Vec<Duration>)> {
    let mut samples = vec![(Vec::new(), Vec::new()); cases.len()];
    for _ in 0..runs {
        for (&(policy, tell), (from_cut, from_stall)) in cases.iter().zip(samples.iter_mut()) {
            let server = MillicastServer::start().await.expect("server");
            server.publish(CAM);
            let peers = ReceivePeers::new().bind_ip(Ipv4Addr::LOCALHOST.into());
            let source = WhepSource::new(server.whep_url(CAM)).peers(peers);
            let mut viewer = Reconnector::new(source, policy).spawn();
            let (cut, stalled, back) = timeout(PATIENCE, cut_and_back(&server, &mut viewer, tell))
                .await
                .expect("media back within the patience");
            from_cut.push(back - cut);
            from_stall.push(back - stalled);
            viewer.stop().await;
            server.shutdown();
        }
    }
    samples
}

/// Plays, cuts the path (and says the network changed, if `tell`); when the cut was made, the
/// stall seen (the cut, if told), the first frame after it.
async fn cut_and_back(
    server: &MillicastServer,
    viewer: &mut Viewer<WhepSource>,
    tell: bool,
) -> (Instant, Instant, Instant) {
    let mut media = loop {
        match viewer.next().await {
            Some(Event::Session(media)) => break media,
            Some(_) => {}
            None => panic!("viewer ended"),
        }
    };
    let first = media.recv().await.expect("a frame").pts;
    while media.recv().await.expect("a frame").pts < first + Duration::from_millis(500) {}
    server.cut_media_paths(CAM);
    let cut = Instant::now();
    if tell {
        viewer.network_changed();
    }
    while media.try_recv().is_some() {}
    let mut stalled = None;
    loop {
        tokio::select! {
            Some(_) = media.recv(), if stalled.is_some() || tell => {
                // Told, the repair starts at once: a frame counts once the server has
                // restarted ICE (what came before was in flight before the cut).
                if !tell {
                    return (cut, stalled.unwrap_or(cut), Instant::now());
                }
                if server.whep_patches() > 0 {
                    return (cut, cut, Instant::now());
                }
            }
            event = viewer.next() => match event {
                Some(Event::Session(new)) => media = new,
                Some(Event::State { to: State::Stalled { .. }, .. }) if stalled.is_none() => {
                    stalled = Some(Instant::now());
                    // What came before the stall was in flight before the cut.
                    while media.try_recv().is_some() {}
                }
                Some(_) => {}
                None => panic!("viewer ended"),
            },
        }
    }
}

/// From `Event::Session` to the first video keyframe (frame delivery) or the first RTP packet
/// (RTP delivery) of a new viewer; runs of the two interleaved.
async fn first_keyframe_and_packet(runs: usize) -> (Vec<Duration>, Vec<Duration>) {
    let server = MillicastServer::start().await.expect("server");
    server.publish(CAM);
    let (mut keyframes, mut packets) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let mut bench = Bench::start(&server).await;
        let (at, mut media) = bench.session().await;
        let wait = async {
            while let Some(frame) = media.media.recv().await {
                if frame.kind == TrackKind::Video {
                    assert!(frame.keyframe, "video starts at a keyframe");
                    return Instant::now();
                }
            }
            panic!("the session ended without video");
        };
        keyframes.push(timeout(PATIENCE, wait).await.expect("a keyframe") - at);
        bench.viewer.stop().await;

        let mut bench = Bench::with_peers(&server, ReceivePeers::new().rtp_packets()).await;
        let (at, mut media) = bench.session().await;
        let first = timeout(PATIENCE, media.media.recv_rtp()).await;
        assert!(first.expect("a packet").is_some());
        packets.push(Instant::now() - at);
        bench.viewer.stop().await;
    }
    (keyframes, packets)
}

/// Process CPU time per delivered frame (or packet) over `length` of one viewer reading
/// everything; the publisher runs in this process too.
async fn cpu_per_item(peers: ReceivePeers, length: Duration) -> (f64, u64) {
    let server = MillicastServer::start().await.expect("server");
    server.publish(CAM);
    let rtp = peers.delivery() == relive::webrtc::Delivery::RtpPackets;
    let mut bench = Bench::with_peers(&server, peers).await;
    let (_, mut media) = bench.session().await;
    let cpu0 = process_cpu();
    let end = Instant::now() + length;
    let mut items = 0u64;
    while Instant::now() < end {
        let got = if rtp {
            timeout(end - Instant::now(), media.media.recv_rtp())
                .await
                .map(|p| p.is_some())
        } else {
            timeout(end - Instant::now(), media.media.recv())
                .await
                .map(|f| f.is_some())
        };
        match got {
            Ok(true) => items += 1,
            Ok(false) => panic!("the session ended"),
            Err(_) => break,
        }
    }
    let cpu = process_cpu() - cpu0;
    bench.viewer.stop().await;
    (cpu.as_secs_f64() * 1e6 / items.max(1) as f64, items)
}

/// User + system CPU time of this process, from `/proc/self/stat` (clock ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("Linux /proc");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the name (from 0).
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[index.min(samples.len() - 1)]
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{what:<22} n={:<4} p50 {:>7.1} ms   p95 {:>7.1} ms   max {:>7.1} ms",
        samples.len(),
        ms(at(0.5)),
        ms(at(0.95)),
        ms(at(1.0)),
    );
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter we do not support.
    let runs = std::env::var("MEDIA_BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20usize)
        .max(1);
    println!("media on loopback, {runs} runs each");
    println!("command: cargo bench --bench media --features webrtc,testkit");
    let only = std::env::var("MEDIA_BENCH_ONLY").unwrap_or_default();
    let d = Policy::default();
    if only.is_empty() || only == "restart" {
        let cut_policy = |repair: bool| {
            Policy::builder()
                .repair(repair)
                .reconnect_spread(Duration::ZERO)
                .build()
                .expect("valid")
        };
        println!(
            "cut path → media (WHEP): stall_after {:?}, repair_within {:?}, no spread",
            d.stall_after(),
            d.repair_within()
        );
        let cases = [
            (cut_policy(false), false),
            (cut_policy(true), false),
            (cut_policy(true), true),
        ];
        let mut cut = cut_path(runs, &cases).await.into_iter();
        let (new_session, _) = cut.next().unwrap_or_default();
        let (restart, restart_from_stall) = cut.next().unwrap_or_default();
        let (told, _) = cut.next().unwrap_or_default();
        report("cut, new session", new_session);
        report("cut, ICE restart", restart);
        report("stall→restarted media", restart_from_stall);
        report("cut+network_changed", told);
        if only == "restart" {
            return;
        }
    }
    let policies = [
        Policy::builder()
            .make_before_break(false)
            .build()
            .expect("valid"),
        d,
        Policy::builder()
            .reconnect_spread(Duration::ZERO)
            .build()
            .expect("valid"),
    ];
    println!(
        "silent freeze → new media: stall_after {:?}, stall_grace {:?}, reconnect_spread {:?}",
        d.stall_after(),
        d.stall_grace(),
        d.reconnect_spread()
    );
    let mut freeze = silent_freeze(runs, &policies).await.into_iter();
    for name in [
        "freeze, mbb off",
        "freeze, mbb (default)",
        "freeze, mbb, no spread",
    ] {
        report(name, freeze.next().unwrap_or_default());
    }
    if only == "freeze" {
        return;
    }
    report("first media", first_media(runs).await);
    let server = MillicastServer::start().await.expect("server");
    server.publish(CAM);
    let mut bench = Bench::start(&server).await;
    bench.first_packet().await;
    report("encoder restart", encoder_restart(&mut bench, runs).await);
    report(
        "publisher restart",
        publisher_restart(&mut bench, runs).await,
    );
    report("reconnect cycle", reconnect_cycle(&mut bench, runs).await);
    bench.viewer.stop().await;
    let (keyframes, packets) = first_keyframe_and_packet(runs).await;
    report("session→keyframe", keyframes);
    report("session→RTP packet", packets);
    let length = Duration::from_secs(10);
    let (frame_us, frames) = cpu_per_item(ReceivePeers::new(), length).await;
    let (packet_us, count) = cpu_per_item(ReceivePeers::new().rtp_packets(), length).await;
    println!(
        "CPU per delivered item (process, publisher included, 10 s each): \
         frame {frame_us:.1} µs ({frames} frames) · RTP packet {packet_us:.1} µs ({count} packets)"
    );
}
