//! What the store benchmarks need: a synthetic camera that feeds a storage writer through its
//! public handle, exactly as ingest does, and a storage on the project's own filesystem (the
//! incident report figure uses the storage only).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edgerec::media::{Frame, IngestFrame, SampleEntry, StreamKind, VIDEO_TIMESCALE_HZ};
use edgerec::store::writer::SendError;
use edgerec::store::{StorageConfig, StorageHandle};

/// A flush waits at most this long; on the benchmark's disk one takes well under a second.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// A scratch directory on the filesystem of the target directory. Not `/tmp`: it may be a tmpfs,
/// and a store benchmark on RAM would measure nothing about the disk.
pub fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("the target directory is writable")
}

/// A storage of `segments` segments of `segment_bytes` each. The index reserve is
/// max(size/64, 4 MiB), so 1/32 of the segment bytes on top always leaves room for it.
pub fn storage_config(data_dir: &Path, segments: u64, segment_bytes: u64) -> StorageConfig {
    let segment_total_bytes = segments * segment_bytes;
    StorageConfig {
        id: "bench".to_owned(),
        path: data_dir.join("storage-bench"),
        size_bytes: segment_total_bytes + (segment_total_bytes / 32).max(4 << 20),
        segment_bytes,
        retention: Duration::from_secs(7 * 86_400),
        // Long enough that no tick fires on its own: the benchmarks decide when data is synced.
        sync_interval: Duration::from_secs(3_600),
        default: true,
    }
}

/// Wraps `content` in an ISO-BMFF box header.
pub fn mp4_box(fourcc: &[u8; 4], content: &[u8]) -> Vec<u8> {
    let len = u32::try_from(content.len() + 8).expect("a sample entry is small");
    let mut b = len.to_be_bytes().to_vec();
    b.extend_from_slice(fourcc);
    b.extend_from_slice(content);
    b
}

/// An `avc1` sample entry for 1920x1080. The store never decodes it; it only has to be a
/// well-formed box with the visual sample entry fields where they belong.
pub fn video_entry() -> Arc<SampleEntry> {
    // 6 reserved bytes, data_reference_index, 16 bytes pre_defined/reserved, then width, height.
    let mut body = vec![0u8; 6];
    body.extend_from_slice(&1u16.to_be_bytes());
    body.extend_from_slice(&[0u8; 16]);
    body.extend_from_slice(&1920u16.to_be_bytes());
    body.extend_from_slice(&1080u16.to_be_bytes());
    body.extend_from_slice(&[0u8; 50]);
    Arc::new(SampleEntry::new(mp4_box(b"avc1", &body), VIDEO_TIMESCALE_HZ).expect("a well-formed avc1 box"))
}

/// One synthetic stream of a camera: frames at a fixed rate with increasing media time.
pub struct Feed {
    camera: Arc<str>,
    kind: StreamKind,
    entry: Arc<SampleEntry>,
    /// Media time advance per frame, in the entry's timescale (3600 = 1/25 s at 90 kHz).
    frame_duration: i64,
    /// Every `key_every`-th frame is a key frame (video); audio frames are all key frames.
    key_every: u64,
    /// Wall time (µs since the epoch) of media time 0: wall = base + media / timescale.
    base_wall_us: i64,
    /// A few distinct payloads reused round robin, so making a frame costs a reference count, not
    /// a fill: the benchmark times the store, not the frame source.
    payloads: Vec<Bytes>,
    /// Number of the next frame.
    n: u64,
    /// The ingest run its frames carry (a new one makes the writer start a new run).
    pub ingest_run: u64,
}

impl Feed {
    pub fn new(
        kind: StreamKind,
        entry: Arc<SampleEntry>,
        frame_duration: i64,
        frame_bytes: usize,
        base_wall_us: i64,
    ) -> Feed {
        let payloads = (0..25u8)
            .map(|p| (0..frame_bytes).map(|i| (i as u8).wrapping_mul(31).wrapping_add(p)).collect::<Vec<u8>>().into())
            .collect();
        Feed {
            camera: "cam".into(),
            kind,
            entry,
            frame_duration,
            key_every: if kind == StreamKind::Video { 25 } else { 1 },
            base_wall_us,
            payloads,
            n: 0,
            ingest_run: 1,
        }
    }

    fn media_time(&self) -> i64 {
        self.n as i64 * self.frame_duration
    }

    /// Wall time of the next frame, µs since the epoch.
    pub fn next_wall_us(&self) -> i64 {
        let ts = i128::from(self.entry.timescale_hz());
        self.base_wall_us + (i128::from(self.media_time()) * 1_000_000 / ts) as i64
    }

    fn frame(&self) -> IngestFrame {
        IngestFrame {
            camera: self.camera.clone(),
            ingest_run: self.ingest_run,
            sample_entry: self.entry.clone(),
            wall_us: self.next_wall_us(),
            frame: Frame {
                kind: self.kind,
                media_time: self.media_time(),
                key: self.n.is_multiple_of(self.key_every),
                data: self.payload(self.n).clone(),
            },
            temporary_keep_us: None,
        }
    }

    /// Sends the next frame. A full queue is not a loss here: the benchmark flushes and sends the
    /// frame again, so every frame is written. Returns how many times the queue was full.
    pub fn send(&mut self, handle: &StorageHandle) -> u64 {
        let mut overflows = 0;
        loop {
            match handle.try_send(self.frame()) {
                Ok(()) => break,
                Err(SendError::Overflow) => {
                    overflows += 1;
                    assert!(handle.flush(FLUSH_TIMEOUT), "writer flushed");
                }
                Err(SendError::Closed) => panic!("the storage writer stopped"),
            }
        }
        self.n += 1;
        overflows
    }

    /// The payload of frame number `n`.
    pub fn payload(&self, n: u64) -> &Bytes {
        &self.payloads[(n % self.payloads.len() as u64) as usize]
    }
}
