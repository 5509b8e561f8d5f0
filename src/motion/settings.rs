//! Per-camera motion detection settings (MD-2, MD-3, MD-4, MD-5), validated once.
//! Invariant: a `MotionConfig` that passed `validate` never makes the analysis divide by zero or
//! wait forever; `config/` maps its TOML onto this type and reports errors with file and line.

use super::grid::Grid16;
use crate::error::Error;

/// Default analysis cadence (MD-3, XProtect's default, REQUIREMENTS §2 value 18).
pub const DEFAULT_INTERVAL_MS: u32 = 500;
/// Default sensitivity: a sampled luma value must change by more than this (0..=255).
pub const DEFAULT_SENSITIVITY: u8 = 30;
/// Default threshold: motion when at least this share of the sampled pixels outside the exclude
/// regions changed, in thousandths (10 ‰ = 1 %).
pub const DEFAULT_THRESHOLD_PERMILLE: u16 = 10;
/// Default detection resolution: 25 % = every 4th pixel in each direction (MD-3).
pub const DEFAULT_DETECTION_PERCENT: u8 = 25;
/// Default time without motion before Motion Stopped.
pub const DEFAULT_HOLD_MS: u32 = 1_000;
/// Longest accepted analysis interval and hold: one minute. Longer values would make motion
/// detection useless for record-on-motion (3 s before/after).
pub const MAX_INTERVAL_MS: u32 = 60_000;

/// Which frames are decoded for analysis (MD-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameSelection {
    /// Decode only key frames (IDR), each on its own, at most one per interval. The cheap default:
    /// with a GOP longer than the interval, analysis happens once per GOP (a camera with a 4 s GOP
    /// is analysed every 4 s).
    KeyFramesOnly,
    /// Decode every frame (P-frames need their references) and analyse one per interval. Costs a
    /// full decode of the stream, like Frigate; for cameras with long GOPs that need the cadence.
    AllFrames,
}

/// How one camera's motion is detected. `Default` gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MotionConfig {
    /// Analyse at most one frame per interval, in ms (MD-3); a frame is taken when its slot is
    /// due, so a stream with key frames every 480 ms is analysed on average every 500 ms. 0 = every
    /// selected frame.
    pub interval_ms: u32,
    /// Key frames only (default) or every frame decoded (MD-3).
    pub frames: FrameSelection,
    /// Detection resolution as a percentage of the picture's width and height (MD-3): the analysis
    /// samples every `round(100 / percent)`th pixel in each direction. 1..=100.
    pub detection_percent: u8,
    /// A sampled luma value changed when it differs by more than this from the previous analysed
    /// frame (MD-2 "sensitivity"; lower is more sensitive). 0..=255.
    pub sensitivity: u8,
    /// Motion when changed sampled pixels reach this share of those outside the exclude regions,
    /// in thousandths (MD-2 "threshold"). 0..=1000.
    pub threshold_permille: u16,
    /// Cells that never count towards motion (MD-4). Their levels are still stored (MD-5).
    pub exclude: Grid16,
    /// Cells under a permanent privacy mask (PM-1), on this grid: never count towards motion
    /// (MD-4) and never get stored levels (MD-5). Liftable masks are not listed here: their cells
    /// are analysed and searchable like any other.
    pub permanent_mask: Grid16,
    /// Motion Stopped comes after this long without motion, in ms; shorter pauses do not split a
    /// motion sequence. At most `MAX_INTERVAL_MS`.
    pub hold_ms: u32,
    /// Store the per-cell levels of every analysed frame for smart search (MD-5). Motion
    /// sequences (MD-6) and events (MD-7) do not depend on it.
    pub store_levels: bool,
}

impl Default for MotionConfig {
    fn default() -> Self {
        MotionConfig {
            interval_ms: DEFAULT_INTERVAL_MS,
            frames: FrameSelection::KeyFramesOnly,
            detection_percent: DEFAULT_DETECTION_PERCENT,
            sensitivity: DEFAULT_SENSITIVITY,
            threshold_permille: DEFAULT_THRESHOLD_PERMILLE,
            exclude: Grid16::EMPTY,
            permanent_mask: Grid16::EMPTY,
            hold_ms: DEFAULT_HOLD_MS,
            store_levels: true,
        }
    }
}

impl MotionConfig {
    /// Checks every range; the error names the setting and its allowed values.
    pub fn validate(&self) -> Result<(), Error> {
        if self.interval_ms > MAX_INTERVAL_MS {
            return Err(crate::err!(
                InvalidArgument,
                "motion interval_ms {} is above the maximum {MAX_INTERVAL_MS}",
                self.interval_ms
            ));
        }
        if !(1..=100).contains(&self.detection_percent) {
            return Err(crate::err!(
                InvalidArgument,
                "motion detection_percent {} must be 1 to 100 (25 = every 4th pixel)",
                self.detection_percent
            ));
        }
        if self.threshold_permille > 1000 {
            return Err(crate::err!(
                InvalidArgument,
                "motion threshold_permille {} must be 0 to 1000 (10 = 1 % of the picture)",
                self.threshold_permille
            ));
        }
        if self.hold_ms > MAX_INTERVAL_MS {
            return Err(crate::err!(
                InvalidArgument,
                "motion hold_ms {} is above the maximum {MAX_INTERVAL_MS}",
                self.hold_ms
            ));
        }
        Ok(())
    }

    /// Distance between sampled pixels: 100 % → 1, 50 % → 2, 25 % → 4, 10 % → 10.
    pub fn sample_step(&self) -> usize {
        let p = usize::from(self.detection_percent.max(1));
        ((100 + p / 2) / p).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_sample_every_fourth_pixel() {
        let c = MotionConfig::default();
        c.validate().unwrap();
        assert_eq!(c.sample_step(), 4);
        for (percent, step) in [(100, 1), (50, 2), (34, 3), (33, 3), (25, 4), (12, 8), (10, 10), (1, 100)] {
            assert_eq!(MotionConfig { detection_percent: percent, ..c.clone() }.sample_step(), step, "{percent}");
        }
    }

    #[test]
    fn out_of_range_settings_name_themselves() {
        let c = MotionConfig::default();
        for (bad, name) in [
            (MotionConfig { detection_percent: 0, ..c.clone() }, "detection_percent"),
            (MotionConfig { detection_percent: 101, ..c.clone() }, "detection_percent"),
            (MotionConfig { threshold_permille: 1001, ..c.clone() }, "threshold_permille"),
            (MotionConfig { interval_ms: 60_001, ..c.clone() }, "interval_ms"),
            (MotionConfig { hold_ms: 60_001, ..c.clone() }, "hold_ms"),
        ] {
            assert!(bad.validate().unwrap_err().msg().contains(name), "{name}");
        }
    }
}
