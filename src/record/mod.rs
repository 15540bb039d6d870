//! Recording a viewer: every frame of every session into one file, on the viewer's presentation
//! timeline, so that the file plays from start to end across every reconnect.
//!
//! [`Recorder`] takes the [`MediaFrame`]s the application reads from each session's
//! [`WebRtcMedia`](crate::webrtc::WebRtcMedia) — the timeline already makes their presentation
//! times continuous and strictly increasing per track — and muxes them into a [`Container`]:
//!
//! - **WebM** (`.webm`, `.mkv`, and any other name): VP8, VP9 or AV1 video and Opus audio, by
//!   libwebm (Google's reference WebM muxer, through the maintained `webm` crate).
//! - **MP4** (`.mp4`, `.m4v`, `.mov`): H.264 video and Opus audio, by `shiguredo_mp4`. The
//!   file starts at the first H.264 keyframe; see [`Container::Mp4`].
//!
//! What the container cannot hold (H.264 in WebM, VP8 in MP4, G.711, a track that appears after
//! the file's tracks were declared) is skipped and counted in the [`Summary`] that
//! [`finish`](Recorder::finish) returns.
//!
//! ```no_run
//! # async fn demo(mut media: relive::webrtc::WebRtcMedia) -> Result<(), relive::record::RecordError> {
//! use relive::record::Recorder;
//!
//! let mut recorder = Recorder::create("viewer.webm")?;
//! while let Some(frame) = media.recv().await {
//!     recorder.write(&frame)?; // an error ends the recording, not the viewer
//! }
//! let summary = recorder.finish()?;
//! println!("{summary}");
//! # Ok(()) }
//! ```
//!
//! The tracks of the file are declared once, from the first frames: the recorder holds frames
//! back until it has seen a video keyframe (whose VP8 header or H.264 SPS gives the picture
//! size) and an audio frame, or for [`DECLARE_WITHIN`] of media at most (then the file holds
//! the kinds seen). Frames are then written in presentation order across tracks, as WebM
//! requires, through a reorder window of [`INTERLEAVE`]; a frame later than that is written at
//! the last timestamp written.

mod mp4;

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use webm::mux::{AudioCodecId, SegmentBuilder, SegmentMode, Track as _, VideoCodecId, Writer};

use crate::webrtc::{MediaCodec, MediaFrame, TrackKind};
use mp4::Mp4Writer;

/// The kind of file a [`Recorder`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Container {
    /// WebM (a Matroska subset): VP8, VP9 or AV1 video and Opus audio.
    WebM,
    /// MP4 (ISO BMFF): H.264 video (Annex-B frames are stored length-prefixed, the first
    /// keyframe's SPS and PPS in the sample entry, a new entry when a later keyframe brings
    /// others) and Opus audio. MP4 samples have durations, not timestamps: each frame lasts
    /// until the next of its track, so gaps on the timeline stay gaps. The file starts at the
    /// first video keyframe; frames before it are counted in [`Summary::before_keyframe`].
    /// The `moov` box is written by [`Recorder::finish`]: a file not finished does not play.
    Mp4,
}

impl Container {
    /// The container a file name asks for: MP4 for `.mp4`, `.m4v` and `.mov` (any case), WebM
    /// for anything else.
    pub fn for_path(path: &Path) -> Container {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("mp4" | "m4v" | "mov") => Container::Mp4,
            _ => Container::WebM,
        }
    }

    /// Whether the container stores frames of `codec`.
    pub fn stores(self, codec: MediaCodec) -> bool {
        match self {
            Container::WebM => matches!(
                codec,
                MediaCodec::Vp8 | MediaCodec::Vp9 | MediaCodec::Av1 | MediaCodec::Opus
            ),
            Container::Mp4 => matches!(codec, MediaCodec::H264 | MediaCodec::Opus),
        }
    }
}

/// How much media the recorder holds back, at most, to declare the file's tracks when it has
/// not seen both a video keyframe and an audio frame.
pub const DECLARE_WITHIN: Duration = Duration::from_secs(2);
/// The reorder window across tracks: frames are written once a frame this much later was seen.
pub const INTERLEAVE: Duration = Duration::from_millis(300);
/// Frames held back before the tracks are declared, at most (bounded memory whatever comes).
const MAX_PENDING: usize = 1024;
/// The picture size declared for VP9 and AV1, whose headers the recorder does not parse
/// (players take the size from the bitstream).
const DEFAULT_SIZE: (u32, u32) = (640, 360);

/// Why a recording ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The file could not be created.
    #[error("cannot create the recording {}: {source}", path.display())]
    Create {
        /// The path given.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// Writing the file failed (a full disk, a removed device): the recording is over.
    #[error("writing the recording failed: {0}")]
    Write(#[source] io::Error),
    /// The muxer refused (the muxers give no detail beyond this).
    #[error("the muxer refused to {0}")]
    Mux(&'static str),
    /// An earlier error ended the recording; nothing more is written.
    #[error("the recording has ended after an earlier error")]
    Ended,
}

/// What a recording holds, and what it skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Video frames written.
    pub video_frames: u64,
    /// Audio frames written.
    pub audio_frames: u64,
    /// The presentation time of the last frame written.
    pub duration: Duration,
    /// Frames skipped because the container cannot store their codec (H.264 in WebM, VP8 in
    /// MP4, G.711, …).
    pub unsupported_codec: u64,
    /// Frames before the first video keyframe, which an MP4 file starts with.
    pub before_keyframe: u64,
    /// Frames skipped because their track appeared after the file's tracks were declared.
    pub undeclared_track: u64,
    /// Frames that came later than the reorder window and were written at the last timestamp.
    pub late: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} video and {} audio frames, {:.3} s",
            self.video_frames,
            self.audio_frames,
            self.duration.as_secs_f64()
        )?;
        let skipped = [
            (
                self.unsupported_codec,
                "of a codec the container cannot store",
            ),
            (self.before_keyframe, "before the first keyframe"),
            (self.undeclared_track, "of a track that came too late"),
        ];
        for (count, why) in skipped {
            if count > 0 {
                write!(f, "; skipped {count} frames {why}")?;
            }
        }
        if self.late > 0 {
            write!(f, "; {} late frames moved up", self.late)?;
        }
        Ok(())
    }
}

/// A file sink that keeps the first I/O error, which libwebm reduces to "failed".
struct Sink {
    file: BufWriter<File>,
    error: Arc<Mutex<Option<io::Error>>>,
}

impl Sink {
    fn keep<T>(&self, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result {
            let mut error = self.error.lock().unwrap_or_else(PoisonError::into_inner);
            if error.is_none() {
                *error = Some(io::Error::new(e.kind(), e.to_string()));
            }
        }
        result
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = self.file.write(buf);
        self.keep(result)
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.file.flush();
        self.keep(result)
    }
}

impl Seek for Sink {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let result = self.file.seek(pos);
        self.keep(result)
    }
}

/// A declared track of the file.
#[derive(Clone, Debug)]
struct Declared {
    kind: TrackKind,
    mid: String,
    number: u64,
}

/// A file whose tracks are not declared yet.
enum Unstarted {
    WebM(SegmentBuilder<Sink>),
    Mp4(File),
}

/// A file being written.
enum Output {
    WebM(webm::mux::Segment<Sink>),
    Mp4(Box<Mp4Writer>),
}

enum Phase {
    /// Tracks not declared yet: frames wait here.
    Pending(Unstarted, Vec<MediaFrame>),
    /// Writing.
    Writing(Output),
    /// Over (finished, or ended by an error).
    Done,
}

/// Writes the frames of a viewer's sessions into one WebM file. See the [module docs](self).
pub struct Recorder {
    path: PathBuf,
    container: Container,
    phase: Phase,
    tracks: Vec<Declared>,
    /// Frames waiting for the reorder window, in arrival order.
    queue: VecDeque<MediaFrame>,
    /// The latest presentation time seen, and the last written (nanoseconds).
    newest: Duration,
    written: u64,
    error: Arc<Mutex<Option<io::Error>>>,
    summary: Summary,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .field("container", &self.container)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Creates (or truncates) the file at `path`, in the container its name asks for
    /// ([`Container::for_path`]). A bad path is an error now, not at the first frame.
    pub fn create(path: impl AsRef<Path>) -> Result<Recorder, RecordError> {
        let container = Container::for_path(path.as_ref());
        Recorder::create_as(path, container)
    }

    /// Creates (or truncates) the file at `path`, as a `container` file whatever its name.
    pub fn create_as(
        path: impl AsRef<Path>,
        container: Container,
    ) -> Result<Recorder, RecordError> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path).map_err(|source| RecordError::Create {
            path: path.clone(),
            source,
        })?;
        let error = Arc::new(Mutex::new(None));
        let unstarted = match container {
            Container::WebM => {
                let sink = Sink {
                    file: BufWriter::new(file),
                    error: Arc::clone(&error),
                };
                let builder = SegmentBuilder::new(Writer::new(sink))
                    .and_then(|b| b.set_mode(SegmentMode::File))
                    .and_then(|b| b.set_writing_app(concat!("relive ", env!("CARGO_PKG_VERSION"))))
                    .map_err(|_| RecordError::Mux("start a segment"))?;
                Unstarted::WebM(builder)
            }
            Container::Mp4 => Unstarted::Mp4(file),
        };
        Ok(Recorder {
            path,
            container,
            phase: Phase::Pending(unstarted, Vec::new()),
            tracks: Vec::new(),
            queue: VecDeque::new(),
            newest: Duration::ZERO,
            written: 0,
            error,
            summary: Summary::default(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kind of file being written.
    pub fn container(&self) -> Container {
        self.container
    }

    /// What was written and skipped so far.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Records one frame. An error ends the recording: later calls return
    /// [`RecordError::Ended`], and the file is left as written so far.
    pub fn write(&mut self, frame: &MediaFrame) -> Result<(), RecordError> {
        let result = self.accept(frame);
        if result.is_err() {
            self.phase = Phase::Done;
        }
        result
    }

    /// Writes everything held back, closes the file (cues, duration) and says what it holds.
    pub fn finish(mut self) -> Result<Summary, RecordError> {
        if matches!(self.phase, Phase::Pending(..)) {
            self.declare()?;
        }
        self.drain(None)?;
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Writing(Output::WebM(segment)) => {
                // libwebm writes the duration from the last frame itself.
                let writer = segment
                    .finalize(None)
                    .map_err(|_| self.failure("finish the file"))?;
                let mut sink = writer.into_inner();
                sink.flush().map_err(RecordError::Write)?;
            }
            Phase::Writing(Output::Mp4(writer)) => writer.finish()?,
            Phase::Pending(..) => {}
            Phase::Done => return Err(RecordError::Ended),
        }
        Ok(self.summary.clone())
    }

    fn accept(&mut self, frame: &MediaFrame) -> Result<(), RecordError> {
        if !self.container.stores(frame.codec) {
            if self.summary.unsupported_codec == 0 {
                tracing::warn!(
                    codec = ?frame.codec,
                    container = ?self.container,
                    "the recording skips frames of a codec its container cannot store"
                );
            }
            self.summary.unsupported_codec += 1;
            return Ok(());
        }
        let ready = match &mut self.phase {
            Phase::Done => return Err(RecordError::Ended),
            Phase::Pending(_, pending) => {
                pending.push(frame.clone());
                let first = pending.first().map_or(frame.pts, |f| f.pts);
                let video = pending
                    .iter()
                    .any(|f| f.kind == TrackKind::Video && f.keyframe);
                let audio = pending.iter().any(|f| f.kind == TrackKind::Audio);
                pending.len() >= MAX_PENDING
                    || (video && audio)
                    || frame.pts.saturating_sub(first) >= DECLARE_WITHIN
            }
            Phase::Writing(_) => {
                self.queue.push_back(frame.clone());
                false
            }
        };
        if ready {
            self.declare()?;
        }
        self.newest = self.newest.max(frame.pts);
        self.drain(Some(self.newest.saturating_sub(INTERLEAVE)))
    }

    /// Declares the tracks from the frames held back (the first video and the first audio
    /// track seen) and moves those frames to the reorder queue.
    fn declare(&mut self) -> Result<(), RecordError> {
        let Phase::Pending(unstarted, pending) = std::mem::replace(&mut self.phase, Phase::Done)
        else {
            return Ok(());
        };
        let mut builder = match unstarted {
            Unstarted::WebM(builder) => builder,
            Unstarted::Mp4(file) => return self.declare_mp4(file, pending),
        };
        let video = pending
            .iter()
            .find(|f| f.kind == TrackKind::Video && f.keyframe)
            .or_else(|| pending.iter().find(|f| f.kind == TrackKind::Video));
        if let Some(first) = video {
            let (width, height) = picture_size(first);
            let codec = match first.codec {
                MediaCodec::Vp9 => VideoCodecId::VP9,
                MediaCodec::Av1 => VideoCodecId::AV1,
                _ => VideoCodecId::VP8,
            };
            let (b, track) = builder
                .add_video_track(width, height, codec, None)
                .map_err(|_| RecordError::Mux("add the video track"))?;
            builder = b;
            self.tracks.push(Declared {
                kind: TrackKind::Video,
                mid: first.mid.clone(),
                number: track.track_number(),
            });
        }
        if let Some(first) = pending.iter().find(|f| f.kind == TrackKind::Audio) {
            let (b, track) = builder
                .add_audio_track(first.clock_rate, 2, AudioCodecId::Opus, None)
                .map_err(|_| RecordError::Mux("add the audio track"))?;
            let number = track.track_number();
            builder = b
                .set_codec_private(number, &opus_head(2, first.clock_rate))
                .map_err(|_| RecordError::Mux("describe the audio track"))?;
            self.tracks.push(Declared {
                kind: TrackKind::Audio,
                mid: first.mid.clone(),
                number,
            });
        }
        self.phase = Phase::Writing(Output::WebM(builder.build()));
        self.queue.extend(pending);
        Ok(())
    }

    /// Declares the tracks of an MP4 file: the first video and the first audio track seen.
    fn declare_mp4(&mut self, file: File, pending: Vec<MediaFrame>) -> Result<(), RecordError> {
        let video = pending.iter().find(|f| f.kind == TrackKind::Video);
        let audio = pending.iter().find(|f| f.kind == TrackKind::Audio);
        for (number, first) in [video, audio].into_iter().flatten().enumerate() {
            self.tracks.push(Declared {
                kind: first.kind,
                mid: first.mid.clone(),
                number: number as u64 + 1,
            });
        }
        let writer = Mp4Writer::start(file, video.is_some(), audio.map(|f| f.clock_rate))?;
        self.phase = Phase::Writing(Output::Mp4(Box::new(writer)));
        self.queue.extend(pending);
        Ok(())
    }

    /// Writes queued frames in presentation order: those before `until`, or all of them.
    fn drain(&mut self, until: Option<Duration>) -> Result<(), RecordError> {
        loop {
            let next = self
                .queue
                .iter()
                .enumerate()
                .min_by_key(|(_, f)| f.pts)
                .map(|(i, f)| (i, f.pts));
            let Some((index, pts)) = next else {
                return Ok(());
            };
            if until.is_some_and(|until| pts >= until) {
                return Ok(());
            }
            let Some(frame) = self.queue.remove(index) else {
                return Ok(());
            };
            self.put(&frame)?;
        }
    }

    fn put(&mut self, frame: &MediaFrame) -> Result<(), RecordError> {
        let Some(track) = self
            .tracks
            .iter()
            .find(|t| t.kind == frame.kind && t.mid == frame.mid)
        else {
            if self.summary.undeclared_track == 0 {
                tracing::warn!(
                    mid = %frame.mid,
                    "the recording skips a track that appeared after its tracks were declared"
                );
            }
            self.summary.undeclared_track += 1;
            return Ok(());
        };
        let number = track.number;
        match &mut self.phase {
            Phase::Writing(Output::WebM(segment)) => {
                let mut ns = u64::try_from(frame.pts.as_nanos()).unwrap_or(u64::MAX);
                if ns < self.written {
                    self.summary.late += 1;
                    ns = self.written;
                }
                let keyframe = frame.keyframe || frame.kind == TrackKind::Audio;
                if segment
                    .add_frame(number, &frame.data, ns, keyframe)
                    .is_err()
                {
                    return Err(self.failure("add a frame"));
                }
                self.written = ns;
            }
            // Each MP4 track has its own time: no order across tracks to keep.
            Phase::Writing(Output::Mp4(writer)) => {
                if !writer.put(frame)? {
                    self.summary.before_keyframe += 1;
                    return Ok(());
                }
            }
            _ => return Err(RecordError::Ended),
        }
        match frame.kind {
            TrackKind::Audio => self.summary.audio_frames += 1,
            _ => self.summary.video_frames += 1,
        }
        self.summary.duration = self.summary.duration.max(frame.pts);
        Ok(())
    }

    /// The I/O error behind a muxer failure, if there was one.
    fn failure(&self, what: &'static str) -> RecordError {
        let error = self
            .error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match error {
            Some(e) => RecordError::Write(e),
            None => RecordError::Mux(what),
        }
    }
}

/// The picture size from a VP8 keyframe header (RFC 6386 §9.1: a 3-byte frame tag, the start
/// code `9d 01 2a`, then 14-bit width and height); a default for anything else.
fn picture_size(frame: &MediaFrame) -> (u32, u32) {
    let data = &frame.data;
    let is_vp8_key = frame.codec == MediaCodec::Vp8
        && data.len() >= 10
        && data[0] & 1 == 0
        && data[3..6] == [0x9d, 0x01, 0x2a];
    if !is_vp8_key {
        return DEFAULT_SIZE;
    }
    let width = u32::from(u16::from_le_bytes([data[6], data[7]]) & 0x3fff);
    let height = u32::from(u16::from_le_bytes([data[8], data[9]]) & 0x3fff);
    if width == 0 || height == 0 {
        DEFAULT_SIZE
    } else {
        (width, height)
    }
}

/// The Opus identification header that Matroska and WebM keep as the track's codec private
/// data (RFC 7845 §5.1): version 1, the channel count, no pre-skip, the input rate, no gain,
/// mapping family 0.
fn opus_head(channels: u8, rate: u32) -> Vec<u8> {
    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1);
    head.push(channels);
    head.extend_from_slice(&0u16.to_le_bytes());
    head.extend_from_slice(&rate.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes());
    head.push(0);
    head
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::timeline::Timeline;

    fn frame(kind: TrackKind, codec: MediaCodec, pts_ms: u64, keyframe: bool) -> MediaFrame {
        let data: Vec<u8> = match codec {
            MediaCodec::Vp8 if keyframe => {
                let mut d = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
                d.extend_from_slice(&320u16.to_le_bytes());
                d.extend_from_slice(&180u16.to_le_bytes());
                d.resize(64, 7);
                d
            }
            _ => vec![0x11; 32],
        };
        MediaFrame {
            mid: if kind == TrackKind::Video { "0" } else { "1" }.into(),
            kind,
            codec,
            payload_type: 96,
            keyframe,
            pts: Duration::from_millis(pts_ms),
            discontinuity: false,
            session: Timeline::default().begin_session(),
            rtp_timestamp: 0,
            clock_rate: if kind == TrackKind::Video {
                90_000
            } else {
                48_000
            },
            data: data.into(),
        }
    }

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("relive-record-{}-{name}", std::process::id()))
    }

    #[test]
    fn the_size_comes_from_a_vp8_keyframe() {
        let key = frame(TrackKind::Video, MediaCodec::Vp8, 0, true);
        assert_eq!(picture_size(&key), (320, 180));
        let delta = frame(TrackKind::Video, MediaCodec::Vp8, 0, false);
        assert_eq!(picture_size(&delta), DEFAULT_SIZE);
    }

    #[test]
    fn opus_head_is_19_bytes_with_the_channels_and_rate() {
        let head = opus_head(2, 48_000);
        assert_eq!(head.len(), 19);
        assert_eq!(&head[..8], b"OpusHead");
        assert_eq!((head[8], head[9]), (1, 2));
        assert_eq!(&head[12..16], &48_000u32.to_le_bytes());
    }

    #[test]
    fn a_bad_path_is_an_error_at_once() {
        let err = Recorder::create("/nonexistent-dir/x.webm").unwrap_err();
        assert!(matches!(err, RecordError::Create { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent-dir/x.webm"), "{err}");
    }

    #[test]
    fn frames_are_written_in_order_and_what_webm_cannot_hold_is_counted() {
        let path = temp("order.webm");
        let mut recorder = Recorder::create(&path).unwrap();
        // Audio first, then video from a keyframe; one H.264 frame from elsewhere.
        recorder
            .write(&frame(TrackKind::Audio, MediaCodec::Opus, 0, false))
            .unwrap();
        recorder
            .write(&frame(TrackKind::Video, MediaCodec::H264, 5, true))
            .unwrap();
        for n in 0..30u64 {
            recorder
                .write(&frame(
                    TrackKind::Video,
                    MediaCodec::Vp8,
                    10 + n * 33,
                    n == 0,
                ))
                .unwrap();
            recorder
                .write(&frame(
                    TrackKind::Audio,
                    MediaCodec::Opus,
                    20 + n * 33,
                    false,
                ))
                .unwrap();
        }
        // A late audio frame, far behind the reorder window.
        recorder
            .write(&frame(TrackKind::Audio, MediaCodec::Opus, 1, false))
            .unwrap();
        let summary = recorder.finish().unwrap();
        assert_eq!(summary.video_frames, 30);
        assert_eq!(summary.audio_frames, 32);
        assert_eq!(summary.unsupported_codec, 1);
        assert_eq!(summary.late, 1);
        assert!(
            summary.to_string().contains("skipped 1 frames of a codec"),
            "{summary}"
        );
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..4], &[0x1a, 0x45, 0xdf, 0xa3], "an EBML file");
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn a_full_disk_ends_the_recording_with_the_io_error() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let mut recorder = Recorder::create("/dev/full").expect("Linux has /dev/full");
        let mut result = Ok(());
        for n in 0..2_000u64 {
            result = recorder.write(&frame(
                TrackKind::Video,
                MediaCodec::Vp8,
                n * 33,
                n % 30 == 0,
            ));
            if result.is_err() {
                break;
            }
        }
        let result = result.and_then(|()| recorder.finish().map(drop));
        let err = result.unwrap_err();
        assert!(matches!(&err, RecordError::Write(_)), "{err:?}");
        assert!(err.to_string().contains("No space left"), "{err}");
    }

    #[test]
    fn the_container_comes_from_the_file_name() {
        for (name, container) in [
            ("a.mp4", Container::Mp4),
            ("a.M4V", Container::Mp4),
            ("dir.mp4/a.mov", Container::Mp4),
            ("a.webm", Container::WebM),
            ("a.mkv", Container::WebM),
            ("a", Container::WebM),
        ] {
            assert_eq!(Container::for_path(Path::new(name)), container, "{name}");
        }
        assert!(Container::Mp4.stores(MediaCodec::H264));
        assert!(!Container::Mp4.stores(MediaCodec::Vp8));
        assert!(!Container::WebM.stores(MediaCodec::H264));
        assert!(
            Container::WebM.stores(MediaCodec::Opus) && Container::Mp4.stores(MediaCodec::Opus)
        );
    }

    /// The testkit's H.264 clip as frames of one session, 30 fps, with Opus beside it.
    #[cfg(feature = "testkit")]
    fn h264_frames(count: usize) -> Vec<MediaFrame> {
        let clip = crate::testkit::clip::Clip::builtin_with(crate::testkit::clip::ClipCodec::H264)
            .unwrap();
        let mut out = Vec::new();
        for (n, video) in clip.video.frames().iter().cycle().take(count).enumerate() {
            let ms = n as u64 * 100 / 3;
            let mut f = frame(TrackKind::Video, MediaCodec::H264, ms, video.keyframe);
            f.data = Arc::clone(&video.data);
            out.push(f);
            let packet = &clip.audio.packets()[n % clip.audio.packets().len()];
            let mut a = frame(TrackKind::Audio, MediaCodec::Opus, ms + 5, false);
            a.data = Arc::clone(packet);
            out.push(a);
        }
        out
    }

    #[cfg(feature = "testkit")]
    #[test]
    fn h264_goes_to_mp4_from_its_first_keyframe_and_what_mp4_cannot_hold_is_counted() {
        let path = temp("h264.mp4");
        let mut recorder = Recorder::create(&path).unwrap();
        assert_eq!(recorder.container(), Container::Mp4);
        // A VP8 frame has no place in MP4; an H.264 inter frame before the first keyframe has
        // nothing to decode against.
        recorder
            .write(&frame(TrackKind::Video, MediaCodec::Vp8, 0, true))
            .unwrap();
        let mut frames = h264_frames(90);
        frames.rotate_left(2); // starts with frame 1, an inter frame
        for f in frames.iter_mut() {
            f.pts += Duration::from_secs(1);
        }
        for f in &frames {
            recorder.write(f).unwrap();
        }
        let summary = recorder.finish().unwrap();
        assert_eq!(summary.unsupported_codec, 1, "{summary}");
        assert!(summary.before_keyframe >= 29, "{summary}");
        assert!(summary.video_frames >= 59, "{summary}");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[4..8], b"ftyp");
        assert!(bytes.windows(4).any(|w| w == b"moov"));
        assert!(bytes.windows(4).any(|w| w == b"avcC"));
        std::fs::remove_file(&path).ok();
    }

    #[cfg(feature = "testkit")]
    #[test]
    fn a_full_disk_ends_an_mp4_recording_with_the_io_error() {
        let mut recorder =
            Recorder::create_as("/dev/full", Container::Mp4).expect("Linux has /dev/full");
        let mut result = Ok(());
        for f in h264_frames(600) {
            result = recorder.write(&f);
            if result.is_err() {
                break;
            }
        }
        let result = result.and_then(|()| recorder.finish().map(drop));
        let err = result.unwrap_err();
        assert!(matches!(&err, RecordError::Write(_)), "{err:?}");
        assert!(err.to_string().contains("No space left"), "{err}");
    }
}
