//! The recorder: starts one writer per storage, the RTSP/demo runtime and one supervisor per
//! camera, and stops them in order. Status and HTTP read its shared stats.
//! Invariant: a storage or camera that fails to start is reported, never fatal to the others.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clocks::Clocks;
use crate::config::{Config, SourceSpec};
use crate::error::Error;
use crate::events::{Event, EventKind, EventLog, EventReader, EventSink, Retention};
use crate::ingest::{CameraState, CameraStats};
use crate::source::demo::DemoSource;
use crate::source::rtsp::RtspSource;
use crate::source::Source;
use crate::store::{self, StorageHandle};
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Recorder {
    pub config: Config,
    pub storages: Vec<StorageHandle>,
    pub cameras: Vec<Arc<CameraStats>>,
    pub started_wall_us: i64,
    stop_tx: tokio::sync::watch::Sender<bool>,
    runtime_thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Kept so a watchdog can see whether a writer thread died.
    pub writer_threads: Vec<std::thread::JoinHandle<()>>,
    /// Advanced every second by a task on the ingest runtime: proves the runtime is not stuck.
    pub ingest_heartbeat: Arc<std::sync::atomic::AtomicU64>,
    /// Where every component raises events (DESIGN §4), and the HTTP side's reader of the log.
    pub events: EventSink,
    pub event_reader: EventReader,
    event_log: std::sync::Mutex<Option<EventLog>>,
    /// Motion analysis (MD-*): the handle ingest offers frames to, the service (stopped before the
    /// event log so its last Motion Stopped is logged) and the reader for HTTP.
    pub motion: Option<crate::motion::MotionHandle>,
    motion_service: std::sync::Mutex<Option<crate::motion::MotionService>>,
    pub motion_reader: crate::motion::MotionReader,
    /// The system and rule logs (LG-2, LG-4): their writer and the API's reader.
    pub logs: crate::logs::LogService,
    /// Stops the rules engine and the health watcher.
    background_stop: Arc<AtomicBool>,
    background_threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Recorder {
    /// Opens every storage (recovering it) and starts every enabled camera. Returns once all
    /// storages finished recovery, so a caller can report readiness afterwards.
    pub fn start(config: Config, clocks: Arc<dyn Clocks>) -> Result<Recorder, Error> {
        // First, so that what storage recovery and the rest of the start log is kept (LG-2).
        let logs = crate::logs::LogService::start(&config.data_dir, &config.log, clocks.clone())?;
        let recorder_uuid = store::recorder_uuid(&config.data_dir)?;
        let mut storages = Vec::new();
        let mut writer_threads = Vec::new();
        for s in &config.storages {
            let (handle, join, ready) =
                store::writer::spawn(s.clone(), config.data_dir.clone(), recorder_uuid, clocks.clone());
            match ready.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(storage = %s.id, "storage not available at start (retrying): {e}")
                }
                Err(_) => tracing::error!(storage = %s.id, "storage writer died during open"),
            }
            storages.push(handle);
            writer_threads.push(join);
        }
        let (event_log, events, event_reader) =
            EventLog::spawn(&config.data_dir.join(crate::events::EVENTS_FILE), Retention::default(), clocks.clone());
        events.emit(Event::new(EventKind::RecorderStarted, clocks.realtime_us()));
        let motion_path = config.data_dir.join(crate::motion::MOTION_FILE);
        let motion_cameras: Vec<(Arc<str>, crate::motion::MotionConfig)> = config
            .cameras
            .iter()
            .filter(|c| c.enabled)
            .filter_map(|c| c.motion.clone().map(|m| (Arc::from(c.id.as_str()), m)))
            .collect();
        let (motion_service, motion) = if motion_cameras.is_empty() {
            (None, None)
        } else {
            let (svc, handle) = crate::motion::MotionService::spawn(
                motion_cameras,
                crate::motion::MotionOptions::new(motion_path.clone()),
                events.clone(),
                clocks.clone(),
            )?;
            (Some(svc), Some(handle))
        };
        let by_id: HashMap<&str, &StorageHandle> = storages.iter().map(|h| (&*h.id, h)).collect();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut cameras = Vec::new();
        // Per camera: its source, stats, storage and event sink, moved into the ingest runtime.
        type Task = (Box<dyn Source>, Arc<CameraStats>, StorageHandle, EventSink, Option<crate::motion::MotionHandle>);
        let mut tasks: Vec<Task> = Vec::new();
        for c in &config.cameras {
            let stats = Arc::new(CameraStats::new(
                &c.id,
                &c.name,
                &c.storage,
                c.prebuffer_us,
                c.prebuffer == crate::config::PrebufferMode::Disk,
            ));
            if c.record == crate::config::RecordMode::Continuous {
                stats.control.start("continuous", 0, None);
            }
            cameras.push(stats.clone());
            if !c.enabled {
                *stats.state.lock().expect("state lock") = CameraState::Disabled;
                continue;
            }
            let handle = (*by_id.get(c.storage.as_str()).expect("config validated the storage reference")).clone();
            let source: Box<dyn Source> = match &c.source {
                SourceSpec::Demo => match DemoSource::new() {
                    Ok(d) => Box::new(d),
                    Err(e) => {
                        *stats.last_error.lock().expect("error lock") = Some(e.to_string());
                        continue;
                    }
                },
                SourceSpec::Rtsp { url, username, password, transport } => {
                    Box::new(RtspSource::new(url.clone(), username.clone(), password.clone(), *transport))
                }
            };
            tasks.push((source, stats, handle, events.clone(), motion.clone().filter(|_| c.motion.is_some())));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start the RTSP runtime", e))?;
        let engine_clocks = clocks.clone();
        let ingest_heartbeat = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let beat = ingest_heartbeat.clone();
        let mut beat_stop = stop_rx.clone();
        let runtime_thread = std::thread::Builder::new()
            .name("ingest".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut set = tokio::task::JoinSet::new();
                    set.spawn(async move {
                        let mut tick = tokio::time::interval(Duration::from_secs(1));
                        loop {
                            tokio::select! {
                                _ = tick.tick() => { beat.fetch_add(1, std::sync::atomic::Ordering::Relaxed); }
                                _ = beat_stop.changed() => return,
                            }
                        }
                    });
                    for (source, stats, handle, events, motion) in tasks {
                        let stop = stop_rx.clone();
                        set.spawn(crate::ingest::supervise(
                            source,
                            stats,
                            handle,
                            clocks.clone(),
                            events,
                            motion,
                            stop,
                        ));
                    }
                    while set.join_next().await.is_some() {}
                });
            })
            .map_err(|e| Error::io("cannot spawn the ingest thread", e))?;
        let background_stop = Arc::new(AtomicBool::new(false));
        let mut background = Vec::new();
        let engine = crate::rules::engine::Engine::new(
            crate::rules::engine::effective_rules(&config),
            config.time_profiles.clone(),
            config.time_zone.clone(),
            cameras.clone(),
            engine_clocks.clone(),
            logs.rule_log(),
        );
        let subscription = events.subscribe("rules", 4096);
        let stop = background_stop.clone();
        background.push(
            std::thread::Builder::new()
                .name("rules".to_owned())
                .spawn(move || engine.run(subscription.receiver(), &stop))
                .map_err(|e| Error::io("cannot spawn the rules thread", e))?,
        );
        let watcher = HealthWatcher {
            motion: motion.clone(),
            retention_us: config
                .cameras
                .iter()
                .map(|c| {
                    let s = config.storages.iter().find(|s| s.id == c.storage).expect("validated storage");
                    (c.id.clone(), s.retention.as_micros() as i64)
                })
                .collect(),
            storages: storages.clone(),
            cameras: cameras.clone(),
            events: events.clone(),
            clocks: engine_clocks,
        };
        let stop = background_stop.clone();
        background.push(
            std::thread::Builder::new()
                .name("health".to_owned())
                .spawn(move || watcher.run(&stop))
                .map_err(|e| Error::io("cannot spawn the health thread", e))?,
        );
        Ok(Recorder {
            logs,
            motion,
            motion_service: std::sync::Mutex::new(motion_service),
            motion_reader: crate::motion::MotionReader::new(&motion_path),
            events,
            event_reader,
            event_log: std::sync::Mutex::new(Some(event_log)),
            background_stop,
            background_threads: std::sync::Mutex::new(background),
            started_wall_us: crate::clocks::SystemClocks.realtime_us_now(),
            config,
            storages,
            cameras,
            stop_tx,
            runtime_thread: std::sync::Mutex::new(Some(runtime_thread)),
            writer_threads,
            ingest_heartbeat,
        })
    }

    /// Stops ingest, then has every writer write and fdatasync what it holds. Writer threads
    /// stay alive (idle) until the process exits.
    pub fn shutdown(&self, timeout: Duration) {
        let _ = self.stop_tx.send(true);
        if let Some(t) = self.runtime_thread.lock().expect("runtime lock").take() {
            let _ = t.join();
        }
        for s in &self.storages {
            if !s.flush(timeout) {
                tracing::warn!(storage = %s.id, "writer did not flush within {timeout:?}");
            }
        }
        self.background_stop.store(true, Ordering::Relaxed);
        for t in self.background_threads.lock().expect("threads lock").drain(..) {
            let _ = t.join();
        }
        if let Some(m) = self.motion_service.lock().expect("motion lock").take() {
            m.shutdown();
        }
        self.events.emit(Event::new(EventKind::RecorderStopping, crate::clocks::SystemClocks.realtime_us_now()));
        if let Some(log) = self.event_log.lock().expect("event log lock").take() {
            if let Err(e) = log.shutdown(timeout) {
                tracing::warn!("event log shutdown: {e}");
            }
        }
        // Last: whatever the steps above logged is committed too.
        self.logs.shutdown();
    }

    pub fn storage(&self, id: &str) -> Option<&StorageHandle> {
        self.storages.iter().find(|s| &*s.id == id)
    }

    pub fn camera(&self, id: &str) -> Option<&Arc<CameraStats>> {
        self.cameras.iter().find(|c| &*c.id == id)
    }
}

/// Turns state changes that no single component sees as an event into events: storage available /
/// unavailable (FL-1, ST-7) and feed overflow started / stopped per camera (REC-13).
struct HealthWatcher {
    /// Motion data follows media retention (MD-5: tied to the recordings).
    motion: Option<crate::motion::MotionHandle>,
    retention_us: Vec<(String, i64)>,
    storages: Vec<StorageHandle>,
    cameras: Vec<Arc<CameraStats>>,
    events: EventSink,
    clocks: Arc<dyn Clocks>,
}

/// A camera's feed overflow ends after this long without a new drop.
const OVERFLOW_QUIET_US: i64 = 2_000_000;

impl HealthWatcher {
    fn run(self, stop: &AtomicBool) {
        let mut available: Vec<bool> =
            self.storages.iter().map(|s| s.stats.available.load(Ordering::Relaxed)).collect();
        let mut drops: Vec<(u64, Option<i64>)> =
            self.cameras.iter().map(|c| (c.frames_dropped.load(Ordering::Relaxed), None)).collect();
        let mut rounds = 0u64;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(500));
            let now = self.clocks.realtime_us();
            rounds += 1;
            if rounds % 120 == 1 {
                if let Some(m) = &self.motion {
                    for (camera, keep) in &self.retention_us {
                        m.expire(camera, now - keep);
                    }
                }
            }
            for (s, was) in self.storages.iter().zip(available.iter_mut()) {
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
            for (c, (seen, since)) in self.cameras.iter().zip(drops.iter_mut()) {
                let d = c.frames_dropped.load(Ordering::Relaxed);
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
