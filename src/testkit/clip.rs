//! The testkit's media clip: real VP8 video and real Opus audio that a recording of the demo can
//! decode, embedded with `include_bytes!` (nothing is read at run time).
//!
//! [`Clip::builtin`] is `testdata/clip/` of the repository (its README says how it was made):
//! 150 frames of VP8 (320×180, 30 fps, a keyframe every 30 frames) and 251 Opus packets (48 kHz
//! mono, 20 ms each). [`ClipCursor`] walks it in a loop for a sender: which frame is next, with
//! which RTP timestamp, when it is due, and a keyframe when one is asked for.
//!
//! The readers ([`VideoClip::from_ivf`], [`AudioClip::from_packets`]) take any bytes: bad or
//! truncated data is a [`ClipError`], never a panic.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

const VIDEO_IVF: &[u8] = include_bytes!("../../testdata/clip/video.ivf");
const VIDEO_H264: &[u8] = include_bytes!("../../testdata/clip/video.h264");
const AUDIO_PACKETS: &[u8] = include_bytes!("../../testdata/clip/audio.opuspkt");

/// Why clip data could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClipError {
    /// The data ends inside a header or a frame.
    #[error("clip data truncated in {what} at byte {offset}")]
    Truncated {
        /// What was being read (`"IVF header"`, `"frame 3"`, ...).
        what: String,
        /// Where it was being read.
        offset: usize,
    },
    /// The data does not start with the expected signature.
    #[error("not {0} data (bad signature)")]
    BadSignature(&'static str),
    /// The data is well formed but holds something the testkit does not send.
    #[error("unsupported clip: {0}")]
    Unsupported(String),
    /// A frame or packet is malformed.
    #[error("bad frame {index}: {reason}")]
    BadFrame {
        /// The frame's (or packet's) index in the clip.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// There is nothing to send, or it cannot start decodably.
    #[error("clip has no {0}")]
    Missing(&'static str),
}

/// The video codec of a [`VideoClip`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClipCodec {
    /// VP8 (RFC 6386), read from IVF. The default.
    #[default]
    Vp8,
    /// H.264 constrained baseline (packetization mode 1), read from an Annex-B stream.
    H264,
}

/// One frame of a [`VideoClip`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoFrame {
    /// The frame as a sender hands it to its packetizer, shared (a sender hands out clones of
    /// the `Arc`, not copies): for VP8 the frame (RFC 7741 payload, no descriptor), for H.264
    /// the access unit in Annex-B form (start codes, no access unit delimiter; a keyframe
    /// carries its SPS and PPS).
    pub data: Arc<[u8]>,
    /// Whether it is a key frame (VP8: bit 0 of the frame tag is 0; H.264: an IDR picture).
    pub keyframe: bool,
}

/// The frames of a video clip: VP8 read from IVF, or H.264 read from Annex-B.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoClip {
    codec: ClipCodec,
    width: u16,
    height: u16,
    frames: Vec<VideoFrame>,
    keyframes: Vec<usize>,
}

const IVF_HEADER: usize = 32;
const IVF_FRAME_HEADER: usize = 12;

impl VideoClip {
    /// Reads an IVF file of VP8: the 32-byte file header (`DKIF`, version 0, header size 32,
    /// fourcc `VP80`, width, height, time base, frame count) and the frames, each behind a
    /// 12-byte header (size, timestamp). The first frame must be a key frame, so that a loop
    /// starts decodably; the header's frame count and timestamps are not relied on.
    pub fn from_ivf(data: &[u8]) -> Result<VideoClip, ClipError> {
        let header = data.get(..IVF_HEADER).ok_or_else(|| ClipError::Truncated {
            what: "IVF header".into(),
            offset: data.len(),
        })?;
        if &header[..4] != b"DKIF" {
            return Err(ClipError::BadSignature("IVF"));
        }
        let version = u16_at(header, 4);
        let header_size = u16_at(header, 6);
        if version != 0 || usize::from(header_size) != IVF_HEADER {
            return Err(ClipError::Unsupported(format!(
                "IVF version {version}, header size {header_size}"
            )));
        }
        if &header[8..12] != b"VP80" {
            return Err(ClipError::Unsupported(format!(
                "codec {:?} (only VP80)",
                String::from_utf8_lossy(&header[8..12])
            )));
        }
        let (width, height) = (u16_at(header, 12), u16_at(header, 14));
        let mut frames = Vec::new();
        let mut offset = IVF_HEADER;
        while offset < data.len() {
            let index = frames.len();
            let truncated = |offset| ClipError::Truncated {
                what: format!("frame {index}"),
                offset,
            };
            let frame_header = data
                .get(offset..offset + IVF_FRAME_HEADER)
                .ok_or_else(|| truncated(data.len()))?;
            let size = u32::from_le_bytes([
                frame_header[0],
                frame_header[1],
                frame_header[2],
                frame_header[3],
            ]);
            let start = offset + IVF_FRAME_HEADER;
            let end = usize::try_from(size)
                .ok()
                .and_then(|size| start.checked_add(size))
                .filter(|&end| end <= data.len())
                .ok_or_else(|| truncated(data.len()))?;
            let frame = &data[start..end];
            let keyframe = vp8_keyframe(frame, index)?;
            frames.push(VideoFrame {
                data: Arc::from(frame),
                keyframe,
            });
            offset = end;
        }
        VideoClip::from_frames(ClipCodec::Vp8, (width, height), frames)
    }

    /// Reads an H.264 Annex-B byte stream whose access units each begin with an access unit
    /// delimiter (x264's `aud=1`), as `testdata/clip/make.sh` writes it: one access unit per
    /// frame, an IDR picture being a key frame. The picture size comes from the first sequence
    /// parameter set. The first frame must be a key frame with its parameter sets.
    pub fn from_h264(data: &[u8]) -> Result<VideoClip, ClipError> {
        use crate::h264::{nal, nal_type, nal_units, parse_sps};
        let mut frames = Vec::new();
        let mut unit_bytes: Vec<u8> = Vec::new();
        let mut size = None;
        let flush = |unit_bytes: &mut Vec<u8>, frames: &mut Vec<VideoFrame>| {
            if !unit_bytes.is_empty() {
                let keyframe = crate::h264::is_idr(unit_bytes);
                frames.push(VideoFrame {
                    data: Arc::from(std::mem::take(unit_bytes)),
                    keyframe,
                });
            }
        };
        for unit in nal_units(data) {
            match nal_type(unit) {
                Some(nal::AUD) => flush(&mut unit_bytes, &mut frames),
                Some(kind) => {
                    if kind == nal::SPS && size.is_none() {
                        let info = parse_sps(unit).ok_or(ClipError::BadFrame {
                            index: frames.len(),
                            reason: "unreadable sequence parameter set",
                        })?;
                        let dimension = |v: u32| {
                            u16::try_from(v).map_err(|_| {
                                ClipError::Unsupported(format!("a picture {v} pixels wide or high"))
                            })
                        };
                        size = Some((dimension(info.width)?, dimension(info.height)?));
                    }
                    unit_bytes.extend_from_slice(&[0, 0, 0, 1]);
                    unit_bytes.extend_from_slice(unit);
                }
                None => {}
            }
        }
        flush(&mut unit_bytes, &mut frames);
        if frames.is_empty() {
            return Err(ClipError::Missing("video frames"));
        }
        let size = size.ok_or(ClipError::Missing("sequence parameter set"))?;
        VideoClip::from_frames(ClipCodec::H264, size, frames)
    }

    fn from_frames(
        codec: ClipCodec,
        (width, height): (u16, u16),
        frames: Vec<VideoFrame>,
    ) -> Result<VideoClip, ClipError> {
        let keyframes: Vec<usize> = frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f.keyframe)
            .map(|(i, _)| i)
            .collect();
        if frames.is_empty() {
            return Err(ClipError::Missing("video frames"));
        }
        if keyframes.first() != Some(&0) {
            return Err(ClipError::Missing("key frame to start with"));
        }
        Ok(VideoClip {
            codec,
            width,
            height,
            frames,
            keyframes,
        })
    }

    /// The clip's codec.
    pub fn codec(&self) -> ClipCodec {
        self.codec
    }

    /// The picture's width and height (from the IVF header, or the H.264 SPS).
    pub fn size(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    /// The frames, in order (never empty; the first is a key frame).
    pub fn frames(&self) -> &[VideoFrame] {
        &self.frames
    }

    /// The indices of the key frames, ascending (never empty; the first is 0).
    pub fn keyframes(&self) -> &[usize] {
        &self.keyframes
    }

    /// The first key frame at or after `index`, or the clip's start when there is none.
    fn keyframe_from(&self, index: usize) -> usize {
        let at = self.keyframes.partition_point(|&k| k < index);
        self.keyframes.get(at).copied().unwrap_or(0)
    }
}

/// Checks a VP8 frame's tag (RFC 6386, 9.1) and says whether it is a key frame: 3 bytes of tag
/// (bit 0 of byte 0 is 0 for a key frame), then for a key frame the start code `9d 01 2a` and
/// 4 bytes of size.
fn vp8_keyframe(frame: &[u8], index: usize) -> Result<bool, ClipError> {
    let bad = |reason| ClipError::BadFrame { index, reason };
    let tag = frame.get(..3).ok_or(bad("shorter than a VP8 frame tag"))?;
    if tag[0] & 0x10 == 0 {
        return Err(bad("not a shown frame (WebRTC sends only shown frames)"));
    }
    let keyframe = tag[0] & 0x01 == 0;
    if keyframe {
        let start = frame
            .get(3..10)
            .ok_or(bad("key frame shorter than its header"))?;
        if start[..3] != [0x9d, 0x01, 0x2a] {
            return Err(bad("key frame without the VP8 start code"));
        }
    }
    Ok(keyframe)
}

fn u16_at(data: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([data[at], data[at + 1]])
}

/// Opus packets read from the testkit's packet file (format in `testdata/clip/README.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioClip {
    channels: u8,
    packets: Vec<Arc<[u8]>>,
}

const PACKETS_SIGNATURE: &[u8; 8] = b"RLOPUS01";
const PACKETS_HEADER: usize = 12;

impl AudioClip {
    /// Reads a packet file: the 8 bytes `RLOPUS01`, the channel count (1 or 2), the frame
    /// duration in ms (20, the only one the testkit sends), a little-endian `u16` packet count,
    /// then per packet a little-endian `u16` length and the packet. Every packet must hold one
    /// 20 ms Opus frame (its TOC byte says so); nothing may follow the last one.
    pub fn from_packets(data: &[u8]) -> Result<AudioClip, ClipError> {
        let header = data
            .get(..PACKETS_HEADER)
            .ok_or_else(|| ClipError::Truncated {
                what: "packet file header".into(),
                offset: data.len(),
            })?;
        if &header[..8] != PACKETS_SIGNATURE {
            return Err(ClipError::BadSignature("Opus packet file"));
        }
        let channels = header[8];
        if !(1..=2).contains(&channels) || header[9] != 20 {
            return Err(ClipError::Unsupported(format!(
                "{channels} channels, {} ms frames (only 1 or 2 channels, 20 ms)",
                header[9]
            )));
        }
        let count = usize::from(u16_at(header, 10));
        let mut packets = Vec::with_capacity(count);
        let mut offset = PACKETS_HEADER;
        for index in 0..count {
            let truncated = || ClipError::Truncated {
                what: format!("packet {index}"),
                offset: data.len(),
            };
            let len = data
                .get(offset..offset + 2)
                .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
                .ok_or_else(truncated)?;
            let packet = data
                .get(offset + 2..offset + 2 + len)
                .ok_or_else(truncated)?;
            let toc = *packet.first().ok_or(ClipError::BadFrame {
                index,
                reason: "empty Opus packet",
            })?;
            if opus_frame_us(toc >> 3) != 20_000 || toc & 0x03 != 0 {
                return Err(ClipError::BadFrame {
                    index,
                    reason: "not one 20 ms Opus frame",
                });
            }
            packets.push(Arc::from(packet));
            offset += 2 + len;
        }
        if offset != data.len() {
            return Err(ClipError::Unsupported(format!(
                "{} bytes after the last packet",
                data.len() - offset
            )));
        }
        if packets.is_empty() {
            return Err(ClipError::Missing("audio packets"));
        }
        Ok(AudioClip { channels, packets })
    }

    /// 1 (mono) or 2 (stereo).
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// The Opus packets, in order, 20 ms each (never empty).
    pub fn packets(&self) -> &[Arc<[u8]>] {
        &self.packets
    }
}

/// The frame duration of an Opus TOC configuration (RFC 6716, 3.1), in microseconds.
fn opus_frame_us(config: u8) -> u32 {
    match config {
        0..=11 => [10_000, 20_000, 40_000, 60_000][usize::from(config % 4)],
        12..=15 => [10_000, 20_000][usize::from(config % 2)],
        _ => [2_500, 5_000, 10_000, 20_000][usize::from(config % 4)],
    }
}

/// A video and an audio clip, sent side by side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clip {
    /// VP8 or H.264 at 30 fps.
    pub video: VideoClip,
    /// Opus in 20 ms packets.
    pub audio: AudioClip,
}

impl Clip {
    /// The VP8 clip committed in `testdata/clip/` (with its Opus audio), read once per process.
    pub fn builtin() -> Result<&'static Clip, ClipError> {
        Clip::builtin_with(ClipCodec::Vp8)
    }

    /// The clip committed in `testdata/clip/` with its video in `codec` — the same 5 s test
    /// pattern, 320×180 at 30 fps, a key frame every 30 frames — and the same Opus audio; each
    /// read once per process.
    pub fn builtin_with(codec: ClipCodec) -> Result<&'static Clip, ClipError> {
        static VP8: OnceLock<Result<Clip, ClipError>> = OnceLock::new();
        static H264: OnceLock<Result<Clip, ClipError>> = OnceLock::new();
        let (cell, read): (_, fn() -> Result<VideoClip, ClipError>) = match codec {
            ClipCodec::Vp8 => (&VP8, || VideoClip::from_ivf(VIDEO_IVF)),
            ClipCodec::H264 => (&H264, || VideoClip::from_h264(VIDEO_H264)),
        };
        cell.get_or_init(|| {
            Ok(Clip {
                video: read()?,
                audio: AudioClip::from_packets(AUDIO_PACKETS)?,
            })
        })
        .as_ref()
        .map_err(Clone::clone)
    }
}

/// 90 kHz RTP ticks per video frame at 30 fps.
pub const VIDEO_TICKS: u64 = 3_000;
/// 48 kHz RTP ticks per 20 ms Opus packet.
pub const AUDIO_TICKS: u64 = 960;

/// Where a sender is in a looped [`Clip`]: the next video frame and audio packet, their RTP
/// timestamps and when they are due on the wall clock.
///
/// Time and position are separate. Every slot (a video frame each 1/30 s, an audio packet each
/// 20 ms, from the cursor's start) moves the RTP timestamp on, whether or not something is
/// sent in it: [`next_video`](Self::next_video) sends the next frame in the slot,
/// [`skip_video`](Self::skip_video) lets the slot pass (a frozen encoder: nothing sent, the
/// clip does not move, so what comes after still decodes against what was sent). Timestamps
/// therefore only increase, across loops too, and are the slot's due time exactly: video
/// `n × 3000` at 90 kHz and audio `m × 960` at 48 kHz are both `n / 30` s and `m / 50` s after
/// the start, one wall clock.
///
/// [`request_keyframe`](Self::request_keyframe) (a PLI or FIR from the viewer) makes the next
/// video frame sent a key frame: the cursor jumps to the clip's next key frame (the picture
/// jumps, up to a second, but decodes).
#[derive(Clone, Debug)]
pub struct ClipCursor<'a> {
    clip: &'a Clip,
    video_slot: u64,
    video_at: usize,
    audio_slot: u64,
    audio_at: usize,
    keyframe_wanted: bool,
}

impl<'a> ClipCursor<'a> {
    /// A cursor at the clip's start (a key frame) and time zero.
    pub fn new(clip: &'a Clip) -> ClipCursor<'a> {
        ClipCursor {
            clip,
            video_slot: 0,
            video_at: 0,
            audio_slot: 0,
            audio_at: 0,
            keyframe_wanted: false,
        }
    }

    /// When the next video slot is due, after the cursor's start.
    pub fn video_due(&self) -> Duration {
        slot_time(self.video_slot, 30)
    }

    /// When the next audio slot is due, after the cursor's start.
    pub fn audio_due(&self) -> Duration {
        slot_time(self.audio_slot, 50)
    }

    /// The next video frame and its 90 kHz RTP timestamp; the slot and the frame are used.
    pub fn next_video(&mut self) -> (u64, &'a VideoFrame) {
        let video = &self.clip.video;
        if self.keyframe_wanted {
            self.keyframe_wanted = false;
            self.video_at = video.keyframe_from(self.video_at);
        }
        let frame = &video.frames[self.video_at];
        self.video_at = (self.video_at + 1) % video.frames.len();
        let time = self.video_slot * VIDEO_TICKS;
        self.video_slot += 1;
        (time, frame)
    }

    /// The codec of the clip's video.
    pub fn video_codec(&self) -> ClipCodec {
        self.clip.video.codec
    }

    /// Lets the next video slot pass with nothing sent.
    pub fn skip_video(&mut self) {
        self.video_slot += 1;
    }

    /// The next Opus packet and its 48 kHz RTP timestamp; the slot and the packet are used.
    pub fn next_audio(&mut self) -> (u64, &'a Arc<[u8]>) {
        let packets = &self.clip.audio.packets;
        let packet = &packets[self.audio_at];
        self.audio_at = (self.audio_at + 1) % packets.len();
        let time = self.audio_slot * AUDIO_TICKS;
        self.audio_slot += 1;
        (time, packet)
    }

    /// Lets the next audio slot pass with nothing sent.
    pub fn skip_audio(&mut self) {
        self.audio_slot += 1;
    }

    /// Makes the next video frame sent a key frame.
    pub fn request_keyframe(&mut self) {
        self.keyframe_wanted = true;
    }
}

/// `slot / per_second` seconds, exact to the nanosecond (no drift from adding a rounded period).
fn slot_time(slot: u64, per_second: u64) -> Duration {
    Duration::from_secs(slot / per_second)
        + Duration::from_nanos((slot % per_second) * 1_000_000_000 / per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip() -> &'static Clip {
        Clip::builtin().unwrap()
    }

    #[test]
    fn the_builtin_clip_is_five_seconds_of_vp8_and_opus() {
        let clip = clip();
        assert_eq!(clip.video.size(), (320, 180));
        assert_eq!(clip.video.frames().len(), 150);
        assert_eq!(clip.video.keyframes(), [0, 30, 60, 90, 120]);
        let keys: Vec<_> = clip
            .video
            .frames()
            .iter()
            .enumerate()
            .filter(|(_, f)| f.keyframe)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(keys, clip.video.keyframes());
        assert_eq!(clip.audio.channels(), 1);
        assert_eq!(clip.audio.packets().len(), 251);
        // Frames differ (a moving pattern), and key frames are the big ones.
        let frames = clip.video.frames();
        assert!(frames.windows(2).all(|w| w[0].data != w[1].data));
        assert!(frames[0].data.len() > 2 * frames[1].data.len());
    }

    #[test]
    fn the_builtin_h264_clip_is_the_same_five_seconds() {
        let clip = Clip::builtin_with(ClipCodec::H264).unwrap();
        assert_eq!(clip.video.codec(), ClipCodec::H264);
        assert_eq!(clip.video.size(), (320, 180));
        assert_eq!(clip.video.frames().len(), 150);
        assert_eq!(clip.video.keyframes(), [0, 30, 60, 90, 120]);
        for frame in clip.video.frames() {
            assert_eq!(&frame.data[..4], &[0, 0, 0, 1], "Annex-B");
            let types: Vec<u8> = crate::h264::nal_units(&frame.data)
                .filter_map(crate::h264::nal_type)
                .collect();
            assert!(!types.contains(&crate::h264::nal::AUD), "{types:?}");
            if frame.keyframe {
                assert!(
                    types.starts_with(&[7, 8]),
                    "parameter sets first: {types:?}"
                );
            }
        }
        assert_eq!(clip.audio, Clip::builtin().unwrap().audio);
    }

    #[test]
    fn bad_h264_is_a_typed_error() {
        assert_eq!(
            VideoClip::from_h264(&[]),
            Err(ClipError::Missing("video frames"))
        );
        // An inter frame first.
        let inter = [0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x41, 0x9a, 0x00];
        assert!(matches!(
            VideoClip::from_h264(&inter),
            Err(ClipError::Missing(_))
        ));
        // A keyframe without an SPS.
        let idr = [0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x65, 0x88, 0x80];
        assert_eq!(
            VideoClip::from_h264(&idr),
            Err(ClipError::Missing("sequence parameter set"))
        );
        // A broken SPS.
        let sps = [0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0, 0, 0, 1, 0x65, 0x88];
        assert!(matches!(
            VideoClip::from_h264(&sps),
            Err(ClipError::BadFrame { index: 0, .. })
        ));
        // Every cut of the real clip reads or fails, never panics.
        let data = VIDEO_H264;
        for len in (0..data.len()).step_by(997) {
            let _ = VideoClip::from_h264(&data[..len]);
        }
    }

    #[test]
    fn what_the_cursor_sends_of_the_h264_clip_decodes() {
        let clip = Clip::builtin_with(ClipCodec::H264).unwrap();
        let mut cursor = ClipCursor::new(clip);
        let mut stream = Vec::new();
        for slot in 0..200 {
            if slot == 50 || slot == 140 {
                cursor.request_keyframe();
            }
            if (70..90).contains(&slot) {
                cursor.skip_video();
            } else {
                stream.extend_from_slice(&cursor.next_video().1.data);
            }
        }
        ffmpeg_decodes_silently("cursor.h264", &stream);
    }

    /// A minimal IVF of `frames`, as ffmpeg writes it.
    fn ivf(frames: &[&[u8]]) -> Vec<u8> {
        let mut out = b"DKIF\0\0\x20\0VP80".to_vec();
        out.extend_from_slice(&320u16.to_le_bytes());
        out.extend_from_slice(&180u16.to_le_bytes());
        out.extend_from_slice(&30u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(frames.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        for (i, frame) in frames.iter().enumerate() {
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&(i as u64).to_le_bytes());
            out.extend_from_slice(frame);
        }
        out
    }

    const KEY: &[u8] = &[
        0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00, 0xaa,
    ];
    const INTER: &[u8] = &[0x11, 0x02, 0x00, 0xbb];

    #[test]
    fn ivf_frames_and_their_keyframe_flags_are_read() {
        let video = VideoClip::from_ivf(&ivf(&[KEY, INTER, INTER, KEY, INTER])).unwrap();
        assert_eq!(video.size(), (320, 180));
        let flags: Vec<_> = video.frames().iter().map(|f| f.keyframe).collect();
        assert_eq!(flags, [true, false, false, true, false]);
        assert_eq!(video.keyframes(), [0, 3]);
        assert_eq!(&*video.frames()[1].data, INTER);
        assert_eq!(video.keyframe_from(0), 0);
        assert_eq!(video.keyframe_from(1), 3);
        assert_eq!(video.keyframe_from(3), 3);
        assert_eq!(video.keyframe_from(4), 0);
    }

    #[test]
    fn truncated_ivf_is_an_error_at_every_length() {
        let data = ivf(&[KEY, INTER, INTER]);
        let boundaries = [
            IVF_HEADER + IVF_FRAME_HEADER + KEY.len(),
            IVF_HEADER + 2 * IVF_FRAME_HEADER + KEY.len() + INTER.len(),
        ];
        for len in 0..data.len() {
            let result = VideoClip::from_ivf(&data[..len]);
            if len == IVF_HEADER {
                assert_eq!(result, Err(ClipError::Missing("video frames")));
            } else if boundaries.contains(&len) {
                assert!(result.is_ok(), "{len}: {result:?}");
            } else {
                assert!(
                    matches!(result, Err(ClipError::Truncated { .. })),
                    "{len}: {result:?}"
                );
            }
        }
        assert_eq!(VideoClip::from_ivf(&data).unwrap().frames().len(), 3);
    }

    #[test]
    fn bad_ivf_is_a_typed_error() {
        let good = ivf(&[KEY, INTER]);
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        assert_eq!(
            VideoClip::from_ivf(&bad_magic),
            Err(ClipError::BadSignature("IVF"))
        );
        let mut vp9 = good.clone();
        vp9[8..12].copy_from_slice(b"VP90");
        assert!(matches!(
            VideoClip::from_ivf(&vp9),
            Err(ClipError::Unsupported(_))
        ));
        let mut huge = good.clone();
        huge[IVF_HEADER..IVF_HEADER + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            VideoClip::from_ivf(&huge),
            Err(ClipError::Truncated { .. })
        ));
        let inter_first = VideoClip::from_ivf(&ivf(&[INTER, KEY]));
        assert_eq!(
            inter_first,
            Err(ClipError::Missing("key frame to start with"))
        );
        for (frame, reason) in [
            (&[][..], "shorter than a VP8 frame tag"),
            (&[0x10, 0x02][..], "shorter than a VP8 frame tag"),
            (
                &[0x10, 0x02, 0x00, 0x9d][..],
                "key frame shorter than its header",
            ),
            (
                &KEY[..3].iter().chain(&[0; 8]).copied().collect::<Vec<_>>()[..],
                "key frame without the VP8 start code",
            ),
            (
                &[0x01, 0x02, 0x00, 0xbb][..],
                "not a shown frame (WebRTC sends only shown frames)",
            ),
        ] {
            assert_eq!(
                VideoClip::from_ivf(&ivf(&[KEY, frame])),
                Err(ClipError::BadFrame { index: 1, reason }),
                "{frame:02x?}"
            );
        }
    }

    #[test]
    fn garbage_never_panics_the_readers() {
        let mut seed = 0x1234_5678_u32;
        for len in 0..400 {
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            assert!(VideoClip::from_ivf(&garbage).is_err());
            assert!(AudioClip::from_packets(&garbage).is_err());
            // With a valid signature the rest is still garbage.
            let mut ivf = ivf(&[]);
            ivf.extend_from_slice(&garbage);
            let _ = VideoClip::from_ivf(&ivf);
            let mut packets = packet_file(1, &[]);
            packets.extend_from_slice(&garbage);
            assert!(AudioClip::from_packets(&packets).is_err());
        }
    }

    fn packet_file(channels: u8, packets: &[&[u8]]) -> Vec<u8> {
        let mut out = PACKETS_SIGNATURE.to_vec();
        out.extend_from_slice(&[channels, 20]);
        out.extend_from_slice(&(packets.len() as u16).to_le_bytes());
        for packet in packets {
            out.extend_from_slice(&(packet.len() as u16).to_le_bytes());
            out.extend_from_slice(packet);
        }
        out
    }

    /// TOC bytes of one 20 ms frame: CELT fullband (config 31), hybrid (15), SILK (9).
    const CELT: &[u8] = &[0xf8, 1, 2, 3];
    const HYBRID: &[u8] = &[0x78, 4];
    const SILK: &[u8] = &[0x48, 5, 6];

    #[test]
    fn opus_packets_are_read() {
        let audio = AudioClip::from_packets(&packet_file(2, &[CELT, HYBRID, SILK])).unwrap();
        assert_eq!(audio.channels(), 2);
        let packets: Vec<&[u8]> = audio.packets().iter().map(|p| &**p).collect();
        assert_eq!(packets, [CELT, HYBRID, SILK]);
    }

    #[test]
    fn bad_or_truncated_opus_packets_are_typed_errors() {
        let data = packet_file(1, &[CELT, HYBRID]);
        for len in 0..data.len() {
            assert!(
                matches!(
                    AudioClip::from_packets(&data[..len]),
                    Err(ClipError::Truncated { .. })
                ),
                "{len}"
            );
        }
        let mut trailing = data.clone();
        trailing.push(0);
        assert!(matches!(
            AudioClip::from_packets(&trailing),
            Err(ClipError::Unsupported(_))
        ));
        assert!(matches!(
            AudioClip::from_packets(&packet_file(3, &[CELT])),
            Err(ClipError::Unsupported(_))
        ));
        assert_eq!(
            AudioClip::from_packets(&packet_file(1, &[])),
            Err(ClipError::Missing("audio packets"))
        );
        for (packet, reason) in [
            (&[][..], "empty Opus packet"),
            (&[0xf0, 1][..], "not one 20 ms Opus frame"), // CELT 10 ms
            (&[0xfb, 1][..], "not one 20 ms Opus frame"), // code 3: several frames
            (&[0x50, 1][..], "not one 20 ms Opus frame"), // SILK 40 ms
        ] {
            assert_eq!(
                AudioClip::from_packets(&packet_file(1, &[CELT, packet])),
                Err(ClipError::BadFrame { index: 1, reason }),
                "{packet:02x?}"
            );
        }
        let mut signature = data;
        signature[7] = b'2';
        assert_eq!(
            AudioClip::from_packets(&signature),
            Err(ClipError::BadSignature("Opus packet file"))
        );
    }

    #[test]
    fn timestamps_only_increase_across_loops_and_skips() {
        let clip = clip();
        let mut cursor = ClipCursor::new(clip);
        let mut last = None;
        let frames = clip.video.frames();
        for i in 0..3 * frames.len() + 7 {
            if i % 97 == 13 {
                cursor.skip_video();
                continue;
            }
            let (time, frame) = cursor.next_video();
            assert!(last.is_none_or(|last| time > last), "{last:?} then {time}");
            assert_eq!(time % VIDEO_TICKS, 0);
            last = Some(time);
            let _ = frame;
        }
        let mut last = None;
        for i in 0..3 * clip.audio.packets().len() + 7 {
            if i % 89 == 5 {
                cursor.skip_audio();
                continue;
            }
            let (time, _) = cursor.next_audio();
            assert!(last.is_none_or(|last| time > last), "{last:?} then {time}");
            assert_eq!(time % AUDIO_TICKS, 0);
            last = Some(time);
        }
    }

    #[test]
    fn the_loop_starts_again_at_the_first_frame_and_skips_keep_the_position() {
        let clip = clip();
        let frames = clip.video.frames();
        let mut cursor = ClipCursor::new(clip);
        for frame in frames {
            assert_eq!(cursor.next_video().1, frame);
        }
        for _ in 0..10 {
            cursor.skip_video();
        }
        let (time, first) = cursor.next_video();
        assert_eq!(first, &frames[0]);
        assert_eq!(time, (frames.len() as u64 + 10) * VIDEO_TICKS);
        assert_eq!(cursor.next_video().1, &frames[1]);
        let packets = clip.audio.packets();
        for packet in packets {
            assert_eq!(cursor.next_audio().1, packet);
        }
        cursor.skip_audio();
        let (time, first) = cursor.next_audio();
        assert_eq!(first, &packets[0]);
        assert_eq!(time, (packets.len() as u64 + 1) * AUDIO_TICKS);
    }

    #[test]
    fn a_keyframe_request_makes_the_next_frame_sent_a_keyframe() {
        let clip = clip();
        let frames = clip.video.frames();
        let mut cursor = ClipCursor::new(clip);
        for _ in 0..5 {
            cursor.next_video();
        }
        cursor.request_keyframe();
        let (time, frame) = cursor.next_video();
        assert!(frame.keyframe);
        assert_eq!(frame, &frames[30], "the next key frame of the clip");
        assert_eq!(time, 5 * VIDEO_TICKS, "time goes on, the picture jumps");
        assert_eq!(cursor.next_video().1, &frames[31]);
        assert!(
            !cursor.next_video().1.keyframe,
            "one request, one key frame"
        );
        // At a key frame already: no jump.
        for _ in 33..60 {
            cursor.next_video();
        }
        cursor.request_keyframe();
        assert_eq!(cursor.next_video().1, &frames[60]);
        // Past the last key frame: back to the start. Asked while frozen: the first frame sent.
        for _ in 61..125 {
            cursor.next_video();
        }
        cursor.request_keyframe();
        cursor.skip_video();
        cursor.skip_video();
        assert_eq!(cursor.next_video().1, &frames[0]);
        assert_eq!(cursor.next_video().1, &frames[1]);
    }

    #[test]
    fn audio_and_video_stay_on_one_wall_clock() {
        let clip = clip();
        let mut cursor = ClipCursor::new(clip);
        let (mut video, mut audio) = (Duration::ZERO, Duration::ZERO);
        for ms in 0..12_000u64 {
            let now = Duration::from_millis(ms);
            while cursor.video_due() <= now {
                let due = cursor.video_due();
                let (time, _) = cursor.next_video();
                video = Duration::from_nanos(time * 1_000_000_000 / 90_000);
                assert!(
                    due.abs_diff(video) < Duration::from_nanos(1),
                    "{due:?} {video:?}"
                );
            }
            while cursor.audio_due() <= now {
                if ms % 1000 < 100 {
                    cursor.skip_audio(); // frozen audio now and then: time goes on
                    continue;
                }
                let due = cursor.audio_due();
                let (time, _) = cursor.next_audio();
                audio = Duration::from_micros(time * 1_000_000 / 48_000);
                assert_eq!(due, audio);
            }
            if ms % 1000 >= 100 {
                let frame = Duration::from_nanos(33_333_334);
                assert!(
                    video.abs_diff(audio) <= frame,
                    "{now:?}: {video:?} {audio:?}"
                );
            }
        }
        assert_eq!(cursor.video_due(), Duration::from_secs(12));
        assert_eq!(cursor.audio_due(), Duration::from_secs(12));
    }

    /// `ffmpeg -v error -i FILE -f null -` says nothing and succeeds (ffmpeg must be installed,
    /// as for the recording tests).
    fn ffmpeg_decodes_silently(name: &str, data: &[u8]) {
        let path = std::env::temp_dir().join(format!("relive-{}-{name}", std::process::id()));
        std::fs::write(&path, data).unwrap();
        let output = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(&path)
            .args(["-f", "null", "-"])
            .output()
            .expect("ffmpeg must be installed (apt-get install ffmpeg)");
        std::fs::remove_file(&path).unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stderr.is_empty(),
            "{name}: {stderr}"
        );
    }

    #[test]
    fn what_the_cursor_sends_decodes_across_loops_freezes_and_keyframe_requests() {
        let clip = clip();
        let mut cursor = ClipCursor::new(clip);
        let mut sent: Vec<(u64, &[u8])> = Vec::new();
        let mut after_requests = Vec::new();
        for slot in 0..400 {
            match slot {
                70..=90 => cursor.skip_video(),
                _ => {
                    if slot == 45 || slot == 200 || slot == 333 {
                        cursor.request_keyframe();
                        after_requests.push(sent.len());
                    }
                    let (time, frame) = cursor.next_video();
                    sent.push((time, &frame.data));
                }
            }
        }
        let ivf_of = |sent: &[(u64, &[u8])]| {
            let mut file = ivf(&[]);
            for (time, frame) in sent {
                file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
                file.extend_from_slice(&(time / VIDEO_TICKS).to_le_bytes());
                file.extend_from_slice(frame);
            }
            file
        };
        ffmpeg_decodes_silently("cursor.ivf", &ivf_of(&sent));
        // A viewer that joins at a request decodes from the frame that answers it (ffmpeg
        // refuses a VP8 stream that starts with an inter frame).
        for from in after_requests {
            ffmpeg_decodes_silently("cursor-from-request.ivf", &ivf_of(&sent[from..]));
        }

        let mut packets: Vec<&[u8]> = Vec::new();
        for slot in 0..700 {
            if slot % 300 < 20 {
                cursor.skip_audio();
            } else {
                packets.push(cursor.next_audio().1);
            }
        }
        ffmpeg_decodes_silently("cursor.opus", &ogg_opus(clip.audio.channels(), &packets));
    }

    /// An Ogg Opus file (RFC 7845) of `packets`, one page each.
    fn ogg_opus(channels: u8, packets: &[&[u8]]) -> Vec<u8> {
        let mut head = b"OpusHead\x01".to_vec();
        head.push(channels);
        head.extend_from_slice(&0u16.to_le_bytes()); // pre-skip
        head.extend_from_slice(&48_000u32.to_le_bytes());
        head.extend_from_slice(&[0, 0, 0]); // gain, mapping family 0
        let mut tags = b"OpusTags".to_vec();
        tags.extend_from_slice(&5u32.to_le_bytes());
        tags.extend_from_slice(b"relive");
        tags.truncate(tags.len() - 1);
        tags.extend_from_slice(&0u32.to_le_bytes());
        let mut out = Vec::new();
        let mut page = |packet: &[u8], granule: u64, flags: u8, sequence: u32| {
            let start = out.len();
            out.extend_from_slice(b"OggS\0");
            out.push(flags);
            out.extend_from_slice(&granule.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes()); // serial
            out.extend_from_slice(&sequence.to_le_bytes());
            out.extend_from_slice(&[0; 4]); // CRC, below
            let mut lacing = vec![255u8; packet.len() / 255];
            lacing.push((packet.len() % 255) as u8);
            out.push(lacing.len() as u8);
            out.extend_from_slice(&lacing);
            out.extend_from_slice(packet);
            let crc = ogg_crc(&out[start..]);
            out[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
        };
        page(&head, 0, 0x02, 0);
        page(&tags, 0, 0, 1);
        for (i, packet) in packets.iter().enumerate() {
            let last = if i + 1 == packets.len() { 0x04 } else { 0 };
            page(packet, (i as u64 + 1) * AUDIO_TICKS, last, i as u32 + 2);
        }
        out
    }

    /// Ogg's CRC-32: polynomial 0x04c11db7, no reflection, zero initial and final values.
    fn ogg_crc(data: &[u8]) -> u32 {
        data.iter().fold(0u32, |mut crc, &byte| {
            crc ^= u32::from(byte) << 24;
            for _ in 0..8 {
                crc = if crc & 0x8000_0000 != 0 {
                    (crc << 1) ^ 0x04c1_1db7
                } else {
                    crc << 1
                };
            }
            crc
        })
    }
}
