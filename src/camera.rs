//! A camera's settings: its source, the storage it records into (by id), how it records and
//! pre-buffers, and its motion settings. Invariant: plain validated values, no behaviour; it names
//! only the settings types of `source` and `motion`, never a module that acts on a camera.

use crate::source::SourceSpec;

/// One `[[camera]]`, validated: what ingest, recording, motion and the rules act on.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraConfig {
    /// Unique short id (`[a-z0-9_-]`), used in URLs and in chunk headers.
    pub id: String,
    /// Display name for people (status, the web page); the id when none is configured.
    pub name: String,
    /// Where its frames come from.
    pub source: SourceSpec,
    /// The storage this camera records into (always resolved, ST-2).
    pub storage: String,
    /// A disabled camera is kept in the config but never connected.
    pub enabled: bool,
    /// The `record` shorthand: which reasons to record it gets (REC-10 defaults, schedule).
    pub record: RecordMode,
    /// Pre-buffer (REC-2..REC-5): where, and how many µs it keeps (memory mode ≤ 15 s).
    pub prebuffer: PrebufferMode,
    /// How far back the pre-buffer reaches, in µs (0 when off).
    pub prebuffer_us: i64,
    /// Motion detection settings (MD-1..MD-5); None = off for this camera.
    pub motion: Option<crate::motion::MotionConfig>,
    /// A second stream of the same camera (`[camera.second_stream]`, DEV-5, DEV-7; issue 14),
    /// e.g. an RTSP sub-stream or a second V4L2 node; None without one.
    pub second_stream: Option<SecondStream>,
}

impl CameraConfig {
    /// True when motion detection analyses the second stream instead of the main one.
    pub fn motion_on_second_stream(&self) -> bool {
        self.motion.is_some() && self.second_stream.as_ref().is_some_and(|s| s.motion)
    }
}

/// A camera's second stream (DEV-5, DEV-7; issue 14), validated: where it comes from and what
/// it is used for. Recording it is not supported yet (the config refuses `record = true`).
#[derive(Clone, Debug, PartialEq)]
pub struct SecondStream {
    /// Where its frames come from (`rtsp://` or `v4l2:`; an RTSP sub-stream on the main
    /// stream's host without credentials of its own has the main's).
    pub source: SourceSpec,
    /// Motion detection analyses this stream instead of the main one (default true).
    pub motion: bool,
}

/// Where a camera keeps the frames it does not record yet (REC-2..REC-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrebufferMode {
    /// No pre-buffer: a recording starts at its trigger.
    Off,
    /// In RAM, at most 15 s (REC-3); the default.
    Memory,
    /// As temporary data in the camera's storage, any length up to an hour (REC-3, REC-4).
    Disk,
}

/// The `record` shorthand of a camera: which built-in reasons to record it gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordMode {
    /// Always recording (a reason that never ends).
    Continuous,
    /// The built-in "Record on Motion" rule (REC-10) applies to this camera.
    Motion,
    /// The built-in "Record on Request" rule (REC-10): request start/stop recording events.
    Event,
    /// Records while the named time profile is active.
    Schedule(String),
    /// Only manual recording and explicit `[[rule]]`s; frames go to the pre-buffer meanwhile.
    Never,
}
