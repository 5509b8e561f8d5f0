//! Software motion detection without decoding every frame (MD-1..MD-7): H.264 key frames decoded
//! with openh264 at most once per interval, luma compared on a 16×16 grid, Motion Started/Stopped
//! events, and motion data (level grids, sequences) in `data_dir/motion.sqlite3` for smart search.
//! Invariant: nothing here can delay recording: ingest only `offer`s frames, which never blocks.
//!
//! Data flow: ingest → `MotionHandle::offer` (filter: video, H.264, key frame, analysis slot due;
//! bounded queue, per-camera share) → the `motion` thread at nice 10 (`FrameAnalyzer`: Annex B with
//! the `avcC` parameter sets → openh264, one `H264Decoder` shared by every key-frames-only camera →
//! luma sampled every 4th pixel → compared with the previous analysed frame → `MotionTracker`) → `EventSink::emit` at once, and level rows and spans to
//! SQLite in batches (`db`, invariants M1–M4). HTTP reads through `MotionReader`.
//!
//! Defaults and why (all per camera, `MotionConfig`):
//! - **interval 500 ms, key frames only** (MD-3). A camera sending a key frame every 0.5–2 s is
//!   analysed at its GOP rate at most twice a second, for the cost of decoding one intra frame.
//!   With a GOP longer than the interval (e.g. 4 s) analysis happens once per GOP, and motion
//!   shorter than a GOP between two key frames can be missed; `FrameSelection::AllFrames` decodes
//!   every frame instead (the cost of a full decode).
//! - **detection resolution 25 %** (every 4th pixel each way): 480×270 samples of a 1080p picture,
//!   about 500 per grid cell, enough for a level in 1/255 steps.
//! - **sensitivity 30** (of 255): between two key frames of a still scene, encoder noise plus
//!   sensor-like noise (the tests' clips: x264, ffmpeg `noise=alls=6`) push under 7 % of any
//!   cell's sampled pixels past 30, far below the 1 % threshold overall, while a person or car against a
//!   background differs by far more. Not yet checked against real cameras at night.
//! - **threshold 10 ‰ (1 %)** of the sampled pixels outside the exclude regions: a 60×60 object
//!   moving in a 640×360 picture changes 2–3 %; a person at 1080p covering 1 % of the picture is
//!   about 150×140 pixels.
//! - **hold 1 s**: two analyses at 500 ms; a person pausing briefly stays one sequence.
//! - Motion Started is stamped at the frame the change was measured against (the start of the
//!   sequence), Motion Stopped at the first analysis without motion at least `hold` after the last
//!   motion. Record-on-motion (3 s before, 3 s after) runs from these.
//!
//! Cost (`cargo bench --bench motion`, 1080p25 at 4 Mbit/s, one 2-core AMD EPYC): an analysed key
//! frame takes 10 ms of CPU on a clean scene and 29 ms on a grainy one (decoding cost follows the
//! key frame's bits). Per camera that is 0.5–1.4 % of a core with a 2 s GOP, 1–2.9 % with 1 s,
//! 2–5.8 % with a GOP of 0.5 s or less; decoding every frame costs 24–27 %.
//!
//! H.265 is recorded but not analysed (openh264 is H.264 only): such frames are counted as
//! `unsupported_codec`. MJPEG (issue 14, V4L2 MJPEG cameras) is analysed at the same cadence:
//! every frame is a key frame, and a due frame's luma alone is decoded with `zune-jpeg` (`mjpeg`),
//! with no decoder state kept between frames, then sampled and compared like H.264's.

mod analysis;
mod analyzer;
mod avc;
mod db;
mod grid;
pub mod mjpeg;
mod service;
mod settings;
pub mod snapshot;
mod tracker;

pub use analyzer::{Analysis, FrameAnalyzer, H264Decoder, Outcome, MAX_COMPARE_GAP_US};
pub use db::{MotionReader, MAX_SEARCH_CAMERAS, MAX_SEARCH_SPANS};
pub use grid::{Grid16, LevelGrid, GRID_CELLS, GRID_SIDE, LEVEL_STEP, MAX_ENCODED_BYTES};
pub use service::{MotionCameraStats, MotionHandle, MotionOptions, MotionService, MotionStats};
pub use settings::{
    FrameSelection, MotionConfig, DEFAULT_DETECTION_PERCENT, DEFAULT_HOLD_MS, DEFAULT_INTERVAL_MS, DEFAULT_SENSITIVITY,
    DEFAULT_THRESHOLD_PERMILLE, MAX_INTERVAL_MS,
};

/// True when motion analysis decodes video of `encoding` (a stream description's encoding name,
/// lower case): what status goes by to say why a camera is not analysed (MD-1, issue 14).
pub fn analyses_encoding(encoding: &str) -> bool {
    matches!(encoding, "h264" | "mjpeg")
}

/// File name of the motion data in `data_dir`.
pub const MOTION_FILE: &str = "motion.sqlite3";

/// The motion handle ingest offers frames to, replaced when a config change restarts motion
/// analysis (None while no camera has it on). Read once per frame: uncontended.
pub type SharedMotion = std::sync::Arc<std::sync::RwLock<Option<MotionHandle>>>;
