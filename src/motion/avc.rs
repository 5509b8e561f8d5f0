//! H.264 bitstream plumbing for the decoder: the parameter sets from an `avc1` sample entry's
//! `avcC`, and AVC (length-prefixed) access units rewritten as Annex B (start codes).
//! Invariant: frames carry no in-band SPS/PPS, so every key frame handed to the decoder is
//! preceded by the entry's parameter sets; a key frame can then be decoded on its own.

use crate::error::Error;
use crate::media::{Codec, SampleEntry};

/// The Annex B start code put before every NAL unit.
const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// `VisualSampleEntry` fields after the 8-byte box header; child boxes (`avcC`, `pasp`, ...) follow.
const VISUAL_SAMPLE_ENTRY_FIELDS_BYTES: usize = 78;

/// What the decoder needs from an `avc1` sample entry, validated once when the entry is first seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AvcParams {
    /// Bytes of each NAL unit length prefix in frames (1, 2 or 4; retina and MP4 files use 4).
    nal_length_bytes: usize,
    /// Every SPS and PPS of the `avcC`, each after a start code: put before every key frame.
    parameter_sets_annexb: Vec<u8>,
}

impl AvcParams {
    /// Reads the `avcC` child of an `avc1`/`avc3` sample entry.
    pub fn from_entry(entry: &SampleEntry) -> Result<AvcParams, Error> {
        if entry.codec() != Codec::H264 {
            return Err(crate::err!(InvalidArgument, "motion: {} is not H.264", entry.codec().as_str()));
        }
        let bad = |why: &str| crate::err!(InvalidArgument, "motion: avc1 sample entry: {why}");
        let b = entry.box_bytes();
        let mut at = 8 + VISUAL_SAMPLE_ENTRY_FIELDS_BYTES;
        let avcc = loop {
            let hdr = b.get(at..at + 8).ok_or_else(|| bad("no avcC box"))?;
            let size = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
            let end =
                at.checked_add(size).filter(|e| size >= 8 && *e <= b.len()).ok_or_else(|| bad("bad child box size"))?;
            if &hdr[4..8] == b"avcC" {
                break &b[at + 8..end];
            }
            at = end;
        };
        // AVCDecoderConfigurationRecord: version, profile, compatibility, level,
        // 6 bits reserved + lengthSizeMinusOne, 3 bits reserved + numOfSequenceParameterSets.
        let head = avcc.get(..6).ok_or_else(|| bad("avcC shorter than its header"))?;
        if head[0] != 1 {
            return Err(bad(&format!("avcC version {} (expected 1)", head[0])));
        }
        let nal_length_bytes = usize::from(head[4] & 0b11) + 1;
        if nal_length_bytes == 3 {
            return Err(bad("NAL length size 3 is not allowed"));
        }
        let mut parameter_sets_annexb = Vec::new();
        let mut rest = &avcc[5..];
        for (what, count_mask) in [("SPS", 0x1f), ("PPS", 0xff)] {
            let (&count, tail) = rest.split_first().ok_or_else(|| bad(&format!("{what} count missing")))?;
            rest = tail;
            for _ in 0..(count & count_mask) {
                let len_bytes = rest.get(..2).ok_or_else(|| bad(&format!("{what} length missing")))?;
                let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
                let nal = rest.get(2..2 + len).ok_or_else(|| bad(&format!("{what} of {len} bytes is truncated")))?;
                parameter_sets_annexb.extend_from_slice(&START_CODE);
                parameter_sets_annexb.extend_from_slice(nal);
                rest = &rest[2 + len..];
            }
        }
        if parameter_sets_annexb.is_empty() {
            return Err(bad("avcC holds no SPS or PPS"));
        }
        Ok(AvcParams { nal_length_bytes, parameter_sets_annexb })
    }

    /// Writes `frame` (length-prefixed NAL units) into `out` as Annex B, after the parameter sets
    /// when `with_parameter_sets`. `out` is cleared first and reused to avoid an allocation per frame.
    pub fn to_annexb(&self, frame: &[u8], with_parameter_sets: bool, out: &mut Vec<u8>) -> Result<(), Error> {
        out.clear();
        if with_parameter_sets {
            out.extend_from_slice(&self.parameter_sets_annexb);
        }
        let mut rest = frame;
        while !rest.is_empty() {
            let prefix = rest.get(..self.nal_length_bytes).ok_or_else(|| {
                crate::err!(
                    InvalidArgument,
                    "motion: frame ends inside a NAL length prefix ({} bytes left)",
                    rest.len()
                )
            })?;
            let len = prefix.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            let nal = rest.get(self.nal_length_bytes..self.nal_length_bytes + len).ok_or_else(|| {
                crate::err!(
                    InvalidArgument,
                    "motion: NAL unit of {len} bytes overruns its frame ({} bytes left)",
                    rest.len() - self.nal_length_bytes
                )
            })?;
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(nal);
            rest = &rest[self.nal_length_bytes + len..];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    /// An `avc1` box around `avcc` (the body of an avcC box), with 640x360 in the visual fields.
    pub(crate) fn avc1_with(avcc: &[u8]) -> SampleEntry {
        let mut body = vec![0u8; VISUAL_SAMPLE_ENTRY_FIELDS_BYTES];
        body[6..8].copy_from_slice(&1u16.to_be_bytes());
        body[24..26].copy_from_slice(&640u16.to_be_bytes());
        body[26..28].copy_from_slice(&360u16.to_be_bytes());
        let mut child = ((avcc.len() + 8) as u32).to_be_bytes().to_vec();
        child.extend_from_slice(b"avcC");
        child.extend_from_slice(avcc);
        body.extend_from_slice(&child);
        let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(b"avc1");
        b.extend_from_slice(&body);
        SampleEntry::new(b, 90_000).unwrap()
    }

    #[test]
    fn parameter_sets_precede_key_frames_only_when_asked() {
        // Version 1, profile/compat/level, 4-byte lengths, one SPS (3 bytes), one PPS (2 bytes).
        let avcc = [1, 0x42, 0, 0x1e, 0xff, 0xe1, 0, 3, 0x67, 1, 2, 1, 0, 2, 0x68, 9];
        let p = AvcParams::from_entry(&avc1_with(&avcc)).unwrap();
        let frame = [0, 0, 0, 2, 0x65, 7, 0, 0, 0, 1, 0x06];
        let mut out = Vec::new();
        p.to_annexb(&frame, true, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 9, 0, 0, 0, 1, 0x65, 7, 0, 0, 0, 1, 0x06]);
        p.to_annexb(&frame, false, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x65, 7, 0, 0, 0, 1, 0x06]);
        let e = p.to_annexb(&[0, 0, 0, 9, 0x65], false, &mut out).unwrap_err();
        assert!(e.msg().contains("overruns"), "{e}");
        assert!(p.to_annexb(&[0, 0], false, &mut out).unwrap_err().msg().contains("inside a NAL length"));
    }

    #[test]
    fn broken_avcc_is_refused_with_a_reason() {
        for (avcc, says) in [
            (&[2u8, 0, 0, 0, 0xff, 0xe1][..], "version 2"),
            (&[1, 0, 0, 0, 0xfe, 0xe1, 0, 9, 0x67], "length size 3"),
            (&[1, 0, 0, 0, 0xff, 0xe1, 0, 9, 0x67], "truncated"),
            (&[1, 0, 0, 0, 0xff, 0xe0, 0], "no SPS or PPS"),
        ] {
            let e = AvcParams::from_entry(&avc1_with(avcc)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.msg().contains(says), "{says}: {e}");
        }
    }
}
