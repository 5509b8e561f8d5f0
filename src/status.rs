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
}

impl CameraSnapshot {
    pub fn of(c: &CameraStats, now_us: i64) -> CameraSnapshot {
        let desc = c.description.lock().expect("description lock").clone();
        let (frame_rate_hz, receive_rate_bits_per_second) = c.rates();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        CameraSnapshot {
            id: c.id.to_string(),
            name: c.name.clone(),
            storage: c.storage.to_string(),
            state: c.state(),
            state_code: c.state_code(),
            recording: c.is_recording(),
            not_recording_reason: c.not_recording_reason(),
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
    pub last_sync_latency_us: u64,
    pub max_sync_latency_us: u64,
    pub frames_dropped_overflow: u64,
    pub frames_dropped_unavailable: u64,
    pub segments_reclaimed: u64,
    /// The filesystem under the storage; `None` when it cannot be read.
    pub filesystem: Option<sysinfo::Filesystem>,
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
            last_sync_latency_us: s.last_sync_latency_us.load(Ordering::Relaxed),
            max_sync_latency_us: s.max_sync_latency_us.load(Ordering::Relaxed),
            frames_dropped_overflow: s.frames_dropped_overflow.load(Ordering::Relaxed),
            frames_dropped_unavailable: s.frames_dropped_unavailable.load(Ordering::Relaxed),
            segments_reclaimed: s.segments_reclaimed.load(Ordering::Relaxed),
            filesystem: sysinfo::filesystem(&h.path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CameraSnapshot;
    use crate::ingest::{CameraState, CameraStats};
    use std::sync::atomic::Ordering;

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
}
