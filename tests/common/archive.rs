//! Archive test helpers (issue 13): finished hours written into a ring by the store's own writer
//! while no recorder runs, for a stage's round to copy (a live camera finishes no hour within a
//! test), and the events a recorder raised about its storage `main`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use edgerec::clocks::SystemClocks;
use edgerec::media::{Frame, IngestFrame, SampleEntry, StreamKind};
use edgerec::store::{self, StorageConfig};
use serde_json::Value;

use super::http_get;
use super::recorder::{now_us, RecorderProc};

/// One hour in µs.
pub const HOUR_US: i64 = 3_600_000_000;

/// The ring as both the recorder's configuration and the test's own writer see it (the same
/// size and segment size, so neither resizes the other's ring).
pub fn ring_config(ring_dir: &Path) -> StorageConfig {
    StorageConfig {
        id: "main".to_owned(),
        path: ring_dir.to_owned(),
        size_bytes: 64 << 20,
        segment_bytes: 2 << 20,
        retention: Duration::from_secs(7 * 86_400),
        sync_interval: Duration::from_secs(1),
        default: true,
    }
}

/// A synthetic `avc1` box: the store does not decode, it only needs a well-formed sample entry.
pub fn video_entry() -> Arc<SampleEntry> {
    let mut b = vec![0u8; 86];
    b[..4].copy_from_slice(&86u32.to_be_bytes());
    b[4..8].copy_from_slice(b"avc1");
    b[32..34].copy_from_slice(&640u16.to_be_bytes());
    b[34..36].copy_from_slice(&360u16.to_be_bytes());
    Arc::new(SampleEntry::new(b, 90_000).expect("valid sample entry"))
}

/// Writes ten frames of camera "old" into each of the `hours` hours before the last one, through
/// the store's own writer (the recorder is not running; the ring is created when missing).
pub fn write_finished_hours(data_dir: &Path, ring_dir: &Path, hours: i64) {
    let first_hour = now_us().div_euclid(HOUR_US) - hours - 1;
    let runs: Vec<(i64, u64)> = (0..hours).map(|h| ((first_hour + h) * HOUR_US + 60_000_000, 10)).collect();
    write_video_runs(data_dir, &ring_config(ring_dir), "old", &runs);
}

/// Writes one synthetic video run of `camera` per entry of `runs` (`(first frame's wall time µs,
/// frames)`, one frame per second, a key frame every 5) into the ring of `cfg` under `data_dir`
/// through the real store writer, flushing after each run.
pub fn write_video_runs(data_dir: &Path, cfg: &StorageConfig, camera: &str, runs: &[(i64, u64)]) {
    let recorder = store::recorder_uuid(data_dir).expect("recorder id");
    let (handle, join, ready) =
        store::writer::spawn(cfg.clone(), data_dir.to_owned(), recorder, Arc::new(SystemClocks));
    ready.recv().expect("writer reports").expect("storage opens");
    let entry = video_entry();
    for (i, &(start_us, frames)) in runs.iter().enumerate() {
        for n in 0..frames {
            let frame = IngestFrame {
                camera: camera.into(),
                ingest_run: i as u64 + 1,
                sample_entry: entry.clone(),
                wall_us: start_us + n as i64 * 1_000_000,
                frame: Frame {
                    kind: StreamKind::Video,
                    media_time: n as i64 * 90_000,
                    key: n % 5 == 0,
                    data: bytes::Bytes::from(vec![(n % 251) as u8; 20_000]),
                },
                temporary_keep_us: None,
            };
            handle.try_send(frame).expect("queue has room");
        }
        assert!(handle.flush(Duration::from_secs(30)), "writer flushed");
    }
    assert!(handle.stop(Duration::from_secs(30)), "writer stops");
    join.join().expect("writer thread");
}

/// Every stored event of `kind` about storage `main`.
pub fn storage_events(rec: &RecorderProc, kind: &str) -> Vec<Value> {
    let r = http_get(&rec.url("/api/v1/events?after=0&limit=1000")).expect("events answer");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["events"]
        .as_array()
        .expect("events list")
        .iter()
        .filter(|e| e["kind"] == kind && e["storage"] == "main")
        .cloned()
        .collect()
}
