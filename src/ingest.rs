//! Ingest: one supervisor task per camera runs its source session after session with backoff,
//! stamps frames with anchored wall time and queues them to the camera's storage writer.
//! Invariant: nothing here blocks; a failing camera only ever affects its own task.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clocks::{Clocks, WallAnchor};
use crate::events::{Event, EventKind, EventSink};
use crate::media::{Frame, SampleEntry, StreamKind};
use crate::recording::Decision;
use crate::source::{CameraDescription, Sink, Source};
use crate::store::writer::{IngestFrame, SendError};
use crate::store::StorageHandle;

/// Reconnect backoff: doubles from the first value up to the cap; resets after a long session.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const HEALTHY_SESSION: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CameraState {
    Connecting,
    Streaming,
    /// Waiting before the next attempt after a failure.
    Retrying,
    Disabled,
}

impl CameraState {
    pub fn as_str(self) -> &'static str {
        match self {
            CameraState::Connecting => "connecting",
            CameraState::Streaming => "recording",
            CameraState::Retrying => "retrying",
            CameraState::Disabled => "disabled",
        }
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
    /// Frames dropped because the storage queue was full (REC-13) or the storage was gone.
    pub frames_dropped: AtomicU64,
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
            reconnects: AtomicU64::new(0),
            last_frame_wall_us: AtomicI64::new(0),
            window: Mutex::new(RateWindow::default()),
            control: crate::recording::RecordingControl::default(),
            recording: std::sync::atomic::AtomicBool::new(false),
            prebuffer_us,
            prebuffer_on_disk,
        }
    }

    /// Frames per second (video) and bits per second over the last complete second.
    pub fn rates(&self) -> (f64, u64) {
        let w = self.window.lock().expect("window lock");
        (w.last_fps_milli as f64 / 1000.0, w.last_bps)
    }

    fn count(&self, wall_us: i64, kind: StreamKind, bytes: usize) {
        let mut w = self.window.lock().expect("window lock");
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

    pub fn state(&self) -> CameraState {
        *self.state.lock().expect("state lock")
    }

    fn set_state(&self, s: CameraState) {
        *self.state.lock().expect("state lock") = s;
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
}

impl Sink for CameraSink {
    fn described(&mut self, d: &CameraDescription) {
        *self.stats.description.lock().expect("description lock") = d.clone();
        self.run += 1;
        // Frames of an earlier session cannot precede this one's in a run.
        self.gate = crate::recording::Gate::new(self.stats.prebuffer_us);
        if self.stats.recording.swap(false, Ordering::Relaxed) {
            self.emit(EventKind::RecordingStopped);
        }
        self.emit(EventKind::CommunicationStarted);
        self.anchor = WallAnchor::now(self.clocks.as_ref());
        self.stats.set_state(CameraState::Streaming);
    }

    fn frame(&mut self, entry: &Arc<SampleEntry>, frame: Frame) {
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
        if let Some(m) = &*self.motion.read().expect("motion lock") {
            m.offer(&self.stats.id, entry, &frame, wall_us);
        }
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
                self.stats.recording.store(false, Ordering::Relaxed);
                self.emit(EventKind::RecordingStopped);
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
                self.stats.recording.store(true, Ordering::Relaxed);
                self.emit(EventKind::RecordingStarted);
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
}

impl CameraSink {
    /// REC-3 disk mode: every frame goes to the store; while not recording it is temporary, and a
    /// recording start makes the store's copy permanent from the pre-roll (one continuous run).
    fn disk_prebuffer(&mut self, decision: Decision, mut f: IngestFrame) {
        match decision {
            Decision::Buffer => f.temporary_keep_us = Some(self.stats.prebuffer_us),
            Decision::Stop => {
                tracing::info!(camera = %self.stats.id, "recording stopped (REC-14)");
                self.stats.recording.store(false, Ordering::Relaxed);
                self.emit(EventKind::RecordingStopped);
                f.temporary_keep_us = Some(self.stats.prebuffer_us);
            }
            Decision::Record => {}
            Decision::Start { preroll_us } => {
                let from = f.wall_us - preroll_us.min(self.stats.prebuffer_us);
                tracing::info!(camera = %self.stats.id, preroll_ms = (f.wall_us - from) / 1000, "recording started (REC-14)");
                self.storage.make_permanent(&self.stats.id, from);
                self.stats.recording.store(true, Ordering::Relaxed);
                self.emit(EventKind::RecordingStarted);
            }
        }
        self.send(f);
    }

    fn emit(&self, kind: EventKind) {
        let now = self.anchor.wall_us(self.clocks.as_ref());
        self.events.emit(Event::new(kind, now).with_camera(&*self.stats.id));
    }

    fn send(&mut self, f: IngestFrame) {
        match self.storage.try_send(f) {
            Ok(()) => {}
            Err(SendError::Overflow) | Err(SendError::Closed) => {
                self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        if !self.storage.stats.available.load(Ordering::Relaxed) {
            // The writer drops these itself (FL-1); count them against the camera too.
            self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs a camera until `stop` fires: session, backoff, session... (each session a new run).
pub async fn supervise(
    mut source: Box<dyn Source>,
    stats: Arc<CameraStats>,
    storage: StorageHandle,
    clocks: Arc<dyn Clocks>,
    events: EventSink,
    motion: crate::motion::SharedMotion,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let anchor = WallAnchor::now(clocks.as_ref());
    let gate = crate::recording::Gate::new(stats.prebuffer_us);
    let mut sink = CameraSink { stats: stats.clone(), storage, clocks, run: 0, anchor, gate, events, motion };
    let mut backoff = BACKOFF_FIRST;
    loop {
        stats.set_state(CameraState::Connecting);
        let started = tokio::time::Instant::now();
        let result = tokio::select! {
            r = source.session(&mut sink) => r,
            _ = stop.changed() => return,
        };
        if *stop.borrow() {
            return;
        }
        if started.elapsed() >= HEALTHY_SESSION {
            backoff = BACKOFF_FIRST;
        }
        let msg = match result {
            Ok(()) => "session ended".to_owned(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(camera = %stats.id, event = "communication_error", retry_in = ?backoff, "camera session ended: {msg}");
        // RU-11: a session that streamed ends with Communication Stopped; every failure is an error.
        if stats.state() == CameraState::Streaming {
            if sink.stats.recording.swap(false, Ordering::Relaxed) {
                sink.emit(EventKind::RecordingStopped);
            }
            sink.emit(EventKind::CommunicationStopped);
        }
        let now = sink.anchor.wall_us(sink.clocks.as_ref());
        sink.events
            .emit(Event::new(EventKind::CommunicationError, now).with_camera(&*stats.id).with_message(msg.clone()));
        *stats.last_error.lock().expect("error lock") = Some(msg);
        stats.reconnects.fetch_add(1, Ordering::Relaxed);
        stats.set_state(CameraState::Retrying);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
