//! Ingest: one supervisor task per camera runs its source session after session with backoff,
//! stamps frames with anchored wall time and queues them to the camera's storage writer.
//! Invariant: nothing here blocks; a failing camera only ever affects its own task.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clocks::{Clocks, WallAnchor};
use crate::events::{Event, EventKind, EventSink};
use crate::media::{Frame, IngestFrame, SampleEntry, StreamKind};
use crate::recording::Decision;
use crate::source::{CameraDescription, Sink, Source};
use crate::store::writer::SendError;
use crate::store::StorageHandle;

/// Reconnect backoff of full RTSP attempts: doubles from the first value up to the cap; a session
/// that got as far as DESCRIBE resets it, and so does a camera seen coming back (`Backoff`).
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// Issue 10 point 7a: low, because a camera whose TCP port answers while its RTSP server does not
/// (still booting) is only retried at this pace; a camera that comes back from unreachable is
/// noticed by the probe instead.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A session that delivered frames this long resets the backoff. Short, so a camera between two
/// outages rarely waits out a grown backoff (and one that was unreachable is caught by the probe
/// anyway); long enough that a camera failing right after PLAY is not retried at full rate.
const HEALTHY_STREAM: Duration = Duration::from_secs(5);
/// While waiting out the backoff, the camera's TCP port is probed this often: one connect, closed at
/// once, costs a camera far less than an RTSP session, and a refused probe followed by an accepted
/// one means the camera is back, so the next attempt starts at once.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// A V4L2 camera's device node is probed this often instead (issue 14, DEV-16: "recording
/// resumes within 2 s of the device returning"): opening and closing a local node costs the
/// device nothing like a TCP connect costs a camera, and at `PROBE_INTERVAL` the probe's wait alone
/// took up to half the budget (measured in the VM under emulation: 1.81 s from the device's return
/// to the first frame recorded with a 1 s probe).
const DEVICE_PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// A probe that neither connects nor is refused within this long counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// A camera's feed overflow (and the not-recording state it causes) lasts until this long passed
/// without a dropped frame, so a queue at the edge of full does not flap the status every frame.
pub const OVERFLOW_QUIET_US: i64 = 2_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CameraState {
    Connecting,
    Streaming,
    /// Waiting before the next attempt after a failure.
    Retrying,
    Disabled,
    /// A mirrored camera outside its remote site's allowed window (issue 16, IC-6): nothing is
    /// retrieved until the window opens.
    Waiting,
}

impl CameraState {
    pub fn as_str(self) -> &'static str {
        match self {
            CameraState::Connecting => "connecting",
            CameraState::Streaming => "recording",
            CameraState::Retrying => "retrying",
            CameraState::Disabled => "disabled",
            CameraState::Waiting => "waiting",
        }
    }
}

/// Why frames that should reach the store are being dropped (FL-1, REC-13). While a camera has
/// one, status never says it records (issue 10 point 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The storage is unavailable (unplugged, refused to open, failing) or its writer is gone.
    StorageUnavailable = 1,
    /// The queue to the storage writer is full: writes do not keep up (REC-13 feed overflow).
    FeedOverflow = 2,
    /// The storage holds only evidence-locked data, none of which may be reclaimed (EL-4, FL-5).
    StorageFullOfLockedData = 3,
}

impl DropReason {
    pub const ALL: [DropReason; 3] =
        [DropReason::StorageUnavailable, DropReason::FeedOverflow, DropReason::StorageFullOfLockedData];

    /// The stable code, used as the camera's status `state` and as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::StorageUnavailable => "storage_unavailable",
            DropReason::FeedOverflow => "feed_overflow",
            DropReason::StorageFullOfLockedData => "storage_full_of_locked_data",
        }
    }

    fn from_code(code: u8) -> Option<DropReason> {
        DropReason::ALL.into_iter().find(|r| *r as u8 == code)
    }
}

/// What status reports about a camera (DEV-16).
pub struct CameraStats {
    pub id: Arc<str>,
    pub name: String,
    pub storage: Arc<str>,
    pub state: Mutex<CameraState>,
    pub description: Mutex<CameraDescription>,
    pub last_error: Mutex<Option<String>>,
    pub frames_received: AtomicU64,
    pub bytes_received: AtomicU64,
    /// Frames dropped because the storage queue was full (REC-13) or the storage was gone, and
    /// frames a V4L2 source lost before they were encoded (issue 14: driver or capture queue full).
    pub frames_dropped: AtomicU64,
    /// The part of `frames_dropped` lost to a full queue (REC-13): the health watcher raises Feed
    /// Overflow events from it, not from frames an unavailable storage refused.
    pub frames_dropped_overflow: AtomicU64,
    /// The `DropReason` code while frames meant for the store are being dropped, 0 while none
    /// are. Written only by the camera's sink, on transitions.
    dropping: AtomicU8,
    /// Why the camera does not record although it should, in a sentence for status; set with
    /// `dropping` (None while nothing is dropped).
    not_recording_reason: Mutex<Option<String>>,
    pub reconnects: AtomicU64,
    pub last_frame_wall_us: AtomicI64,
    /// Video frames and bytes in the current and previous one-second windows, for fps/bitrate.
    window: Mutex<RateWindow>,
    /// Why the camera records (continuous, rules, manual); ingest consults it per frame.
    pub control: crate::recording::RecordingControl,
    /// True while frames go to the store (false while they only fill the pre-buffer).
    pub recording: std::sync::atomic::AtomicBool,
    /// Pre-buffer length in µs (0 = off), already clamped (REC-3).
    pub prebuffer_us: i64,
    /// REC-3 disk mode: the pre-buffer is temporary data in the store, not RAM.
    pub prebuffer_on_disk: bool,
    /// Issue 12 point 4: the camera's live hub, fed with every received frame whether or not the
    /// camera records; live viewers subscribe to it.
    pub live: Arc<crate::live::Hub>,
    /// The camera's second stream, when it has one (issue 14, DEV-5); set before the stats are
    /// shared.
    pub second: Option<Arc<SecondStreamStats>>,
    /// Which stream motion detection analyses: the main sink offers its frames to motion only
    /// when it is `Main` (issue 14).
    pub motion_role: MotionRole,
    /// The camera's `record = "motion"`: a stream motion cannot analyse then means it never
    /// records, and status says so (issue 14).
    pub records_on_motion: bool,
}

#[derive(Default)]
struct RateWindow {
    start_us: i64,
    video_frames: u64,
    bytes: u64,
    last_fps_milli: u64,
    last_bps: u64,
}

impl CameraStats {
    pub fn new(id: &str, name: &str, storage: &str, prebuffer_us: i64, prebuffer_on_disk: bool) -> Self {
        CameraStats {
            id: id.into(),
            name: name.to_owned(),
            storage: storage.into(),
            state: Mutex::new(CameraState::Connecting),
            description: Mutex::new(CameraDescription::default()),
            last_error: Mutex::new(None),
            frames_received: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            frames_dropped_overflow: AtomicU64::new(0),
            dropping: AtomicU8::new(0),
            not_recording_reason: Mutex::new(None),
            reconnects: AtomicU64::new(0),
            last_frame_wall_us: AtomicI64::new(0),
            window: Mutex::new(RateWindow::default()),
            control: crate::recording::RecordingControl::default(),
            recording: std::sync::atomic::AtomicBool::new(false),
            prebuffer_us,
            prebuffer_on_disk,
            live: Arc::new(crate::live::Hub::new()),
            second: None,
            motion_role: MotionRole::Main,
            records_on_motion: false,
        }
    }

    /// Frames per second (video) and bits per second over the last complete second.
    pub fn rates(&self) -> (f64, u64) {
        self.window.lock().expect("window lock").rates()
    }

    fn count(&self, wall_us: i64, kind: StreamKind, bytes: usize) {
        self.window.lock().expect("window lock").count(wall_us, kind, bytes);
    }

    /// Why motion detection does not analyse this camera now, in a sentence for status (MD-1,
    /// issue 14); None while its analysed stream delivers video motion analysis decodes. Status
    /// never lies: a stream that is not streaming, or whose codec is not analysed, has a reason.
    pub fn motion_off_reason(&self) -> Option<String> {
        match self.motion_role {
            MotionRole::Off => Some("motion detection is off in the config".to_owned()),
            MotionRole::Main => {
                let desc = self.description.lock().expect("description lock").clone();
                let error = self.last_error.lock().expect("error lock").clone();
                let advice = if self.second.is_some() { Advice::AnalyseSecond } else { Advice::AddSecond };
                stream_off_reason("the camera", self.state(), &desc, error.as_deref(), advice)
            }
            MotionRole::Second => match &self.second {
                None => Some("the second stream is not running".to_owned()),
                Some(s) => {
                    let desc = s.description.lock().expect("description lock").clone();
                    let error = s.last_error.lock().expect("error lock").clone();
                    stream_off_reason("the second stream", s.state(), &desc, error.as_deref(), Advice::OtherSecond)
                }
            },
        }
    }

    /// Like `motion_off_reason`, but only when the analysed stream is known to deliver a codec
    /// motion analysis does not decode (H.265): motion can then never start while the stream
    /// stays as it is (issue 14: `record = "motion"` would never record).
    pub fn motion_codec_off_reason(&self) -> Option<String> {
        let desc = match (self.motion_role, &self.second) {
            (MotionRole::Off, _) | (MotionRole::Second, None) => return None,
            (MotionRole::Main, _) => self.description.lock().expect("description lock").clone(),
            (MotionRole::Second, Some(s)) => s.description.lock().expect("description lock").clone(),
        };
        let advice = match (self.motion_role, &self.second) {
            (MotionRole::Second, _) => Advice::OtherSecond,
            (_, Some(_)) => Advice::AnalyseSecond,
            (_, None) => Advice::AddSecond,
        };
        codec_off_reason(&desc, advice)
    }

    /// The analysed stream's video encoding as its current (or last) session described it.
    pub fn analysed_encoding(&self) -> Option<String> {
        let desc = match (self.motion_role, &self.second) {
            (MotionRole::Second, Some(s)) => s.description.lock().expect("description lock").clone(),
            _ => self.description.lock().expect("description lock").clone(),
        };
        desc.video.map(|v| v.encoding)
    }
}

/// Which stream of a camera motion detection analyses (issue 14, DEV-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MotionRole {
    /// Motion detection is off for the camera (MD-1).
    Off,
    /// The main (recorded) stream.
    Main,
    /// The second stream (`[camera.second_stream]` with `motion = true`).
    Second,
}

impl MotionRole {
    /// The role's name in status: `main` or `second` (None while off).
    pub fn stream_name(self) -> Option<&'static str> {
        match self {
            MotionRole::Off => None,
            MotionRole::Main => Some("main"),
            MotionRole::Second => Some("second"),
        }
    }
}

/// What a camera whose analysed stream's codec is not analysed should do about it (review-a 6:
/// the advice depends on what the camera already has).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advice {
    /// The main stream is analysed and there is no second stream: add one.
    AddSecond,
    /// The main stream is analysed although a second stream is configured (`motion = false`):
    /// analyse that one.
    AnalyseSecond,
    /// The second stream is analysed: it must be another (H.264 or MJPEG) stream.
    OtherSecond,
}

/// The sentence saying why an analysed stream's codec is not analysed, if it is not, with the
/// `advice` that fits the camera (issue 14, MD-1).
pub fn codec_off_reason(desc: &CameraDescription, advice: Advice) -> Option<String> {
    let encoding = desc.video.as_ref().map(|v| v.encoding.as_str())?;
    if crate::motion::analyses_encoding(encoding) {
        return None;
    }
    let what = if encoding == "h265" { "H.265".to_owned() } else { encoding.to_uppercase() };
    Some(match advice {
        Advice::OtherSecond => format!(
            "the second stream is {what}, which is not analysed: give the camera an H.264 or MJPEG second stream \
             (`[camera.second_stream]`)"
        ),
        Advice::AddSecond => {
            format!(
                "{what} is not analysed: give the camera an H.264 or MJPEG second stream (`[camera.second_stream]`)"
            )
        }
        Advice::AnalyseSecond => format!(
            "{what} is not analysed: set `motion = true` in `[camera.second_stream]` so motion analyses the \
             camera's second stream (H.264 or MJPEG)"
        ),
    })
}

/// Why a stream motion analyses delivers nothing to analyse, if it does not.
fn stream_off_reason(
    which: &str,
    state: CameraState,
    desc: &CameraDescription,
    last_error: Option<&str>,
    advice: Advice,
) -> Option<String> {
    match state {
        CameraState::Streaming => match &desc.video {
            None => Some(format!("{which} delivers no video")),
            Some(_) => codec_off_reason(desc, advice),
        },
        CameraState::Disabled => Some(format!("{which} is not running: {}", last_error.unwrap_or("it is disabled"))),
        CameraState::Waiting => Some(format!("{which} waits for its remote site's retrieval window")),
        CameraState::Connecting | CameraState::Retrying => Some(format!(
            "{which} is not connected: {}",
            last_error
                .map(|e| e.lines().next().unwrap_or_default().to_owned())
                .unwrap_or_else(|| "connecting".to_owned())
        )),
    }
}

impl RateWindow {
    fn rates(&self) -> (f64, u64) {
        (self.last_fps_milli as f64 / 1000.0, self.last_bps)
    }

    fn count(&mut self, wall_us: i64, kind: StreamKind, bytes: usize) {
        let w = self;
        if w.start_us == 0 {
            w.start_us = wall_us;
        }
        let elapsed = wall_us - w.start_us;
        if elapsed >= 1_000_000 {
            w.last_fps_milli = w.video_frames * 1_000_000_000 / elapsed as u64;
            w.last_bps = w.bytes * 8 * 1_000_000 / elapsed as u64;
            w.start_us = wall_us;
            w.video_frames = 0;
            w.bytes = 0;
        }
        if kind == StreamKind::Video {
            w.video_frames += 1;
        }
        w.bytes += bytes as u64;
    }
}

/// A camera's second stream as ingest counts it (issue 14, DEV-5, DEV-7): status shows it beside
/// the camera. Nothing of it is recorded or shown live; motion may analyse it.
pub struct SecondStreamStats {
    pub state: Mutex<CameraState>,
    pub description: Mutex<CameraDescription>,
    pub last_error: Mutex<Option<String>>,
    pub frames_received: AtomicU64,
    pub bytes_received: AtomicU64,
    /// Frames a V4L2 second stream lost before they were encoded.
    pub frames_dropped: AtomicU64,
    pub reconnects: AtomicU64,
    window: Mutex<RateWindow>,
}

impl Default for SecondStreamStats {
    fn default() -> Self {
        SecondStreamStats {
            state: Mutex::new(CameraState::Connecting),
            description: Mutex::new(CameraDescription::default()),
            last_error: Mutex::new(None),
            frames_received: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            window: Mutex::new(RateWindow::default()),
        }
    }
}

impl SecondStreamStats {
    /// Back to a fresh stream's stats: its source changed and its task restarts alone (review-a
    /// 4), so nothing of the old stream is shown as the new one's.
    pub fn reset(&self) {
        self.set_state(CameraState::Connecting);
        *self.description.lock().expect("description lock") = CameraDescription::default();
        *self.last_error.lock().expect("error lock") = None;
        for n in [&self.frames_received, &self.bytes_received, &self.frames_dropped, &self.reconnects] {
            n.store(0, Ordering::Relaxed);
        }
        *self.window.lock().expect("window lock") = RateWindow::default();
    }

    pub fn state(&self) -> CameraState {
        *self.state.lock().expect("state lock")
    }

    fn set_state(&self, s: CameraState) {
        *self.state.lock().expect("state lock") = s;
    }

    /// The status `state`: a second stream is never recorded, so a connected one is `streaming`.
    pub fn state_code(&self) -> &'static str {
        match self.state() {
            CameraState::Streaming => "streaming",
            s => s.as_str(),
        }
    }

    /// Frames per second (video) and bits per second over the last complete second.
    pub fn rates(&self) -> (f64, u64) {
        self.window.lock().expect("window lock").rates()
    }
}

impl CameraStats {
    pub fn state(&self) -> CameraState {
        *self.state.lock().expect("state lock")
    }

    fn set_state(&self, s: CameraState) {
        *self.state.lock().expect("state lock") = s;
    }

    /// Why frames meant for the store are being dropped now, if they are.
    pub fn dropping(&self) -> Option<DropReason> {
        DropReason::from_code(self.dropping.load(Ordering::Relaxed))
    }

    /// True only while frames really go to the store: the camera wants to record and none of
    /// its frames are being dropped (issue 10 point 1: status never claims recording otherwise).
    pub fn is_recording(&self) -> bool {
        self.recording.load(Ordering::Relaxed) && self.dropping().is_none()
    }

    /// The sentence saying why frames are dropped (None while none are).
    pub fn not_recording_reason(&self) -> Option<String> {
        self.not_recording_reason.lock().expect("reason lock").clone()
    }

    /// The status `state`: `recording` only while frames reach the store; a streaming camera
    /// whose frames are dropped shows the `DropReason` code; one that only pre-buffers shows
    /// `streaming`.
    pub fn state_code(&self) -> &'static str {
        match (self.state(), self.recording.load(Ordering::Relaxed), self.dropping()) {
            (CameraState::Streaming, _, Some(r)) => r.as_str(),
            (CameraState::Streaming, false, None) => "streaming",
            (s, _, _) => s.as_str(),
        }
    }
}

/// The sink of one camera: stamps, counts and queues frames.
struct CameraSink {
    stats: Arc<CameraStats>,
    storage: StorageHandle,
    clocks: Arc<dyn Clocks>,
    /// Incremented for every new run: each session, each recording start and each wall-clock
    /// step (ST-14).
    run: u64,
    anchor: WallAnchor,
    /// Recording or buffering, and the memory pre-buffer.
    gate: crate::recording::Gate,
    events: EventSink,
    /// Motion analysis, offered every frame (it filters and never blocks).
    motion: crate::motion::SharedMotion,
    /// Why this camera's frames are being dropped now (mirrored into `stats.dropping`).
    dropping: Option<DropReason>,
    /// Wall time (µs) of the last frame lost to a full queue, for `OVERFLOW_QUIET_US`.
    last_overflow_us: i64,
    /// Monotonic time of the current session's first frame: a session that streamed for
    /// `HEALTHY_STREAM` resets the supervisor's backoff (issue 10 point 7a).
    first_frame_mono: Option<Duration>,
}

impl Sink for CameraSink {
    fn described(&mut self, d: &CameraDescription) {
        *self.stats.description.lock().expect("description lock") = d.clone();
        self.run += 1;
        // Frames of an earlier session cannot precede this one's in a run.
        self.gate = crate::recording::Gate::new(self.stats.prebuffer_us);
        self.end_recording();
        self.emit(EventKind::CommunicationStarted);
        self.anchor = WallAnchor::now(self.clocks.as_ref());
        self.stats.set_state(CameraState::Streaming);
        if self.stats.motion_role == MotionRole::Main {
            warn_if_not_analysed(&self.stats);
        }
    }

    fn frame(&mut self, entry: &Arc<SampleEntry>, frame: Frame) {
        if self.first_frame_mono.is_none() {
            self.first_frame_mono = Some(self.clocks.monotonic());
        }
        if self.anchor.stepped(self.clocks.as_ref()) {
            tracing::warn!(
                camera = %self.stats.id,
                step_us = self.anchor.step_us(self.clocks.as_ref()),
                "wall clock moved by more than 5 minutes; cutting the run (ST-14)"
            );
            self.run += 1;
            self.anchor = WallAnchor::now(self.clocks.as_ref());
        }
        let wall_us = self.anchor.wall_us(self.clocks.as_ref());
        let kind = frame.kind;
        let len = frame.data.len();
        self.stats.frames_received.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_received.fetch_add(len as u64, Ordering::Relaxed);
        self.stats.last_frame_wall_us.store(wall_us, Ordering::Relaxed);
        self.stats.count(wall_us, kind, len);
        // Issue 14: with motion on the second stream, the main's frames are not offered.
        if self.stats.motion_role == MotionRole::Main {
            if let Some(m) = &*self.motion.read().expect("motion lock") {
                m.offer(&self.stats.id, entry, &frame, wall_us);
            }
        }
        // Issue 12 point 4: live view sees every frame, before the recording gate decides; the
        // hub never waits (`live::Hub::publish`).
        self.stats.live.publish(entry, &frame, self.clocks.monotonic());
        let f = IngestFrame {
            camera: self.stats.id.clone(),
            ingest_run: self.run,
            sample_entry: entry.clone(),
            wall_us,
            frame,
            temporary_keep_us: None,
        };
        let decision = self.gate.decide(&self.stats.control, wall_us);
        if self.stats.prebuffer_on_disk {
            return self.disk_prebuffer(decision, f);
        }
        match decision {
            Decision::Buffer => self.gate.buffer(f),
            Decision::Stop => {
                tracing::info!(camera = %self.stats.id, "recording stopped (REC-14)");
                self.end_recording();
                self.gate.buffer(f);
            }
            Decision::Record => self.send(f),
            Decision::Start { preroll_us } => {
                // A new run: the writer must not join it to an earlier recording across the gap.
                self.run += 1;
                let preroll = self.gate.take_preroll(wall_us, preroll_us);
                tracing::info!(
                    camera = %self.stats.id,
                    preroll_frames = preroll.len(),
                    preroll_ms = (wall_us - preroll.first().map_or(wall_us, |p| p.wall_us)) / 1000,
                    "recording started (REC-14)"
                );
                self.begin_recording();
                for mut p in preroll {
                    p.ingest_run = self.run;
                    self.send(p);
                }
                let mut f = f;
                f.ingest_run = self.run;
                self.send(f);
            }
        }
    }

    fn dropped(&mut self, frames: u64) {
        // Issue 14: frames a V4L2 device captured that its source could not encode or queue are
        // counted in the status's dropped frames, so a low rate is explained (status never lies).
        self.stats.frames_dropped.fetch_add(frames, Ordering::Relaxed);
    }
}

impl CameraSink {
    /// REC-3 disk mode: every frame goes to the store; while not recording it is temporary, and a
    /// recording start makes the store's copy permanent from the pre-roll (one continuous run).
    fn disk_prebuffer(&mut self, decision: Decision, mut f: IngestFrame) {
        match decision {
            Decision::Buffer => f.temporary_keep_us = Some(self.stats.prebuffer_us),
            Decision::Stop => {
                tracing::info!(camera = %self.stats.id, "recording stopped (REC-14)");
                self.end_recording();
                f.temporary_keep_us = Some(self.stats.prebuffer_us);
            }
            Decision::Record => {}
            Decision::Start { preroll_us } => {
                let from = f.wall_us - preroll_us.min(self.stats.prebuffer_us);
                tracing::info!(camera = %self.stats.id, preroll_ms = (f.wall_us - from) / 1000, "recording started (REC-14)");
                self.storage.make_permanent(&self.stats.id, from);
                self.begin_recording();
            }
        }
        self.send(f);
    }

    /// The camera now wants to record (REC-14). Recording Started is raised only if frames can
    /// reach the store; if the storage is known to be unavailable, Recording Stopped says why
    /// instead (issue 10 point 1), and Recording Started follows once frames are stored.
    fn begin_recording(&mut self) {
        let available = self.storage.stats.available.load(Ordering::Acquire);
        let locked_full = self.storage.stats.full_of_locked_data.load(Ordering::Acquire);
        match (available, self.dropping) {
            (false, _) => self.set_dropping(Some(DropReason::StorageUnavailable)),
            // EL-4: a storage holding only locked data stores nothing.
            (true, _) if locked_full => self.set_dropping(Some(DropReason::StorageFullOfLockedData)),
            (true, Some(DropReason::StorageUnavailable | DropReason::StorageFullOfLockedData)) => {
                self.set_dropping(None)
            }
            _ => {}
        }
        self.stats.recording.store(true, Ordering::Relaxed);
        match self.dropping {
            None => self.emit(EventKind::RecordingStarted),
            Some(r) => self.emit_with(EventKind::RecordingStopped, self.drop_message(r)),
        }
    }

    /// The camera no longer wants to record (REC-14). Recording Stopped is raised unless it was
    /// raised already when its frames started being dropped.
    fn end_recording(&mut self) {
        if self.stats.recording.swap(false, Ordering::Relaxed) && self.dropping.is_none() {
            self.emit(EventKind::RecordingStopped);
        }
        // Why frames were dropped is only known again when one is sent: a memory pre-buffer
        // sends nothing until the next recording, so a stale reason would keep status and
        // metrics saying "dropping" and make the next start raise a false Recording Stopped.
        // Cleared silently (nothing records); a disk pre-buffer's next send sets it again.
        self.set_dropping(None);
    }

    fn drop_message(&self, reason: DropReason) -> String {
        let storage = &self.storage.id;
        match reason {
            DropReason::StorageUnavailable => {
                let why = self.storage.stats.last_error.lock().expect("stats lock").clone();
                format!(
                    "not recording: storage {storage} is unavailable ({}); frames are dropped",
                    why.as_deref().unwrap_or("its writer is gone")
                )
            }
            DropReason::FeedOverflow => format!(
                "not recording: the queue to storage {storage} is full (feed overflow, REC-13); frames are dropped"
            ),
            DropReason::StorageFullOfLockedData => format!(
                "not recording: storage {storage} holds only evidence-locked data (EL-4); frames are dropped until \
                 a lock is released or expires"
            ),
        }
    }

    /// Records a change of why frames are dropped. While the camera wants to record, the start of
    /// dropping raises Recording Stopped with the reason and its end raises Recording Started
    /// (issue 10 point 1).
    fn set_dropping(&mut self, new: Option<DropReason>) {
        if new == self.dropping {
            return;
        }
        let old = std::mem::replace(&mut self.dropping, new);
        let message = new.map(|r| self.drop_message(r));
        *self.stats.not_recording_reason.lock().expect("reason lock") = message.clone();
        self.stats.dropping.store(new.map_or(0, |r| r as u8), Ordering::Relaxed);
        if !self.stats.recording.load(Ordering::Relaxed) {
            return;
        }
        match (old, message) {
            (None, Some(m)) => {
                tracing::warn!(camera = %self.stats.id, storage = %self.storage.id, "{m}");
                self.emit_with(EventKind::RecordingStopped, m);
            }
            (Some(_), None) => {
                let m = format!("recording resumed: frames reach storage {} again", self.storage.id);
                tracing::info!(camera = %self.stats.id, "{m}");
                self.emit_with(EventKind::RecordingStarted, m);
            }
            // Still dropping, for another reason: status shows the new one.
            _ => {}
        }
    }

    fn emit(&self, kind: EventKind) {
        let now = self.anchor.wall_us(self.clocks.as_ref());
        self.events.emit(Event::new(kind, now).with_camera(&*self.stats.id));
    }

    fn emit_with(&self, kind: EventKind, message: String) {
        let now = self.anchor.wall_us(self.clocks.as_ref());
        self.events.emit(Event::new(kind, now).with_camera(&*self.stats.id).with_message(message));
    }

    fn send(&mut self, f: IngestFrame) {
        let wall_us = f.wall_us;
        let dropped = match self.storage.try_send(f) {
            // The writer drops frames itself while its storage is unavailable (FL-1) or holds only
            // evidence-locked data (EL-4).
            Ok(()) if self.storage.stats.available.load(Ordering::Acquire) => self
                .storage
                .stats
                .full_of_locked_data
                .load(Ordering::Acquire)
                .then_some(DropReason::StorageFullOfLockedData),
            Ok(()) | Err(SendError::Closed) => Some(DropReason::StorageUnavailable),
            Err(SendError::Overflow) => Some(DropReason::FeedOverflow),
        };
        match dropped {
            Some(r) => {
                self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                if r == DropReason::FeedOverflow {
                    self.stats.frames_dropped_overflow.fetch_add(1, Ordering::Relaxed);
                    self.last_overflow_us = wall_us;
                }
                self.set_dropping(Some(r));
            }
            None if self.dropping == Some(DropReason::FeedOverflow)
                && wall_us - self.last_overflow_us < OVERFLOW_QUIET_US => {}
            None => self.set_dropping(None),
        }
    }
}

/// When to try a camera again after a failed session (issue 10 point 7a): exponential backoff of
/// full attempts, reset by a session that streamed for `HEALTHY_STREAM` and by a camera seen
/// coming back.
/// Times are monotonic (`Clocks::monotonic`), so the policy is tested without waiting.
#[derive(Debug)]
struct Backoff {
    /// Wait before the next full attempt after the next failure.
    delay: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { delay: BACKOFF_FIRST }
    }

    /// A session failed at `now`; `streamed_for` is how long it delivered frames (None: none).
    /// A session that streamed for `HEALTHY_STREAM` was a working camera, so its failure says
    /// nothing about the next try and the backoff starts over; one that failed sooner (broken
    /// right after PLAY, a hostile stream cut at a cap) keeps doubling, so such a camera is never
    /// retried at full rate. Returns when to try again.
    fn failed(&mut self, now: Duration, streamed_for: Option<Duration>) -> Duration {
        if streamed_for.is_some_and(|d| d >= HEALTHY_STREAM) {
            self.delay = BACKOFF_FIRST;
        }
        let at = now + self.delay;
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
        at
    }

    /// A probe saw the camera's port answer after refusing: try at once, and back off from the
    /// start again if the camera still boots.
    fn came_back(&mut self) {
        self.delay = BACKOFF_FIRST;
    }
}

/// What the camera's TCP port (or device node) did when probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    Answered,
    Unreachable,
}

/// Where a probe may see a camera come back while its task waits to retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeTarget {
    /// An RTSP camera's host and TCP port (issue 10 point 7a).
    Tcp(String, u16),
    /// A V4L2 camera's device node (issue 14). While unplugged it may be absent, or still listed
    /// (a process holds it open) with every open failing with ENODEV: the probe opens it.
    Device(std::path::PathBuf),
}

impl ProbeTarget {
    /// How often the target is probed while its camera waits to retry.
    fn interval(&self) -> Duration {
        match self {
            ProbeTarget::Tcp(..) => PROBE_INTERVAL,
            ProbeTarget::Device(_) => DEVICE_PROBE_INTERVAL,
        }
    }
}

/// One TCP connect to the target, closed at once (nothing is sent), or one non-blocking open of
/// the device node, closed at once (on a blocking thread: it is file I/O; `device_opens`).
async fn probe(target: &ProbeTarget) -> Probe {
    match target {
        ProbeTarget::Tcp(host, port) => {
            let connect = tokio::net::TcpStream::connect((host.as_str(), *port));
            match tokio::time::timeout(PROBE_TIMEOUT, connect).await {
                Ok(Ok(_)) => Probe::Answered,
                Ok(Err(_)) | Err(_) => Probe::Unreachable,
            }
        }
        ProbeTarget::Device(path) => {
            let path = path.clone();
            match tokio::task::spawn_blocking(move || device_opens(&path)).await {
                Ok(true) => Probe::Answered,
                Ok(false) | Err(_) => Probe::Unreachable,
            }
        }
    }
}

/// Whether a V4L2 device node can be opened now (opened without blocking and closed at once;
/// nothing is asked of the device). Issue 14 (DEV-16), found in the VM: a node that exists is
/// not a device that is there. A disconnected USB camera whose node some process still holds
/// open keeps its `/dev` entry while every open fails with `ENODEV` (vivid's Disconnect control
/// emulates exactly this), so a probe that only looked for the node saw the camera "answer" all
/// along and the retry waited out the grown backoff after the camera came back. A node that
/// opens with another error (`EACCES`, `EBUSY`) answers: the device is there, and the session
/// reports why it cannot use it.
fn device_opens(path: &std::path::Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().read(true).write(true).custom_flags(nix::libc::O_NONBLOCK).open(path) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.raw_os_error(),
            Some(nix::libc::ENODEV | nix::libc::ENOENT | nix::libc::ENXIO | nix::libc::ENOTDIR)
        ),
    }
}

/// Waits until `retry_at` (monotonic), or less when a probe of `target` sees the camera come back
/// (unreachable, then answering). While the port does not answer it is probed every
/// `PROBE_INTERVAL` (a device node every `DEVICE_PROBE_INTERVAL`); once it answers (RTSP failed on a live port) it is left alone until the
/// next attempt. Returns false if `stop` fired.
async fn wait_to_retry(
    retry_at: Duration,
    target: Option<&ProbeTarget>,
    backoff: &mut Backoff,
    clocks: &dyn Clocks,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    let mut last: Option<Probe> = None;
    loop {
        let now = clocks.monotonic();
        if now >= retry_at {
            return true;
        }
        let left = retry_at - now;
        let interval = target.map_or(PROBE_INTERVAL, ProbeTarget::interval);
        let Some(target) = target.filter(|_| left > interval) else {
            // No probe target, or the attempt is due before the next probe would be.
            return tokio::select! {
                _ = tokio::time::sleep(left) => true,
                _ = stop.changed() => false,
            };
        };
        let probed = tokio::select! {
            p = probe(target) => p,
            _ = stop.changed() => return false,
        };
        if probed == Probe::Answered {
            if last == Some(Probe::Unreachable) {
                backoff.came_back();
                return true;
            }
            // The port answers but RTSP failed: more probes would only load the camera, so the
            // backoff is waited out.
            let left = retry_at.saturating_sub(clocks.monotonic());
            return tokio::select! {
                _ = tokio::time::sleep(left) => true,
                _ = stop.changed() => false,
            };
        }
        last = Some(probed);
        let next = interval.saturating_sub(clocks.monotonic().saturating_sub(now));
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = stop.changed() => return false,
        }
    }
}

/// What the session loop (`run_sessions`) needs of a sink beyond `Sink`: the main stream's and a
/// second stream's sinks share one backoff, probe and retry machinery (issue 14).
trait SessionSink: Sink {
    /// A new attempt starts.
    fn connecting(&mut self);
    /// Monotonic time of the current session's first frame, if it had one.
    fn first_frame(&self) -> Option<Duration>;
    /// The session ended with `msg`; the next attempt is in `retry_in`.
    fn ended(&mut self, msg: String, retry_in: Duration);
}

/// Runs `source` into `sink` until `stop` fires: session, backoff, session... A session that
/// streamed for `HEALTHY_STREAM` resets the backoff; while waiting, `probe_target` (an RTSP
/// camera's TCP port, a V4L2 camera's device node) may see the camera come back.
async fn run_sessions(
    source: &mut dyn Source,
    sink: &mut dyn SessionSink,
    clocks: &dyn Clocks,
    probe_target: Option<&ProbeTarget>,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new();
    loop {
        sink.connecting();
        let result = {
            // Trait upcasting (Rust 1.86, within the MSRV).
            let as_sink: &mut dyn Sink = &mut *sink;
            tokio::select! {
                r = source.session(as_sink) => r,
                _ = stop.changed() => return,
            }
        };
        if *stop.borrow() {
            return;
        }
        let now_mono = clocks.monotonic();
        let streamed_for = sink.first_frame().map(|t| now_mono.saturating_sub(t));
        let retry_at = backoff.failed(now_mono, streamed_for);
        let msg = match result {
            Ok(()) => "session ended".to_owned(),
            Err(e) => e.to_string(),
        };
        sink.ended(msg, retry_at.saturating_sub(clocks.monotonic()));
        if !wait_to_retry(retry_at, probe_target, &mut backoff, clocks, stop).await {
            return;
        }
    }
}

impl SessionSink for CameraSink {
    fn connecting(&mut self) {
        self.stats.set_state(CameraState::Connecting);
        self.first_frame_mono = None;
    }

    fn first_frame(&self) -> Option<Duration> {
        self.first_frame_mono
    }

    fn ended(&mut self, msg: String, retry_in: Duration) {
        let stats = self.stats.clone();
        tracing::warn!(camera = %stats.id, event = "communication_error", ?retry_in, "camera session ended: {msg}");
        // RU-11: a session that streamed ends with Communication Stopped; every failure is an error.
        if stats.state() == CameraState::Streaming {
            self.end_recording();
            self.emit(EventKind::CommunicationStopped);
        }
        self.emit_with(EventKind::CommunicationError, msg.clone());
        // Issue 12 point 4, review: live view ends with the session; the live routes then answer
        // 503 with this error, as the status does, instead of a stale picture.
        stats.live.reset();
        *stats.last_error.lock().expect("error lock") = Some(msg);
        stats.reconnects.fetch_add(1, Ordering::Relaxed);
        stats.set_state(CameraState::Retrying);
    }
}

/// Runs a camera until `stop` fires: session, backoff, session... (each session a new run).
/// `probe_target` is where a probe may see the camera come back while waiting: an RTSP camera's
/// TCP port, a V4L2 camera's device node.
#[allow(clippy::too_many_arguments)]
pub async fn supervise(
    mut source: Box<dyn Source>,
    stats: Arc<CameraStats>,
    storage: StorageHandle,
    clocks: Arc<dyn Clocks>,
    events: EventSink,
    motion: crate::motion::SharedMotion,
    probe_target: Option<ProbeTarget>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let anchor = WallAnchor::now(clocks.as_ref());
    let gate = crate::recording::Gate::new(stats.prebuffer_us);
    let mut sink = CameraSink {
        stats: stats.clone(),
        storage,
        clocks: clocks.clone(),
        run: 0,
        anchor,
        gate,
        events,
        motion,
        dropping: None,
        last_overflow_us: 0,
        first_frame_mono: None,
    };
    run_sessions(source.as_mut(), &mut sink, clocks.as_ref(), probe_target.as_ref(), &mut stop).await;
}

/// The sink of a camera's second stream (issue 14, DEV-5): counts its frames and offers them to
/// motion under the camera's id when motion analyses it. Nothing is recorded or shown live, no
/// event is raised (the camera's communication events are the main stream's), and only motion's
/// bounded offer ever holds a frame, so the stream costs no memory of its own.
struct SecondSink {
    camera: Arc<CameraStats>,
    stats: Arc<SecondStreamStats>,
    clocks: Arc<dyn Clocks>,
    anchor: WallAnchor,
    motion: crate::motion::SharedMotion,
    first_frame_mono: Option<Duration>,
}

impl Sink for SecondSink {
    fn described(&mut self, d: &CameraDescription) {
        *self.stats.description.lock().expect("description lock") = d.clone();
        self.anchor = WallAnchor::now(self.clocks.as_ref());
        self.stats.set_state(CameraState::Streaming);
        if self.camera.motion_role == MotionRole::Second {
            warn_if_not_analysed(&self.camera);
        }
    }

    fn frame(&mut self, entry: &Arc<SampleEntry>, frame: Frame) {
        if self.first_frame_mono.is_none() {
            self.first_frame_mono = Some(self.clocks.monotonic());
        }
        if self.anchor.stepped(self.clocks.as_ref()) {
            self.anchor = WallAnchor::now(self.clocks.as_ref());
        }
        let wall_us = self.anchor.wall_us(self.clocks.as_ref());
        let len = frame.data.len();
        self.stats.frames_received.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_received.fetch_add(len as u64, Ordering::Relaxed);
        self.stats.window.lock().expect("window lock").count(wall_us, frame.kind, len);
        if self.camera.motion_role == MotionRole::Second {
            if let Some(m) = &*self.motion.read().expect("motion lock") {
                m.offer(&self.camera.id, entry, &frame, wall_us);
            }
        }
    }

    fn dropped(&mut self, frames: u64) {
        self.stats.frames_dropped.fetch_add(frames, Ordering::Relaxed);
    }
}

impl SessionSink for SecondSink {
    fn connecting(&mut self) {
        self.stats.set_state(CameraState::Connecting);
        self.first_frame_mono = None;
    }

    fn first_frame(&self) -> Option<Duration> {
        self.first_frame_mono
    }

    fn ended(&mut self, msg: String, retry_in: Duration) {
        tracing::warn!(camera = %self.camera.id, stream = "second", ?retry_in, "second stream session ended: {msg}");
        *self.stats.last_error.lock().expect("error lock") = Some(msg);
        self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
        self.stats.set_state(CameraState::Retrying);
    }
}

/// Runs a camera's second stream until `stop` fires, with the same backoff and probes as the
/// main stream (`run_sessions`). Its failures touch only `camera.second`: the main stream and its
/// recording never see them (issue 14).
pub async fn supervise_second(
    mut source: Box<dyn Source>,
    camera: Arc<CameraStats>,
    clocks: Arc<dyn Clocks>,
    motion: crate::motion::SharedMotion,
    probe_target: Option<ProbeTarget>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Some(stats) = camera.second.clone() else { return };
    let mut sink = SecondSink {
        camera,
        stats,
        anchor: WallAnchor::now(clocks.as_ref()),
        clocks: clocks.clone(),
        motion,
        first_frame_mono: None,
    };
    run_sessions(source.as_mut(), &mut sink, clocks.as_ref(), probe_target.as_ref(), &mut stop).await;
}

/// Issue 14: a session of the analysed stream whose codec motion does not decode is logged once
/// (per session), with what to do about it; status shows the same reason.
fn warn_if_not_analysed(camera: &CameraStats) {
    if let Some(reason) = camera.motion_codec_off_reason() {
        tracing::warn!(camera = %camera.id, "motion detection does not analyse this camera: {reason}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Issue 14, review-a 6 (MD-1): the advice for a stream motion cannot decode fits the camera:
    /// add a second stream, analyse the one it has (`motion = true`), or use another; an analysed
    /// codec has no reason.
    #[test]
    fn md1_off_reason_advice_fits_the_camera() {
        let desc = |encoding: &str| CameraDescription {
            video: Some(crate::source::StreamDescription {
                index: 0,
                encoding: encoding.to_owned(),
                clock_rate_hz: 90_000,
                width: 640,
                height: 480,
            }),
            audio: None,
            skipped: Vec::new(),
        };
        let h265 = desc("h265");
        let add = codec_off_reason(&h265, Advice::AddSecond).unwrap();
        assert_eq!(
            add,
            "H.265 is not analysed: give the camera an H.264 or MJPEG second stream (`[camera.second_stream]`)"
        );
        let analyse = codec_off_reason(&h265, Advice::AnalyseSecond).unwrap();
        assert!(
            analyse.starts_with("H.265 is not analysed: set `motion = true` in `[camera.second_stream]`"),
            "{analyse}"
        );
        assert!(!analyse.contains("give the camera"), "{analyse}");
        let other = codec_off_reason(&h265, Advice::OtherSecond).unwrap();
        assert!(other.starts_with("the second stream is H.265, which is not analysed"), "{other}");
        for ok in ["h264", "mjpeg"] {
            assert_eq!(codec_off_reason(&desc(ok), Advice::AnalyseSecond), None);
        }
    }

    // Issue 10 point 7a: full attempts back off from 0.5 s to a cap of 10 s.
    #[test]
    fn failures_without_describe_back_off_to_the_cap() {
        let mut b = Backoff::new();
        let waits: Vec<Duration> = (0..8).map(|i| b.failed(i * 100 * S, None) - i * 100 * S).collect();
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
    }

    // Issue 10 point 7a: a session that streamed for 5 s resets the backoff, so a camera that
    // streamed for 10 s between outages never waits out a grown backoff; one that fails right
    // after PLAY, or streams a moment before being cut, keeps backing off.
    #[test]
    fn a_session_that_streamed_resets_the_backoff_and_a_short_one_does_not() {
        let mut b = Backoff::new();
        for i in 0..6 {
            b.failed(i * S, None);
        }
        assert_eq!(b.failed(100 * S, Some(10 * S)), 100 * S + BACKOFF_FIRST);
        assert_eq!(b.failed(101 * S, None), 101 * S + 2 * BACKOFF_FIRST);
        let waits: Vec<u128> =
            (0..6).map(|i| (b.failed(200 * S + i * 20 * S, Some(S)) - 200 * S - i * 20 * S).as_millis()).collect();
        assert_eq!(waits, [2000, 4000, 8000, 10_000, 10_000, 10_000]);
    }

    // Issue 10 point 7a: a camera seen coming back that still fails (booting) is retried fast
    // again, not after the grown backoff.
    #[test]
    fn a_camera_seen_coming_back_is_retried_from_the_first_delay() {
        let mut b = Backoff::new();
        for i in 0..6 {
            b.failed(i * S, None);
        }
        b.came_back();
        assert_eq!(b.failed(50 * S, None), 50 * S + BACKOFF_FIRST);
    }

    // Issue 14 point 2: a V4L2 device node seen coming back (absent, then present: replugged,
    // driver reloaded) ends the wait at once instead of after a grown backoff, so recording
    // resumes within 2 s of the device returning.
    /// Issue 14 (review-c finding 5): a node that is listed but does not open is away. A bound
    /// UNIX socket stands for an unplugged V4L2 node still held open elsewhere (its open fails
    /// with ENXIO as the node's does with ENODEV): a stat probe would call it present.
    #[test]
    fn a_listed_node_that_does_not_open_is_away() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("video0");
        let _socket = std::os::unix::net::UnixListener::bind(&node).unwrap();
        assert!(node.exists(), "the node is listed");
        assert!(!device_opens(&node), "a node whose open fails with ENXIO is away");
        std::fs::remove_file(&node).unwrap();
        assert!(!device_opens(&node), "an absent node is away");
        std::fs::write(&node, b"").unwrap();
        assert!(device_opens(&node), "a node that opens is back");
    }

    #[test]
    fn a_device_node_seen_coming_back_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("video0");
        let clocks = crate::clocks::SystemClocks;
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let (_stop_tx, mut stop) = tokio::sync::watch::channel(false);
        let mut backoff = Backoff::new();
        for i in 0..6 {
            backoff.failed(i * S, None);
        }
        let start = clocks.monotonic();
        let replug = {
            let node = node.clone();
            // The replug happens 1.5 s into a 30 s wait: the scenario, not a wait for a result.
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(1500));
                std::fs::write(node, b"").unwrap();
            })
        };
        let target = ProbeTarget::Device(node);
        let retry = rt.block_on(wait_to_retry(start + 30 * S, Some(&target), &mut backoff, &clocks, &mut stop));
        let waited = clocks.monotonic() - start;
        replug.join().unwrap();
        assert!(retry);
        assert!(waited >= Duration::from_millis(1500) && waited < 2 * S + PROBE_TIMEOUT, "waited {waited:?}");
        assert_eq!(backoff.failed(100 * S, None), 100 * S + BACKOFF_FIRST, "the backoff starts over");
    }
}
