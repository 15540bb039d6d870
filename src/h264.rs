//! The little of H.264 (ITU-T H.264) the crate reads: NAL units of an Annex-B byte stream, and
//! the picture size and profile from a sequence parameter set. Pure functions over bytes; bad
//! input gives `None`, never a panic. The testkit's clip reader and the MP4 recorder share it;
//! with only one of them built, the other's part is unused.
#![cfg_attr(not(all(feature = "testkit", feature = "record")), allow(dead_code))]

/// NAL unit types (H.264 Table 7-1) the crate looks at.
pub(crate) mod nal {
    /// A slice of an IDR picture: a keyframe.
    pub(crate) const IDR: u8 = 5;
    /// A sequence parameter set.
    pub(crate) const SPS: u8 = 7;
    /// A picture parameter set.
    pub(crate) const PPS: u8 = 8;
    /// An access unit delimiter.
    pub(crate) const AUD: u8 = 9;
}

/// The NAL units of an Annex-B byte stream (each behind a `00 00 01` or `00 00 00 01` start
/// code), without their start codes; empty units are skipped. Bytes before the first start
/// code are not a NAL unit.
pub(crate) fn nal_units(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = start_code(stream).map(|(_, end)| &stream[end..]);
    std::iter::from_fn(move || {
        loop {
            let current = rest?;
            let (unit, next) = match start_code(current) {
                Some((at, end)) => (&current[..at], Some(&current[end..])),
                None => (current, None),
            };
            rest = next;
            // A unit may end in the zero byte of a 4-byte start code, or in trailing zeros.
            let trimmed = match unit.iter().rposition(|&b| b != 0) {
                Some(last) => &unit[..=last],
                None => &[][..],
            };
            if !trimmed.is_empty() {
                return Some(trimmed);
            }
        }
    })
}

/// The position of the first `00 00 01` in `data` and the index just after it.
fn start_code(data: &[u8]) -> Option<(usize, usize)> {
    data.windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|at| (at, at + 3))
}

/// The type of a NAL unit (the low 5 bits of its first byte).
pub(crate) fn nal_type(unit: &[u8]) -> Option<u8> {
    unit.first().map(|b| b & 0x1f)
}

/// Whether an Annex-B access unit holds an IDR slice.
pub(crate) fn is_idr(access_unit: &[u8]) -> bool {
    nal_units(access_unit).any(|u| nal_type(u) == Some(nal::IDR))
}

/// An access unit in MP4's form: each NAL unit behind its 4-byte big-endian length, without
/// access unit delimiters (ISO/IEC 14496-15 keeps parameter sets in the sample entry, but
/// allows them in samples too).
pub(crate) fn to_length_prefixed(access_unit: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(access_unit.len() + 16);
    for unit in nal_units(access_unit).filter(|u| nal_type(u) != Some(nal::AUD)) {
        let Ok(len) = u32::try_from(unit.len()) else {
            continue;
        };
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(unit);
    }
    out
}

/// What a sequence parameter set says about the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SpsInfo {
    /// `profile_idc`.
    pub(crate) profile: u8,
    /// The constraint flags byte (`profile_compatibility` in an `avcC`).
    pub(crate) compatibility: u8,
    /// `level_idc`.
    pub(crate) level: u8,
    /// The displayed picture width (after cropping), in pixels.
    pub(crate) width: u32,
    /// The displayed picture height (after cropping), in pixels.
    pub(crate) height: u32,
    /// `chroma_format_idc` (1, 4:2:0, unless a high profile says otherwise).
    pub(crate) chroma_format: u8,
    /// `bit_depth_luma_minus8`.
    pub(crate) bit_depth_luma_minus8: u8,
    /// `bit_depth_chroma_minus8`.
    pub(crate) bit_depth_chroma_minus8: u8,
}

/// Reads a sequence parameter set NAL unit (with its one-byte header) up to the picture size
/// and cropping (H.264 7.3.2.1.1). `None` for anything that is not a well-formed SPS.
pub(crate) fn parse_sps(unit: &[u8]) -> Option<SpsInfo> {
    if nal_type(unit)? != nal::SPS || unit.len() < 4 {
        return None;
    }
    let (profile, compatibility, level) = (unit[1], unit[2], unit[3]);
    let rbsp = unescape(&unit[4..]);
    let mut bits = Bits::new(&rbsp);
    bits.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    let (mut depth_luma, mut depth_chroma) = (0, 0);
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = bits.ue()?;
        if chroma_format_idc == 3 {
            separate_colour_plane = bits.bit()?;
        }
        depth_luma = bits.ue()?;
        depth_chroma = bits.ue()?;
        bits.bit()?; // qpprime_y_zero_transform_bypass_flag
        if bits.bit()? {
            // seq_scaling_matrix_present_flag: skip the scaling lists.
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if bits.bit()? {
                    skip_scaling_list(&mut bits, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    bits.ue()?; // log2_max_frame_num_minus4
    match bits.ue()? {
        0 => {
            bits.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            bits.bit()?; // delta_pic_order_always_zero_flag
            bits.se()?; // offset_for_non_ref_pic
            bits.se()?; // offset_for_top_to_bottom_field
            let cycle = bits.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                bits.se()?;
            }
        }
        2 => {}
        _ => return None,
    }
    bits.ue()?; // max_num_ref_frames
    bits.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = bits.ue()?.checked_add(1)?;
    let height_map_units = bits.ue()?.checked_add(1)?;
    let frame_mbs_only = bits.bit()?;
    if !frame_mbs_only {
        bits.bit()?; // mb_adaptive_frame_field_flag
    }
    bits.bit()?; // direct_8x8_inference_flag
    let frame_height_mbs = height_map_units.checked_mul(if frame_mbs_only { 1 } else { 2 })?;
    let mut width = width_mbs.checked_mul(16)?;
    let mut height = frame_height_mbs.checked_mul(16)?;
    if bits.bit()? {
        // frame_cropping_flag: offsets in chroma sample units (7.4.2.1.1).
        let (left, right, top, bottom) = (bits.ue()?, bits.ue()?, bits.ue()?, bits.ue()?);
        let chroma = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (crop_x, crop_y) = match chroma {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let crop_y = crop_y * if frame_mbs_only { 1 } else { 2 };
        width = width.checked_sub(left.checked_add(right)?.checked_mul(crop_x)?)?;
        height = height.checked_sub(top.checked_add(bottom)?.checked_mul(crop_y)?)?;
    }
    (width > 0 && height > 0 && chroma_format_idc <= 3 && depth_luma <= 6 && depth_chroma <= 6)
        .then_some(SpsInfo {
            profile,
            compatibility,
            level,
            width,
            height,
            chroma_format: chroma_format_idc as u8,
            bit_depth_luma_minus8: depth_luma as u8,
            bit_depth_chroma_minus8: depth_chroma as u8,
        })
}

fn skip_scaling_list(bits: &mut Bits<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            let delta = i64::from(bits.se()?);
            next = (last + delta + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// The RBSP of a NAL unit's payload: emulation prevention bytes (`00 00 03`) removed.
fn unescape(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    let mut zeros = 0;
    for &b in payload {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// A big-endian bit reader with Exp-Golomb codes.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits { data, at: 0 }
    }

    fn bit(&mut self) -> Option<bool> {
        let byte = self.data.get(self.at / 8)?;
        let bit = (byte >> (7 - self.at % 8)) & 1 == 1;
        self.at += 1;
        Some(bit)
    }

    /// An unsigned Exp-Golomb code (9.1); at most 32 leading zeros.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let mut value: u64 = 0;
        for _ in 0..zeros {
            value = (value << 1) | u64::from(self.bit()?);
        }
        u32::try_from((1u64 << zeros) - 1 + value).ok()
    }

    /// A signed Exp-Golomb code (9.1.1).
    fn se(&mut self) -> Option<i32> {
        let k = i64::from(self.ue()?);
        let value = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SPS x264 writes for the testkit's 320×180 constrained-baseline clip (cropped from
    /// 320×192).
    const SPS_320X180: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1e, 0xda, 0x05, 0x06, 0x7e, 0x7c, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00,
        0x40, 0x00, 0x00, 0x0f, 0x23, 0xc5, 0x8b, 0xa8,
    ];

    #[test]
    fn nal_units_are_split_at_3_and_4_byte_start_codes() {
        let stream = [
            0xff, 0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x65, 7, 0, 0,
        ];
        let units: Vec<&[u8]> = nal_units(&stream).collect();
        assert_eq!(
            units,
            vec![&[0x09, 0xf0][..], &[0x67, 1, 2][..], &[0x65, 7][..]]
        );
        assert!(is_idr(&stream));
        assert_eq!(
            to_length_prefixed(&stream),
            vec![0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 2, 0x65, 7]
        );
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
    }

    #[test]
    fn the_picture_size_comes_from_the_sps_with_cropping() {
        let info = parse_sps(SPS_320X180).expect("a valid SPS");
        assert_eq!((info.width, info.height), (320, 180));
        assert_eq!(
            (info.profile, info.compatibility, info.level),
            (66, 0xc0, 30)
        );
    }

    #[test]
    fn no_prefix_of_an_sps_or_garbage_panics_or_passes() {
        for len in 0..SPS_320X180.len() - 1 {
            // A cut SPS either fails or (if the cut is in trailing bits) reads the same size.
            if let Some(info) = parse_sps(&SPS_320X180[..len]) {
                assert_eq!((info.width, info.height), (320, 180));
            }
        }
        let mut state = 0x1234_5678u32;
        for _ in 0..2_000 {
            let bytes: Vec<u8> = (0..24)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            let mut unit = vec![0x67];
            unit.extend_from_slice(&bytes);
            let _ = parse_sps(&unit);
            let _ = nal_units(&bytes).count();
            let _ = to_length_prefixed(&bytes);
        }
        assert_eq!(
            parse_sps(&[0x68, 0x42, 0, 0x1e, 0xff]),
            None,
            "a PPS is not an SPS"
        );
    }
}
