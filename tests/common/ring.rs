//! Writing a ring directly with the store's own writer, for tests whose data must lie in finished
//! past hours (a live camera finishes none within a test): the recorder process is not running
//! meanwhile.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use edgerec::clocks::SystemClocks;
use edgerec::media::{Frame, IngestFrame, SampleEntry, StreamKind};
use edgerec::store::{self, StorageConfig};

/// A synthetic `avc1` box: the store does not decode, it only needs a well-formed sample entry.
pub fn video_entry() -> Arc<SampleEntry> {
    let mut b = vec![0u8; 86];
    b[..4].copy_from_slice(&86u32.to_be_bytes());
    b[4..8].copy_from_slice(b"avc1");
    b[32..34].copy_from_slice(&640u16.to_be_bytes());
    b[34..36].copy_from_slice(&360u16.to_be_bytes());
    Arc::new(SampleEntry::new(b, 90_000).expect("valid sample entry"))
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
