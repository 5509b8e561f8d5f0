//! The motion thread and the handle ingest offers frames to.
//! Invariant: `MotionHandle::offer` never blocks and never fails (STYLE rule 12); the thread runs at
//! nice 10, so under load analysis falls behind and skips frames (counted), never recording.
//!
//! Contract of the motion thread: it owns every camera's decoder and motion state and the only
//! writing connection to the motion data file. It emits Motion Started/Stopped as soon as an
//! analysis decides them (events never wait for SQLite), and commits level rows and spans at most
//! `COMMIT_INTERVAL` after they were produced or when `COMMIT_ROWS` are pending. While the file
//! cannot be opened or written it retries every `REOPEN_INTERVAL`, keeps up to
//! `MAX_PENDING_ROWS`, and drops and counts the rest.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use super::analyzer::{FrameAnalyzer, H264Decoder, Outcome, MAX_COMPARE_GAP_US};
use super::db::{Batch, LevelRow, WriterDb};
use super::settings::{FrameSelection, MotionConfig};
use super::tracker::{MotionTracker, Step};
use crate::clocks::Clocks;
use crate::error::Error;
use crate::events::{Event, EventKind, EventSink};
use crate::media::{Codec, Frame, SampleEntry, StreamKind};
use crate::shutdown::Shutdown;

/// Frames a key-frames-only camera may have queued or in analysis: one analysed, one waiting.
/// More would only add latency: a newer key frame is worth more than an old one.
const KEY_FRAMES_IN_FLIGHT: usize = 2;
/// Frames an all-frames camera may have queued or in decoding: 2 s at 25 fps.
const ALL_FRAMES_IN_FLIGHT: usize = 50;
/// Pending rows are committed this long after the oldest was produced...
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// ...or as soon as this many are pending.
const COMMIT_ROWS: usize = 256;
/// Rows kept while the file cannot be written (about 40 s of 16 cameras; at most ~2 MB).
const MAX_PENDING_ROWS: usize = 16_384;
/// How often the thread retries opening or writing a file that failed.
const REOPEN_INTERVAL: Duration = Duration::from_secs(10);
/// How often time retention runs (M4). Media retention is in days; seconds of slack are nothing.
const EXPIRE_INTERVAL: Duration = Duration::from_secs(10);
/// The thread wakes at least this often to look at its timers and its stop signal.
const TICK: Duration = Duration::from_millis(200);
/// A camera in motion whose analyses stop arriving for this long (a stalled stream) gets Motion
/// Stopped. The same 10 s after which frames are no longer compared (`MAX_COMPARE_GAP_US`).
const STALL: Duration = Duration::from_micros(MAX_COMPARE_GAP_US as u64);
/// Niceness of the motion thread: well below ingest and the writers, but not `SCHED_IDLE`, which
/// can starve it completely on a busy box and so silently break record-on-motion.
const MOTION_NICE: i32 = 10;

/// Where and how much the motion thread stores.
#[derive(Clone, Debug)]
pub struct MotionOptions {
    /// The motion data file, normally `data_dir/motion.sqlite3` (`MOTION_FILE`).
    pub db_path: PathBuf,
    /// Level rows kept per camera (M4). The default, 1,209,600, is 7 days at 2 analyses/s: about
    /// 27 MB per camera for a still scene (22 B per analysed frame), 60 MB with a person-sized
    /// change in every frame (50 B), at most 210 MB with change in every cell (172 B).
    pub max_level_rows: u64,
    /// Spans kept per camera (M4).
    pub max_span_rows: u64,
}

impl MotionOptions {
    pub fn new(db_path: PathBuf) -> MotionOptions {
        MotionOptions { db_path, max_level_rows: 7 * 86_400 * 2, max_span_rows: 100_000 }
    }
}

/// Counters of one camera, shared by `offer` (ingest) and the motion thread. A camera whose
/// settings change gets a new slot (and the thread new state); an unchanged one keeps its slot.
struct CameraSlot {
    /// Config id of the camera.
    id: Arc<str>,
    config: MotionConfig,
    /// Unique per slot for the service's life: the key of the motion thread's per-camera state.
    uid: u64,
    /// Frames this camera may have queued or in analysis (`KEY_FRAMES_IN_FLIGHT`, ...).
    max_in_flight: usize,
    /// Frames queued or being analysed; bounded by `max_in_flight` so one camera cannot fill the
    /// queue of the others.
    in_flight: AtomicUsize,
    /// Wall time (µs) at which the next analysis slot is due (MD-3 cadence); `i64::MIN` = now.
    next_due_us: AtomicI64,
    /// All-frames mode lost a frame: drop frames until the next key frame, which needs no reference.
    resync: AtomicBool,
    /// Time retention asked for by `expire` (µs since the epoch; `i64::MIN` = none).
    expire_before_us: AtomicI64,
    analysed: AtomicU64,
    skipped_behind: AtomicU64,
    unsupported_codec: AtomicU64,
    decode_errors: AtomicU64,
    motion: AtomicBool,
    changed_permille: AtomicU16,
    last_analysis_wall_us: AtomicI64,
    last_error: Mutex<Option<String>>,
}

impl CameraSlot {
    fn new(id: Arc<str>, config: MotionConfig, uid: u64) -> CameraSlot {
        let max_in_flight = match config.frames {
            FrameSelection::KeyFramesOnly => KEY_FRAMES_IN_FLIGHT,
            FrameSelection::AllFrames => ALL_FRAMES_IN_FLIGHT,
        };
        CameraSlot {
            id,
            config,
            uid,
            max_in_flight,
            in_flight: AtomicUsize::new(0),
            next_due_us: AtomicI64::new(i64::MIN),
            resync: AtomicBool::new(true),
            expire_before_us: AtomicI64::new(i64::MIN),
            analysed: AtomicU64::new(0),
            skipped_behind: AtomicU64::new(0),
            unsupported_codec: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            motion: AtomicBool::new(false),
            changed_permille: AtomicU16::new(0),
            last_analysis_wall_us: AtomicI64::new(0),
            last_error: Mutex::new(None),
        }
    }
}

/// Status of one camera's motion detection (DEV-16; MD-2's live motion level).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MotionCameraStats {
    pub camera: String,
    /// Frames analysed (decoded and compared, or taken as the first reference).
    pub analysed: u64,
    /// Frames due for analysis that were skipped because the motion thread was behind (its queue
    /// for this camera was full). A growing count means the box has no CPU to spare for motion.
    pub skipped_behind: u64,
    /// Frames due for analysis of a codec motion does not decode (H.264 and MJPEG are analysed;
    /// H.265 is recorded but not analysed).
    pub unsupported_codec: u64,
    /// Frames that did not decode.
    pub decode_errors: u64,
    /// True between Motion Started and Motion Stopped.
    pub motion: bool,
    /// Changed share of the last analysis outside the exclude regions, in thousandths, and the
    /// threshold it is compared with (MD-2 indicator).
    pub changed_permille: u16,
    pub threshold_permille: u16,
    /// Wall time of the last analysed frame (µs since the epoch), 0 if none.
    pub last_analysis_wall_us: i64,
    /// The last decode or bitstream error, with the reason.
    pub last_error: Option<String>,
}

/// Status of the motion service as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MotionStats {
    pub cameras: Vec<MotionCameraStats>,
    /// True while the motion data file is open and the last commit succeeded.
    pub db_available: bool,
    /// The last open or write failure of the file (with its path), until it works again.
    pub db_last_error: Option<String>,
    /// Rows (levels and span updates) dropped because the file could not be written for too long.
    pub rows_dropped: u64,
}

/// The cameras analysed, replaced as a whole by `MotionService::reconfigure`.
#[derive(Default)]
struct CameraSet {
    by_id: HashMap<Arc<str>, Arc<CameraSlot>>,
    /// The same slots in camera order, for stats.
    ordered: Vec<Arc<CameraSlot>>,
}

/// State shared by the handle, the service and the thread.
struct Shared {
    /// Read once per offered video frame (uncontended), written only by a config change.
    cameras: RwLock<Arc<CameraSet>>,
    /// Set by `reconfigure`; the thread then brings its per-camera state in line with `cameras`.
    reconfigured: AtomicBool,
    /// Source of `CameraSlot::uid`.
    next_uid: AtomicU64,
    /// Ends the thread after it closed open sequences and committed. The service's own signal,
    /// not the process's: `Recorder::shutdown` stops motion after ingest and before the event
    /// log, and a config change stops it alone.
    stop: Shutdown,
    db_available: AtomicBool,
    db_last_error: Mutex<Option<String>>,
    rows_dropped: AtomicU64,
    /// Notified (with `idle_lock` held) each time the thread finishes a frame; `wait_idle` waits on it.
    idle_lock: Mutex<()>,
    idle_cv: Condvar,
}

/// One frame handed to the motion thread.
struct Job {
    slot: Arc<CameraSlot>,
    entry: Arc<SampleEntry>,
    frame: Frame,
    wall_us: i64,
    /// True when this frame fills an analysis slot; false for frames only decoded for their
    /// references (all-frames mode).
    analyse: bool,
}

/// The producers' handle: ingest calls `offer` for every frame. Cheap to clone.
#[derive(Clone)]
pub struct MotionHandle {
    /// Unbounded as a channel, but bounded in fact: every slot admits at most its
    /// `max_in_flight` jobs, so the queue never holds more than the sum of the slots' shares.
    tx: Sender<Job>,
    shared: Arc<Shared>,
}

/// The owner of the motion thread, kept for shutdown.
pub struct MotionService {
    shared: Arc<Shared>,
    join: Option<JoinHandle<()>>,
}

impl MotionService {
    /// Starts the motion thread for `cameras` (config id and settings of every camera with motion
    /// detection on, MD-1). Fails only on invalid settings or duplicate ids. The motion data file
    /// is opened on the thread; until it opens, events still flow and `stats` says why. Dropping the
    /// service stops the thread (without waiting); keep it until shutdown.
    pub fn spawn(
        cameras: Vec<(Arc<str>, MotionConfig)>,
        options: MotionOptions,
        events: EventSink,
        clocks: Arc<dyn Clocks>,
    ) -> Result<(MotionService, MotionHandle), Error> {
        let shared = Arc::new(Shared {
            cameras: RwLock::new(Arc::new(CameraSet::default())),
            reconfigured: AtomicBool::new(false),
            next_uid: AtomicU64::new(1),
            stop: Shutdown::new(),
            db_available: AtomicBool::new(false),
            db_last_error: Mutex::new(None),
            rows_dropped: AtomicU64::new(0),
            idle_lock: Mutex::new(()),
            idle_cv: Condvar::new(),
        });
        *shared.cameras.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(shared.camera_set(cameras)?);
        let (tx, rx) = mpsc::channel();
        let worker = Worker::new(shared.clone(), options, events, clocks);
        let join = std::thread::Builder::new()
            .name("motion".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| Error::with_source(crate::ErrorKind::Internal, "cannot start the motion thread", e))?;
        Ok((MotionService { shared: shared.clone(), join: Some(join) }, MotionHandle { tx, shared }))
    }

    /// Changes the cameras analysed without a restart: a camera whose settings are unchanged keeps
    /// its state (reference picture, open motion sequence, counters); a changed one starts afresh,
    /// and a removed or changed camera's open sequence ends (Motion Stopped) within one tick.
    /// Fails only on invalid settings or duplicate ids, and then changes nothing.
    pub fn reconfigure(&self, cameras: Vec<(Arc<str>, MotionConfig)>) -> Result<(), Error> {
        let set = self.shared.camera_set(cameras)?;
        *self.shared.cameras.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
        self.shared.reconfigured.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops the thread: it finishes the frame in hand, ends open motion sequences (Motion Stopped
    /// at their last analysed frame), commits what it holds and exits. Frames still queued are
    /// dropped. Returns within about one frame's analysis plus one commit.
    pub fn shutdown(mut self) {
        self.shared.stop.trigger();
        if let Some(join) = self.join.take() {
            let _ = join.join();
        }
    }

    pub fn stats(&self) -> MotionStats {
        self.shared.stats()
    }
}

impl Drop for MotionService {
    fn drop(&mut self) {
        self.shared.stop.trigger();
    }
}

impl Shared {
    /// The cameras in force now.
    fn set(&self) -> Arc<CameraSet> {
        self.cameras.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// A camera set for `cameras`, keeping the slot of every camera whose settings are unchanged.
    fn camera_set(&self, cameras: Vec<(Arc<str>, MotionConfig)>) -> Result<CameraSet, Error> {
        let old = self.set();
        let mut set = CameraSet::default();
        for (id, config) in cameras {
            config.validate().map_err(|e| crate::err!(InvalidArgument, "camera {id}: {}", e.msg()))?;
            let slot = match old.by_id.get(&id) {
                Some(slot) if slot.config == config => slot.clone(),
                _ => Arc::new(CameraSlot::new(id.clone(), config, self.next_uid.fetch_add(1, Ordering::Relaxed))),
            };
            if set.by_id.insert(id.clone(), slot.clone()).is_some() {
                return Err(crate::err!(InvalidArgument, "motion: camera {id} is listed twice"));
            }
            set.ordered.push(slot);
        }
        Ok(set)
    }

    fn stats(&self) -> MotionStats {
        let cameras = self
            .set()
            .ordered
            .iter()
            .map(|s| MotionCameraStats {
                camera: s.id.to_string(),
                analysed: s.analysed.load(Ordering::Relaxed),
                skipped_behind: s.skipped_behind.load(Ordering::Relaxed),
                unsupported_codec: s.unsupported_codec.load(Ordering::Relaxed),
                decode_errors: s.decode_errors.load(Ordering::Relaxed),
                motion: s.motion.load(Ordering::Relaxed),
                changed_permille: s.changed_permille.load(Ordering::Relaxed),
                threshold_permille: s.config.threshold_permille,
                last_analysis_wall_us: s.last_analysis_wall_us.load(Ordering::Relaxed),
                last_error: s.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            })
            .collect();
        MotionStats {
            cameras,
            db_available: self.db_available.load(Ordering::Acquire),
            db_last_error: self.db_last_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            rows_dropped: self.rows_dropped.load(Ordering::Relaxed),
        }
    }
}

impl MotionHandle {
    /// Offers one frame of `camera` (called by ingest for every frame, with the frame's wall time
    /// in µs). Never blocks: audio, cameras without motion detection and frames between analysis
    /// slots return at once; a due frame is queued when the camera has room in the queue, and
    /// otherwise skipped and counted in `skipped_behind`.
    pub fn offer(&self, camera: &Arc<str>, entry: &Arc<SampleEntry>, frame: &Frame, wall_us: i64) {
        if frame.kind != StreamKind::Video {
            return;
        }
        let Some(slot) = self.shared.set().by_id.get(camera).cloned() else {
            return;
        };
        let slot = &slot;
        let all_frames = slot.config.frames == FrameSelection::AllFrames;
        if !all_frames && !frame.key {
            return;
        }
        let due_at = slot.next_due_us.load(Ordering::Relaxed);
        // A wall time far behind the schedule is a new run or a clock step: start afresh.
        let due = wall_us >= due_at || due_at.saturating_sub(wall_us) > MAX_COMPARE_GAP_US;
        if !all_frames && !due {
            return;
        }
        // Issue 14 (MD-1): H.264 and MJPEG are analysed; MJPEG needs no references, so in
        // all-frames mode too only due frames are decoded.
        if entry.codec() == Codec::Mjpeg && !due {
            return;
        }
        if !matches!(entry.codec(), Codec::H264 | Codec::Mjpeg) {
            if due {
                slot.unsupported_codec.fetch_add(1, Ordering::Relaxed);
                slot.next_due_us.store(next_slot(due_at, wall_us, slot.config.interval_ms), Ordering::Relaxed);
            }
            return;
        }
        if all_frames && slot.resync.load(Ordering::Relaxed) && !frame.key {
            // The decoder lacks this frame's references; only a key frame can restart it. The
            // loss was counted when it happened (`behind`).
            return;
        }
        if slot.in_flight.fetch_add(1, Ordering::AcqRel) >= slot.max_in_flight {
            slot.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.behind(slot, all_frames, due);
            return;
        }
        let job = Job { slot: slot.clone(), entry: entry.clone(), frame: frame.clone(), wall_us, analyse: due };
        match self.tx.send(job) {
            Ok(()) => {
                if due {
                    slot.next_due_us.store(next_slot(due_at, wall_us, slot.config.interval_ms), Ordering::Relaxed);
                }
                if all_frames {
                    slot.resync.store(false, Ordering::Relaxed);
                }
            }
            Err(mpsc::SendError(_)) => {
                slot.in_flight.fetch_sub(1, Ordering::AcqRel);
                self.behind(slot, all_frames, due);
            }
        }
    }

    /// Counts a frame the motion thread had no room for. In all-frames mode every later frame up
    /// to the next key frame is lost too.
    fn behind(&self, slot: &CameraSlot, all_frames: bool, due: bool) {
        if all_frames {
            slot.resync.store(true, Ordering::Relaxed);
        }
        if due || all_frames {
            let n = slot.skipped_behind.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(camera = %slot.id, "motion analysis is behind: {n} frames skipped so far");
            }
        }
    }

    /// Time retention for one camera's motion data (M4): rows before `before_wall_us` are deleted
    /// within `EXPIRE_INTERVAL`. The recorder calls it with the camera's media retention cutoff.
    /// Never blocks; the latest call wins.
    pub fn expire(&self, camera: &str, before_wall_us: i64) {
        if let Some(slot) = self.shared.set().by_id.get(camera) {
            slot.expire_before_us.store(before_wall_us, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> MotionStats {
        self.shared.stats()
    }

    /// Waits until every frame offered so far has been analysed (or `timeout` passed; then
    /// returns false). For tests and benchmarks that feed a clip faster than real time and must
    /// not lose frames to `skipped_behind`; never for ingest.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        // The condition variable waits in real time, so the deadline is on the system's clocks.
        let deadline = crate::clocks::SystemClocks.monotonic().saturating_add(timeout);
        let mut guard = self.shared.idle_lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.shared.set().ordered.iter().all(|s| s.in_flight.load(Ordering::Acquire) == 0) {
                return true;
            }
            let left = deadline.saturating_sub(crate::clocks::SystemClocks.monotonic());
            if left.is_zero() {
                return false;
            }
            guard = self.shared.idle_cv.wait_timeout(guard, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
}

/// The slot after the one just used: one interval later on the schedule, so the average cadence
/// is one analysis per interval even when frames arrive just before their slot; but never less than
/// half an interval after this frame, and no catching up after a gap.
fn next_slot(due_at: i64, wall_us: i64, interval_ms: u32) -> i64 {
    let interval_us = i64::from(interval_ms) * 1000;
    let scheduled = if due_at == i64::MIN { wall_us } else { due_at }.saturating_add(interval_us);
    if scheduled <= wall_us {
        // A whole interval late (a gap in the stream): the schedule restarts at this frame.
        wall_us + interval_us
    } else {
        scheduled.clamp(wall_us + interval_us / 2, wall_us + interval_us)
    }
}

/// The motion thread's state for one camera.
struct CameraWork {
    /// The camera's slot (the counters status reads).
    slot: Arc<CameraSlot>,
    analyzer: FrameAnalyzer,
    /// The camera's own decoder in all-frames mode (it must keep the camera's references); None
    /// for key-frames-only cameras, which share `Worker::shared_decoder`.
    own_decoder: Option<H264Decoder>,
    tracker: MotionTracker,
    /// Wall time of the last analysed frame (µs), for stall and shutdown stops.
    last_wall_us: i64,
    /// Monotonic time of the last analysed frame, for stall detection.
    last_seen: Duration,
    /// The retention cutoff last applied (µs since the epoch).
    expired_before_us: i64,
}

impl CameraWork {
    fn new(slot: Arc<CameraSlot>) -> CameraWork {
        let own_decoder = (slot.config.frames == FrameSelection::AllFrames).then(H264Decoder::new);
        CameraWork {
            analyzer: FrameAnalyzer::new(&slot.config),
            own_decoder,
            tracker: MotionTracker::new(slot.config.hold_ms),
            last_wall_us: 0,
            last_seen: Duration::ZERO,
            expired_before_us: i64::MIN,
            slot,
        }
    }
}

/// The motion thread.
struct Worker {
    shared: Arc<Shared>,
    options: MotionOptions,
    events: EventSink,
    clocks: Arc<dyn Clocks>,
    /// Per-camera state by `CameraSlot::uid`, in line with `shared.cameras` (`sync_cameras`).
    work: HashMap<u64, CameraWork>,
    /// The one decoder of every key-frames-only camera (issue 10 point 14: memory per analysed
    /// camera stays small; see `H264Decoder`).
    shared_decoder: H264Decoder,
    db: Option<WriterDb>,
    /// camera_no of each camera id in the open file, looked up on first use.
    camera_nos: HashMap<Arc<str>, i64>,
    /// Rows waiting for the next commit, by camera id: levels `(wall_us, since_prev_ms, grid)` and
    /// span ends by start.
    pending_levels: Vec<(Arc<str>, i64, i64, Vec<u8>)>,
    pending_spans: HashMap<(Arc<str>, i64), i64>,
    /// Monotonic time the oldest pending row was produced.
    pending_since: Option<Duration>,
    next_open: Duration,
    next_expire: Duration,
}

impl Worker {
    fn new(shared: Arc<Shared>, options: MotionOptions, events: EventSink, clocks: Arc<dyn Clocks>) -> Worker {
        let mut worker = Worker {
            shared,
            options,
            events,
            clocks,
            work: HashMap::new(),
            shared_decoder: H264Decoder::new(),
            db: None,
            camera_nos: HashMap::new(),
            pending_levels: Vec::new(),
            pending_spans: HashMap::new(),
            pending_since: None,
            next_open: Duration::ZERO,
            next_expire: Duration::ZERO,
        };
        worker.sync_cameras();
        worker
    }

    /// Brings the per-camera state in line with the camera set: a camera that left it (removed,
    /// or changed and so given a new slot) ends its open sequence at its last analysed frame; a
    /// new slot gets fresh state; the others keep theirs.
    fn sync_cameras(&mut self) {
        let set = self.shared.set();
        let gone: Vec<u64> =
            self.work.keys().copied().filter(|uid| !set.ordered.iter().any(|s| s.uid == *uid)).collect();
        for uid in gone {
            let mut w = self.work.remove(&uid).expect("listed just above");
            let step = w.tracker.close(w.last_wall_us);
            self.apply(&w.slot, step);
        }
        for slot in &set.ordered {
            self.work.entry(slot.uid).or_insert_with(|| CameraWork::new(slot.clone()));
        }
    }

    fn run(mut self, rx: Receiver<Job>) {
        lower_thread_priority();
        self.try_open();
        loop {
            if self.shared.stop.is_triggered() {
                break;
            }
            if self.shared.reconfigured.swap(false, Ordering::AcqRel) {
                self.sync_cameras();
            }
            match rx.recv_timeout(TICK) {
                Ok(job) => {
                    self.process(&job);
                    job.slot.in_flight.fetch_sub(1, Ordering::AcqRel);
                    let _guard = self.shared.idle_lock.lock().unwrap_or_else(PoisonError::into_inner);
                    self.shared.idle_cv.notify_all();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.timers();
        }
        // Shutdown: end open sequences at their last analysed frame, then commit.
        let uids: Vec<u64> = self.work.keys().copied().collect();
        for uid in uids {
            let w = self.work.get_mut(&uid).expect("listed just above");
            let step = w.tracker.close(w.last_wall_us);
            let slot = w.slot.clone();
            self.apply(&slot, step);
        }
        self.commit();
    }

    fn process(&mut self, job: &Job) {
        let slot = &job.slot;
        // A camera added by a change that the thread has not looked at yet: look now, so its
        // first key frame is not lost.
        if !self.work.contains_key(&slot.uid) && self.shared.reconfigured.swap(false, Ordering::AcqRel) {
            self.sync_cameras();
        }
        // A frame queued before its camera was removed or changed: its state is gone.
        let Some(w) = self.work.get_mut(&slot.uid) else {
            return;
        };
        let decoder = w.own_decoder.as_mut().unwrap_or(&mut self.shared_decoder);
        let outcome = w.analyzer.push(decoder, &job.entry, &job.frame, job.wall_us, job.analyse);
        match outcome {
            Ok(Outcome::Skipped) | Ok(Outcome::Decoded) => {}
            Ok(Outcome::Reference) => {
                slot.analysed.fetch_add(1, Ordering::Relaxed);
                slot.last_analysis_wall_us.store(job.wall_us, Ordering::Relaxed);
                // Nothing to compare with (first frame, gap, new resolution): an open sequence
                // cannot be continued.
                let step = w.tracker.close(w.last_wall_us);
                self.apply(slot, step);
                self.seen(slot.uid, job.wall_us);
            }
            Ok(Outcome::Compared(a)) => {
                slot.analysed.fetch_add(1, Ordering::Relaxed);
                slot.last_analysis_wall_us.store(a.wall_us, Ordering::Relaxed);
                slot.changed_permille.store(a.changed_permille, Ordering::Relaxed);
                let step = w.tracker.on_analysis(&a);
                if slot.config.store_levels {
                    let since_prev_ms = ((a.wall_us - a.compared_wall_us + 500) / 1000).clamp(1, 10_000);
                    self.queue_level(&slot.id, a.wall_us, since_prev_ms, a.levels.encode());
                }
                self.apply(slot, step);
                self.seen(slot.uid, a.wall_us);
            }
            Err(e) => {
                let n = slot.decode_errors.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(camera = %slot.id, "motion analysis: {e} ({n} errors so far)");
                }
                *slot.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
            }
        }
    }

    fn seen(&mut self, uid: u64, wall_us: i64) {
        if let Some(w) = self.work.get_mut(&uid) {
            w.last_wall_us = wall_us;
            w.last_seen = self.clocks.monotonic();
        }
    }

    /// Emits the events of a tracker step and queues its span row.
    fn apply(&mut self, slot: &Arc<CameraSlot>, step: Step) {
        match step {
            Step::Idle => {}
            Step::Started(span) => {
                slot.motion.store(true, Ordering::Relaxed);
                self.events.emit(Event::new(EventKind::MotionStarted, span.start_wall_us).with_camera(&*slot.id));
                self.queue_span(&slot.id, span.start_wall_us, span.end_wall_us);
            }
            Step::Extended(span) => self.queue_span(&slot.id, span.start_wall_us, span.end_wall_us),
            Step::Stopped { span, at_wall_us } => {
                slot.motion.store(false, Ordering::Relaxed);
                self.events.emit(Event::new(EventKind::MotionStopped, at_wall_us).with_camera(&*slot.id));
                self.queue_span(&slot.id, span.start_wall_us, span.end_wall_us);
            }
        }
    }

    fn queue_level(&mut self, camera: &Arc<str>, wall_us: i64, since_prev_ms: i64, grid: Vec<u8>) {
        if self.pending_levels.len() + self.pending_spans.len() >= MAX_PENDING_ROWS {
            self.shared.rows_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.pending_levels.push((camera.clone(), wall_us, since_prev_ms, grid));
        self.pending_since.get_or_insert_with(|| self.clocks.monotonic());
    }

    fn queue_span(&mut self, camera: &Arc<str>, start_wall_us: i64, end_wall_us: i64) {
        // Span updates replace each other, so they are kept even when levels are being dropped.
        self.pending_spans.insert((camera.clone(), start_wall_us), end_wall_us);
        self.pending_since.get_or_insert_with(|| self.clocks.monotonic());
    }

    fn timers(&mut self) {
        let now = self.clocks.monotonic();
        // Stalled cameras: a sequence must not stay open forever when frames stop coming.
        let stalled: Vec<u64> = self
            .work
            .iter()
            .filter(|(_, w)| w.tracker.in_motion() && now.saturating_sub(w.last_seen) >= STALL)
            .map(|(uid, _)| *uid)
            .collect();
        for uid in stalled {
            let w = self.work.get_mut(&uid).expect("listed just above");
            let step = w.tracker.close(w.last_wall_us);
            let slot = w.slot.clone();
            self.apply(&slot, step);
        }
        let pending = self.pending_levels.len() + self.pending_spans.len();
        let due = self.pending_since.is_some_and(|t| now.saturating_sub(t) >= COMMIT_INTERVAL);
        if pending >= COMMIT_ROWS || (pending > 0 && due) {
            self.commit();
        }
        if now >= self.next_expire {
            self.next_expire = now + EXPIRE_INTERVAL;
            self.expire();
        }
    }

    fn set_db_error(&mut self, e: &Error) {
        let was = self.shared.db_available.swap(false, Ordering::AcqRel);
        let text = e.to_string();
        let mut last = self.shared.db_last_error.lock().unwrap_or_else(PoisonError::into_inner);
        if was || last.as_deref() != Some(&text) {
            tracing::error!("motion data unavailable: {text}; retrying every {REOPEN_INTERVAL:?}");
        }
        *last = Some(text);
        self.db = None;
        self.camera_nos.clear();
        self.next_open = self.clocks.monotonic() + REOPEN_INTERVAL;
    }

    /// Opens the file; on failure, retries later.
    fn try_open(&mut self) -> bool {
        if self.db.is_some() {
            return true;
        }
        if self.clocks.monotonic() < self.next_open {
            return false;
        }
        match WriterDb::open(&self.options.db_path) {
            Ok(db) => {
                self.db = Some(db);
                self.camera_nos.clear();
                self.shared.db_available.store(true, Ordering::Release);
                *self.shared.db_last_error.lock().unwrap_or_else(PoisonError::into_inner) = None;
                true
            }
            Err(e) => {
                self.set_db_error(&e);
                false
            }
        }
    }

    /// The camera_no of `camera` in the open file (inserted on first use).
    fn camera_no(&mut self, camera: &Arc<str>) -> Result<i64, Error> {
        if let Some(no) = self.camera_nos.get(camera) {
            return Ok(*no);
        }
        let db = self.db.as_mut().expect("callers open the file first");
        let no = db.camera_no(camera)?;
        self.camera_nos.insert(camera.clone(), no);
        Ok(no)
    }

    fn commit(&mut self) {
        if self.pending_levels.is_empty() && self.pending_spans.is_empty() {
            self.pending_since = None;
            return;
        }
        if !self.try_open() {
            return;
        }
        let cameras: Vec<Arc<str>> = self
            .pending_levels
            .iter()
            .map(|(c, ..)| c.clone())
            .chain(self.pending_spans.keys().map(|(c, _)| c.clone()))
            .collect();
        for camera in cameras {
            if let Err(e) = self.camera_no(&camera) {
                self.set_db_error(&e);
                return;
            }
        }
        let nos = &self.camera_nos;
        let no = |c: &Arc<str>| *nos.get(c).expect("looked up just above");
        let batch = Batch {
            levels: self
                .pending_levels
                .iter()
                .map(|(c, wall_us, since_prev_ms, grid)| LevelRow {
                    camera_no: no(c),
                    wall_us: *wall_us,
                    since_prev_ms: *since_prev_ms,
                    grid: grid.clone(),
                })
                .collect(),
            spans: self.pending_spans.iter().map(|((c, start), end)| ((no(c), *start), *end)).collect(),
        };
        let db = self.db.as_mut().expect("try_open succeeded");
        match db.commit(&batch, self.options.max_level_rows, self.options.max_span_rows) {
            Ok(()) => {
                self.pending_levels.clear();
                self.pending_spans.clear();
                self.pending_since = None;
                self.shared.db_available.store(true, Ordering::Release);
            }
            Err(e) => self.set_db_error(&e),
        }
    }

    fn expire(&mut self) {
        if !self.try_open() {
            return;
        }
        let due: Vec<(u64, Arc<str>, i64)> = self
            .work
            .iter()
            .filter_map(|(uid, w)| {
                let before = w.slot.expire_before_us.load(Ordering::Relaxed);
                (before > w.expired_before_us).then(|| (*uid, w.slot.id.clone(), before))
            })
            .collect();
        for (uid, camera, before) in due {
            let done = self.camera_no(&camera).and_then(|no| {
                self.db.as_mut().expect("opened above").expire(no, before)?;
                Ok(())
            });
            match done {
                Ok(()) => {
                    if let Some(w) = self.work.get_mut(&uid) {
                        w.expired_before_us = before;
                    }
                }
                Err(e) => {
                    self.set_db_error(&e);
                    return;
                }
            }
        }
    }
}

/// Lowers the calling thread's priority to nice `MOTION_NICE` (Linux: `setpriority` with a thread
/// id changes only that thread). Failure is logged: analysis still works, only at normal priority.
fn lower_thread_priority() {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    let r = unsafe {
        let tid = nix::libc::gettid();
        nix::libc::setpriority(nix::libc::PRIO_PROCESS, tid as nix::libc::id_t, MOTION_NICE)
    };
    if r != 0 {
        tracing::warn!(
            "motion: cannot lower the thread priority to nice {MOTION_NICE}: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_keep_the_average_cadence_without_bursts() {
        // Key frames every 480 ms, interval 500 ms: 2 analyses per second on average.
        let mut due = i64::MIN;
        let mut taken = Vec::new();
        for at in (0..10_000_000i64).step_by(480_000) {
            if at >= due {
                due = next_slot(due, at, 500);
                taken.push(at);
            }
        }
        assert!((19..=21).contains(&taken.len()), "{taken:?}");
        assert!(taken.windows(2).all(|w| w[1] - w[0] >= 250_000));
        // After a 5 s gap, no catching up: the next slot is one interval after the frame.
        assert_eq!(next_slot(1_000_000, 6_000_000, 500), 6_500_000);
        // Interval 0: every frame.
        assert_eq!(next_slot(i64::MIN, 40_000, 0), 40_000);
    }
}
