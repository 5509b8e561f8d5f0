//! One camera's analysis pipeline: H.264 frame → openh264 decode → sampled luma → comparison with
//! the previous analysed frame. Used by the motion thread and by the benchmark.
//! Invariant: only frames that decode into a complete picture are compared, and only with a
//! reference of the same size taken at most `MAX_COMPARE_GAP_US` earlier.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

use super::analysis::{compare, SampledLuma};
use super::avc::AvcParams;
use super::grid::LevelGrid;
use super::settings::MotionConfig;
use crate::error::Error;
use crate::media::{Codec, Frame, SampleEntry};

/// The scratch buffer shared with `H264Decoder::annexb` is kept between frames up to this size
/// (a large H.264 key frame); a decoded MJPEG luma plane beyond it (1080p: 2 MB) is freed after
/// use, so idle memory does not grow with MJPEG cameras (MD-6).
const MAX_KEPT_SCRATCH_BYTES: usize = 1 << 20;

/// Two analysed frames further apart than this are not compared: the second one starts a new
/// reference. Matches the store's run rule (S9: a media time jump of more than 10 s starts a new
/// run), so a camera that reconnects does not report the whole scene as motion.
pub const MAX_COMPARE_GAP_US: i64 = 10_000_000;

/// The result of one analysed frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analysis {
    /// Wall time of the analysed frame (µs since the epoch).
    pub wall_us: i64,
    /// Wall time of the frame it was compared with: the change happened in
    /// `(compared_wall_us, wall_us]`. Always smaller than `wall_us`, by at most
    /// `MAX_COMPARE_GAP_US`.
    pub compared_wall_us: i64,
    /// Per-cell change levels, exclude regions included, permanent privacy masks zeroed (MD-5).
    pub levels: LevelGrid,
    /// Changed share outside the exclude regions, in thousandths: the live motion level (MD-2).
    pub changed_permille: u16,
    /// Whether `changed_permille` reached the threshold.
    pub motion: bool,
}

/// What `FrameAnalyzer::push` did with a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not decoded: a non-key frame while the decoder has no reference (after a gap or an error).
    Skipped,
    /// Decoded but not analysed (`analyse` was false, or the decoder produced no picture yet).
    Decoded,
    /// Analysed, but there was nothing to compare with: it is the new reference.
    Reference,
    /// Analysed and compared with the previous analysed frame (boxed: the grid is 256 bytes).
    Compared(Box<Analysis>),
}

/// An openh264 decoder and what it was last given. The motion thread keeps one for every
/// key-frames-only camera together: a key frame decodes on its own once the decoder has its
/// parameter sets, so cameras can take turns, and the ~26 MB of picture buffers a 1080p decoder
/// holds are paid once instead of once per camera (issue 10 point 14). An all-frames camera needs
/// its references kept between frames and has a decoder of its own.
#[derive(Default)]
pub struct H264Decoder {
    /// Created on first use, dropped after a decode error so the next key frame starts clean.
    decoder: Option<Decoder>,
    /// The sample entry whose parameter sets the decoder was last given: a key frame of any camera
    /// with an equal entry needs no parameter sets (sending them costs openh264 a new sequence).
    params_of: Option<Arc<SampleEntry>>,
    /// The `FrameAnalyzer::id` whose frame was decoded last: the decoder's reference pictures are
    /// that camera's, so only it may continue with a non-key frame.
    last_user: u64,
    /// Reused Annex B buffer (avoids an allocation per frame); MJPEG frames decode their luma
    /// plane into it (issue 14).
    annexb: Vec<u8>,
}

impl H264Decoder {
    pub fn new() -> H264Decoder {
        H264Decoder::default()
    }
}

/// Source of `FrameAnalyzer::id`s; 0 is never handed out (an unused decoder's `last_user`).
static NEXT_ANALYZER_ID: AtomicU64 = AtomicU64::new(1);

/// Compares one camera's analysed frames; decodes them with the `H264Decoder` the caller passes.
pub struct FrameAnalyzer {
    /// Tells this camera's frames apart in a shared decoder.
    id: u64,
    /// The camera's settings (sensitivity, threshold, exclude regions, detection resolution).
    config: MotionConfig,
    /// The parameter sets of the sample entry in use, re-read when the entry changes.
    params: Option<(Arc<SampleEntry>, AvcParams)>,
    /// True while the decoder holds the references that the next non-key frame needs (and only if
    /// the decoder's `last_user` is this analyzer).
    synced: bool,
    /// The previous analysed frame and its wall time (µs).
    prev: SampledLuma,
    prev_wall_us: i64,
    /// Scratch for the frame being analysed; swapped with `prev` afterwards.
    cur: SampledLuma,
}

impl FrameAnalyzer {
    /// `config` must have passed `MotionConfig::validate`.
    pub fn new(config: &MotionConfig) -> FrameAnalyzer {
        FrameAnalyzer {
            id: NEXT_ANALYZER_ID.fetch_add(1, Ordering::Relaxed),
            config: config.clone(),
            params: None,
            synced: false,
            prev: SampledLuma::empty(),
            prev_wall_us: 0,
            cur: SampledLuma::empty(),
        }
    }

    /// Forgets the reference picture, so the next analysed frame is compared with nothing.
    pub fn reset(&mut self) {
        self.prev.clear();
    }

    /// Decodes `frame` (H.264 described by `entry`) with `decoder` and, when `analyse`, compares it
    /// with the previous analysed frame. Key frames are decoded on their own; non-key frames only
    /// while the decoder holds their references (every frame of this camera since its last key
    /// frame went through this decoder, and no other camera's in between).
    ///
    /// Errors name the problem (bad sample entry, damaged frame, decoder failure); after one the
    /// decoder waits for the next key frame.
    pub fn push(
        &mut self,
        decoder: &mut H264Decoder,
        entry: &Arc<SampleEntry>,
        frame: &Frame,
        wall_us: i64,
        analyse: bool,
    ) -> Result<Outcome, Error> {
        if entry.codec() == Codec::Mjpeg {
            return self.push_mjpeg(decoder, entry, frame, wall_us, analyse);
        }
        let current = matches!(&self.params, Some((e, _)) if Arc::ptr_eq(e, entry) || **e == **entry);
        if !current {
            // A new sample entry (first frame, resolution change): its parameter sets replace the
            // old ones, and non-key frames wait for the next key frame.
            self.params = None;
            self.synced = false;
            self.params = Some((entry.clone(), AvcParams::from_entry(entry)?));
        }
        if decoder.last_user != self.id {
            // Another camera's frame went through the decoder since ours: our references are gone.
            self.synced = false;
        }
        if !frame.key && !self.synced {
            return Ok(Outcome::Skipped);
        }
        let (_, params) = self.params.as_ref().expect("set just above");
        let has_params = matches!(&decoder.params_of, Some(e) if Arc::ptr_eq(e, entry) || **e == **entry);
        let with_params = frame.key && !has_params;
        let converted = params.to_annexb(&frame.data, with_params, &mut decoder.annexb);
        let result = converted.and_then(|()| self.decode(decoder, analyse));
        match result {
            Ok(sampled) => {
                self.synced = true;
                decoder.last_user = self.id;
                if with_params {
                    decoder.params_of = Some(entry.clone());
                }
                if sampled && analyse {
                    Ok(self.analyse(wall_us))
                } else {
                    Ok(Outcome::Decoded)
                }
            }
            Err(e) => {
                self.synced = false;
                decoder.decoder = None;
                decoder.params_of = None;
                decoder.last_user = 0;
                Err(e)
            }
        }
    }

    /// Issue 14 (MD-1, MD-3): an MJPEG frame is a picture of its own, so only frames to analyse
    /// are decoded, luma only, into the decoder's shared scratch buffer (no per-camera decoder
    /// state: MD-6), sampled like an H.264 picture and compared the same way. The H.264 decoder's
    /// references are untouched.
    fn push_mjpeg(
        &mut self,
        decoder: &mut H264Decoder,
        entry: &SampleEntry,
        frame: &Frame,
        wall_us: i64,
        analyse: bool,
    ) -> Result<Outcome, Error> {
        if !analyse {
            return Ok(Outcome::Skipped);
        }
        let luma = &mut decoder.annexb;
        let decoded = super::mjpeg::decode_luma(&frame.data, entry.width(), entry.height(), luma);
        let result = decoded.map(|(width, height)| {
            let sampled = self.cur.sample(luma, width, width, height, self.config.sample_step());
            // The plane is as large as a whole picture: keep no more than an H.264 frame's worth.
            if luma.capacity() > MAX_KEPT_SCRATCH_BYTES {
                *luma = Vec::new();
            }
            sampled
        });
        match result {
            Ok(true) => Ok(self.analyse(wall_us)),
            Ok(false) => Err(crate::err!(InvalidArgument, "motion: MJPEG frame gave no complete picture")),
            Err(e) => {
                if luma.capacity() > MAX_KEPT_SCRATCH_BYTES {
                    *luma = Vec::new();
                }
                Err(e)
            }
        }
    }

    /// Feeds the decoder's Annex B buffer to it; when `sample`, samples the picture into
    /// `self.cur`. Returns whether a picture was sampled.
    fn decode(&mut self, decoder: &mut H264Decoder, sample: bool) -> Result<bool, Error> {
        let openh264 = match &mut decoder.decoder {
            Some(d) => d,
            None => decoder.decoder.insert(
                Decoder::new()
                    .map_err(|e| Error::with_source(crate::ErrorKind::Internal, "motion: openh264 decoder", e))?,
            ),
        };
        let picture = openh264.decode(&decoder.annexb).map_err(|e| {
            Error::with_source(crate::ErrorKind::InvalidArgument, "motion: H.264 frame does not decode", e)
        })?;
        let Some(picture) = picture else {
            return Ok(false);
        };
        if !sample {
            return Ok(false);
        }
        let (width, height) = picture.dimensions();
        let (stride, _, _) = picture.strides();
        Ok(self.cur.sample(picture.y(), stride, width, height, self.config.sample_step()))
    }

    /// Compares `self.cur` with the reference and makes it the new reference.
    fn analyse(&mut self, wall_us: i64) -> Outcome {
        let comparable = self.prev.is_set()
            && self.prev.same_geometry(&self.cur)
            && wall_us > self.prev_wall_us
            && wall_us - self.prev_wall_us <= MAX_COMPARE_GAP_US;
        let outcome = if comparable {
            let c = &self.config;
            let ignored = c.exclude.union(&c.permanent_mask);
            let mut change = compare(&self.prev, &self.cur, c.sensitivity, c.threshold_permille, &ignored);
            change.levels.clear(&c.permanent_mask);
            Outcome::Compared(Box::new(Analysis {
                wall_us,
                compared_wall_us: self.prev_wall_us,
                levels: change.levels,
                changed_permille: change.changed_permille,
                motion: change.motion,
            }))
        } else {
            Outcome::Reference
        };
        std::mem::swap(&mut self.prev, &mut self.cur);
        self.prev_wall_us = wall_us;
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issue 14, MD-1/MD-2/MD-3: MJPEG frames of a moving square through the motion analyser (no
    // decoder of its own): motion found in the cells where the square moved, none while it is still,
    // and a bad JPEG is a decode error that leaves the reference in place.
    #[test]
    fn md1_moving_square_in_mjpeg_is_motion_and_a_still_one_is_not() {
        use crate::media::{mjpeg_sample_entry, StreamKind};
        use crate::motion::mjpeg::tests::square_jpeg;
        use crate::motion::settings::MotionConfig;
        let (w, h) = (320u16, 240u16);
        let entry = Arc::new(SampleEntry::new(mjpeg_sample_entry(w, h), 90_000).unwrap());
        let frame = |jpeg: Vec<u8>| Frame { kind: StreamKind::Video, media_time: 0, key: true, data: jpeg.into() };
        let mut analyzer = FrameAnalyzer::new(&MotionConfig::default());
        let mut decoder = H264Decoder::new();
        let mut push = |jpeg: Vec<u8>, wall_us: i64| analyzer.push(&mut decoder, &entry, &frame(jpeg), wall_us, true);
        // Still: the square stays at (40, 40) for three analyses.
        assert_eq!(push(square_jpeg(w, h, 40, 40, 40), 1_000_000).unwrap(), Outcome::Reference);
        for t in [1_500_000, 2_000_000] {
            let Outcome::Compared(a) = push(square_jpeg(w, h, 40, 40, 40), t).unwrap() else { panic!("not compared") };
            assert!(!a.motion, "still scene reported motion: {} permille", a.changed_permille);
            assert_eq!(a.changed_permille, 0);
        }
        // A damaged frame is an error and changes nothing.
        assert!(push(b"\xFF\xD8garbage".to_vec(), 2_250_000).is_err());
        // Moves to (220, 160): motion, in the cells it left and entered, not in the far corner.
        let Outcome::Compared(a) = push(square_jpeg(w, h, 40, 220, 160), 2_500_000).unwrap() else {
            panic!("not compared")
        };
        assert!(a.motion, "moving square not found: {} permille", a.changed_permille);
        let cell =
            |x: u16, y: u16| a.levels.level(usize::from(x) * 16 / usize::from(w), usize::from(y) * 16 / usize::from(h));
        assert!(cell(60, 60) > 0 && cell(240, 180) > 0, "levels where it moved");
        assert_eq!(cell(300, 20), 0, "no level far from the square");
        assert_eq!(a.compared_wall_us, 2_000_000);
    }
}
