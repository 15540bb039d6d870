//! A recording across reconnects plays: a viewer of the testkit server records every frame of
//! every session while the publisher freezes, stops and comes back, the stream migrates and
//! every socket drops; then ffprobe and ffmpeg judge the file. ffmpeg must be installed
//! (`.ci/run` installs it): without it the test fails.
#![allow(clippy::unwrap_used)] // test helpers fail loudly, like the tests
#![cfg(all(feature = "record", feature = "testkit"))]

#[path = "../support/mod.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use relive::millicast::MillicastSource;
use relive::record::Recorder;
use relive::testkit::clip::ClipCodec;
use relive::testkit::millicast::MillicastServer;
use relive::webrtc::{ReceivePeers, TrackKind};
use relive::{Event, Policy, Reconnector, Stats};
use support::PATIENCE;
use tokio::time::{Instant, sleep, timeout};

const CAM: &str = "cam";

fn policy() -> Policy {
    Policy::builder()
        .stall_after(Duration::from_millis(400))
        .first_media_within(Duration::from_secs(3))
        .stall_grace(Duration::from_millis(300))
        .backoff(Duration::from_millis(50), 2.0, Duration::from_millis(300))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("a valid policy")
}

/// What the viewer did, shared with the test.
#[derive(Default)]
struct Seen {
    video_frames: AtomicU64,
    sessions: AtomicU64,
    discontinuities: AtomicU64,
}

impl Seen {
    /// Waits until `more` video frames than now were recorded.
    async fn frames(&self, more: u64, what: &str) {
        let target = self.video_frames.load(Ordering::SeqCst) + more;
        let wait = async {
            while self.video_frames.load(Ordering::SeqCst) < target {
                sleep(Duration::from_millis(20)).await;
            }
        };
        timeout(PATIENCE, wait)
            .await
            .unwrap_or_else(|_| panic!("no picture after {what}"));
    }
}

fn ffprobe(args: &[&str], file: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(file)
        .output()
        .expect("ffprobe is installed (apt-get install ffmpeg; .ci/run does)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vp8_recording_across_reconnects_and_a_migration_plays_from_start_to_end() {
    record_a_run(ClipCodec::Vp8, "webm", "vp8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h264_recording_across_reconnects_and_a_migration_plays_from_start_to_end() {
    record_a_run(ClipCodec::H264, "mp4", "h264").await;
}

/// Records a run of faults from a publisher sending `codec` into a file named `*.extension`,
/// and judges the file, whose video ffprobe must call `codec_name`.
async fn record_a_run(codec: ClipCodec, extension: &str, codec_name: &str) {
    let server = MillicastServer::start().await.unwrap();
    server.set_video_codec(CAM, codec);
    server.publish(CAM);
    let path =
        std::env::temp_dir().join(format!("relive-record-{}.{extension}", std::process::id()));
    let recorder = Arc::new(Mutex::new(Recorder::create(&path).unwrap()));
    let seen = Arc::new(Seen::default());
    let stats = Arc::new(Mutex::new(Stats::default()));

    let peers = ReceivePeers::new().bind_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let source = MillicastSource::new(server.account_id(), CAM)
        .director_url(server.director_url())
        .offer_provider(peers);
    let mut viewer = Reconnector::new(source, policy()).seed(11).spawn();
    let control = (*viewer).clone();
    let readers = Arc::new(Mutex::new(Vec::new()));
    let events = {
        let (recorder, seen, stats) = (recorder.clone(), seen.clone(), stats.clone());
        let readers = readers.clone();
        tokio::spawn(async move {
            while let Some(event) = viewer.next().await {
                stats
                    .lock()
                    .unwrap()
                    .record(&event, Instant::now().into_std());
                let Event::Session(session) = event else {
                    continue;
                };
                seen.sessions.fetch_add(1, Ordering::SeqCst);
                let (recorder, seen) = (recorder.clone(), seen.clone());
                let mut media = session.media;
                readers.lock().unwrap().push(tokio::spawn(async move {
                    while let Some(frame) = media.recv().await {
                        recorder.lock().unwrap().write(&frame).unwrap();
                        if frame.discontinuity {
                            seen.discontinuities.fetch_add(1, Ordering::SeqCst);
                        }
                        if frame.kind == TrackKind::Video {
                            seen.video_frames.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }));
            }
        })
    };

    seen.frames(90, "the first session").await;
    server.freeze(CAM); // no RTP, no event: caught from media time, a new session
    sleep(Duration::from_millis(1_500)).await;
    server.unfreeze(CAM);
    seen.frames(90, "the freeze").await;
    server.stop(CAM); // the publisher stops, and comes back
    sleep(Duration::from_millis(800)).await;
    server.publish(CAM);
    seen.frames(90, "the publisher's return").await;
    server.migrate(CAM);
    seen.frames(90, "the migration").await;
    server.close_all_sockets(); // a network blink
    seen.frames(90, "the blink").await;

    control.stop().await;
    // The viewer is idle: drop it, and read each session's media to its end.
    events.abort();
    let _ = events.await;
    let readers = std::mem::take(&mut *readers.lock().unwrap());
    for reader in readers {
        timeout(PATIENCE, reader).await.unwrap().unwrap();
    }
    let played = stats
        .lock()
        .unwrap()
        .playing_time(Instant::now().into_std());
    let sessions = seen.sessions.load(Ordering::SeqCst);
    assert!(sessions >= 4, "{sessions} sessions");
    assert!(
        seen.discontinuities.load(Ordering::SeqCst) >= 3,
        "every later session starts with a discontinuity"
    );
    let recorder = Arc::try_unwrap(recorder)
        .expect("the readers are done")
        .into_inner()
        .unwrap();
    let summary = recorder.finish().unwrap();
    assert_eq!(
        summary.unsupported_codec + summary.undeclared_track,
        0,
        "{summary}"
    );
    let file = path.to_str().unwrap();
    let codecs = ffprobe(
        &["-show_entries", "stream=codec_name", "-of", "csv=p=0"],
        file,
    );
    let mut codecs: Vec<&str> = codecs.lines().map(str::trim).collect();
    codecs.sort_unstable();
    let mut expected = vec![codec_name, "opus"];
    expected.sort_unstable();
    assert_eq!(codecs, expected, "the file's streams");

    // Video packet timestamps strictly increase across every session.
    let pts = ffprobe(
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ],
        file,
    );
    let pts: Vec<f64> = pts.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert!(pts.len() as u64 >= 5 * 90, "{} video packets", pts.len());
    for pair in pts.windows(2) {
        assert!(
            pair[1] > pair[0],
            "video timestamps {} then {}",
            pair[0],
            pair[1]
        );
    }
    // The file is as long as the viewer was playing, within 10 %.
    let duration: f64 = ffprobe(
        &["-show_entries", "format=duration", "-of", "csv=p=0"],
        file,
    )
    .trim()
    .parse()
    .unwrap();
    let played = played.as_secs_f64();
    eprintln!("file {duration:.2} s, played {played:.2} s, {sessions} sessions ({summary})");
    assert!(
        (duration - played).abs() <= 0.1 * played,
        "file {duration:.2} s, played {played:.2} s ({summary})"
    );
    // And it decodes without a single error, as a user would run it: ffmpeg re-times the video
    // onto the constant frame rate it guesses for the null output, which holds only because
    // every session's frames stay on their track's frame grid (the timeline's rule).
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-i", file, "-f", "null", "-"])
        .output()
        .expect("ffmpeg is installed");
    assert!(decode.status.success());
    let errors = String::from_utf8_lossy(&decode.stderr);
    assert!(errors.trim().is_empty(), "ffmpeg says:\n{errors}");
    std::fs::remove_file(&path).ok();
}
