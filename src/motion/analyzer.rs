//! One camera's analysis pipeline: H.264 frame → openh264 decode → sampled luma → comparison with
//! the previous analysed frame. Used by the motion thread and by the benchmark.
//! Invariant: only frames that decode into a complete picture are compared, and only with a
//! reference of the same size taken at most `MAX_COMPARE_GAP_US` earlier.

use std::sync::Arc;

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

use super::analysis::{compare, SampledLuma};
use super::avc::AvcParams;
use super::grid::LevelGrid;
use super::settings::MotionConfig;
use crate::error::Error;
use crate::media::{Frame, SampleEntry};

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

/// Decodes one camera's frames and compares analysed frames. Not shared between cameras: the
/// decoder holds the camera's reference pictures.
pub struct FrameAnalyzer {
    /// The camera's settings (sensitivity, threshold, exclude regions, detection resolution).
    config: MotionConfig,
    /// Created on the first frame, dropped after a decode error so the next key frame starts clean.
    decoder: Option<Decoder>,
    /// The parameter sets of the sample entry in use, re-read when the entry changes.
    params: Option<(Arc<SampleEntry>, AvcParams)>,
    /// Reused Annex B buffer (avoids an allocation per frame).
    annexb: Vec<u8>,
    /// True while the decoder holds the references that the next non-key frame needs.
    synced: bool,
    /// True once the current decoder was given the current entry's parameter sets. Sending them
    /// again with every key frame is not needed, and costs openh264 a new sequence each time.
    params_sent: bool,
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
            config: config.clone(),
            decoder: None,
            params: None,
            annexb: Vec::new(),
            synced: false,
            params_sent: false,
            prev: SampledLuma::empty(),
            prev_wall_us: 0,
            cur: SampledLuma::empty(),
        }
    }

    /// Forgets the reference picture, so the next analysed frame is compared with nothing.
    pub fn reset(&mut self) {
        self.prev.clear();
    }

    /// Decodes `frame` (H.264 described by `entry`) and, when `analyse`, compares it with the
    /// previous analysed frame. Key frames are decoded on their own; non-key frames only while
    /// the decoder holds their references (every frame since the last key frame was pushed).
    ///
    /// Errors name the problem (bad sample entry, damaged frame, decoder failure); after one the
    /// decoder waits for the next key frame.
    pub fn push(
        &mut self,
        entry: &Arc<SampleEntry>,
        frame: &Frame,
        wall_us: i64,
        analyse: bool,
    ) -> Result<Outcome, Error> {
        let current = matches!(&self.params, Some((e, _)) if Arc::ptr_eq(e, entry) || **e == **entry);
        if !current {
            // A new sample entry (first frame, resolution change): its parameter sets replace the
            // old ones, and non-key frames wait for the next key frame.
            self.params = None;
            self.synced = false;
            self.params_sent = false;
            self.params = Some((entry.clone(), AvcParams::from_entry(entry)?));
        }
        if !frame.key && !self.synced {
            return Ok(Outcome::Skipped);
        }
        let (_, params) = self.params.as_ref().expect("set just above");
        let with_params = frame.key && !self.params_sent;
        let converted = params.to_annexb(&frame.data, with_params, &mut self.annexb);
        let result = converted.and_then(|()| self.decode(analyse));
        match result {
            Ok(true) if analyse => Ok(self.analyse(wall_us)),
            Ok(_) => Ok(Outcome::Decoded),
            Err(e) => {
                self.synced = false;
                self.params_sent = false;
                self.decoder = None;
                Err(e)
            }
        }
    }

    /// Feeds `self.annexb` to the decoder; when `sample`, samples the picture into `self.cur`.
    /// Returns whether a picture was sampled.
    fn decode(&mut self, sample: bool) -> Result<bool, Error> {
        let decoder = match &mut self.decoder {
            Some(d) => d,
            None => self.decoder.insert(
                Decoder::new()
                    .map_err(|e| Error::with_source(crate::ErrorKind::Internal, "motion: openh264 decoder", e))?,
            ),
        };
        let picture = decoder.decode(&self.annexb).map_err(|e| {
            Error::with_source(crate::ErrorKind::InvalidArgument, "motion: H.264 frame does not decode", e)
        })?;
        self.synced = true;
        self.params_sent = true;
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
