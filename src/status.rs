//! Plain snapshots of what the recorder is doing: cameras, storages, the machine. Status JSON and
//! `/metrics` both read these (and, later, the interconnect), so they cannot disagree.
//! Invariant: a snapshot is taken once per answer from the live counters and is plain data; no
//! face reads a component's atomics itself. Units are in the names.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::ingest::{CameraState, CameraStats, DropReason};
use crate::store::StorageHandle;
use crate::sysinfo;

/// One camera as ingest counts it.
#[derive(Clone, Debug)]
pub struct CameraSnapshot {
    pub id: String,
    pub name: String,
    /// The storage its recordings go to.
    pub storage: String,
    pub state: CameraState,
    /// `state` as status names it (`CameraStats::state_code`).
    pub state_code: &'static str,
    /// Whether frames go to the store now (never while they are dropped, issue 10 point 1).
    pub recording: bool,
    /// Why a camera that should record does not.
    pub not_recording_reason: Option<String>,
    /// Why its frames are dropped now, if they are.
    pub dropping: Option<DropReason>,
    /// The reasons to record in force (continuous, manual, rules).
    pub recording_reasons: Vec<String>,
    pub prebuffer_us: i64,
    /// The video stream's encoding and pixel size, once the session described it.
    pub video: Option<(String, u32, u32)>,
    /// The audio stream's encoding as offered (RTSP's `mpeg4-generic` for AAC).
    pub audio_encoding: Option<String>,
    /// Streams of the camera ingest does not take.
    pub skipped_streams: Vec<String>,
    /// Video frames per second over the last complete second.
    pub frame_rate_hz: f64,
    /// Received bits per second over the last complete second.
    pub receive_rate_bits_per_second: u64,
    /// Wall time of the last frame received; 0 before the first.
    pub last_frame_wall_us: i64,
    pub frames_received: u64,
    pub bytes_received: u64,
    pub frames_dropped: u64,
    pub frames_dropped_overflow: u64,
    pub reconnects: u64,
    /// The last session error, as ingest stored it (possibly several lines).
    pub last_error: Option<String>,
    /// Live viewers attached to the camera's hub now (issue 12 point 4).
    pub live_viewers: u64,
    /// Frames live viewers skipped because they fell behind (issue 12 point 4).
    pub live_skipped_frames: u64,
    /// Key frames made into `snapshot.jpg` (H.264: at most one decode per GOP, however many ask;
    /// MJPEG: every frame is a key frame, so about one copy of the latest JPEG per request, no
    /// decode; review-b 10).
    pub live_snapshot_decodes: u64,
    /// Bytes of media the camera's live hub holds (`live::Hub::held_bytes`, issue 12 point 4).
    pub live_hub_bytes: u64,
    /// The camera's second stream, when it has one (issue 14, DEV-5).
    pub second_stream: Option<SecondStreamSnapshot>,
    /// Which stream motion detection analyses: `main` or `second` (None while it is off).
    pub motion_stream: Option<&'static str>,
    /// Why motion detection analyses nothing now (None while frames are analysed; MD-1, issue 14).
    pub motion_off_reason: Option<String>,
}

/// A camera's second stream as ingest counts it (issue 14, DEV-5, DEV-7).
#[derive(Clone, Debug)]
pub struct SecondStreamSnapshot {
    /// `connecting`, `streaming`, `retrying` or `disabled` (it is never recorded).
    pub state_code: &'static str,
    /// The video stream's encoding and pixel size, once a session described it.
    pub video: Option<(String, u32, u32)>,
    /// Offered streams not set up, with why (as the main stream's `skipped_streams`).
    pub skipped_streams: Vec<String>,
    pub frame_rate_hz: f64,
    pub frames_received: u64,
    pub bytes_received: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
}

impl CameraSnapshot {
    pub fn of(c: &CameraStats, now_us: i64) -> CameraSnapshot {
        let desc = c.description.lock().expect("description lock").clone();
        let (frame_rate_hz, receive_rate_bits_per_second) = c.rates();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let recording = c.is_recording();
        // Before the literal below: its temporaries (the `last_error` guard) live to its end.
        let motion_off_reason = c.motion_off_reason();
        // Issue 14: a camera recording on motion whose analysed stream motion cannot decode
        // never records on motion; status says so rather than looking idle (status never lies).
        // Review-a 1: so does one whose motion is not analysing for any other reason (its second
        // stream down or misconfigured, ...): it records nothing until motion analyses again.
        let not_recording_reason = c.not_recording_reason().or_else(|| {
            if !c.records_on_motion || recording {
                return None;
            }
            if let Some(why) = c.motion_codec_off_reason() {
                return Some(format!(
                    "not recording on motion: motion cannot be analysed ({why}), so record = \"motion\" never records"
                ));
            }
            let why = motion_off_reason.as_deref()?;
            Some(format!(
                "not recording on motion: motion is not analysing ({why}), so record = \"motion\" records nothing \
                 until it is"
            ))
        });
        let second_stream = c.second.as_ref().map(|s| {
            let desc = s.description.lock().expect("description lock").clone();
            SecondStreamSnapshot {
                state_code: s.state_code(),
                video: desc.video.as_ref().map(|v| (v.encoding.clone(), v.width, v.height)),
                skipped_streams: desc.skipped,
                frame_rate_hz: s.rates().0,
                frames_received: load(&s.frames_received),
                bytes_received: load(&s.bytes_received),
                reconnects: load(&s.reconnects),
                last_error: s.last_error.lock().expect("error lock").clone(),
            }
        });
        CameraSnapshot {
            id: c.id.to_string(),
            name: c.name.clone(),
            storage: c.storage.to_string(),
            state: c.state(),
            state_code: c.state_code(),
            recording,
            not_recording_reason,
            dropping: c.dropping(),
            recording_reasons: c.control.active(now_us),
            prebuffer_us: c.prebuffer_us,
            video: desc.video.as_ref().map(|v| (v.encoding.clone(), v.width, v.height)),
            audio_encoding: desc.audio.as_ref().map(|a| a.encoding.clone()),
            skipped_streams: desc.skipped,
            frame_rate_hz,
            receive_rate_bits_per_second,
            last_frame_wall_us: c.last_frame_wall_us.load(Ordering::Relaxed),
            frames_received: load(&c.frames_received),
            bytes_received: load(&c.bytes_received),
            frames_dropped: load(&c.frames_dropped),
            frames_dropped_overflow: load(&c.frames_dropped_overflow),
            reconnects: load(&c.reconnects),
            last_error: c.last_error.lock().expect("error lock").clone(),
            live_viewers: c.live.viewers() as u64,
            live_skipped_frames: c.live.skipped_frames(),
            live_snapshot_decodes: c.live.snapshot_decodes(),
            live_hub_bytes: c.live.held_bytes() as u64,
            second_stream,
            motion_stream: c.motion_role.stream_name(),
            motion_off_reason,
        }
    }
}

/// One storage as its writer counts it, with the filesystem under it.
#[derive(Clone, Debug)]
pub struct StorageSnapshot {
    pub id: String,
    pub path: std::path::PathBuf,
    /// Open and writable (S8).
    pub available: bool,
    /// Open, but one write or sync has run longer than 3 sync intervals (a frozen disk).
    pub stalled: bool,
    /// How long the running write or sync has taken so far.
    pub write_in_progress: Option<Duration>,
    /// Wall time of the last successful write and sync; 0 before the first.
    pub last_write_wall_us: i64,
    pub last_error: Option<String>,
    /// The configured size the writer started with.
    pub size_bytes: u64,
    /// The retention the writer started with.
    pub retention: Duration,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    /// Wall times of the oldest and newest stored recording; 0 when there is none.
    pub oldest_wall_us: i64,
    pub newest_wall_us: i64,
    pub write_rate_bytes_per_second: u64,
    pub bytes_written: u64,
    pub chunks_written: u64,
    pub fsyncs: u64,
    /// Review s31 W4: writes of closed chunks before their flush, and the longest of them.
    pub early_writes: u64,
    pub max_early_write_us: u64,
    pub last_sync_latency_us: u64,
    pub max_sync_latency_us: u64,
    pub frames_dropped_overflow: u64,
    pub frames_dropped_unavailable: u64,
    pub segments_reclaimed: u64,
    /// Only evidence-locked data is left: nothing is written until a lock ends (EL-4, S10).
    pub full_of_locked_data: bool,
    /// Frames the writer dropped because only locked data was left (EL-4).
    pub frames_dropped_locked: u64,
    /// Segments holding pinned (evidence-locked) data now (S10).
    pub pinned_segments: u64,
    /// Older pinned segments the ring passed over to reuse a younger one (S5, S10).
    pub segments_skipped_pinned: u64,
    /// The filesystem under the storage; `None` when it cannot be read.
    pub filesystem: Option<sysinfo::Filesystem>,
    /// Its archive stages in chain order (issue 13 point 3, AR-8); empty without stages. The
    /// recorder fills it from the storage's archive thread.
    pub archives: Vec<crate::archive::StageStatus>,
}

impl StorageSnapshot {
    /// `cfg` is the storage config its writer started with (storage changes need a restart).
    pub fn of(h: &StorageHandle, cfg: &crate::store::StorageConfig) -> StorageSnapshot {
        let s = &h.stats;
        let available = s.available.load(Ordering::Relaxed);
        StorageSnapshot {
            id: h.id.to_string(),
            path: h.path.clone(),
            available,
            // Issue 10: a frozen or hung disk keeps the storage open, so `available` alone would
            // hide it.
            stalled: h.stalled(),
            write_in_progress: h.busy_for(),
            last_write_wall_us: s.last_write_wall_us.load(Ordering::Relaxed),
            last_error: s.last_error.lock().expect("stats lock").clone(),
            size_bytes: cfg.size_bytes,
            retention: cfg.retention,
            capacity_bytes: s.capacity_bytes.load(Ordering::Relaxed),
            used_bytes: s.used_bytes.load(Ordering::Relaxed),
            oldest_wall_us: s.oldest_wall_us.load(Ordering::Relaxed),
            newest_wall_us: s.newest_wall_us.load(Ordering::Relaxed),
            write_rate_bytes_per_second: s.write_rate_bps.load(Ordering::Relaxed),
            bytes_written: s.bytes_written.load(Ordering::Relaxed),
            chunks_written: s.chunks_written.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            early_writes: s.early_writes.load(Ordering::Relaxed),
            max_early_write_us: s.max_early_write_us.load(Ordering::Relaxed),
            last_sync_latency_us: s.last_sync_latency_us.load(Ordering::Relaxed),
            max_sync_latency_us: s.max_sync_latency_us.load(Ordering::Relaxed),
            frames_dropped_overflow: s.frames_dropped_overflow.load(Ordering::Relaxed),
            frames_dropped_unavailable: s.frames_dropped_unavailable.load(Ordering::Relaxed),
            segments_reclaimed: s.segments_reclaimed.load(Ordering::Relaxed),
            full_of_locked_data: s.full_of_locked_data.load(Ordering::Relaxed),
            frames_dropped_locked: s.frames_dropped_locked.load(Ordering::Relaxed),
            pinned_segments: s.pinned_segments.load(Ordering::Relaxed),
            segments_skipped_pinned: s.segments_skipped_pinned.load(Ordering::Relaxed),
            filesystem: sysinfo::filesystem(&h.path),
            archives: Vec::new(),
        }
    }
}

impl StorageSnapshot {
    /// Days of recording the storage holds at the current write rate (issue 12 point 3): the
    /// ring's capacity divided by the rate, but no more than the retention, which removes older
    /// recordings whatever the room. `None` while nothing is written (no rate to go by).
    pub fn recording_days_at_current_rate(&self) -> Option<f64> {
        if self.write_rate_bytes_per_second == 0 {
            return None;
        }
        let ring_seconds = self.capacity_bytes as f64 / self.write_rate_bytes_per_second as f64;
        Some(ring_seconds.min(self.retention.as_secs_f64()) / 86_400.0)
    }
}

impl StorageSnapshot {
    /// Issue 13 point 5 (ST-7): days of recording archive stage `stage` of this storage holds at
    /// the storage's current write rate: its size limit over the rate, but no more than its
    /// retention. A grooming stage (AR-4) takes in less than the ring writes, so for it this is
    /// a lower bound. `None` while nothing is written.
    pub fn stage_days_at_current_rate(&self, stage: &crate::archive::StageStatus) -> Option<f64> {
        if self.write_rate_bytes_per_second == 0 {
            return None;
        }
        let size_seconds = stage.max_size_bytes as f64 / self.write_rate_bytes_per_second as f64;
        Some(size_seconds.min(stage.retention.as_secs_f64()) / 86_400.0)
    }
}

/// The machine under the recorder and this process (MON-2, MON-5, MON-7), read once per answer.
/// Facts the kernel does not offer are `None` or empty, never 0.
#[derive(Clone, Debug, PartialEq)]
pub struct SystemSnapshot {
    /// Seconds since the machine booted.
    pub uptime_seconds: Option<f64>,
    /// Run-queue load over 1, 5 and 15 minutes.
    pub load_average: Option<[f64; 3]>,
    /// Busy % (0..=100) of all CPUs over the last complete window of at least
    /// `sysinfo::MIN_CPU_WINDOW_SECONDS`; `None` until one has passed.
    pub cpu_busy_percent: Option<f64>,
    /// This process's CPU time and resident memory.
    pub process: sysinfo::ProcessUsage,
    /// RAM total and available.
    pub memory: Option<sysinfo::Memory>,
    /// Every readable thermal zone, sorted by zone; empty in most VMs and containers.
    pub temperatures: Vec<sysinfo::Temperature>,
}

impl SystemSnapshot {
    /// Reads the machine now, with the process-wide CPU window that status and metrics share.
    pub fn now() -> SystemSnapshot {
        Self::take(&sysinfo::CPU)
    }

    /// Reads the machine now, taking one sample of `cpu`.
    pub fn take(cpu: &sysinfo::CpuSampler) -> SystemSnapshot {
        SystemSnapshot {
            uptime_seconds: sysinfo::uptime_seconds(),
            load_average: sysinfo::load_average(),
            cpu_busy_percent: cpu.sample(),
            process: sysinfo::process(),
            memory: sysinfo::memory(),
            temperatures: sysinfo::temperatures(),
        }
    }
}

/// `[site]` (issue 16, IC-3): how this recorder names itself to a central site. `config` fills it;
/// `GET /api/v1/site` reads it. `None` means the box's hostname.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SiteSettings {
    pub name: Option<String>,
}

/// `[health]` (issue 16, IC-10): the thresholds whose crossings become events, each off (`None`)
/// unless configured. Percentages are 0..=100; `hysteresis` is in each figure's own unit
/// (percentage points or °C): a figure over its threshold is normal again only once it is below
/// the threshold less the hysteresis, so a figure hovering at the threshold raises one event.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthSettings {
    /// Memory in use (`MemTotal - MemAvailable`) as % of `MemTotal`.
    pub memory_percent: Option<f64>,
    /// All CPUs busy, % over `sysinfo`'s window.
    pub cpu_percent: Option<f64>,
    /// The hottest thermal zone, °C.
    pub temperature_celsius: Option<f64>,
    /// Free space of the filesystem under each storage, % of its size: less raises Storage Disk Low.
    pub storage_min_free_percent: Option<f64>,
    pub hysteresis: f64,
}

impl Default for HealthSettings {
    fn default() -> HealthSettings {
        HealthSettings {
            memory_percent: None,
            cpu_percent: None,
            temperature_celsius: None,
            storage_min_free_percent: None,
            hysteresis: DEFAULT_HEALTH_HYSTERESIS,
        }
    }
}

/// The default `[health] hysteresis`: 5 points (or 5 °C).
pub const DEFAULT_HEALTH_HYSTERESIS: f64 = 5.0;

/// A figure and its threshold as the health watcher compares them (IC-10).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    pub value: f64,
    pub threshold: f64,
}

/// One crossing of a threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crossing {
    /// The figure went over (or, for a "below" figure, under) its threshold.
    Exceeded,
    /// It is back on the right side of the threshold by at least the hysteresis.
    Normal,
}

/// The state of one watched figure (IC-10): one event per crossing, never one per sample.
/// Invariant: `Exceeded` is returned only from the normal state and `Normal` only from the
/// exceeded one, so the events alternate; a figure that cannot be read (`None`) or whose
/// threshold is off changes nothing, except that switching the threshold off while exceeded
/// ends with `Normal` (status never lies: the condition is no longer watched).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThresholdWatch {
    exceeded: bool,
}

impl ThresholdWatch {
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// Feeds one sample. `above` says which side is bad: true for "over the threshold is bad"
    /// (memory, CPU, temperature), false for "under it is bad" (free space).
    pub fn observe(&mut self, reading: Option<Reading>, above: bool, hysteresis: f64) -> Option<Crossing> {
        let Reading { value, threshold } = reading?;
        // Both sides as "larger is worse".
        let (value, threshold) = if above { (value, threshold) } else { (-value, -threshold) };
        if !self.exceeded && value >= threshold {
            self.exceeded = true;
            return Some(Crossing::Exceeded);
        }
        if self.exceeded && value < threshold - hysteresis.max(0.0) {
            self.exceeded = false;
            return Some(Crossing::Normal);
        }
        None
    }

    /// The threshold was switched off: an exceeded figure ends as `Normal`.
    pub fn switched_off(&mut self) -> Option<Crossing> {
        std::mem::take(&mut self.exceeded).then_some(Crossing::Normal)
    }
}

impl SystemSnapshot {
    /// Memory in use as % of the total (`None` without `/proc/meminfo`).
    pub fn memory_used_percent(&self) -> Option<f64> {
        let m = self.memory?;
        (m.total_bytes > 0)
            .then(|| 100.0 * m.total_bytes.saturating_sub(m.available_bytes) as f64 / m.total_bytes as f64)
    }

    /// The hottest thermal zone, °C (`None` without one).
    pub fn max_celsius(&self) -> Option<f64> {
        self.temperatures.iter().map(|t| t.celsius).reduce(f64::max)
    }
}

/// Issue 16 (IC-10): what `edgerec pull` (the central side) is doing, per remote site and per
/// mirrored camera. Plain data, taken at once under the mirror's state lock.
#[derive(Clone, Debug, Default)]
pub struct PullSnapshot {
    pub sites: Vec<PullSiteSnapshot>,
}

/// One `[[remote_site]]`: its link as the mirror last saw it.
#[derive(Clone, Debug)]
pub struct PullSiteSnapshot {
    pub name: String,
    pub url: String,
    /// "up" (the last request was answered), "down" (the last one failed) or "waiting" (outside
    /// the site's window, or before the first request).
    pub link: &'static str,
    /// Since when the link has been in this state (µs since the epoch; 0 before the first
    /// request).
    pub since_us: i64,
    pub last_error: Option<String>,
    /// Bytes of retrieval bodies received from the site since the start.
    pub bytes_received: u64,
    pub cameras: Vec<PullCameraSnapshot>,
}

/// One mirrored camera.
#[derive(Clone, Debug)]
pub struct PullCameraSnapshot {
    /// The central's camera id.
    pub camera: String,
    /// The remote's camera id.
    pub remote: String,
    /// "continuous", "events" or "ranges".
    pub mode: &'static str,
    /// The ranges held here (durably written, merged), µs since the epoch, oldest first.
    pub retrieved: Vec<(i64, i64)>,
    /// The ranges wanted and not yet retrieved (for continuous mode: from the cursor to now).
    pub pending: Vec<(i64, i64)>,
    /// The transfer in progress: (from_us, to_us, bytes received of it).
    pub transfer: Option<(i64, i64, u64)>,
    pub frames_written: u64,
    pub last_error: Option<String>,
    /// Issue 16 (IC-13): why the camera's retrievals are cancelled (the remote no longer shows
    /// it); None while it is mirrored.
    pub cancelled: Option<String>,
    /// Issue 16 (IC-4b): the ranges asked for by API (`pull::manual`) with their state.
    pub manual_ranges: Vec<PullManualRange>,
}

/// One manual range of a mirrored camera (issue 16, IC-4b).
#[derive(Clone, Debug, PartialEq)]
pub struct PullManualRange {
    pub id: i64,
    pub from_us: i64,
    pub to_us: i64,
    /// "pending", "retrieving", "done" or "cancelled".
    pub state: &'static str,
    pub cancelled: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::{CameraSnapshot, StorageSnapshot, SystemSnapshot};
    use crate::clocks::Clocks;
    use crate::ingest::{CameraState, CameraStats};
    use crate::sysinfo::{CpuSampler, MIN_CPU_WINDOW_SECONDS};
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    /// Issue 16 (IC-10): a figure hovering at its threshold raises one Exceeded and, only once it
    /// is below the threshold less the hysteresis, one Normal; unreadable samples change nothing.
    #[test]
    fn ic10_threshold_crossings_alternate_with_hysteresis() {
        use super::{Crossing, Reading, ThresholdWatch};
        let r = |value: f64| Some(Reading { value, threshold: 90.0 });
        let mut w = ThresholdWatch::default();
        let seen: Vec<Option<Crossing>> = [80.0, 90.0, 95.0, 89.0, 91.0, 86.0, 84.9, 85.0, 90.5]
            .iter()
            .map(|v| w.observe(r(*v), true, 5.0))
            .collect();
        assert_eq!(
            seen,
            [
                None,
                Some(Crossing::Exceeded),
                None,
                None,
                None,
                None,
                Some(Crossing::Normal),
                None,
                Some(Crossing::Exceeded)
            ]
        );
        assert_eq!(w.observe(None, true, 5.0), None, "an unreadable figure changes nothing");
        assert!(w.exceeded());
        assert_eq!(w.switched_off(), Some(Crossing::Normal));
        assert_eq!(w.switched_off(), None);
        // Free space: under the threshold is bad, normal again above threshold + hysteresis.
        let mut disk = ThresholdWatch::default();
        let free = |value: f64| Some(Reading { value, threshold: 10.0 });
        assert_eq!(disk.observe(free(50.0), false, 5.0), None);
        assert_eq!(disk.observe(free(9.0), false, 5.0), Some(Crossing::Exceeded));
        assert_eq!(disk.observe(free(14.0), false, 5.0), None);
        assert_eq!(disk.observe(free(15.5), false, 5.0), Some(Crossing::Normal));
    }

    /// Issue 11 point 7: a snapshot carries the live counters as plain data, once.
    #[test]
    fn a_camera_snapshot_copies_the_counters() {
        let c = CameraStats::new("door", "Door", "main", 0, false);
        c.frames_received.store(7, Ordering::Relaxed);
        c.bytes_received.store(7000, Ordering::Relaxed);
        c.reconnects.store(2, Ordering::Relaxed);
        let s = CameraSnapshot::of(&c, 0);
        assert_eq!((s.id.as_str(), s.frames_received, s.bytes_received, s.reconnects), ("door", 7, 7000, 2));
        c.frames_received.store(8, Ordering::Relaxed);
        assert_eq!(s.frames_received, 7, "a snapshot does not move");
        assert_eq!((s.state, s.storage.as_str(), s.recording), (CameraState::Connecting, "main", false));
    }

    /// Issue 11 point 7, issue 12 point 3 (MON-5, MON-7): a system snapshot reads this machine's
    /// real `/proc` once and stays as it was; the CPU figure appears once a window has passed.
    #[test]
    fn a_system_snapshot_reads_the_machine_once() {
        let cpu = CpuSampler::new();
        let first = SystemSnapshot::take(&cpu);
        assert_eq!(first.cpu_busy_percent, None, "no window has passed yet");
        let memory = first.memory.expect("Linux has /proc/meminfo");
        assert!(memory.available_bytes > 0 && memory.available_bytes <= memory.total_bytes, "{memory:?}");
        assert!(first.uptime_seconds.expect("Linux has /proc/uptime") > 0.0);
        assert!(first.load_average.is_some());
        assert!(first.process.rss_bytes.expect("Linux has /proc/self/statm") > 0);
        // Busy this thread until a window of CPU time has passed on the machine's clock ticks;
        // a deadline, not a sleep, bounds the wait on a loaded box.
        let deadline = crate::clocks::SystemClocks.monotonic() + Duration::from_secs(30 * MIN_CPU_WINDOW_SECONDS);
        let mut spin = 0u64;
        let later = loop {
            spin = std::hint::black_box(spin.wrapping_add(1));
            if spin.is_multiple_of(1_000_000) {
                let s = SystemSnapshot::take(&cpu);
                if s.cpu_busy_percent.is_some() || crate::clocks::SystemClocks.monotonic() > deadline {
                    break s;
                }
            }
        };
        let busy = later.cpu_busy_percent.expect("a window passed within the deadline");
        assert!((0.0..=100.0).contains(&busy), "{busy}");
        assert!(busy > 0.0, "this thread was busy all along");
        assert_eq!(first.cpu_busy_percent, None, "a snapshot does not move");
    }

    /// Issue 12 point 3: days of recording at the current rate are the ring's capacity over the
    /// write rate, capped by the retention, and unknown while nothing is written.
    #[test]
    fn recording_days_follow_the_write_rate_and_the_retention() {
        let storage = |rate: u64, retention_days: u64| StorageSnapshot {
            id: "main".into(),
            path: "/srv/main".into(),
            available: true,
            stalled: false,
            write_in_progress: None,
            last_write_wall_us: 0,
            last_error: None,
            size_bytes: 864_000_000,
            retention: Duration::from_secs(retention_days * 86_400),
            capacity_bytes: 864_000_000,
            used_bytes: 0,
            oldest_wall_us: 0,
            newest_wall_us: 0,
            write_rate_bytes_per_second: rate,
            bytes_written: 0,
            chunks_written: 0,
            fsyncs: 0,
            early_writes: 0,
            max_early_write_us: 0,
            last_sync_latency_us: 0,
            max_sync_latency_us: 0,
            frames_dropped_overflow: 0,
            frames_dropped_unavailable: 0,
            segments_reclaimed: 0,
            full_of_locked_data: false,
            frames_dropped_locked: 0,
            pinned_segments: 0,
            segments_skipped_pinned: 0,
            filesystem: None,
            archives: Vec::new(),
        };
        // 864 MB at 1,000 B/s is 864,000 s: 10 days, within a 30-day retention.
        assert_eq!(storage(1_000, 30).recording_days_at_current_rate(), Some(10.0));
        // At 4 Mbit/s (500,000 B/s) the same ring holds 1,728 s.
        assert_eq!(storage(500_000, 30).recording_days_at_current_rate(), Some(0.02));
        // Issue 13 point 5 (ST-7): a 8.64 TB stage at 1,000,000 B/s holds 100 days by size; a
        // 30-day retention caps it; nothing written, no forecast.
        let stage = |retention_days: u64| crate::archive::StageStatus {
            max_size_bytes: 8_640_000_000_000,
            retention: Duration::from_secs(retention_days * 86_400),
            ..crate::archive::StageStatus::default()
        };
        assert_eq!(storage(1_000_000, 30).stage_days_at_current_rate(&stage(365)), Some(100.0));
        assert_eq!(storage(1_000_000, 30).stage_days_at_current_rate(&stage(30)), Some(30.0));
        assert_eq!(storage(0, 30).stage_days_at_current_rate(&stage(30)), None);
        assert_eq!(storage(1_000, 7).recording_days_at_current_rate(), Some(7.0), "retention removes the rest");
        assert_eq!(storage(0, 7).recording_days_at_current_rate(), None);
    }
}

/// Issue 16 (IC-6): a central site's retrievals under the `[interconnect]` policy, as status
/// shows them (`interconnect` in `/api/v1/status`).
#[derive(Clone, Debug, Default)]
pub struct InterconnectSnapshot {
    /// The policy in force: kbit/s per client (0 = no cap), retrievals per client and in all.
    pub retrieval_kbps: u64,
    pub retrievals_per_client: usize,
    pub max_retrievals: usize,
    /// `HH:MM-HH:MM` local time, when one is set, and whether it is open now.
    pub retrieval_window: Option<String>,
    pub window_open: bool,
    /// Retrievals running now, all clients together.
    pub retrievals_in_progress: usize,
    /// Every client (user) that retrieved since the start, by name.
    pub clients: Vec<RetrievalClientSnapshot>,
}

/// One client's retrievals.
#[derive(Clone, Debug, Default)]
pub struct RetrievalClientSnapshot {
    pub user: String,
    /// Retrievals of this user running now.
    pub in_progress: usize,
    /// Retrievals started since the recorder started.
    pub started: u64,
    /// Body bytes sent to this user's retrievals since the recorder started.
    pub bytes_sent: u64,
    /// The address of its latest retrieval.
    pub last_peer: String,
}
