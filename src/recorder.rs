//! The recorder: starts one writer per storage, the RTSP/demo runtime and one supervisor per
//! camera, and stops them in order. Status and HTTP read its shared stats.
//! Invariant: a storage or camera that fails to start is reported, never fatal to the others.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::clocks::Clocks;
use crate::config::Config;
use crate::error::Error;
use crate::events::{Event, EventKind, EventLog, EventReader, EventSink, Retention};
use crate::ingest::{CameraState, CameraStats, ProbeTarget, OVERFLOW_QUIET_US};
use crate::shutdown::{Joiner, Shutdown};
use crate::source::demo::DemoSource;
use crate::source::rtsp::RtspSource;
use crate::source::{Source, SourceSpec};
use crate::status::{Crossing, HealthSettings, Reading, SystemSnapshot, ThresholdWatch};
use crate::store::{self, StorageHandle};
use std::sync::atomic::Ordering;

pub struct Recorder {
    /// The config in force: the one started with, then each applied live change (`apply`).
    config: Arc<RwLock<Arc<Config>>>,
    /// The config started with: what server, auth and storages still run on.
    boot: Arc<Config>,
    /// The storage configs the writers were started with, in `storages` order. Storage changes
    /// take effect at the next start, so status pairs handles with these, not with `config`.
    storage_configs: Vec<crate::store::StorageConfig>,
    storages: Vec<StorageHandle>,
    /// Pinned data (evidence locks, S10), shared by every writer.
    pin_board: store::lock::PinBoard,
    /// Issue 13 point 3 (AR-8): each storage's archive stages as its archive thread reports them,
    /// by storage id (storages without stages are not listed).
    archive_status: Vec<(String, crate::archive::ArchiveStatus)>,
    /// The evidence locks and their profiles (EL-1..EL-11); they publish to `pin_board`.
    evidence: Arc<crate::evidence::Evidence>,
    /// Issue 15: the incident store; one that cannot be opened answers 503 and the recorder
    /// records on (incidents are not essential, unlike evidence locks).
    incidents: Arc<crate::incident::IncidentStore>,
    /// Issue 15 (BK-1): the bookmark store; one that cannot be opened answers 503 and the
    /// recorder records on.
    bookmarks: Arc<crate::bookmark::BookmarkStore>,
    /// Every configured camera's stats in config order (disabled ones included); replaced
    /// per camera when its config changes.
    cameras: Arc<RwLock<Vec<Arc<CameraStats>>>>,
    started_wall_us: i64,
    /// The recorder's identity (`data_dir/recorder.id`, made at first start, S-store's
    /// `recorder_uuid`): a central site's "unique remote system ID" (issue 16, IC-3).
    recorder_uuid: u128,
    /// Spawns camera tasks on the ingest runtime from any thread (live config changes).
    runtime: tokio::runtime::Handle,
    /// The process's stop signal (issue 11 point 5): the ingest runtime, every camera task, the
    /// rules engine and the health watcher end when it is given.
    stop: Shutdown,
    /// The ingest thread and one writer thread per storage, until `shutdown` joins them or the
    /// run path takes them (`take_threads`) to join with its own under one deadline.
    threads: std::sync::Mutex<Option<Joiner>>,
    /// The rules engine and the health watcher: `shutdown` joins them before the event log
    /// closes, so the events they raise while stopping are logged.
    background: std::sync::Mutex<Option<Joiner>>,
    /// The running camera tasks by id; its lock also serializes `apply`.
    running: std::sync::Mutex<HashMap<String, Running>>,
    /// Advanced every second by a task on the ingest runtime: proves the runtime is not stuck.
    ingest_heartbeat: Arc<std::sync::atomic::AtomicU64>,
    /// Where every component raises events (DESIGN §4), and the HTTP side's reader of the log.
    events: EventSink,
    event_reader: EventReader,
    event_log: std::sync::Mutex<Option<EventLog>>,
    /// Motion analysis (MD-*): the handle ingest offers frames to (swapped when motion settings
    /// change), the service (stopped before the event log so its last Motion Stopped is logged)
    /// and the reader for HTTP.
    motion: crate::motion::SharedMotion,
    motion_service: std::sync::Mutex<Option<crate::motion::MotionService>>,
    motion_path: std::path::PathBuf,
    motion_reader: crate::motion::MotionReader,
    /// New rules, profiles and cameras for the rules engine thread.
    engine_updates: std::sync::Mutex<std::sync::mpsc::Sender<crate::rules::engine::Update>>,
    clocks: Arc<dyn Clocks>,
    /// The system and rule logs (LG-2, LG-4): their writer and the API's reader.
    logs: crate::logs::LogService,
    /// Issue 16 (IC-10): the `pull` object of status, set once by `edgerec pull`.
    pull_status: std::sync::OnceLock<PullStatusFn>,
    /// Issue 16 (IC-9, IC-13): told every config `apply` made live, set once by `edgerec pull`
    /// so its mirrors follow added, removed and re-pointed mirrored cameras without a restart.
    on_applied: std::sync::OnceLock<AppliedFn>,
}

/// What `Recorder::apply` tells after a change took effect (`Recorder::set_on_applied`).
pub type AppliedFn = Box<dyn Fn(&Config) + Send + Sync>;

/// What status asks the central side's mirror (`edgerec pull`) for: a snapshot of its sites
/// and cameras, taken at the call.
pub type PullStatusFn = Box<dyn Fn() -> crate::status::PullSnapshot + Send + Sync>;

/// One camera task on the ingest runtime.
struct Running {
    /// The config it was started with: a different one restarts it (a change to the second
    /// stream alone restarts only `second`, review-a 4).
    config: crate::camera::CameraConfig,
    /// Ends this camera's main task only.
    stop: tokio::sync::watch::Sender<bool>,
    /// Disconnected once the main task has returned (its frames are with the writer).
    done: std::sync::mpsc::Receiver<()>,
    /// The second stream's task (issue 14, DEV-5), stopped and started on its own; None without
    /// a second stream or when its source could not be made.
    second: Option<TaskHandle>,
}

/// A task's stop signal and its end (review-a 4: the second stream's task has its own pair).
struct TaskHandle {
    /// Ends the task.
    stop: tokio::sync::watch::Sender<bool>,
    /// Disconnected once the task has returned.
    done: std::sync::mpsc::Receiver<()>,
}

impl TaskHandle {
    /// Gives the stop signal and waits up to `timeout` for the end; false when it did not come.
    fn stop_and_wait(&self, timeout: Duration) -> bool {
        let _ = self.stop.send(true);
        self.done.recv_timeout(timeout) != Err(std::sync::mpsc::RecvTimeoutError::Timeout)
    }
}

impl Running {
    /// Signals the main and the second task to stop (both first, so they end together).
    fn signal_stop(&self) {
        let _ = self.stop.send(true);
        if let Some(s) = &self.second {
            let _ = s.stop.send(true);
        }
    }

    /// Waits up to `timeout` for each task of a camera signalled with `signal_stop`.
    fn wait(&self, id: &str, timeout: Duration) {
        if self.done.recv_timeout(timeout) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            tracing::warn!(camera = %id, "camera task did not stop within {timeout:?}");
        }
        if let Some(s) = &self.second {
            if !s.stop_and_wait(timeout) {
                tracing::warn!(camera = %id, "second stream task did not stop within {timeout:?}");
            }
        }
    }
}

/// Where a stream comes from, without how it is reached (review-a 7): an RTSP URL (credentials
/// are never in it: `config` moves them out), a V4L2 device, or the demo clip.
fn stream_address(source: &crate::source::SourceSpec) -> String {
    match source {
        crate::source::SourceSpec::Demo => "demo:".to_owned(),
        crate::source::SourceSpec::Rtsp { url, .. } => url.as_str().to_owned(),
        crate::source::SourceSpec::V4l2(v) => format!("v4l2:{}", v.device.display()),
        crate::source::SourceSpec::Mirror { site, remote } => format!("mirror:{site}/{remote}"),
    }
}

/// True when `new` differs from `old` only in its second stream, both have one and motion
/// analyses the same stream in both: only the second stream's task restarts (review-a 4), so an
/// edit of the sub stream (its URL, transport, V4L2 settings) never interrupts the recording.
fn second_stream_only_change(old: &crate::camera::CameraConfig, new: &crate::camera::CameraConfig) -> bool {
    if old.second_stream.is_none() || new.second_stream.is_none() || old.second_stream == new.second_stream {
        return false;
    }
    if old.motion_on_second_stream() != new.motion_on_second_stream() {
        return false;
    }
    let mut same = new.clone();
    same.second_stream = old.second_stream.clone();
    same == *old
}

/// What a live config change did (`Recorder::apply`).
#[derive(Debug, Default)]
pub struct Applied {
    /// Human-readable changes now in force, e.g. "camera door restarted".
    pub applied: Vec<String>,
    /// Changed keys that take effect at the next start, e.g. "storage.main".
    pub restart_required: Vec<String>,
}

/// How long `apply` and `shutdown` wait for one camera task to hand its frames over and end.
const CAMERA_STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Recorder {
    /// `start_with_shutdown` with a stop signal of its own, given by `shutdown`.
    pub fn start(config: Config, clocks: Arc<dyn Clocks>) -> Result<Recorder, Error> {
        Recorder::start_with_shutdown(config, clocks, Shutdown::new())
    }

    /// Opens every storage (recovering it) and starts every enabled camera. Returns once all
    /// storages finished recovery, so a caller can report readiness afterwards. `stop` is the
    /// process's stop signal; `shutdown` gives it too.
    pub fn start_with_shutdown(config: Config, clocks: Arc<dyn Clocks>, stop: Shutdown) -> Result<Recorder, Error> {
        // First, so that what storage recovery and the rest of the start log is kept (LG-2).
        let logs = crate::logs::LogService::start(&config.data_dir, &config.log, clocks.clone())?;
        let recorder_uuid = store::recorder_uuid(&config.data_dir)?;
        let mut storages = Vec::new();
        let mut threads = Joiner::new();
        let pin_board = store::lock::PinBoard::default();
        // S10: the pins of every unexpired lock are on the board before any writer can reclaim.
        // A lock database that cannot be read stops the start: reclaiming locked data is worse.
        let evidence = Arc::new(crate::evidence::Evidence::open(&config.data_dir, pin_board.clone(), clocks.clone())?);
        let incidents = Arc::new(crate::incident::IncidentStore::open(&config.data_dir, clocks.clone()));
        let bookmarks = Arc::new(crate::bookmark::BookmarkStore::open(&config.data_dir, clocks.clone()));
        for s in &config.storages {
            let (handle, join, ready) = store::writer::spawn_with_pins(
                s.clone(),
                config.data_dir.clone(),
                recorder_uuid,
                clocks.clone(),
                pin_board.clone(),
            );
            match ready.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(storage = %s.id, "storage not available at start (retrying): {e}")
                }
                Err(_) => tracing::error!(storage = %s.id, "storage writer died during open"),
            }
            storages.push(handle);
            threads.add_thread(&format!("writer-{}", s.id), join);
        }
        let (event_log, events, event_reader) =
            EventLog::spawn(&config.data_dir.join(crate::events::EVENTS_FILE), Retention::default(), clocks.clone());
        events.emit(Event::new(EventKind::RecorderStarted, clocks.realtime_us()));
        let motion_path = config.data_dir.join(crate::motion::MOTION_FILE);
        let (motion_service, handle) = spawn_motion(&config, &motion_path, &events, &clocks)?;
        let motion: crate::motion::SharedMotion = Arc::new(RwLock::new(handle));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start the RTSP runtime", e))?;
        let handle = runtime.handle().clone();
        let ingest_heartbeat = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let beat = ingest_heartbeat.clone();
        let runtime_stop = stop.clone();
        // The runtime ends at the stop signal, and so does every camera task on it (each also
        // waits on the signal). Frames are handed to the writers synchronously, so a task that
        // ended has handed over all it will; `shutdown` flushes the writers only after every
        // task's `done` has disconnected.
        threads
            .spawn_thread("ingest", move || {
                runtime.block_on(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(1));
                    loop {
                        tokio::select! {
                            _ = tick.tick() => { beat.fetch_add(1, std::sync::atomic::Ordering::Relaxed); }
                            _ = runtime_stop.stopped() => return,
                        }
                    }
                });
            })
            .map_err(|e| Error::io("cannot spawn the ingest thread", e))?;
        let (update_tx, update_rx) = std::sync::mpsc::channel();
        let config = Arc::new(config);
        let rec = Recorder {
            pull_status: std::sync::OnceLock::new(),
            on_applied: std::sync::OnceLock::new(),
            logs,
            motion,
            motion_service: std::sync::Mutex::new(motion_service),
            motion_reader: crate::motion::MotionReader::new(&motion_path),
            motion_path,
            events,
            event_reader,
            event_log: std::sync::Mutex::new(Some(event_log)),
            engine_updates: std::sync::Mutex::new(update_tx),
            clocks: clocks.clone(),
            started_wall_us: clocks.realtime_us(),
            recorder_uuid,
            storage_configs: config.storages.clone(),
            boot: config.clone(),
            config: Arc::new(RwLock::new(config.clone())),
            storages,
            pin_board,
            archive_status: config
                .archives
                .iter()
                .map(|chain| (chain.storage_id.clone(), crate::archive::ArchiveStatus::new(chain)))
                .collect(),
            evidence,
            incidents,
            bookmarks,
            cameras: Arc::new(RwLock::new(Vec::new())),
            runtime: handle,
            stop,
            threads: std::sync::Mutex::new(Some(threads)),
            background: std::sync::Mutex::new(None),
            running: std::sync::Mutex::new(HashMap::new()),
            ingest_heartbeat,
        };
        {
            let mut running = rec.running.lock().expect("running lock");
            let stats: Vec<Arc<CameraStats>> =
                config.cameras.iter().map(|c| rec.launch_camera(c, None, &mut running)).collect();
            *rec.cameras.write().expect("cameras lock") = stats;
        }
        let engine = crate::rules::engine::Engine::new(
            crate::rules::engine::effective_rules(&config.rules, &config.cameras),
            config.time_profiles.clone(),
            config.time_zone.clone(),
            rec.cameras(),
            clocks.clone(),
            rec.logs.rule_log(),
        );
        // BK-1: rules' "create bookmark" actions go to the `bookmarks` thread through a bounded
        // queue; the engine never waits for SQLite.
        let (bookmark_tx, bookmark_rx) = std::sync::mpsc::sync_channel(crate::bookmark::BOOKMARK_QUEUE);
        let counted = rec.bookmarks.clone();
        let engine = engine.with_bookmarks(Arc::new(move |r: crate::bookmark::Request| {
            let taken = bookmark_tx.try_send(r).is_ok();
            if !taken {
                counted.count_queue_full();
                tracing::warn!("a rule's bookmark was dropped: the bookmark queue is full or stopped (BK-1)");
            }
            taken
        }));
        let subscription = rec.events.subscribe("rules", 4096);
        let stop = rec.stop.clone();
        let mut background = Joiner::new();
        background
            .spawn_thread("rules", move || engine.run(subscription.receiver(), &update_rx, &stop))
            .map_err(|e| Error::io("cannot spawn the rules thread", e))?;
        let watcher = HealthWatcher {
            motion: rec.motion.clone(),
            config: rec.config.clone(),
            storages: rec.storages.clone(),
            cameras: rec.cameras.clone(),
            events: rec.events.clone(),
            clocks,
        };
        let stop = rec.stop.clone();
        background
            .spawn_thread("health", move || watcher.run(&stop))
            .map_err(|e| Error::io("cannot spawn the health thread", e))?;
        // Issue 13 (AR-1, AR-3): one archive thread per storage with stages, stopped by `stop`.
        for chain in &config.archives {
            let Some(ring) = config.storages.iter().find(|s| s.id == chain.storage_id) else {
                continue;
            };
            let copier = crate::archive::copier::Copier {
                chain: chain.clone(),
                ring_dir: ring.path.clone(),
                sync_interval: ring.sync_interval,
                recorder_uuid,
                tz: config.time_zone.clone(),
                camera_names: config.cameras.iter().map(|c| (c.id.clone(), c.name.clone())).collect(),
                pins: rec.pin_board.clone(),
                events: rec.events.clone(),
                data_dir: config.data_dir.clone(),
                status: rec
                    .archive_status
                    .iter()
                    .find(|(id, _)| *id == chain.storage_id)
                    .map(|(_, st)| st.clone())
                    .expect("one status per chain, made above"),
                clocks: rec.clocks.clone(),
                // Issue 13 point 1 (AR-6): each slice takes its hour's motion data along.
                motion: Some({
                    let reader = rec.motion_reader.clone();
                    Arc::new(move |camera: &str, from_us: i64, to_us: i64| reader.rows_between(camera, from_us, to_us))
                }),
            };
            let stop = rec.stop.clone();
            background
                .spawn_thread(&format!("archive-{}", chain.storage_id), move || copier.run(&stop))
                .map_err(|e| Error::io("cannot spawn an archive thread", e))?;
        }
        // Issue 13 (EL-1): an expired lock stops pinning once the timer publishes the new set.
        let evidence = rec.evidence.clone();
        let events = rec.events.clone();
        let stop = rec.stop.clone();
        background
            .spawn_thread("evidence", move || evidence.run_expiry(&stop, &events))
            .map_err(|e| Error::io("cannot spawn the evidence thread", e))?;
        // Issue 15 (IM-7): expired incident projects are deleted once a minute, each audited.
        let incidents = rec.incidents.clone();
        let stop = rec.stop.clone();
        background
            .spawn_thread("incidents", move || incidents.run_expiry(&stop))
            .map_err(|e| Error::io("cannot spawn the incident expiry thread", e))?;
        // Issue 15 (BK-1): the bookmarks rules ask for, with the settings in force.
        let bookmarks = rec.bookmarks.clone();
        let (config, events, stop) = (rec.config.clone(), rec.events.clone(), rec.stop.clone());
        background
            .spawn_thread("bookmarks", move || {
                let settings = || config.read().expect("config lock").bookmark.clone();
                bookmarks.run_requests(&bookmark_rx, &settings, &events, &stop)
            })
            .map_err(|e| Error::io("cannot spawn the bookmarks thread", e))?;
        *rec.background.lock().expect("threads lock") = Some(background);
        Ok(rec)
    }

    /// Makes the stats of camera `c` and, when it is enabled and its storage runs, starts its task
    /// on the ingest runtime. `previous` (a changed camera's old stats) hands over its manual and
    /// rule recording reasons.
    fn launch_camera(
        &self,
        c: &crate::camera::CameraConfig,
        previous: Option<&CameraStats>,
        running: &mut HashMap<String, Running>,
    ) -> Arc<CameraStats> {
        let mut stats = CameraStats::new(
            &c.id,
            &c.name,
            &c.storage,
            c.prebuffer_us,
            c.prebuffer == crate::camera::PrebufferMode::Disk,
        );
        // Issue 14 (DEV-5): the second stream's stats, and which stream motion analyses.
        stats.second = c.second_stream.as_ref().map(|_| Arc::new(crate::ingest::SecondStreamStats::default()));
        stats.motion_role = match (&c.motion, c.motion_on_second_stream()) {
            (None, _) => crate::ingest::MotionRole::Off,
            (Some(_), false) => crate::ingest::MotionRole::Main,
            (Some(_), true) => crate::ingest::MotionRole::Second,
        };
        stats.records_on_motion = c.record == crate::camera::RecordMode::Motion;
        let stats = Arc::new(stats);
        if let Some(old) = previous {
            stats.control.carry_over_from(&old.control);
        }
        if c.record == crate::camera::RecordMode::Continuous {
            stats.control.start("continuous", 0, None);
        }
        // Review-a 5: a second stream whose camera does not start is disabled with the main's
        // reason, so motion's off_reason and status say why (not "connecting" forever).
        let disable_second = |stats: &CameraStats, why: Option<&str>| {
            if let Some(second) = &stats.second {
                *second.state.lock().expect("state lock") = CameraState::Disabled;
                if let Some(why) = why {
                    *second.last_error.lock().expect("error lock") = Some(format!("the camera is not running: {why}"));
                }
            }
        };
        if !c.enabled {
            *stats.state.lock().expect("state lock") = CameraState::Disabled;
            disable_second(&stats, None);
            return stats;
        }
        let Some(handle) = self.storage(&c.storage).cloned() else {
            let msg = format!("storage {:?} is new: it starts, and this camera records, after a restart", c.storage);
            disable_second(&stats, Some(&msg));
            *stats.last_error.lock().expect("error lock") = Some(msg);
            *stats.state.lock().expect("state lock") = CameraState::Disabled;
            return stats;
        };
        // Issue 16 (IC-4b): a mirrored camera has no session; `edgerec pull` writes its frames
        // (`attach_mirror`). Until a mirror attaches it is disabled with the reason, so `run`
        // never shows it as connecting (status never lies).
        if let SourceSpec::Mirror { site, .. } = &c.source {
            *stats.state.lock().expect("state lock") = CameraState::Disabled;
            *stats.last_error.lock().expect("error lock") =
                Some(format!("mirrored from remote site {site:?} by `edgerec pull`, which is not running"));
            return stats;
        }
        let main_probe = probe_target(&c.source);
        let source = match make_source(&c.source) {
            Ok(s) => s,
            Err(e) => {
                let msg = e.to_string();
                disable_second(&stats, Some(&msg));
                *stats.last_error.lock().expect("error lock") = Some(msg);
                return stats;
            }
        };
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let process_stop = self.stop.clone();
        let (done_tx, done) = std::sync::mpsc::channel::<()>();
        let task = crate::ingest::supervise(
            source,
            stats.clone(),
            handle,
            self.clocks.clone(),
            self.events.clone(),
            self.motion.clone(),
            main_probe,
            stop_rx,
        );
        let second = c.second_stream.as_ref().and_then(|s| self.spawn_second(s, &stats));
        // The task ends on its own stop (a config change) or on the process's.
        self.runtime.spawn(async move {
            tokio::select! {
                _ = task => {}
                _ = process_stop.stopped() => {}
            }
            drop(done_tx);
        });
        running.insert(c.id.clone(), Running { config: c.clone(), stop, done, second });
        stats
    }

    /// Issue 14 (DEV-5): starts the second stream's task beside the main one, with a stop of its
    /// own (a failing second stream never holds the main's up; a change to it alone restarts
    /// only it, review-a 4). None when its source cannot be made: `stats.second` says why.
    fn spawn_second(&self, s: &crate::camera::SecondStream, stats: &Arc<CameraStats>) -> Option<TaskHandle> {
        let source = match make_source(&s.source) {
            Ok(source) => source,
            Err(e) => {
                if let Some(second) = &stats.second {
                    *second.last_error.lock().expect("error lock") = Some(e.to_string());
                    *second.state.lock().expect("state lock") = CameraState::Disabled;
                }
                return None;
            }
        };
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let (done_tx, done) = std::sync::mpsc::channel::<()>();
        let task = crate::ingest::supervise_second(
            source,
            stats.clone(),
            self.clocks.clone(),
            self.motion.clone(),
            probe_target(&s.source),
            stop_rx,
        );
        let process_stop = self.stop.clone();
        self.runtime.spawn(async move {
            tokio::select! {
                _ = task => {}
                _ = process_stop.stopped() => {}
            }
            drop(done_tx);
        });
        Some(TaskHandle { stop, done })
    }

    /// Applies a validated config live (DESIGN §6): cameras added, removed or changed start or
    /// stop alone, while every other camera keeps recording; rules, time profiles and the time
    /// zone go to the engine, which keeps running rule recordings by rule name; changed motion
    /// settings restart motion analysis. Storage, server, auth and data-dir changes are reported
    /// in `restart_required` (they are in the written file and apply at the next start).
    pub fn apply(&self, new: Config) -> Applied {
        let mut running = self.running.lock().expect("running lock");
        let old = self.config();
        let mut out = Applied::default();
        let old_stats = self.cameras();
        let mut stats = Vec::new();
        // Stop first, so a changed camera never has two tasks writing its frames.
        let keep = |id: &str| new.cameras.iter().any(|c| c.id == id && running.get(id).is_some_and(|r| r.config == *c));
        // Review-a 4: a camera whose second stream alone changed keeps its main task.
        let second_only: Vec<(String, crate::camera::CameraConfig)> = new
            .cameras
            .iter()
            .filter(|c| running.get(&c.id).is_some_and(|r| second_stream_only_change(&r.config, c)))
            .map(|c| (c.id.clone(), c.clone()))
            .collect();
        let stopping: Vec<String> =
            running.keys().filter(|id| !keep(id) && !second_only.iter().any(|(s, _)| s == *id)).cloned().collect();
        for id in &stopping {
            let r = running.remove(id).expect("listed from the map");
            r.signal_stop();
            r.wait(id, CAMERA_STOP_TIMEOUT);
            // Issue 12 point 4, review: the stopped camera's live viewers end now (disabled,
            // changed or removed), not 10 s later.
            if let Some(s) = old_stats.iter().find(|s| *s.id == **id) {
                s.live.reset();
            }
        }
        for (id, c) in &second_only {
            let r = running.get_mut(id).expect("listed from the map");
            if let Some(old) = r.second.take() {
                if !old.stop_and_wait(CAMERA_STOP_TIMEOUT) {
                    tracing::warn!(camera = %id, "second stream task did not stop within {CAMERA_STOP_TIMEOUT:?}");
                }
            }
            if let (Some(stats), Some(s)) = (old_stats.iter().find(|s| *s.id == **id), &c.second_stream) {
                if let Some(second) = &stats.second {
                    second.reset();
                }
                r.second = self.spawn_second(s, stats);
            }
            r.config = c.clone();
            out.applied.push(format!("camera {id} second stream changed"));
            tracing::info!(camera = %id, "second stream changed by a config change; the main stream records on");
        }
        for c in &new.cameras {
            let prev = old_stats.iter().find(|s| *s.id == *c.id);
            let prev_config = old.cameras.iter().find(|o| o.id == c.id);
            if running.contains_key(&c.id) || (prev.is_some() && prev_config == Some(c)) {
                stats.push(prev.expect("a running camera has stats").clone());
                continue;
            }
            let what = if prev.is_some() { "changed" } else { "added" };
            stats.push(self.launch_camera(c, prev.map(|s| &**s), &mut running));
            out.applied.push(format!("camera {} {what}", c.id));
            tracing::info!(camera = %c.id, "camera {what} by a config change");
        }
        for s in old_stats.iter().filter(|s| !new.cameras.iter().any(|c| *c.id == *s.id)) {
            out.applied.push(format!("camera {} removed", s.id));
            tracing::info!(camera = %s.id, "camera removed by a config change");
        }
        *self.cameras.write().expect("cameras lock") = stats;
        if motion_cameras(&old) != motion_cameras(&new) {
            self.restart_motion(&new);
            out.applied.push("motion settings applied".to_owned());
        }
        let update = crate::rules::engine::Update {
            rules: crate::rules::engine::effective_rules(&new.rules, &new.cameras),
            profiles: new.time_profiles.clone(),
            tz: new.time_zone.clone(),
            cameras: self.cameras(),
        };
        if self.engine_updates.lock().expect("engine lock").send(update).is_err() {
            tracing::error!("the rules engine is not running; rule changes apply at the next start");
        }
        *self.config.write().expect("config lock") = Arc::new(new);
        out.restart_required = self.restart_required();
        // Issue 16 (IC-13): the mirrors learn the new camera set (after the cameras started, so a
        // new mirrored camera is there to attach to).
        if let Some(f) = self.on_applied.get() {
            f(&self.config());
        }
        out
    }

    /// Issue 14 (MD-1): refuses a change that sets `record = "motion"` (with motion detection on)
    /// on a camera whose analysed stream is known, from its current session's description, to
    /// deliver a codec motion does not decode (H.265), since it would never record. Known only
    /// while the analysed stream's address is the one running now and it is streaming (review-a
    /// 7: a retrying one may have been switched on the device; credentials and transport do not
    /// make another stream): a new or changed stream's
    /// codec is unknown until it connects, and a camera already recording on motion on the same
    /// stream is not a new setting (status says why it does not record).
    pub fn check_record_on_motion(&self, new: &Config) -> Result<(), Error> {
        use crate::camera::{CameraConfig, RecordMode};
        let old = self.config();
        // Review-a 7: a stream is compared by its address only (URL without credentials, or the
        // device), so a change of its password or transport in the same edit is still checked.
        let analysed = |c: &CameraConfig| match (c.motion_on_second_stream(), &c.second_stream) {
            (true, Some(s)) => stream_address(&s.source),
            _ => stream_address(&c.source),
        };
        // Review-a 6: a camera that has a second stream not analysed is told to analyse it.
        let advice = |c: &CameraConfig| match (c.motion_on_second_stream(), c.second_stream.is_some()) {
            (true, _) => crate::ingest::Advice::OtherSecond,
            (false, true) => crate::ingest::Advice::AnalyseSecond,
            (false, false) => crate::ingest::Advice::AddSecond,
        };
        for c in new.cameras.iter().filter(|c| c.record == RecordMode::Motion && c.motion.is_some()) {
            let Some(prev) = old.cameras.iter().find(|o| o.id == c.id) else { continue };
            let source = analysed(c);
            if prev.record == RecordMode::Motion && prev.motion.is_some() && analysed(prev) == source {
                continue;
            }
            let Some(stats) = self.camera(&c.id) else { continue };
            // Review-a 7: only a stream streaming now is known to deliver its codec; one that is
            // retrying may have been switched on the device (status says it once it connects).
            let desc = if source == stream_address(&prev.source) {
                if stats.state() != CameraState::Streaming {
                    continue;
                }
                stats.description.lock().expect("description lock").clone()
            } else if let (Some(s), Some(second)) = (&prev.second_stream, &stats.second) {
                if stream_address(&s.source) != source || second.state() != CameraState::Streaming {
                    continue;
                }
                second.description.lock().expect("description lock").clone()
            } else {
                continue;
            };
            if let Some(why) = crate::ingest::codec_off_reason(&desc, advice(c)) {
                return Err(new.record_error(
                    &c.id,
                    format!(
                        "\"motion\" would never record camera {:?}: motion detection cannot analyse it ({why})",
                        c.id
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Keys whose change since the start is in the config but not in force: server, auth, data
    /// dir, storages and their archive chains are set up once at start.
    pub fn restart_required(&self) -> Vec<String> {
        let (boot, now) = (&self.boot, self.config());
        let mut out: Vec<String> = [
            ("server.listen", boot.listen != now.listen),
            ("server.tls_listen", boot.tls_listen != now.tls_listen),
            ("server.tls_cert", boot.tls_cert != now.tls_cert),
            ("server.max_connections", boot.max_connections != now.max_connections),
            ("server.socket_timeout_seconds", boot.socket_timeout != now.socket_timeout),
            ("server.data_dir", boot.data_dir != now.data_dir),
            ("auth", boot.auth != now.auth),
            ("log", boot.log != now.log),
        ]
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(k, _)| k.to_owned())
        .collect();
        // Issue 16 (IC-13): `edgerec pull` follows a site's cameras live (`pull::follow`); a site
        // added, removed or changed in anything else runs as it started until a restart.
        let sites = |c: &Config| -> Vec<crate::pull::SiteConfig> {
            c.remote_sites.iter().map(|s| crate::pull::SiteConfig { cameras: Vec::new(), ..s.clone() }).collect()
        };
        if sites(boot) != sites(&now) {
            out.push("remote_site".to_owned());
        }
        let ids: std::collections::BTreeSet<&str> =
            boot.storages.iter().chain(&now.storages).map(|s| s.id.as_str()).collect();
        for id in ids {
            if boot.storages.iter().find(|s| s.id == id) != now.storages.iter().find(|s| s.id == id) {
                out.push(format!("storage.{id}"));
            }
            // Review finding 9 (issue 13, AR-11): a storage's archive thread runs the chain it
            // started with, so a stage added, removed or changed waits for a restart too.
            let chain = |c: &Config| c.archives.iter().find(|a| a.storage_id == id).cloned();
            if chain(boot) != chain(&now) {
                out.push(format!("storage.{id}.archive"));
            }
        }
        out
    }

    /// Applies changed motion settings: the running service takes the new camera set, so only the
    /// cameras whose settings changed (or that were added or removed) start afresh; the others keep
    /// their reference picture and open sequence. The service starts with the first camera that has
    /// motion detection and stops with the last.
    fn restart_motion(&self, config: &Config) {
        let mut service = self.motion_service.lock().expect("motion lock");
        let cameras = motion_cameras(config);
        if let Some(running) = service.as_ref() {
            if cameras.is_empty() {
                *self.motion.write().expect("motion lock") = None;
                service.take().expect("checked just above").shutdown();
                return;
            }
            if let Err(e) = running.reconfigure(cameras) {
                tracing::error!("motion analysis keeps its old settings: {e}");
            }
            return;
        }
        match spawn_motion(config, &self.motion_path, &self.events, &self.clocks) {
            Ok((svc, handle)) => {
                *service = svc;
                *self.motion.write().expect("motion lock") = handle;
            }
            Err(e) => {
                tracing::error!("motion analysis cannot start: {e}");
                *self.motion.write().expect("motion lock") = None;
            }
        }
    }

    /// The recorder's threads, for a caller that joins them with its own under one deadline
    /// after `shutdown`; `None` once taken (or joined by `shutdown`).
    pub fn take_threads(&self) -> Option<Joiner> {
        self.threads.lock().expect("threads lock").take()
    }

    /// Gives the stop signal, then stops in data-flow order: camera tasks end (what they handed
    /// to the writers is all there is), every writer writes and fdatasyncs what it holds and
    /// ends, motion analysis and the event log commit and end, and the system log last. Joins
    /// the recorder's threads unless `take_threads` took them. Each step waits up to `timeout`.
    pub fn shutdown(&self, timeout: Duration) {
        self.stop.trigger();
        {
            let mut running = self.running.lock().expect("running lock");
            for r in running.values() {
                r.signal_stop();
            }
            for (id, r) in running.drain() {
                r.wait(&id, timeout);
            }
        }
        for s in &self.storages {
            if !s.stop(timeout) {
                tracing::warn!(storage = %s.id, "writer did not flush within {timeout:?}");
            }
        }
        let background = self.background.lock().expect("threads lock").take();
        let mut late = background.map(|b| b.join(timeout)).unwrap_or_default();
        if let Some(m) = self.motion_service.lock().expect("motion lock").take() {
            m.shutdown();
        }
        self.events.emit(Event::new(EventKind::RecorderStopping, self.clocks.realtime_us()));
        if let Some(log) = self.event_log.lock().expect("event log lock").take() {
            if let Err(e) = log.shutdown(timeout) {
                tracing::warn!("event log shutdown: {e}");
            }
        }
        if let Some(threads) = self.take_threads() {
            late.extend(threads.join(timeout));
        }
        if !late.is_empty() {
            tracing::warn!(threads = ?late, "threads did not end within {timeout:?}");
        }
        // Last: whatever the steps above logged is committed too.
        self.logs.shutdown();
    }

    /// The config in force (the latest applied change).
    pub fn config(&self) -> Arc<Config> {
        self.config.read().expect("config lock").clone()
    }

    pub fn storage(&self, id: &str) -> Option<&StorageHandle> {
        self.storages.iter().find(|s| &*s.id == id)
    }

    /// Every configured camera's stats, in config order.
    pub fn cameras(&self) -> Vec<Arc<CameraStats>> {
        self.cameras.read().expect("cameras lock").clone()
    }

    pub fn camera(&self, id: &str) -> Option<Arc<CameraStats>> {
        self.cameras.read().expect("cameras lock").iter().find(|c| &*c.id == id).cloned()
    }

    /// The clocks ingest stamps frames with; a live viewer's lag is counted on the same
    /// monotonic clock as the frames it is offered (issue 12 point 4).
    pub fn clocks(&self) -> &Arc<dyn Clocks> {
        &self.clocks
    }

    /// The motion handle in force, for status.
    pub fn motion(&self) -> Option<crate::motion::MotionHandle> {
        self.motion.read().expect("motion lock").clone()
    }

    // Issue 11 point 7: the narrow read API; the fields stay private.

    /// The board where evidence locks publish the ranges no deletion path may reclaim (S10).
    pub fn pin_board(&self) -> &store::lock::PinBoard {
        &self.pin_board
    }

    /// The evidence locks and their profiles.
    pub fn evidence(&self) -> &crate::evidence::Evidence {
        &self.evidence
    }

    /// The incident store (issue 15).
    pub fn incidents(&self) -> &crate::incident::IncidentStore {
        &self.incidents
    }

    /// The bookmark store (issue 15, BK-1).
    pub fn bookmarks(&self) -> &crate::bookmark::BookmarkStore {
        &self.bookmarks
    }

    /// The ids of the available storages whose writers do not honour pin set `version` yet.
    pub fn pins_pending(&self, version: u64) -> Vec<String> {
        self.storages
            .iter()
            .zip(&self.storage_configs)
            .filter(|(s, _)| {
                s.stats.available.load(std::sync::atomic::Ordering::Acquire)
                    && s.stats.pins_applied.load(std::sync::atomic::Ordering::Acquire) < version
            })
            .map(|(_, c)| c.id.clone())
            .collect()
    }

    /// Whether every available storage's writer honours pin set `version` (or a newer one);
    /// waits up to `timeout`. An unavailable storage reclaims nothing, and takes the newest set
    /// before it writes again.
    pub fn wait_pins_applied(&self, version: u64, timeout: Duration) -> bool {
        // A blocking wait in real time: its deadline is on the system's clocks (source_rules).
        let deadline = crate::clocks::SystemClocks.monotonic().saturating_add(timeout);
        loop {
            let pending = self.storages.iter().any(|s| {
                s.stats.available.load(std::sync::atomic::Ordering::Acquire)
                    && s.stats.pins_applied.load(std::sync::atomic::Ordering::Acquire) < version
            });
            if !pending {
                return true;
            }
            if crate::clocks::SystemClocks.monotonic() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The storages' writers, in config order.
    pub fn storages(&self) -> &[StorageHandle] {
        &self.storages
    }

    /// The storage configs the writers were started with, in `storages` order.
    pub fn storage_configs(&self) -> &[crate::store::StorageConfig] {
        &self.storage_configs
    }

    /// Wall time the recorder started.
    /// The recorder's unique id (issue 16, IC-3): made at first start and kept in
    /// `data_dir/recorder.id`, so it survives restarts and never follows the config.
    pub fn recorder_uuid(&self) -> u128 {
        self.recorder_uuid
    }

    /// The config the recorder started with: server settings (listen addresses) apply at the next
    /// start, so this is what serves now.
    pub fn started_with(&self) -> &Arc<Config> {
        &self.boot
    }

    pub fn started_wall_us(&self) -> i64 {
        self.started_wall_us
    }

    /// Advanced every second by the ingest runtime (for the watchdog).
    pub fn ingest_heartbeat(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.ingest_heartbeat.clone()
    }

    /// Where events are raised.
    pub fn events(&self) -> &EventSink {
        &self.events
    }

    /// The event log's reader (IC-8).
    pub fn event_reader(&self) -> &EventReader {
        &self.event_reader
    }

    /// The stored motion levels' reader (MD-5, MD-6).
    pub fn motion_reader(&self) -> &crate::motion::MotionReader {
        &self.motion_reader
    }

    /// The system and rule logs.
    pub fn logs(&self) -> &crate::logs::LogService {
        &self.logs
    }

    /// Issue 16: `edgerec pull` hands status its mirror's snapshot (once; a second call is
    /// ignored).
    pub fn set_pull_status(&self, f: PullStatusFn) {
        let _ = self.pull_status.set(f);
    }

    /// Issue 16 (IC-9, IC-13): `edgerec pull` follows applied config changes (once).
    pub fn set_on_applied(&self, f: AppliedFn) {
        let _ = self.on_applied.set(f);
    }

    /// Issue 16 (IC-10): the mirror's sites and cameras, when this process is `edgerec pull`.
    pub fn pull_snapshot(&self) -> Option<crate::status::PullSnapshot> {
        self.pull_status.get().map(|f| f())
    }

    /// Snapshots of every configured camera, in config order (status and metrics read these).
    pub fn camera_snapshots(&self) -> Vec<crate::status::CameraSnapshot> {
        let now_us = self.clocks.realtime_us();
        self.cameras().iter().map(|c| crate::status::CameraSnapshot::of(c, now_us)).collect()
    }

    /// Snapshots of every storage, in `storages` order.
    pub fn storage_snapshots(&self) -> Vec<crate::status::StorageSnapshot> {
        self.storages
            .iter()
            .zip(&self.storage_configs)
            .map(|(h, c)| {
                let mut snap = crate::status::StorageSnapshot::of(h, c);
                if let Some((_, st)) = self.archive_status.iter().find(|(id, _)| *id == c.id) {
                    snap.archives = st.snapshot();
                }
                snap
            })
            .collect()
    }
}

/// Where a probe can see a camera's stream come back while its task waits to reconnect.
fn probe_target(source: &SourceSpec) -> Option<ProbeTarget> {
    match source {
        SourceSpec::Demo => None,
        // Issue 10 point 7a: an RTSP camera's TCP port (554 is RTSP's registered port, which the
        // URL may leave out).
        SourceSpec::Rtsp { url, .. } => url.host_str().map(|h| {
            ProbeTarget::Tcp(h.trim_start_matches('[').trim_end_matches(']').to_owned(), url.port().unwrap_or(554))
        }),
        // Issue 14: an unplugged device's node is seen coming back, so recording resumes
        // within about a second of it, whatever the backoff grew to.
        SourceSpec::V4l2(spec) => Some(ProbeTarget::Device(spec.device.clone())),
        SourceSpec::Mirror { .. } => None,
    }
}

/// The source a stream's `SourceSpec` names.
fn make_source(source: &SourceSpec) -> Result<Box<dyn Source>, Error> {
    Ok(match source {
        SourceSpec::Demo => Box::new(DemoSource::new()?),
        SourceSpec::Rtsp { url, username, password, transport } => {
            Box::new(RtspSource::new(url.clone(), username.clone(), password.clone(), *transport))
        }
        SourceSpec::V4l2(spec) => Box::new(crate::source::v4l2::V4l2Source::new(spec.clone())),
        SourceSpec::Mirror { site, .. } => {
            return Err(crate::err!(
                FailedPrecondition,
                "mirrored from remote site {site:?}: only `edgerec pull` fills this camera"
            ))
        }
    })
}

/// The enabled cameras of `config` that have motion detection on (MD-1), with their settings.
fn motion_cameras(config: &Config) -> Vec<(Arc<str>, crate::motion::MotionConfig)> {
    config
        .cameras
        .iter()
        .filter(|c| c.enabled)
        .filter_map(|c| c.motion.clone().map(|m| (Arc::from(c.id.as_str()), m)))
        .collect()
}

/// Starts motion analysis for the enabled cameras of `config` that have it (MD-1), or nothing.
fn spawn_motion(
    config: &Config,
    path: &std::path::Path,
    events: &EventSink,
    clocks: &Arc<dyn Clocks>,
) -> Result<(Option<crate::motion::MotionService>, Option<crate::motion::MotionHandle>), Error> {
    let cameras = motion_cameras(config);
    if cameras.is_empty() {
        return Ok((None, None));
    }
    let (svc, handle) = crate::motion::MotionService::spawn(
        cameras,
        crate::motion::MotionOptions::new(path.to_owned()),
        events.clone(),
        clocks.clone(),
    )?;
    Ok((Some(svc), Some(handle)))
}

/// Per storage, for ST-7: its (by size, by time) deleted-bytes counters seen last round, and the
/// retention event raised last.
type DeletingSeen = ((u64, u64), Option<EventKind>);

/// ST-7: the event to raise when a storage's deleted-bytes counters moved from `seen` to `now`
/// (by size, by time): Deleting On Size Limit ("before retention time") when the ring took room
/// first, Deleting On Retention Time ("before retention size") when age did, each time the
/// deleting limit changes (`last` holds the one raised last), so a steady ring raises it once.
fn retention_event(last: &mut Option<EventKind>, seen: (u64, u64), now: (u64, u64)) -> Option<EventKind> {
    let kind = if now.0 > seen.0 {
        EventKind::DeletingOnSizeLimit
    } else if now.1 > seen.1 {
        EventKind::DeletingOnRetentionTime
    } else {
        return None;
    };
    if last.as_ref() == Some(&kind) {
        return None;
    }
    *last = Some(kind.clone());
    Some(kind)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Emits `e` with `data`, or without it should the data not fit (it always does: a few numbers).
fn emit_with_data(events: &EventSink, e: Event, data: serde_json::Value) {
    match e.clone().with_data(data) {
        Ok(e) => events.emit(e),
        Err(_) => events.emit(e),
    }
}

/// One watched machine figure: its metric and unit, threshold, current value and watch.
type Figure<'a> = (&'static str, &'static str, Option<f64>, Option<f64>, &'a mut ThresholdWatch);

/// Issue 16 (IC-10): the machine's figures against the `[health]` thresholds, one watch each.
#[derive(Default)]
struct SystemWatch {
    memory: ThresholdWatch,
    cpu: ThresholdWatch,
    temperature: ThresholdWatch,
}

impl SystemWatch {
    /// One sample of every configured figure; raises System Threshold Exceeded / Normal on each
    /// crossing (never per sample: `ThresholdWatch`).
    fn round(&mut self, health: &HealthSettings, events: &EventSink, now: i64) {
        let any =
            health.memory_percent.is_some() || health.cpu_percent.is_some() || health.temperature_celsius.is_some();
        let snap = if any || self.memory.exceeded() || self.cpu.exceeded() || self.temperature.exceeded() {
            Some(SystemSnapshot::now())
        } else {
            None
        };
        let Some(snap) = snap else { return };
        let figures: [Figure<'_>; 3] = [
            ("memory", "%", health.memory_percent, snap.memory_used_percent(), &mut self.memory),
            ("cpu", "%", health.cpu_percent, snap.cpu_busy_percent, &mut self.cpu),
            ("temperature", "°C", health.temperature_celsius, snap.max_celsius(), &mut self.temperature),
        ];
        for (metric, unit, threshold, value, watch) in figures {
            let crossing = match threshold {
                None => watch.switched_off(),
                Some(threshold) => {
                    watch.observe(value.map(|value| Reading { value, threshold }), true, health.hysteresis)
                }
            };
            let Some(c) = crossing else { continue };
            let (kind, text) = match c {
                Crossing::Exceeded => (EventKind::SystemThresholdExceeded, "over"),
                Crossing::Normal => (EventKind::SystemThresholdNormal, "back under"),
            };
            let shown = value.map(round2);
            let message = match (shown, threshold) {
                (Some(v), Some(t)) => format!("{metric} {v} {unit} is {text} its threshold of {t} {unit}"),
                _ => format!("{metric} is no longer watched: its [health] threshold was removed"),
            };
            let data = serde_json::json!({ "metric": metric, "value": shown, "threshold": threshold, "unit": unit });
            emit_with_data(events, Event::new(kind, now).with_message(message), data);
        }
    }
}

/// Turns state changes that no single component sees as an event into events: storage available /
/// unavailable (FL-1, ST-7) and feed overflow started / stopped per camera (REC-13), and the
/// `[health]` thresholds' crossings (issue 16, IC-10).
struct HealthWatcher {
    /// Motion data follows media retention (MD-5: tied to the recordings).
    motion: crate::motion::SharedMotion,
    /// Retention per camera comes from the config in force.
    config: Arc<RwLock<Arc<Config>>>,
    storages: Vec<StorageHandle>,
    cameras: Arc<RwLock<Vec<Arc<CameraStats>>>>,
    events: EventSink,
    clocks: Arc<dyn Clocks>,
}

impl HealthWatcher {
    /// Runs every 500 ms until the process's stop signal.
    fn run(self, stop: &Shutdown) {
        // Issue 10 point 4: every storage starts as available, the state it is assumed in
        // before its open, so one that was unavailable at boot raises Storage Unavailable once
        // in the first round, like one that fails later.
        let mut available: Vec<bool> = vec![true; self.storages.len()];
        // Per camera id: its stats (replaced when the camera's config changes), drops seen, and
        // since when an overflow lasts.
        let mut drops: HashMap<Arc<str>, (Arc<CameraStats>, u64, Option<i64>)> = HashMap::new();
        // Per storage: bytes deleted by size and by time seen last round, and the limit that
        // deleted last (ST-7).
        let mut deleting: HashMap<Arc<str>, DeletingSeen> = HashMap::new();
        // Per storage: whether it held only evidence-locked data last round (EL-4).
        let mut locked_full: HashMap<Arc<str>, bool> = HashMap::new();
        // Issue 16 (IC-10): the `[health]` thresholds' states, the system's and each storage's disk.
        let mut system = SystemWatch::default();
        let mut disks: HashMap<Arc<str>, ThresholdWatch> = HashMap::new();
        let mut rounds = 0u64;
        while !stop.wait_timeout(Duration::from_millis(500)) {
            let now = self.clocks.realtime_us();
            rounds += 1;
            if rounds % 120 == 1 {
                let motion = self.motion.read().expect("motion lock").clone();
                if let Some(m) = motion {
                    let config = self.config.read().expect("config lock").clone();
                    for c in &config.cameras {
                        if let Some(s) = config.storages.iter().find(|s| s.id == c.storage) {
                            m.expire(&c.id, now - s.retention.as_micros() as i64);
                        }
                    }
                }
            }
            let health = self.config.read().expect("config lock").health.clone();
            system.round(&health, &self.events, now);
            for s in &self.storages {
                let watch = disks.entry(s.id.clone()).or_default();
                let crossing = match health.storage_min_free_percent {
                    None => watch.switched_off(),
                    Some(threshold) => {
                        let free = crate::sysinfo::filesystem(&s.path)
                            .filter(|f| f.total_bytes > 0)
                            .map(|f| 100.0 * f.free_bytes as f64 / f.total_bytes as f64);
                        watch.observe(free.map(|value| Reading { value, threshold }), false, health.hysteresis)
                    }
                };
                if let Some(c) = crossing {
                    let (kind, verb) = match c {
                        Crossing::Exceeded => (EventKind::StorageDiskLow, "is low on free space"),
                        Crossing::Normal => (EventKind::StorageDiskOk, "has free space again"),
                    };
                    let free = crate::sysinfo::filesystem(&s.path)
                        .filter(|f| f.total_bytes > 0)
                        .map(|f| round2(100.0 * f.free_bytes as f64 / f.total_bytes as f64));
                    let data = serde_json::json!({
                        "free_percent": free,
                        "threshold": health.storage_min_free_percent,
                    });
                    let message = format!("the filesystem under storage {} ({}) {verb}", s.id, s.path.display());
                    emit_with_data(
                        &self.events,
                        Event::new(kind, now).with_storage(&*s.id).with_message(message),
                        data,
                    );
                }
            }
            for (s, was) in self.storages.iter().zip(available.iter_mut()) {
                // Issue 10 point 4: a malformed index that was set aside and rebuilt.
                if let Some(m) = s.stats.repair_to_report.lock().expect("stats lock").take() {
                    self.events.emit(Event::new(EventKind::DatabaseRepair, now).with_storage(&*s.id).with_message(m));
                }
                // Issue 13 point 3 (ST-7): which limit deletes recordings, raised when it changes.
                let deleted = (
                    s.stats.bytes_deleted_by_size.load(Ordering::Relaxed),
                    s.stats.bytes_deleted_by_time.load(Ordering::Relaxed),
                );
                let (seen, limit) = deleting.entry(s.id.clone()).or_insert(((0, 0), None));
                if let Some(kind) = retention_event(limit, *seen, deleted) {
                    self.events.emit(Event::new(kind, now).with_storage(&*s.id));
                }
                *seen = deleted;
                // Issue 13 (EL-4, FL-5): only locked data is left, and its end.
                let full = s.stats.full_of_locked_data.load(Ordering::Relaxed);
                let full_seen = locked_full.entry(s.id.clone()).or_insert(false);
                if full != *full_seen {
                    *full_seen = full;
                    let (kind, m) = if full {
                        (
                            EventKind::StorageFullOfLockedData,
                            format!(
                                "storage {} holds only evidence-locked data; recording to it stops until a lock is \
                                 released or expires (EL-4)",
                                s.id
                            ),
                        )
                    } else {
                        (
                            EventKind::StorageFullOfLockedDataEnded,
                            format!("storage {} has room again; recording to it resumes", s.id),
                        )
                    };
                    self.events.emit(Event::new(kind, now).with_storage(&*s.id).with_message(m));
                }
                let is = s.stats.available.load(Ordering::Relaxed);
                if is != *was {
                    *was = is;
                    let kind = if is { EventKind::StorageAvailable } else { EventKind::StorageUnavailable };
                    let mut e = Event::new(kind, now).with_storage(&*s.id);
                    if let Some(m) = s.stats.last_error.lock().expect("stats lock").clone() {
                        e = e.with_message(m);
                    }
                    self.events.emit(e);
                }
            }
            let cameras = self.cameras.read().expect("cameras lock").clone();
            drops.retain(|id, _| cameras.iter().any(|c| c.id == *id));
            for c in cameras {
                // REC-13 feed overflow counts frames lost to a full queue only: frames an
                // unavailable storage refuses raise Storage Unavailable and Recording Stopped.
                let d = c.frames_dropped_overflow.load(Ordering::Relaxed);
                let entry = drops.entry(c.id.clone()).or_insert_with(|| (c.clone(), d, None));
                if !Arc::ptr_eq(&entry.0, &c) {
                    *entry = (c.clone(), d, entry.2);
                }
                // REC-7: a manual recording that ran out by itself ends with Manual Recording
                // Stopped like one stopped by a request (whose handler raises it).
                if let Some(at) = c.control.take_manual_timeout(now) {
                    self.events.emit(Event::new(EventKind::ManualRecordingStopped, at).with_camera(&*c.id));
                }
                let (_, seen, since) = entry;
                if d > *seen {
                    if since.is_none() {
                        self.events.emit(Event::new(EventKind::FeedOverflowStarted, now).with_camera(&*c.id));
                    }
                    *seen = d;
                    *since = Some(now);
                } else if since.is_some_and(|t| now - t > OVERFLOW_QUIET_US) {
                    *since = None;
                    self.events.emit(Event::new(EventKind::FeedOverflowStopped, now).with_camera(&*c.id));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{retention_event, EventKind};

    /// Issue 14, review-a 7 (MD-1): the record-on-motion check compares streams by address:
    /// another password, user or transport is the same stream; another path or device is not.
    #[test]
    fn md1_streams_compare_by_address_only() {
        use crate::source::{RtspTransport, SourceSpec, V4l2Spec};
        let rtsp = |path: &str, password: Option<&str>, transport| SourceSpec::Rtsp {
            url: url::Url::parse(&format!("rtsp://cam.lan{path}")).unwrap(),
            username: Some("admin".to_owned()),
            password: password.map(str::to_owned),
            transport,
        };
        let a = super::stream_address(&rtsp("/main", Some("old"), RtspTransport::Tcp));
        assert_eq!(a, super::stream_address(&rtsp("/main", Some("new"), RtspTransport::Udp)));
        assert_ne!(a, super::stream_address(&rtsp("/sub", Some("old"), RtspTransport::Tcp)));
        assert!(!a.contains("old"), "{a}");
        let v4l2 = |dev: &str, fps| {
            SourceSpec::V4l2(V4l2Spec {
                device: dev.into(),
                format: None,
                size: None,
                fps,
                bitrate_kbps: 2000,
                keyframe_interval: std::time::Duration::from_secs(2),
            })
        };
        let d = super::stream_address(&v4l2("/dev/video0", None));
        assert_eq!(d, super::stream_address(&v4l2("/dev/video0", Some(15))));
        assert_ne!(d, super::stream_address(&v4l2("/dev/video2", None)));
    }

    /// Issue 13 point 3 (ST-7): the first deletion by the ring raises Deleting On Size Limit once,
    /// a later deletion by age Deleting On Retention Time once, and back; no deletion, no event.
    #[test]
    fn the_limit_that_deletes_raises_its_event_when_it_changes() {
        let mut last = None;
        assert_eq!(retention_event(&mut last, (0, 0), (0, 0)), None);
        assert_eq!(retention_event(&mut last, (0, 0), (4096, 0)), Some(EventKind::DeletingOnSizeLimit));
        assert_eq!(retention_event(&mut last, (4096, 0), (8192, 0)), None, "the same limit again");
        assert_eq!(retention_event(&mut last, (8192, 0), (8192, 10)), Some(EventKind::DeletingOnRetentionTime));
        assert_eq!(retention_event(&mut last, (8192, 10), (8192, 20)), None);
        assert_eq!(retention_event(&mut last, (8192, 20), (9000, 20)), Some(EventKind::DeletingOnSizeLimit));
    }
}
