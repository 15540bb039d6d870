//! The MP4 side of the [`Recorder`](super::Recorder): H.264 video and Opus audio, muxed by
//! `shiguredo_mp4`.
//!
//! MP4 gives a sample no timestamp, only a duration: a sample starts where the one before it
//! in its track ended. So each track holds its newest frame back until the next one arrives,
//! and writes it with the time to that next frame as its duration — a gap on the timeline (a
//! [`WallClock`](crate::timeline::GapMode::WallClock) reconnect, a lost frame) lengthens the
//! frame before it, exactly. Durations are counted from one origin in each track's timescale,
//! so rounding never accumulates. The data goes to the file as it comes; only the sample
//! tables stay in memory until [`Mp4Writer::finish`] writes the `moov` box at the end.
//!
//! Both tracks start at the file's time zero, so the file starts at the first video keyframe
//! (an MP4 video track needs its parameter sets first): video frames before it, and audio
//! frames before it, are not written (counted as `before_keyframe`). The audio's first packet
//! is then less than one packet (20 ms) after the video's first frame.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::num::NonZeroU32;
use std::time::Duration;

use shiguredo_mp4::boxes::{
    AudioSampleEntryFields, Avc1Box, AvccBox, DopsBox, OpusBox, SampleEntry,
    VisualSampleEntryFields,
};
use shiguredo_mp4::mux::{Mp4FileMuxer, Sample};
use shiguredo_mp4::{FixedPointNumber, TrackKind as Mp4Track, Uint};

use super::RecordError;
use crate::h264::{nal, nal_type, nal_units, parse_sps, to_length_prefixed};
use crate::webrtc::{MediaFrame, TrackKind};

/// The video track's timescale: RTP's 90 kHz.
const VIDEO_TIMESCALE: NonZeroU32 = NonZeroU32::new(90_000).expect("non-zero");
/// The duration given to a track's last frame when it has no successor: one 30 fps frame or
/// one 20 ms Opus packet, in the track's timescale.
const LAST_VIDEO: u32 = 3_000;
const LAST_AUDIO_MS: u32 = 20;

/// A frame held until its successor gives its duration.
struct Held {
    /// Presentation time, in the track's timescale since the file's origin.
    at: u64,
    data: Vec<u8>,
    keyframe: bool,
    entry: Option<SampleEntry>,
}

/// One track of the file.
struct Track {
    kind: Mp4Track,
    timescale: NonZeroU32,
    held: Option<Held>,
    /// The duration of the last sample written (for the final one).
    last_duration: u32,
    /// The sample entry in force (a new keyframe with other parameter sets gets a new one).
    entry: Option<SampleEntry>,
}

/// Writes H.264 and Opus frames into an MP4 file.
pub(super) struct Mp4Writer {
    file: BufWriter<File>,
    muxer: Mp4FileMuxer,
    position: u64,
    video: Option<Track>,
    audio: Option<Track>,
    /// The file's time zero: the first video keyframe (or the first frame, without video).
    origin: Option<Duration>,
}

impl Mp4Writer {
    /// Starts the file: writes the muxer's leading boxes. `video` and `audio` say which tracks
    /// the file has (the audio track's clock rate given).
    pub(super) fn start(
        file: File,
        video: bool,
        audio: Option<u32>,
    ) -> Result<Mp4Writer, RecordError> {
        let muxer = Mp4FileMuxer::new().map_err(|_| RecordError::Mux("start an MP4 file"))?;
        let mut file = BufWriter::new(file);
        let initial = muxer.initial_boxes_bytes();
        file.write_all(initial).map_err(RecordError::Write)?;
        let position = initial.len() as u64;
        let track = |kind, timescale, last_duration| Track {
            kind,
            timescale,
            held: None,
            last_duration,
            entry: None,
        };
        Ok(Mp4Writer {
            file,
            muxer,
            position,
            video: video.then(|| track(Mp4Track::Video, VIDEO_TIMESCALE, LAST_VIDEO)),
            audio: audio.and_then(NonZeroU32::new).map(|rate| {
                let last = rate.get() / 1000 * LAST_AUDIO_MS;
                track(Mp4Track::Audio, rate, last.max(1))
            }),
            origin: None,
        })
    }

    /// Writes `frame` (its predecessor in its track, that is). `Ok(false)` when the frame was
    /// not written because the file has not started at a video keyframe yet.
    pub(super) fn put(&mut self, frame: &MediaFrame) -> Result<bool, RecordError> {
        let is_video = frame.kind == TrackKind::Video;
        if self.origin.is_none() {
            let starts = if self.video.is_some() {
                is_video && frame.keyframe && avc_entry(&frame.data).is_some()
            } else {
                true
            };
            if !starts {
                return Ok(false);
            }
            self.origin = Some(frame.pts);
        }
        let origin = self.origin.unwrap_or(frame.pts);
        let Some(track) = (if is_video {
            self.video.as_mut()
        } else {
            self.audio.as_mut()
        }) else {
            return Ok(false);
        };
        let at = ticks(frame.pts.saturating_sub(origin), track.timescale);
        let (data, entry) = if is_video {
            let entry = if frame.keyframe {
                avc_entry(&frame.data).filter(|e| track.entry.as_ref() != Some(e))
            } else {
                None
            };
            (to_length_prefixed(&frame.data), entry)
        } else {
            let entry = match track.entry {
                None => Some(opus_entry(track.timescale.get())),
                Some(_) => None,
            };
            (frame.data.to_vec(), entry)
        };
        if track.entry.is_none() && entry.is_none() {
            // A video track cannot begin without its parameter sets.
            return Ok(false);
        }
        if let Some(entry) = &entry {
            track.entry = Some(entry.clone());
        }
        let next = Held {
            at,
            data,
            keyframe: frame.keyframe || !is_video,
            entry,
        };
        let previous = track.held.replace(next);
        if let Some(previous) = previous {
            // Strictly later than the frame before, or one tick after it.
            let duration = at.saturating_sub(previous.at).max(1);
            let duration = u32::try_from(duration).unwrap_or(u32::MAX);
            track.last_duration = duration;
            let kind = track.kind;
            let timescale = track.timescale;
            self.emit(kind, timescale, previous, duration)?;
        }
        Ok(true)
    }

    fn emit(
        &mut self,
        kind: Mp4Track,
        timescale: NonZeroU32,
        held: Held,
        duration: u32,
    ) -> Result<(), RecordError> {
        self.file
            .write_all(&held.data)
            .map_err(RecordError::Write)?;
        let sample = Sample {
            track_kind: kind,
            sample_entry: held.entry,
            keyframe: held.keyframe,
            timescale,
            duration,
            data_offset: self.position,
            data_size: held.data.len(),
        };
        self.muxer
            .append_sample(&sample)
            .map_err(|_| RecordError::Mux("add a sample"))?;
        self.position += held.data.len() as u64;
        Ok(())
    }

    /// Writes the held frames and the `moov` box, and flushes the file.
    pub(super) fn finish(mut self) -> Result<(), RecordError> {
        let mut last = Vec::new();
        for track in [self.video.as_mut(), self.audio.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(held) = track.held.take() {
                last.push((track.kind, track.timescale, track.last_duration, held));
            }
        }
        // In presentation order: their data goes to the file in the order of their samples.
        last.sort_by_key(|(_, timescale, _, held)| {
            u128::from(held.at) * 1_000_000_000 / u128::from(timescale.get())
        });
        for (kind, timescale, duration, held) in last {
            self.emit(kind, timescale, held, duration)?;
        }
        let finalized = self
            .muxer
            .finalize()
            .map_err(|_| RecordError::Mux("finish the MP4 file"))?;
        for (offset, bytes) in finalized.offset_and_bytes_pairs() {
            self.file
                .seek(SeekFrom::Start(offset))
                .and_then(|_| self.file.write_all(bytes))
                .map_err(RecordError::Write)?;
        }
        self.file.flush().map_err(RecordError::Write)?;
        Ok(())
    }
}

/// `duration` in units of `timescale`, rounded to the nearest.
fn ticks(duration: Duration, timescale: NonZeroU32) -> u64 {
    let scaled = duration.as_nanos() * u128::from(timescale.get()) + 500_000_000;
    u64::try_from(scaled / 1_000_000_000).unwrap_or(u64::MAX)
}

/// The `avc1` sample entry of an H.264 keyframe (Annex-B access unit): its first SPS and PPS,
/// the picture size from the SPS. `None` without a readable SPS or without a PPS.
fn avc_entry(access_unit: &[u8]) -> Option<SampleEntry> {
    let sps = nal_units(access_unit).find(|u| nal_type(u) == Some(nal::SPS))?;
    let pps = nal_units(access_unit).find(|u| nal_type(u) == Some(nal::PPS))?;
    let info = parse_sps(sps)?;
    let high = !matches!(info.profile, 66 | 77 | 88);
    Some(SampleEntry::Avc1(Avc1Box {
        visual: VisualSampleEntryFields {
            data_reference_index: VisualSampleEntryFields::DEFAULT_DATA_REFERENCE_INDEX,
            width: u16::try_from(info.width).ok()?,
            height: u16::try_from(info.height).ok()?,
            horizresolution: VisualSampleEntryFields::DEFAULT_HORIZRESOLUTION,
            vertresolution: VisualSampleEntryFields::DEFAULT_VERTRESOLUTION,
            frame_count: VisualSampleEntryFields::DEFAULT_FRAME_COUNT,
            compressorname: VisualSampleEntryFields::NULL_COMPRESSORNAME,
            depth: VisualSampleEntryFields::DEFAULT_DEPTH,
        },
        avcc_box: AvccBox {
            avc_profile_indication: info.profile,
            profile_compatibility: info.compatibility,
            avc_level_indication: info.level,
            length_size_minus_one: Uint::new(3),
            sps_list: vec![sps.to_vec()],
            pps_list: vec![pps.to_vec()],
            chroma_format: high.then(|| Uint::new(info.chroma_format)),
            bit_depth_luma_minus8: high.then(|| Uint::new(info.bit_depth_luma_minus8)),
            bit_depth_chroma_minus8: high.then(|| Uint::new(info.bit_depth_chroma_minus8)),
            sps_ext_list: Vec::new(),
        },
        unknown_boxes: Vec::new(),
    }))
}

/// The `Opus` sample entry (ISO/IEC 23003-5 style `dOps`): stereo output as WebRTC's Opus is
/// negotiated, no pre-skip, the input rate.
fn opus_entry(rate: u32) -> SampleEntry {
    SampleEntry::Opus(OpusBox {
        audio: AudioSampleEntryFields {
            data_reference_index: AudioSampleEntryFields::DEFAULT_DATA_REFERENCE_INDEX,
            channelcount: 2,
            samplesize: AudioSampleEntryFields::DEFAULT_SAMPLESIZE,
            samplerate: FixedPointNumber::new(u16::try_from(rate).unwrap_or(48_000), 0),
        },
        dops_box: DopsBox {
            output_channel_count: 2,
            pre_skip: 0,
            input_sample_rate: rate,
            output_gain: 0,
        },
        unknown_boxes: Vec::new(),
    })
}
