//! Store tests against real files and a real SQLite index: append / reclaim / crash / reopen with
//! `check_invariants()`, torn and garbage tails, damage detection, rebuild, foreign storages,
//! reclaim under a reader, and a storage that disappears and comes back (ST-*, FL-1..FL-3).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edgerec::clocks::{Clocks, SimulatedClocks, SystemClocks};
use edgerec::media::{Frame, IngestFrame, SampleEntry, StreamKind};
use edgerec::store::export::ExportPlan;
use edgerec::store::retrieve::{Align, FrameStreamDecoder, RetrievePlan, WireRecord};
use edgerec::store::writer;
use edgerec::store::{self, StorageConfig, StorageHandle};
use edgerec::ErrorKind;
use proptest::prelude::*;

const SEG: u64 = 1 << 20;

fn storage_cfg(dir: &Path, segments: u64) -> StorageConfig {
    // The index reserve is max(size/64, 4 MiB); add it so exactly `segments` segments fit.
    StorageConfig {
        id: "t".to_owned(),
        path: dir.join("storage"),
        size_bytes: segments * SEG + (4 << 20),
        segment_bytes: SEG,
        retention: Duration::from_secs(7 * 86_400),
        // Tests flush explicitly (`Harness::flush`), so chunk boundaries are theirs alone: a tick
        // of its own would split a chunk whenever a loaded machine delays the test (CI saw 11
        // chunks where 10 were sent).
        sync_interval: Duration::from_secs(3600),
        default: true,
    }
}

/// A synthetic `avc1` box: the store does not decode, it only needs a well-formed sample entry.
fn video_entry() -> Arc<SampleEntry> {
    let mut b = vec![0u8; 86];
    b[..4].copy_from_slice(&86u32.to_be_bytes());
    b[4..8].copy_from_slice(b"avc1");
    b[32..34].copy_from_slice(&640u16.to_be_bytes());
    b[34..36].copy_from_slice(&360u16.to_be_bytes());
    Arc::new(SampleEntry::new(b, 90_000).unwrap())
}

struct Harness {
    data_dir: PathBuf,
    cfg: StorageConfig,
    handle: StorageHandle,
    join: std::thread::JoinHandle<()>,
    entry: Arc<SampleEntry>,
    /// Media time of the next frame (90 kHz, 25 fps) and frame counter (key every 25th).
    next_media: i64,
    n: u64,
    run: u64,
    base_wall_us: i64,
    /// Wall time of the last frame sent since this harness opened.
    last_wall: Option<i64>,
    /// Set while `send_temporary` sends (disk pre-buffer frames).
    temporary_keep: Option<i64>,
    /// The board this harness's writer takes pins from (S10); a fresh one at every open, as a
    /// restarted recorder has.
    pins: store::lock::PinBoard,
}

impl Harness {
    fn open(data_dir: &Path, cfg: StorageConfig) -> Harness {
        Self::open_with_clocks(data_dir, cfg, Arc::new(SystemClocks))
    }

    fn open_with_clocks(data_dir: &Path, cfg: StorageConfig, clocks: Arc<dyn Clocks>) -> Harness {
        Self::open_with_board(data_dir, cfg, clocks, store::lock::PinBoard::default())
    }

    /// Opens with a board that may already hold pins, as a recorder whose evidence module
    /// published before the writers spawned.
    fn open_with_board(
        data_dir: &Path,
        cfg: StorageConfig,
        clocks: Arc<dyn Clocks>,
        pins: store::lock::PinBoard,
    ) -> Harness {
        let recorder = store::recorder_uuid(data_dir).unwrap();
        let (handle, join, ready) =
            writer::spawn_with_pins(cfg.clone(), data_dir.to_owned(), recorder, clocks, pins.clone());
        ready.recv().unwrap().unwrap();
        Harness {
            data_dir: data_dir.to_owned(),
            cfg,
            handle,
            join,
            entry: video_entry(),
            next_media: 0,
            n: 0,
            run: 1,
            base_wall_us: SystemClocks.realtime_us() - 3_600_000_000,
            last_wall: None,
            temporary_keep: None,
            pins,
        }
    }

    /// Publishes `pins` (camera `cam`) and waits until the writer honours them (S10).
    fn pin(&self, ranges: &[(i64, i64)]) {
        let version = self.pins.publish(
            ranges
                .iter()
                .map(|&(start_wall_us, end_wall_us)| store::lock::Pin {
                    camera: "cam".into(),
                    start_wall_us,
                    end_wall_us,
                })
                .collect(),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.handle.stats.pins_applied.load(std::sync::atomic::Ordering::Acquire) < version {
            assert!(std::time::Instant::now() < deadline, "the writer did not take pin set {version}");
            self.flush();
        }
    }

    /// Frame content is derived from its number, so exported bytes can be checked exactly.
    fn payload(n: u64, size: usize) -> Bytes {
        let mut v = vec![0u8; size];
        for (i, b) in v.iter_mut().enumerate() {
            *b = (n as u8).wrapping_mul(31).wrapping_add(i as u8);
        }
        Bytes::from(v)
    }

    fn send(&mut self, size: usize) -> i64 {
        let media = self.next_media;
        let wall = self.base_wall_us + media * 1_000_000 / 90_000;
        let f = IngestFrame {
            camera: "cam".into(),
            ingest_run: self.run,
            sample_entry: self.entry.clone(),
            wall_us: wall,
            frame: Frame {
                kind: StreamKind::Video,
                media_time: media,
                key: self.n.is_multiple_of(25),
                data: Self::payload(self.n, size),
            },
            temporary_keep_us: self.temporary_keep,
        };
        // The queue is far larger than what a test sends between flushes; a drop is a test bug.
        self.handle.try_send(f).expect("queue has room");
        self.n += 1;
        self.next_media += 3600;
        self.last_wall = Some(wall);
        wall
    }

    /// Sends a disk pre-buffer frame that expires after `keep_us` unless made permanent.
    fn send_temporary(&mut self, size: usize, keep_us: i64) -> i64 {
        self.temporary_keep = Some(keep_us);
        let w = self.send(size);
        self.temporary_keep = None;
        w
    }

    fn flush(&self) {
        assert!(self.try_flush(), "writer flushed");
    }

    /// Whether a flush made everything durable (false while the storage is away, M5).
    fn try_flush(&self) -> bool {
        self.handle.flush(Duration::from_secs(30))
    }

    /// Simulates kill -9: the writer thread stops without writing what it holds.
    fn crash(self) -> (PathBuf, StorageConfig, i64, u64, i64) {
        edgerec::fault::crash_writer(&self.handle);
        self.join.join().unwrap();
        (self.data_dir, self.cfg, self.next_media, self.n, self.base_wall_us)
    }

    fn reopen(data_dir: &Path, cfg: StorageConfig, next_media: i64, n: u64, base: i64) -> Harness {
        let mut h = Harness::open(data_dir, cfg);
        h.next_media = next_media + 90_000;
        h.n = n - n % 25 + 25;
        h.run += 1;
        h.base_wall_us = base;
        h
    }

    fn newest_indexed_wall(&self) -> i64 {
        store::recordings(&self.cfg.path, "cam", 0, i64::MAX).unwrap().iter().map(|r| r.end_wall_us).max().unwrap_or(0)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Append { frames: usize, size: usize },
    Flush,
    CrashReopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..60, 1000usize..40_000).prop_map(|(frames, size)| Op::Append { frames, size }),
        3 => Just(Op::Flush),
        1 => Just(Op::CrashReopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// Random append / flush / crash-reopen sequences on a 6-segment ring that wraps several times:
    /// the store checks clean after every reopen, and everything flushed before a crash survives.
    #[test]
    fn append_reclaim_crash_reopen(ops in proptest::collection::vec(op(), 5..40)) {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = storage_cfg(tmp.path(), 6);
        let mut h = Harness::open(tmp.path(), cfg);
        let mut flushed_wall = 0i64;
        for o in ops {
            match o {
                Op::Append { frames, size } => {
                    for _ in 0..frames {
                        h.send(size);
                    }
                }
                Op::Flush => {
                    h.flush();
                    if let Some(w) = h.last_wall {
                        flushed_wall = w;
                    }
                }
                Op::CrashReopen => {
                    let (d, c, m, n, b) = h.crash();
                    store::check_invariants(&c, store::recorder_uuid(&d).unwrap()).map_err(TestCaseError::fail)?;
                    h = Harness::reopen(&d, c, m, n, b);
                    if flushed_wall > 0 {
                        prop_assert!(h.newest_indexed_wall() >= flushed_wall, "flushed data lost");
                    }
                }
            }
        }
        h.flush();
        let (d, c, ..) = h.crash();
        store::check_invariants(&c, store::recorder_uuid(&d).unwrap()).map_err(TestCaseError::fail)?;
    }
}

/// Where the next chunk would go: the end of the last chunk in the head segment (the one whose
/// header has the largest first_seq), found by walking the segment's chunks.
fn tail_position(cfg: &StorageConfig) -> (PathBuf, u64) {
    let recs = store::recordings(&cfg.path, "cam", 0, i64::MAX).unwrap();
    assert!(!recs.is_empty());
    // Scan segments for the one whose header has the largest first_seq, then walk its chunks.
    let mut best = (0u64, 0u32);
    for no in 0.. {
        let p = edgerec::store::segment::segment_path(&cfg.path, no);
        if !p.exists() {
            break;
        }
        let f = std::fs::File::open(&p).unwrap();
        let h = edgerec::store::segment::read_header(&f, &cfg.path, no).unwrap();
        if h.first_seq >= best.0 {
            best = (h.first_seq, no);
        }
    }
    let path = edgerec::store::segment::segment_path(&cfg.path, best.1);
    let f = std::fs::File::open(&path).unwrap();
    let mut off = edgerec::store::segment::SEGMENT_HEADER_BYTES;
    let mut hdr = vec![0u8; edgerec::store::chunk::FIXED_HEADER_BYTES];
    loop {
        f.read_exact_at(&mut hdr, off).unwrap();
        match edgerec::store::chunk::peek_total_len(&hdr) {
            Ok(len) => off += len,
            Err(_) => break,
        }
    }
    (path, off)
}

#[test]
fn garbage_and_torn_tails_are_dropped_and_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 6);
    let mut h = Harness::open(tmp.path(), cfg);
    for _ in 0..50 {
        h.send(5000);
    }
    h.flush();
    let before = h.newest_indexed_wall();
    let (d, c, m, n, b) = h.crash();
    let (seg, tail) = tail_position(&c);
    // A torn chunk: the magic and a header claiming more bytes than were written, then zeros.
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    let mut torn = Vec::new();
    torn.extend_from_slice(b"EDCK\x01\x00\x00\x00");
    torn.extend_from_slice(&200u32.to_le_bytes());
    torn.extend_from_slice(&100_000u32.to_le_bytes());
    torn.resize(300, 0xAB);
    f.write_all_at(&torn, tail).unwrap();
    drop(f);
    let recorder = store::recorder_uuid(&d).unwrap();
    store::check_invariants(&c, recorder).unwrap();
    let mut h = Harness::reopen(&d, c.clone(), m, n, b);
    assert_eq!(h.newest_indexed_wall(), before, "recovery indexed nothing from the torn tail");
    for _ in 0..50 {
        h.send(3000);
    }
    h.flush();
    assert!(h.newest_indexed_wall() > before);
    let (d, c, m, n, b) = h.crash();
    // Pure garbage after the tail.
    let (seg, tail) = tail_position(&c);
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().write_all_at(&[0x5Au8; 4096], tail).unwrap();
    store::check_invariants(&c, recorder).unwrap();
    let h = Harness::reopen(&d, c.clone(), m, n, b);
    drop(h.crash());
    store::check_invariants(&c, recorder).unwrap();
}

#[test]
fn a_flipped_byte_in_indexed_media_is_reported_and_never_exported() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 6);
    let mut h = Harness::open(tmp.path(), cfg);
    for _ in 0..100 {
        h.send(4000);
    }
    h.flush();
    let (d, c, ..) = h.crash();
    let recorder = store::recorder_uuid(&d).unwrap();
    let plan = Arc::new(ExportPlan::plan(&c.path, "cam", 0, i64::MAX).unwrap());
    // Damage a byte in the middle of the first segment's media.
    let seg = edgerec::store::segment::segment_path(&c.path, 0);
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&seg).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 100_000).unwrap();
    f.write_all_at(&[b[0] ^ 0xFF], 100_000).unwrap();
    let report = store::check(&c, recorder).unwrap();
    assert_eq!(report.damaged.len(), 1, "{:?}", report.damaged);
    let mut r = plan.reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut pos = 0;
    let err = loop {
        match r.read_at(pos, &mut buf) {
            Ok(0) => panic!("the damaged chunk was served"),
            Ok(n) => pos += n as u64,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::Gone);
}

/// Issue 15 (IM-8): a report's thumbnail is the key frame at or before a sequence's start, read
/// back verified from the export plan.
#[test]
fn the_first_video_sample_of_an_export_is_the_key_frame_before_its_start() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 6);
    let mut h = Harness::open(tmp.path(), cfg);
    let walls: Vec<i64> = (0..60).map(|_| h.send(3000)).collect();
    h.flush();
    let (_d, c, ..) = h.crash();
    // Frame 30 is mid-GOP; frame 25 is the key frame before it (every 25th frame is one).
    let plan = Arc::new(ExportPlan::plan(&c.path, "cam", walls[30], walls[30] + 1).unwrap());
    let (entry, data) = plan.first_video_sample().unwrap();
    assert_eq!(entry.codec(), edgerec::media::Codec::H264);
    assert_eq!(data, Harness::payload(25, 3000).to_vec());
}

#[test]
fn rebuild_from_segments_matches_the_index_after_wrapping() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 5);
    let mut h = Harness::open(tmp.path(), cfg);
    // ~12 MiB through a 5 MiB ring: wraps twice, leaving stale chunks of earlier laps behind.
    for i in 0..600 {
        h.send(20_000);
        if i % 40 == 0 {
            h.flush();
        }
    }
    h.flush();
    let (d, c, ..) = h.crash();
    let recorder = store::recorder_uuid(&d).unwrap();
    store::check_invariants(&c, recorder).unwrap();
    let before = store::recordings(&c.path, "cam", 0, i64::MAX).unwrap();
    let before_plan = ExportPlan::plan(&c.path, "cam", 0, i64::MAX).unwrap();
    store::rebuild_locked(&c.path, recorder).unwrap();
    store::check_invariants(&c, recorder).unwrap();
    let after = store::recordings(&c.path, "cam", 0, i64::MAX).unwrap();
    let after_plan = ExportPlan::plan(&c.path, "cam", 0, i64::MAX).unwrap();
    assert_eq!(before, after, "rebuild resurrected or lost data");
    assert_eq!(before_plan.etag(), after_plan.etag(), "the same export after rebuild");
    // Deleting the index triggers the same rebuild automatically at open (ST-15).
    std::fs::remove_file(c.path.join("index.sqlite3")).unwrap();
    let _ = std::fs::remove_file(c.path.join("index.sqlite3-wal"));
    let _ = std::fs::remove_file(c.path.join("index.sqlite3-shm"));
    let h = Harness::open(&d, c.clone());
    drop(h.crash());
    assert_eq!(store::recordings(&c.path, "cam", 0, i64::MAX).unwrap(), before);
}

/// Issue 11 point 8: the store's identity files are written by the one atomic write
/// (`fsutil::write_atomic`, temp file `.NAME.tmp`), not by a copy of its own: a temp file a crash
/// left beside `recorder.id` is replaced, and nothing else is left in the data dir.
#[test]
fn identity_files_go_through_the_one_atomic_write() {
    let d = tempfile::tempdir().unwrap();
    let stale = edgerec::fsutil::temp_path(&d.path().join("recorder.id"));
    std::fs::write(&stale, b"half a write").unwrap();
    let id = store::recorder_uuid(d.path()).unwrap();
    assert!(!stale.exists(), "the stale temp file of the one atomic write is replaced");
    let names: Vec<String> =
        std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["recorder.id"]);
    assert_eq!(store::recorder_uuid(d.path()).unwrap(), id, "the identity reads back");
}

#[test]
fn storages_of_another_recorder_or_index_are_refused() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let cfg_a = storage_cfg(a.path(), 4);
    let mut h = Harness::open(a.path(), cfg_a.clone());
    h.send(1000);
    h.flush();
    drop(h.crash());
    // The same disk mounted in another box (another data dir = another recorder id).
    let mut cfg_b = cfg_a.clone();
    cfg_b.path = cfg_a.path.clone();
    let rec_b = store::recorder_uuid(b.path()).unwrap();
    let e = store::open_for_write(&cfg_b, b.path(), rec_b).err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
    assert!(e.to_string().contains("belongs to recorder"), "{e}");
    // A segment file from another storage copied in.
    let other = tempfile::tempdir().unwrap();
    let cfg_o = storage_cfg(other.path(), 4);
    drop(Harness::open(other.path(), cfg_o.clone()).crash());
    std::fs::copy(
        edgerec::store::segment::segment_path(&cfg_o.path, 2),
        edgerec::store::segment::segment_path(&cfg_a.path, 2),
    )
    .unwrap();
    let rec_a = store::recorder_uuid(a.path()).unwrap();
    let e = store::open_for_write(&cfg_a, a.path(), rec_a).err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
}

#[test]
fn an_export_whose_chunks_are_reclaimed_midway_ends_with_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 4);
    let mut h = Harness::open(tmp.path(), cfg);
    for _ in 0..100 {
        h.send(20_000);
    }
    h.flush();
    let plan = Arc::new(ExportPlan::plan(&h.cfg.path, "cam", 0, i64::MAX).unwrap());
    let mut r = plan.reader();
    let mut buf = vec![0u8; 4096];
    // Read the header and the first media bytes, then overwrite the whole ring.
    let mut pos = 0u64;
    while pos < 200_000 {
        pos += r.read_at(pos, &mut buf).unwrap() as u64;
    }
    for i in 0..400 {
        h.send(20_000);
        if i % 50 == 0 {
            h.flush();
        }
    }
    h.flush();
    let err = loop {
        match r.read_at(pos, &mut buf) {
            Ok(0) => panic!("served a reclaimed range to the end"),
            Ok(n) => pos += n as u64,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::Gone, "{err}");
    drop(h.crash());
}

/// The writer setup of the export tests: a storage of 6 segments whose camera "cam" has frames
/// `0..n` (frame 0 of 1234 bytes, frame i of 1000 + 7 i, 25 fps, a key frame every 25), flushed.
/// Returns the harness and frame 0's wall time.
fn frames_recorded(dir: &std::path::Path, n: usize) -> (Harness, i64) {
    let mut h = Harness::open(dir, storage_cfg(dir, 6));
    let first_wall = h.send(1234);
    for i in 1..n {
        h.send(1000 + i * 7);
    }
    h.flush();
    (h, first_wall)
}

/// The whole of an export plan's file, read through its reader in pieces of at most `piece` bytes.
fn read_plan(plan: &Arc<ExportPlan>, piece: usize) -> Vec<u8> {
    let mut all = Vec::new();
    let mut r = plan.reader();
    let mut buf = vec![0u8; piece];
    loop {
        let n = r.read_at(all.len() as u64, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    all
}

/// The media bytes of frames `0..n` as [`frames_recorded`] sends them.
fn frames_payload(n: u64) -> Vec<u8> {
    let mut expected = Vec::new();
    for i in 0..n {
        let size = if i == 0 { 1234 } else { 1000 + i as usize * 7 };
        expected.extend_from_slice(&Harness::payload(i, size));
    }
    expected
}

/// Issue 16 (review-16 H2, IC-5): a later run that starts before the earlier run's end (a pull
/// mirror writing again, after a restart, the GOP its store held a part of) ends the earlier run
/// at the later run's first frame: one export holds each frame once, in order, and runs to the
/// end of its range. The second run's wall times are 3 ms later, as two stores' wall times of one
/// frame may differ; and (review s29, tests/pull_faults.rs) 30 ms earlier or later, more than half
/// a frame interval: the runs share the media timeline, so media times tell the repeats.
#[test]
fn an_export_across_two_overlapping_runs_holds_each_frame_once_in_order() {
    for shift_us in [3_000, -30_000, 30_000] {
        let tmp = tempfile::tempdir().unwrap();
        // Frames 0..=87: the GOP from key frame 75 is held in part (75..=87).
        let (mut h, first_wall) = frames_recorded(tmp.path(), 88);
        // The same frames again from key frame 75, as a new run (review-16 D2: the setup above is
        // the one of the test below).
        h.run += 1;
        h.n = 75;
        h.next_media = 75 * 3600;
        h.base_wall_us += shift_us;
        for i in 75..200 {
            h.send(1000 + i * 7);
        }
        h.flush();
        let runs = store::recordings(&h.cfg.path, "cam", 0, i64::MAX).unwrap();
        assert!(runs.len() >= 2 && runs[1].start_wall_us < runs[0].end_wall_us, "two overlapping runs: {runs:?}");
        // (Frame 175 of an earlier second run is inside 7 s: the range ends before it.)
        let end = first_wall + 7_000_000 + shift_us.min(0);
        let plan = Arc::new(ExportPlan::plan(&h.cfg.path, "cam", first_wall, end).unwrap());
        assert_eq!(plan.video_frames, 175, "7 s at 25 fps, each frame once (shift {shift_us} µs)");
        assert_eq!(plan.gaps_us(), Vec::<(i64, i64)>::new(), "no gap at the cut (shift {shift_us} µs)");
        assert!(
            plan.end_wall_us >= first_wall + 6_990_000 + shift_us.min(0),
            "not cut short: ends at {} (shift {shift_us} µs)",
            plan.end_wall_us - first_wall
        );
        let all = read_plan(&plan, 7777);
        assert!(all.ends_with(&frames_payload(175)), "mdat holds frames 0..175 once each, in order ({shift_us} µs)");
        drop(h.crash());
    }
}

/// Sends frames `range` of [`frames_recorded`]'s numbering (same bytes, media and wall times) as
/// a new writer run, and flushes: what a pull mirror writes when it retrieves a stretch of a
/// remote's recording again or out of time order (issue 16: a refill, review-16 M5; a manual
/// range, IC-13; a restart, review-16 H2). Frames in `skip` are left out (a hole in the run that
/// the writer does not break it at, under `MAX_MEDIA_JUMP_US`).
fn send_run(h: &mut Harness, range: std::ops::Range<u64>, skip: std::ops::Range<u64>) {
    h.run += 1;
    for i in range.filter(|i| !skip.contains(i)) {
        h.n = i;
        h.next_media = i as i64 * 3600;
        h.send(if i == 0 { 1234 } else { 1000 + i as usize * 7 });
    }
    h.flush();
}

/// Asserts that one export of frames `0..n` (from frame 0's wall time `first_wall`) holds each
/// frame once, in time order, with no gap, its mdat being the frames' bytes in order; and that the
/// retrieval frame stream (`store::retrieve`, which a central mirrors) of the range holds the same
/// frames once each, in time order, with their media times (issue 16, IC-5, ST-17).
fn assert_export_holds_frames_once_in_order(h: &Harness, first_wall: i64, n: u64, case: &str) {
    let to = first_wall + n as i64 * 40_000;
    let plan = Arc::new(ExportPlan::plan(&h.cfg.path, "cam", first_wall, to).unwrap());
    assert_eq!(plan.video_frames as u64, n, "{case}: each frame once");
    assert_eq!(plan.gaps_us(), Vec::<(i64, i64)>::new(), "{case}: no gap");
    assert_eq!(plan.start_wall_us, first_wall, "{case}");
    assert!(plan.end_wall_us >= to - 1_000, "{case}: not cut short: ends at {}", plan.end_wall_us - first_wall);
    let all = read_plan(&plan, 7777);
    assert!(all.ends_with(&frames_payload(n)), "{case}: mdat holds frames 0..{n} once each, in order");

    let tiers = vec![store::tier::StorageTiers::ring_only(&h.cfg.path)];
    let p = Arc::new(RetrievePlan::plan(tiers, "cam", first_wall, to, Align::Key).unwrap());
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut p.body(0, p.len()), &mut bytes).unwrap();
    let mut d = FrameStreamDecoder::new();
    d.push(&bytes).unwrap();
    let mut frames = Vec::new();
    while let Some(r) = d.next().unwrap() {
        if let WireRecord::Frame(f) = r {
            frames.push(f);
        }
    }
    assert!(d.ended(), "{case}: the frame stream ends with End");
    let got: Vec<(i64, i64)> = frames.iter().map(|f| (f.media_time, f.wall_us)).collect();
    let want: Vec<(i64, i64)> = (0..n as i64).map(|i| (i * 3600, first_wall + i * 40_000)).collect();
    assert_eq!(got, want, "{case}: the frame stream holds frames 0..{n} once each, in time order");
    for (i, f) in frames.iter().enumerate() {
        let size = if i == 0 { 1234 } else { 1000 + i * 7 };
        assert_eq!(f.data, Harness::payload(i as u64, size), "{case}: frame {i}'s bytes");
        assert_eq!(f.key, i % 25 == 0, "{case}: frame {i}'s key flag");
    }
    assert_eq!(p.covered_us, plan.covered_us, "{case}: the stream covers what the export covers");
}

/// Issue 16 (IC-5, ST-17, review-16 M5): a refill written last, of a middle stretch, on the
/// remote's media timeline: run A holds frames 0..100 (0–4 s), the GOP 100..125 is missing, run B
/// continues with 125..250, then run C retrieves again from key frame 75 to 137: it repeats A's
/// last GOP and B's first frames and fills the GOP A and B lack. A later run supersedes only
/// within its own span: the export holds 0..250 once each (before, it showed 0..137).
#[test]
fn an_export_holds_a_refill_written_after_later_runs_once_in_time_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, first_wall) = frames_recorded(tmp.path(), 100);
    send_run(&mut h, 125..250, 0..0);
    send_run(&mut h, 75..138, 0..0);
    let runs = store::recordings(&h.cfg.path, "cam", 0, i64::MAX).unwrap();
    // The index lists each run with its own range, whatever order they were written in.
    let spans: Vec<(i64, i64)> = runs.iter().map(|r| (r.start_wall_us, r.end_wall_us)).collect();
    let at = |i: i64| first_wall + i * 40_000;
    assert_eq!(spans, [(at(0), at(100)), (at(75), at(138)), (at(125), at(250))], "three runs: {runs:?}");
    assert_export_holds_frames_once_in_order(&h, first_wall, 250, "refill");
    drop(h.crash());
}

/// Issue 16 (IC-5): the refill of the test above on another media timeline (media times an hour
/// apart, walls alike: a clock step, not a mirror's repeat), so wall times decide what it
/// supersedes. Its span takes A's 75..100 and B's 125..138; B's P frames after it refer to
/// frames of B the export no longer holds, so B resumes at its next key frame (150) and the
/// frames between are a gap, never frames that do not decode.
#[test]
fn an_export_resumes_an_earlier_run_at_a_key_frame_after_a_later_run_on_another_timeline() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, first_wall) = frames_recorded(tmp.path(), 100);
    send_run(&mut h, 125..250, 0..0);
    let hour_us = 3_600_000_000;
    h.base_wall_us -= hour_us;
    h.run += 1;
    for i in 75..138u64 {
        h.n = i;
        h.next_media = i as i64 * 3600 + hour_us * 90_000 / 1_000_000;
        h.send(1000 + i as usize * 7);
    }
    h.flush();
    h.base_wall_us += hour_us;
    let at = |i: i64| first_wall + i * 40_000;
    let plan = Arc::new(ExportPlan::plan(&h.cfg.path, "cam", first_wall, at(250)).unwrap());
    assert_eq!(plan.video_frames, 138 + 100, "0..138 and 150..250, each once");
    assert_eq!(plan.gaps_us(), [(at(138), at(150))], "B's frames up to its key frame are a gap");
    let all = read_plan(&plan, 7777);
    let mut want = frames_payload(138);
    want.extend_from_slice(&frames_payload(250)[frames_payload(150).len()..]);
    assert!(all.ends_with(&want), "mdat holds frames 0..138 and 150..250 once each, in order");
    drop(h.crash());
}

/// Issue 16 (IC-13, IC-5): a manual range retrieved first (frames 250..375, 10–15 s), then the
/// continuous mirror writes the earlier stretch 0..275, overlapping the manual range by one GOP:
/// the later-written run lies before the earlier one in time. The export holds 0..375 once each,
/// in time order (before, it showed 0..275).
#[test]
fn an_export_holds_a_run_written_before_an_earlier_stretch_once_in_time_order() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Harness::open(tmp.path(), storage_cfg(tmp.path(), 6));
    let first_wall = h.base_wall_us;
    send_run(&mut h, 250..375, 0..0);
    send_run(&mut h, 0..275, 0..0);
    assert_export_holds_frames_once_in_order(&h, first_wall, 375, "manual range first");
    // And where the continuous stretch ends exactly where the manual range begins.
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Harness::open(tmp.path(), storage_cfg(tmp.path(), 6));
    let first_wall = h.base_wall_us;
    send_run(&mut h, 250..375, 0..0);
    send_run(&mut h, 0..250, 0..0);
    assert_export_holds_frames_once_in_order(&h, first_wall, 375, "manual range first, touching");
    drop(h.crash());
}

/// Issue 16 (IC-5): a later run with a 3 s hole inside (frames 100..175 missing: under
/// `MAX_MEDIA_JUMP_US`, so the writer keeps one run) over an earlier run that holds the hole's
/// frames: the later run supersedes only within each contiguous stretch of it, so the earlier
/// run's frames in its hole stay (before, the export lacked them and the frame before the hole
/// lasted 3 s).
#[test]
fn an_export_keeps_the_earlier_frames_in_a_hole_of_a_later_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, first_wall) = frames_recorded(tmp.path(), 250);
    send_run(&mut h, 50..225, 100..175);
    let runs = store::recordings(&h.cfg.path, "cam", 0, i64::MAX).unwrap();
    assert_eq!(runs.len(), 2, "the hole does not break the later run: {runs:?}");
    assert_export_holds_frames_once_in_order(&h, first_wall, 250, "a hole in the later run");
    drop(h.crash());
}

/// Review s30 M2 (issue 16, IC-5): a later run on the remote's media timeline with a hole of 10
/// frames (0.4 s, under the 1 s stretch floor: a writer loss the refill did not repair) over an
/// earlier run that holds them: on one media timeline an earlier frame goes only where the later
/// run holds its media time, so the hole's frames stay, and the later run's P frames after the
/// hole follow the earlier run's same frames. Before, the earlier frames in the hole were lost
/// (240 frames). The hole starts at a key frame (100) and between key frames (105).
#[test]
fn an_export_keeps_the_earlier_frames_in_a_short_hole_of_a_later_run_m2() {
    for hole in [100..110, 105..115] {
        let tmp = tempfile::tempdir().unwrap();
        let (mut h, first_wall) = frames_recorded(tmp.path(), 250);
        send_run(&mut h, 50..225, hole.clone());
        let runs = store::recordings(&h.cfg.path, "cam", 0, i64::MAX).unwrap();
        assert_eq!(runs.len(), 2, "the hole does not break the later run: {runs:?}");
        assert_export_holds_frames_once_in_order(
            &h,
            first_wall,
            250,
            &format!("a 0.4 s hole {hole:?} in the later run"),
        );
        drop(h.crash());
    }
}

/// Review s31 X1 (issue 16, IC-5): a later run on the same media timeline that holds only some
/// frames of the stretch (here only its key frames, as a remote that kept only key frames there
/// would send) supersedes just those: the earlier run's P frames stay, each after its own key
/// frame (the later run's copy of it), so every frame plays once, in order. A tolerance of half
/// the sparse run's interval (half a GOP) took the P frames around each key frame.
#[test]
fn an_export_keeps_the_earlier_p_frames_a_sparse_later_run_lacks_x1() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, first_wall) = frames_recorded(tmp.path(), 250);
    h.run += 1;
    for i in (50..225).step_by(25) {
        h.n = i;
        h.next_media = i as i64 * 3600;
        h.send(1000 + i as usize * 7);
    }
    h.flush();
    let runs = store::recordings(&h.cfg.path, "cam", 0, i64::MAX).unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_export_holds_frames_once_in_order(&h, first_wall, 250, "a later run of key frames only");
    drop(h.crash());
}

/// An `mp4a` sample entry at 48 kHz (the store does not decode it).
fn audio_entry() -> Arc<SampleEntry> {
    let mut b = vec![0u8; 36];
    b[..4].copy_from_slice(&36u32.to_be_bytes());
    b[4..8].copy_from_slice(b"mp4a");
    Arc::new(SampleEntry::new(b, 48_000).unwrap())
}

/// Frame `n` of a stream as [`send_av_run`] sends it: wall time, media time, key flag, bytes
/// (video as [`frames_recorded`]'s, audio 48 kHz AAC frames of 1024 samples, about 21.3 ms).
fn av_frame(base_wall_us: i64, kind: StreamKind, n: i64) -> (i64, i64, bool, Bytes) {
    match kind {
        StreamKind::Video => {
            let size = if n == 0 { 1234 } else { 1000 + n as usize * 7 };
            (base_wall_us + n * 40_000, n * 3600, n % 25 == 0, Harness::payload(n as u64, size))
        }
        StreamKind::Audio => {
            let data: Bytes = (0..40 + n % 5).map(|i| (i as u8).wrapping_mul(3) ^ (n as u8)).collect();
            (base_wall_us + n * 1024 * 1_000_000 / 48_000, n * 1024, true, data)
        }
    }
}

/// Sends video frames `video` but `video_skip` and audio frames `audio` but `audio_skip`
/// (`av_frame`) as writer run `run`, in wall order, and flushes: a pull mirror's run of a camera
/// with audio (issue 16).
fn send_av_run(
    h: &Harness,
    run: u64,
    (video, video_skip): (std::ops::Range<i64>, std::ops::Range<i64>),
    (audio, audio_skip): (std::ops::Range<i64>, std::ops::Range<i64>),
) {
    let audio_entry = audio_entry();
    let mut frames: Vec<IngestFrame> = Vec::new();
    for (kind, ns, skip, entry) in
        [(StreamKind::Video, video, video_skip, &h.entry), (StreamKind::Audio, audio, audio_skip, &audio_entry)]
    {
        for n in ns.filter(|n| !skip.contains(n)) {
            let (wall_us, media_time, key, data) = av_frame(h.base_wall_us, kind, n);
            frames.push(IngestFrame {
                camera: "cam".into(),
                ingest_run: run,
                sample_entry: entry.clone(),
                wall_us,
                frame: Frame { kind, media_time, key, data },
                temporary_keep_us: None,
            });
        }
    }
    frames.sort_by_key(|f| (f.wall_us, f.frame.kind));
    for (i, f) in frames.into_iter().enumerate() {
        h.handle.try_send(f).expect("queue has room");
        if i % 200 == 199 {
            h.flush();
        }
    }
    h.flush();
}

/// Review s30 M2 (issue 16, IC-5), with audio: run 1 holds 10 s of video and 48 kHz AAC; run 2,
/// written later on the same media timelines, holds 2–9 s again but for a 0.4 s hole in both
/// streams (video frames 105..115, audio frames 197..216): the export and the frame stream hold
/// each frame of each stream once, in time order, the hole's frames from run 1. Before, the
/// frames of both streams in the hole were lost (the hole is under the 1 s stretch floor).
#[test]
fn an_export_keeps_the_earlier_video_and_audio_in_a_short_hole_of_a_later_run_m2() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Harness::open(tmp.path(), storage_cfg(tmp.path(), 6));
    let base = h.base_wall_us;
    send_av_run(&h, 1, (0..250, 0..0), (0..470, 0..0));
    send_av_run(&h, 2, (50..225, 105..115), (94..422, 197..216));
    let runs = store::recordings(&h.cfg.path, "cam", 0, i64::MAX).unwrap();
    assert_eq!(runs.len(), 2, "the hole does not break the later run: {runs:?}");
    let to = base + 10_000_000;
    let plan = Arc::new(ExportPlan::plan(&h.cfg.path, "cam", base, to).unwrap());
    // Audio frames from `base` up to `to`: 0..=468.
    let audio_n = (0..470).filter(|&n| av_frame(base, StreamKind::Audio, n).0 < to).count();
    assert_eq!((plan.video_frames, plan.audio_frames), (250, audio_n), "each frame once");
    assert_eq!(plan.gaps_us(), Vec::<(i64, i64)>::new(), "no gap");
    assert!(plan.end_wall_us >= to - 1_000, "not cut short: ends at {}", plan.end_wall_us - base);

    let tiers = vec![store::tier::StorageTiers::ring_only(&h.cfg.path)];
    let p = Arc::new(RetrievePlan::plan(tiers, "cam", base, to, Align::Key).unwrap());
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut p.body(0, p.len()), &mut bytes).unwrap();
    let mut d = FrameStreamDecoder::new();
    d.push(&bytes).unwrap();
    let mut got: Vec<(StreamKind, i64, i64, bool, Bytes)> = Vec::new();
    while let Some(r) = d.next().unwrap() {
        if let WireRecord::Frame(f) = r {
            got.push((f.stream, f.wall_us, f.media_time, f.key, f.data));
        }
    }
    assert!(d.ended(), "the frame stream ends with End");
    for (kind, count) in [(StreamKind::Video, 250), (StreamKind::Audio, audio_n as i64)] {
        let got: Vec<(i64, i64, bool, Bytes)> =
            got.iter().filter(|f| f.0 == kind).map(|f| (f.1, f.2, f.3, f.4.clone())).collect();
        let want: Vec<(i64, i64, bool, Bytes)> = (0..count).map(|n| av_frame(base, kind, n)).collect();
        assert_eq!(got.len(), want.len(), "{kind:?}: each frame once");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            // The store derives a frame's wall time from its chunk's start and media offset, so
            // an audio frame's (1024 / 48 kHz s apart, not whole µs) may round 1 µs otherwise.
            assert!(
                (g.0 - w.0).abs() <= 1 && (g.1, g.2, &g.3) == (w.1, w.2, &w.3),
                "{kind:?} frame {i}: {:?}",
                (g.0 - w.0, g.1, w.1)
            );
        }
    }
    drop(h.crash());
}

/// Review s30 L3 (issue 16, IC-5): the sample-entry cut is in time order. Run A (entry 1) holds
/// frames 0..100 but for a 0.4 s hole (50..60), run B (entry 2: the camera's parameters changed)
/// continues with 100..200, then a refill C (entry 1) of the hole is written last. The export
/// keeps one entry, the first run's in time, and stops at the first frame of another entry in
/// time order (100): it holds 0..100 once each, the refill included. Before, the cut was at the
/// first chunk of another entry in seq order (B), so the refill written after it was left out.
#[test]
fn an_export_stops_at_a_parameter_change_in_time_order_and_keeps_a_refill_written_after_it_l3() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Harness::open(tmp.path(), storage_cfg(tmp.path(), 6));
    let first_wall = h.base_wall_us;
    let entry_1 = h.entry.clone();
    let mut b = entry_1.box_bytes().to_vec();
    b[32..34].copy_from_slice(&1280u16.to_be_bytes());
    let entry_2 = Arc::new(SampleEntry::new(b, 90_000).unwrap());
    send_run(&mut h, 0..100, 50..60);
    h.entry = entry_2;
    send_run(&mut h, 100..200, 0..0);
    h.entry = entry_1;
    send_run(&mut h, 50..60, 0..0);
    let at = |i: i64| first_wall + i * 40_000;
    let plan = Arc::new(ExportPlan::plan(&h.cfg.path, "cam", first_wall, at(200)).unwrap());
    assert_eq!(plan.video_frames, 100, "frames 0..100 once each, the refill's included");
    assert_eq!(plan.gaps_us(), Vec::<(i64, i64)>::new(), "no gap");
    assert_eq!(plan.end_wall_us, at(100), "stops where the parameters change");
    let all = read_plan(&plan, 7777);
    assert!(all.ends_with(&frames_payload(100)), "mdat holds frames 0..100 once each, in order");
    drop(h.crash());
}

#[test]
fn exported_media_bytes_are_exactly_the_recorded_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let (h, first_wall) = frames_recorded(tmp.path(), 200);
    let plan = Arc::new(ExportPlan::plan(&h.cfg.path, "cam", first_wall, first_wall + 4_000_000).unwrap());
    assert_eq!(plan.video_frames, 100, "4 s at 25 fps");
    let all = read_plan(&plan, 7777);
    assert_eq!(all.len() as u64, plan.len());
    assert!(all.ends_with(&frames_payload(100)), "mdat holds the frames in order");
    drop(h.crash());
}

#[test]
fn storage_that_disappears_stops_recording_and_resumes_when_back() {
    let tmp = tempfile::tempdir().unwrap();
    // The writer retries an unavailable storage on its ticks: a short interval here.
    let cfg = StorageConfig { sync_interval: Duration::from_millis(50), ..storage_cfg(tmp.path(), 4) };
    let mut h = Harness::open(tmp.path(), cfg.clone());
    h.send(1000);
    h.flush();
    assert!(h.handle.stats.available.load(std::sync::atomic::Ordering::Relaxed));
    let moved = tmp.path().join("unplugged");
    std::fs::rename(&cfg.path, &moved).unwrap();
    assert!(!h.try_flush(), "review-16 M5: a flush that finds the storage gone says so");
    assert!(!h.handle.stats.available.load(std::sync::atomic::Ordering::Relaxed), "FL-1: unavailable");
    let err = h.handle.stats.last_error.lock().unwrap().clone().unwrap();
    assert!(err.contains("is gone"), "{err}");
    // While it is away, frames are dropped and counted, not queued forever.
    let dropped = h.send(1000);
    assert!(!h.try_flush());
    assert!(h.handle.stats.frames_dropped_unavailable.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    // Review-16 M5: told per camera, with the dropped frame's time (everything else was synced:
    // nothing of unknown time, review s31 W3).
    let lost = h.handle.stats.take_losses("cam").expect("losses told");
    assert_eq!(
        (lost.frames, lost.first_wall_us, lost.last_wall_us, lost.unknown),
        (1, Some(dropped), Some(dropped), false),
        "{lost:?}"
    );
    // An empty directory at the path (the bare mount point) is not mistaken for a new storage.
    std::fs::create_dir(&cfg.path).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!h.try_flush());
    assert!(!h.handle.stats.available.load(std::sync::atomic::Ordering::Relaxed));
    std::fs::remove_dir(&cfg.path).unwrap();
    std::fs::rename(&moved, &cfg.path).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !h.handle.stats.available.load(std::sync::atomic::Ordering::Relaxed) {
        assert!(std::time::Instant::now() < deadline, "storage did not come back");
        h.try_flush();
    }
    h.send(1000);
    h.flush();
    drop(h.crash());
    store::check_invariants(&cfg, store::recorder_uuid(tmp.path()).unwrap()).unwrap();
}

/// Review-16 M5 (`edgerec pull` counts a window retrieved only when every frame of it was
/// stored): the writer tells, per camera and once, each frame it did not keep and when (here
/// the frames of a run that starts without a key frame); a frame larger than a chunk may be is
/// counted apart, as it can never be stored.
#[test]
fn frames_the_writer_does_not_keep_are_told_per_camera_m5() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Harness::open(tmp.path(), storage_cfg(tmp.path(), 4));
    for _ in 0..30 {
        h.send(1000);
    }
    h.flush();
    assert_eq!(h.handle.stats.take_losses("cam"), None, "nothing lost");
    // A new run from frame 30, a key frame every 25th: 30..=49 cannot start it.
    h.run += 1;
    let first = h.send(1000);
    let last = (31..50).map(|_| h.send(1000)).last().unwrap();
    h.send(1000);
    h.flush();
    let lost = h.handle.stats.take_losses("cam").expect("losses told");
    assert_eq!(
        (lost.frames, lost.first_wall_us, lost.last_wall_us, lost.unknown, lost.oversize),
        (20, Some(first), Some(last), false, 0),
        "{lost:?}"
    );
    assert!(lost.reason.contains("key frame"), "{lost:?}");
    assert_eq!(h.handle.stats.take_losses("cam"), None, "told once");
    h.send(300_000);
    h.flush();
    let lost = h.handle.stats.take_losses("cam").expect("the oversize frame told");
    assert_eq!((lost.frames, lost.oversize), (0, 1), "{lost:?}");
}

#[test]
fn an_interrupted_storage_creation_is_redone_at_the_next_open() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 4);
    drop(Harness::open(tmp.path(), cfg.clone()).crash());
    // What a crash during step 1 of "create storage" leaves: segments, one without a header,
    // and neither an index nor the uuid file.
    std::fs::remove_file(cfg.path.join("index.sqlite3")).unwrap();
    let _ = std::fs::remove_file(cfg.path.join("index.sqlite3-wal"));
    let _ = std::fs::remove_file(cfg.path.join("index.sqlite3-shm"));
    std::fs::remove_file(tmp.path().join("storage-t.uuid")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(edgerec::store::segment::segment_path(&cfg.path, 3))
        .unwrap()
        .set_len(0)
        .unwrap();
    let mut h = Harness::open(tmp.path(), cfg.clone());
    h.send(1000);
    h.flush();
    drop(h.crash());
    store::check_invariants(&cfg, store::recorder_uuid(tmp.path()).unwrap()).unwrap();
}

#[test]
fn rebuild_skips_a_damaged_chunk_and_keeps_the_ones_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 6);
    let mut h = Harness::open(tmp.path(), cfg);
    for _ in 0..10 {
        for _ in 0..10 {
            h.send(2000);
        }
        h.flush();
    }
    let (d, c, ..) = h.crash();
    let recorder = store::recorder_uuid(&d).unwrap();
    let full = ExportPlan::plan(&c.path, "cam", 0, i64::MAX).unwrap().video_frames;
    assert_eq!(full, 100);
    // Damage the payload of a chunk in the middle of segment 0 (each flush made a ~20 KB chunk).
    let seg = edgerec::store::segment::segment_path(&c.path, 0);
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&seg).unwrap();
    f.write_all_at(&[0xEE; 16], 4096 + 5 * 20_000).unwrap();
    assert_eq!(store::check(&c, recorder).unwrap().damaged.len(), 1);
    store::rebuild_locked(&c.path, recorder).unwrap();
    store::check_invariants(&c, recorder).unwrap();
    let recs = store::recordings(&c.path, "cam", 0, i64::MAX).unwrap();
    assert_eq!(recs.len(), 1, "one run, with a hole");
    let conn_frames: usize = {
        // Frames still exportable: everything but the damaged chunk's 10 frames.
        let plan = ExportPlan::plan(&c.path, "cam", 0, i64::MAX).unwrap();
        plan.video_frames
    };
    assert_eq!(conn_frames, 90);
}

/// REC-2/REC-3 disk pre-buffer in the store: temporary chunks are invisible to readers, a
/// recording start makes them permanent from the key frame at or before the requested time, and
/// temporary data older than the pre-buffer length is unindexed.
#[test]
fn disk_prebuffer_is_invisible_until_made_permanent_and_expires_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 6);
    let mut h = Harness::open(tmp.path(), cfg);
    h.base_wall_us = SystemClocks.realtime_us() - 4_000_000;
    let mut walls = Vec::new();
    for i in 0..100 {
        walls.push(h.send_temporary(2000, 60_000_000));
        if i % 10 == 9 {
            h.flush(); // one chunk per 10 frames
        }
    }
    let counts = |path: &Path| -> (i64, i64) {
        let c = rusqlite::Connection::open_with_flags(
            path.join("index.sqlite3"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        c.query_row("SELECT COUNT(*), COALESCE(SUM(temporary), 0) FROM chunk", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
    };
    assert_eq!(counts(&h.cfg.path), (10, 10), "ten temporary chunks");
    assert!(store::recordings(&h.cfg.path, "cam", 0, i64::MAX).unwrap().is_empty(), "temporary is not a recording");
    // Frame 60 is not a key frame; the key frame at or before it is frame 50 (chunk 5).
    h.handle.make_permanent(&"cam".into(), walls[60]);
    h.flush();
    assert_eq!(counts(&h.cfg.path), (10, 5), "chunks 5..9 permanent, 0..4 still temporary");
    let recs = store::recordings(&h.cfg.path, "cam", 0, i64::MAX).unwrap();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].start_wall_us, walls[50], "starts on the key frame before the request");
    let plan = ExportPlan::plan(&h.cfg.path, "cam", walls[60], walls[99] + 1).unwrap();
    assert_eq!(plan.video_frames, 50, "exports from key frame 50");
    // The camera's pre-buffer shrinks to 1 s: its temporary data, 4 s old, expires at the next tick.
    h.send_temporary(2000, 1_000_000);
    h.flush();
    let (n, temporary) = counts(&h.cfg.path);
    assert_eq!(temporary, 1, "only the newest temporary chunk is left ({n} chunks)");
    assert_eq!(n, 6);
    let (d, c, ..) = h.crash();
    store::check_invariants(&c, store::recorder_uuid(&d).unwrap()).unwrap();
}

/// A recording start of one camera never makes another camera's disk pre-buffer permanent, while
/// both cameras' frames are in flight in the writer. (The writer code also filters its
/// written-but-unindexed chunks by camera; `tests/prebuffer.rs` caught that path end to end.)
/// The writer is held while the frames and the start are queued, so the start reaches the writer
/// before any of the frames it covers: those frames still become the recording (REC-2; CI once
/// saw the camera's whole pre-roll left temporary when the writer was slow).
#[test]
fn making_one_cameras_prebuffer_permanent_leaves_the_others_temporary() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 6);
    let mut h = Harness::open(tmp.path(), cfg);
    h.base_wall_us = SystemClocks.realtime_us() - 2_000_000;
    edgerec::fault::stall_writer(&h.handle, Duration::from_secs(1));
    let mut other = h.entry.clone();
    other = Arc::new(SampleEntry::new(other.box_bytes().to_vec(), 90_000).unwrap());
    for i in 0..50u64 {
        let wall = h.send_temporary(2000, 60_000_000);
        // The same frames for a second camera, interleaved, also temporary.
        let f = IngestFrame {
            camera: "other".into(),
            ingest_run: 1,
            sample_entry: other.clone(),
            wall_us: wall,
            frame: Frame {
                kind: StreamKind::Video,
                media_time: i as i64 * 3600,
                key: i % 25 == 0,
                data: Harness::payload(i, 2000),
            },
            temporary_keep_us: Some(60_000_000),
        };
        h.handle.try_send(f).unwrap();
    }
    // Then the other camera records: its next frame is permanent.
    let last_wall = h.base_wall_us + 50 * 40_000;
    let f = IngestFrame {
        camera: "other".into(),
        ingest_run: 1,
        sample_entry: other.clone(),
        wall_us: last_wall,
        frame: Frame { kind: StreamKind::Video, media_time: 50 * 3600, key: false, data: Harness::payload(50, 2000) },
        temporary_keep_us: None,
    };
    h.handle.try_send(f).unwrap();
    h.handle.make_permanent(&"cam".into(), h.base_wall_us);
    h.flush();
    let recs = store::recordings(&h.cfg.path, "cam", 0, i64::MAX).unwrap();
    assert_eq!(recs.len(), 1, "the frames queued before the start are the recording: {recs:?}");
    assert_eq!(recs[0].start_wall_us, h.base_wall_us, "from the first key frame");
    let other_recs = store::recordings(&h.cfg.path, "other", 0, i64::MAX).unwrap();
    assert_eq!(other_recs.len(), 1, "{other_recs:?}");
    assert_eq!(other_recs[0].start_wall_us, last_wall, "the other camera's pre-buffer stayed temporary");
    drop(h.crash());
}

/// REC-3 across a crash (S6): disk pre-buffer that expired at the head's tail stays expired when
/// recovery rescans the tail, and a written but not yet indexed pre-buffer chunk comes back
/// temporary, never as a recording.
#[test]
fn recovery_never_turns_disk_prebuffer_into_a_recording() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 6);
    let mut h = Harness::open(tmp.path(), cfg);
    h.base_wall_us = SystemClocks.realtime_us() - 10_000_000;
    for i in 0..50 {
        h.send_temporary(2000, 60_000_000);
        if i % 10 == 9 {
            h.flush();
        }
    }
    // The pre-buffer shrinks to 1 ms: every chunk, up to the head's last one, expires.
    h.send_temporary(2000, 1_000);
    h.flush();
    let index = h.cfg.path.join("index.sqlite3");
    let count = |sql: &str| -> i64 {
        let c = rusqlite::Connection::open(&index).unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    };
    assert_eq!(count("SELECT COUNT(*) FROM chunk"), 0, "everything expired");
    let (d, c, media, n, base) = h.crash();
    let mut h = Harness::reopen(&d, c.clone(), media, n, base);
    assert_eq!(count("SELECT COUNT(*) FROM chunk"), 0, "recovery left the expired chunks expired");
    assert!(store::recordings(&c.path, "cam", 0, i64::MAX).unwrap().is_empty());

    // Now three chunks written as pre-buffer whose rows are lost, as after a crash between the
    // fdatasync and the index commit (the procedure table's append step 3).
    for i in 0..30 {
        h.send_temporary(2000, 60_000_000);
        if i % 10 == 9 {
            h.flush();
        }
    }
    let (d, c, media, n, base) = h.crash();
    {
        let conn = rusqlite::Connection::open(&index).unwrap();
        let top: i64 = conn.query_row("SELECT MAX(seq) FROM chunk", [], |r| r.get(0)).unwrap();
        conn.execute("DELETE FROM chunk", []).unwrap();
        conn.execute("UPDATE meta SET value = ?1 WHERE key = 'indexed_through_seq'", [(top - 3).to_string()]).unwrap();
    }
    let h = Harness::reopen(&d, c.clone(), media, n, base);
    assert_eq!(
        (count("SELECT COUNT(*) FROM chunk"), count("SELECT COALESCE(SUM(temporary), 0) FROM chunk")),
        (3, 3),
        "recovered as temporary"
    );
    assert!(store::recordings(&c.path, "cam", 0, i64::MAX).unwrap().is_empty());
    let (d, c, ..) = h.crash();
    store::check_invariants(&c, store::recorder_uuid(&d).unwrap()).unwrap();
}

/// ST-8 (issue 10, tests asked for): once recordings are older than the retention time they are
/// no longer listed or exportable, while younger ones stay. Retention is whole days (1..365000),
/// so the writer's clock is moved forward instead of waiting.
#[test]
fn recordings_older_than_the_retention_time_are_no_longer_listed_or_exported() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = StorageConfig { retention: Duration::from_secs(86_400), ..storage_cfg(tmp.path(), 8) };
    // The system's clocks, whose wall clock the test moves forward: what the writer sees when
    // days pass.
    let clocks = SimulatedClocks::following_system();
    let mut h = Harness::open_with_clocks(tmp.path(), cfg.clone(), Arc::new(clocks.clone()));
    // Two runs of 2 s: one 3 h ago, one now.
    h.base_wall_us = SystemClocks.realtime_us() - 3 * 3_600_000_000;
    for _ in 0..50 {
        h.send(2000);
    }
    let now = SystemClocks.realtime_us();
    h.run += 1;
    h.base_wall_us = now - h.next_media * 1_000_000 / 90_000;
    let young_start = h.send(2000);
    for _ in 0..49 {
        h.send(2000);
    }
    h.flush();
    let listed = |h: &Harness| store::recordings(&h.cfg.path, "cam", 0, i64::MAX).unwrap();
    assert_eq!(listed(&h).len(), 2, "{:?}", listed(&h));
    let old = listed(&h)[0].clone();
    ExportPlan::plan(&cfg.path, "cam", old.start_wall_us, old.end_wall_us).unwrap();

    // A day minus 2 h later the first run is older than the retention, the second is not.
    clocks.step_realtime_us(86_400_000_000 - 2 * 3_600_000_000);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while listed(&h).len() > 1 {
        assert!(std::time::Instant::now() < deadline, "retention did not run: {:?}", listed(&h));
        h.flush();
    }
    let left = listed(&h);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].start_wall_us, young_start, "the young recording stays: {left:?}");
    let e = ExportPlan::plan(&cfg.path, "cam", old.start_wall_us, old.end_wall_us).err().expect("expired");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    ExportPlan::plan(&cfg.path, "cam", left[0].start_wall_us, left[0].end_wall_us).unwrap();
    drop(h.crash());
    store::check_invariants(&cfg, store::recorder_uuid(tmp.path()).unwrap()).unwrap();
}

/// Issue 10 point 4: which damaged index gets which treatment. A SQLite file that is not an
/// edgerec index is set aside and rebuilt (recordings kept, the repair reported); an index of
/// another schema version (a newer build's) is refused and names `check --rebuild`.
#[test]
fn a_foreign_sqlite_file_is_rebuilt_and_another_schema_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 4);
    let mut h = Harness::open(tmp.path(), cfg.clone());
    for _ in 0..50 {
        h.send(1000);
    }
    h.flush();
    let before = h.newest_indexed_wall();
    drop(h.crash());
    let recorder = store::recorder_uuid(tmp.path()).unwrap();
    let index = cfg.path.join("index.sqlite3");

    // Another schema version: refused, the file untouched. Issue 11 point 4: the version is
    // `PRAGMA user_version` now (sqlite.rs Q1).
    {
        let c = rusqlite::Connection::open(&index).unwrap();
        c.execute_batch("PRAGMA user_version = 999").unwrap();
    }
    let e = store::open_for_write(&cfg, tmp.path(), recorder).err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
    assert!(e.msg().contains("check --rebuild"), "{e}");
    assert!(index.exists());

    // A SQLite file without the index's tables: kept aside, rebuilt, reported.
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(cfg.path.join(format!("index.sqlite3{ext}")));
    }
    {
        let c = rusqlite::Connection::open(&index).unwrap();
        c.execute_batch("CREATE TABLE unrelated (x INTEGER); INSERT INTO unrelated VALUES (1);").unwrap();
    }
    let opened = store::open_for_write(&cfg, tmp.path(), recorder).unwrap();
    let repaired = opened.repaired.clone().expect("the repair is reported");
    assert!(repaired.contains("not an edgerec index"), "{repaired}");
    drop(opened);
    let aside = std::fs::read_dir(&cfg.path)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("index.sqlite3.corrupt-"))
        .count();
    assert!(aside >= 1, "the foreign file is kept aside");
    let after = store::recordings(&cfg.path, "cam", 0, i64::MAX).unwrap();
    let newest = after.iter().map(|r| r.end_wall_us).max().unwrap_or(0);
    assert!((newest - before).abs() < 100_000, "recordings end at {newest}, before the repair {before}: {after:?}");
    store::check_invariants(&cfg, recorder).unwrap();
}

/// Issue 10 point 2: a creation that fails part way (here the third segment cannot be created)
/// removes the segments it already preallocated, so a failed storage never holds disk space.
#[test]
fn a_failed_creation_gives_back_what_it_allocated() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 4);
    std::fs::create_dir_all(edgerec::store::segment::segment_path(&cfg.path, 2)).unwrap();
    let recorder = store::recorder_uuid(tmp.path()).unwrap();
    assert!(store::open_for_write(&cfg, tmp.path(), recorder).is_err());
    for no in [0, 1, 3] {
        assert!(!edgerec::store::segment::segment_path(&cfg.path, no).exists(), "segment {no} was left behind");
    }
    assert!(!cfg.path.join("index.sqlite3").exists());
    assert!(!tmp.path().join("storage-t.uuid").exists());
    // Once the obstacle is gone the storage is created normally.
    std::fs::remove_dir(edgerec::store::segment::segment_path(&cfg.path, 2)).unwrap();
    let mut h = Harness::open(tmp.path(), cfg.clone());
    h.send(1000);
    h.flush();
    drop(h.crash());
    store::check_invariants(&cfg, recorder).unwrap();
}

/// Every indexed chunk of a storage, without the segment it lies in (a shrink moves chunks
/// between segments, nothing else about them may change).
fn chunks_without_segment(cfg: &StorageConfig) -> Vec<store::index::ChunkRow> {
    let index = store::index::Index::open(&cfg.path, false).unwrap().unwrap();
    let mut rows = Vec::new();
    index
        .for_each_chunk(|c| {
            rows.push(store::index::ChunkRow { segment_no: 0, ..c });
            Ok(())
        })
        .unwrap();
    rows
}

/// The seqs a shrink to `target` segments must keep: those in the `target` segments started
/// last (the newest ring positions); all others are the oldest data.
fn seqs_in_newest_segments(cfg: &StorageConfig, target: usize) -> Vec<u64> {
    let index = store::index::Index::open(&cfg.path, false).unwrap().unwrap();
    let firsts = index.segment_first_seqs().unwrap();
    let mut order: Vec<usize> = (0..firsts.len()).collect();
    order.sort_by_key(|&no| std::cmp::Reverse(firsts[no]));
    let newest: Vec<u32> = order[..target].iter().map(|&no| no as u32).collect();
    let mut seqs = Vec::new();
    index
        .for_each_chunk(|c| {
            if newest.contains(&c.segment_no) {
                seqs.push(c.seq);
            }
            Ok(())
        })
        .unwrap();
    seqs
}

/// The whole export of `cam` from `from_us` on, as bytes.
fn export_bytes(cfg: &StorageConfig, from_us: i64) -> Vec<u8> {
    export_between(cfg, from_us, i64::MAX)
}

fn segment_files(cfg: &StorageConfig) -> usize {
    (0..).take_while(|&no| store::segment::segment_path(&cfg.path, no).exists()).count()
}

/// Writes `frames` frames of 20 kB (25 per second), flushing every 40.
fn fill(h: &mut Harness, frames: usize) {
    for i in 0..frames {
        h.send(20_000);
        if i % 40 == 0 {
            h.flush();
        }
    }
    h.flush();
}

/// Issue 13 point 2 (ST-6): a storage whose `size` grows gets new segments at its next open and
/// keeps every chunk it held; the ring then holds more than before.
#[test]
fn a_grown_storage_keeps_every_chunk_and_uses_its_new_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Harness::open(tmp.path(), storage_cfg(tmp.path(), 5));
    fill(&mut h, 600);
    let newest = h.newest_indexed_wall();
    let (d, small, next_media, n, base) = h.crash();
    let recorder = store::recorder_uuid(&d).unwrap();
    let before = chunks_without_segment(&small);
    let bytes_before = export_bytes(&small, newest - 10_000_000);

    let big = storage_cfg(&d, 8);
    let mut h = Harness::reopen(&d, big.clone(), next_media, n, base);
    assert_eq!(chunks_without_segment(&big), before, "a grow moves and loses nothing");
    assert_eq!(export_bytes(&big, newest - 10_000_000), bytes_before);
    assert_eq!(segment_files(&big), 8);
    fill(&mut h, 600);
    drop(h.crash());
    store::check_invariants(&big, recorder).unwrap();
    let index = store::index::Index::open(&big.path, false).unwrap().unwrap();
    assert_eq!(index.meta().unwrap().segment_count, 8);
    // The old ring could never index more than its 5 segments' bytes.
    let used = index.used_bytes().unwrap();
    assert!(used > 5 * SEG, "the ring holds more than its old 5 segments: {used} bytes");
}

/// Issue 13 point 2 (ST-6): a shrink keeps the chunks of the newest ring positions, byte for
/// byte and every newest frame, and reclaims the oldest first, wherever the head stands; the
/// segment files beyond the new size are gone and the writer goes on in the smaller ring.
#[test]
fn a_shrunk_storage_keeps_the_newest_chunks_and_reclaims_the_oldest() {
    for (segments, target, frames) in
        [(8, 4, 150), (8, 4, 450), (8, 4, 500), (8, 4, 560), (8, 4, 620), (8, 4, 700), (8, 3, 660), (8, 7, 480)]
    {
        let tmp = tempfile::tempdir().unwrap();
        let mut h = Harness::open(tmp.path(), storage_cfg(tmp.path(), segments));
        fill(&mut h, frames);
        let newest = h.newest_indexed_wall();
        let (d, big, next_media, n, base) = h.crash();
        let recorder = store::recorder_uuid(&d).unwrap();
        let before = chunks_without_segment(&big);
        let keep = seqs_in_newest_segments(&big, target);
        let expected: Vec<_> = before.iter().filter(|c| keep.contains(&c.seq)).cloned().collect();
        let from = expected[0].start_wall_us + 2_000_000;
        let bytes_before = export_bytes(&big, from);

        let small = storage_cfg(&d, target as u64);
        let h = Harness::reopen(&d, small.clone(), next_media, n, base);
        let case = format!("{segments} -> {target} segments after {frames} frames");
        let after = chunks_without_segment(&small);
        assert_eq!(after, expected, "{case}: the newest chunks are kept as they were");
        assert_eq!(after.last(), before.last(), "{case}: the newest chunk is kept");
        assert!(
            before.iter().filter(|c| !keep.contains(&c.seq)).all(|c| c.seq < after[0].seq),
            "{case}: only data older than all kept data is reclaimed"
        );
        assert_eq!(h.newest_indexed_wall(), newest, "{case}");
        assert_eq!(export_bytes(&small, from), bytes_before, "{case}: the same export, byte for byte");
        assert_eq!(segment_files(&small), target, "{case}");
        let (d, small, next_media, n, base) = h.crash();
        store::check_invariants(&small, recorder).unwrap_or_else(|e| panic!("{case}: {e}"));
        let mut h = Harness::reopen(&d, small.clone(), next_media, n, base);
        fill(&mut h, 300);
        drop(h.crash());
        store::check_invariants(&small, recorder).unwrap_or_else(|e| panic!("{case}, written on: {e}"));
    }
}

/// Issue 13 point 2 (ST-6): a grow or a shrink stopped after each of its durable steps in turn,
/// as a kill -9 there would, opens afterwards at the new size with every chunk the finished
/// resize keeps, or, if the old size is asked for again, at the old size with the store checking
/// clean.
#[test]
fn a_resize_stopped_after_any_step_opens_at_either_size() {
    let tmp = tempfile::tempdir().unwrap();
    let template = tmp.path().join("template");
    let mut h = Harness::open(&template, storage_cfg(&template, 6));
    fill(&mut h, 540);
    let (_, six, next_media, n, base) = h.crash();
    let before = chunks_without_segment(&six);
    for (target, back_to_old) in [(3usize, false), (3, true), (9, false), (9, true)] {
        let keep =
            if target < 6 { seqs_in_newest_segments(&six, target) } else { before.iter().map(|c| c.seq).collect() };
        let expected: Vec<_> = before.iter().filter(|c| keep.contains(&c.seq)).cloned().collect();
        for steps in 1.. {
            let dir = tmp.path().join(format!("t{target}-{back_to_old}-{steps}"));
            assert!(std::process::Command::new("cp").arg("-a").arg(&template).arg(&dir).status().unwrap().success());
            let resized = storage_cfg(&dir, target as u64);
            let stopped = edgerec::fault::resize_storage_stopped_after(&resized, steps);
            let case =
                format!("6 -> {target} segments stopped after {steps} steps, reopened at the old size: {back_to_old}");
            let reopen = if back_to_old { storage_cfg(&dir, 6) } else { resized.clone() };
            let recorder = store::recorder_uuid(&dir).unwrap();
            let h = Harness::reopen(&dir, reopen.clone(), next_media, n, base);
            drop(h.crash());
            store::check_invariants(&reopen, recorder).unwrap_or_else(|e| panic!("{case}: {e}"));
            let after = chunks_without_segment(&reopen);
            assert_eq!(after.last(), before.last(), "{case}: the newest chunk is kept");
            // Back at the old size, an interrupted shrink is finished first, then the ring grows
            // back; a finished grow shrinks back to the segments it had, all of them used.
            assert_eq!(after, expected, "{case}");
            assert_eq!(segment_files(&reopen), if back_to_old { 6 } else { target }, "{case}");
            if stopped.is_ok() {
                assert!(steps > 2, "{case}: a resize takes several steps");
                break;
            }
        }
    }
}

/// Issue 13 point 3 (ST-7): the writer counts what the ring's size limit deletes and what the
/// retention time deletes apart, for the Deleting On Size Limit / Retention Time events.
#[test]
fn the_writer_counts_deletions_by_size_and_by_time_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let clocks = SimulatedClocks::following_system();
    let mut cfg = storage_cfg(tmp.path(), 4);
    cfg.retention = Duration::from_secs(86_400);
    let mut h = Harness::open_with_clocks(tmp.path(), cfg, Arc::new(clocks.clone()));
    h.base_wall_us = SystemClocks.realtime_us();
    fill(&mut h, 100);
    assert_eq!(h.handle.stats.bytes_deleted_by_size.load(std::sync::atomic::Ordering::Relaxed), 0);
    fill(&mut h, 400);
    let by_size = h.handle.stats.bytes_deleted_by_size.load(std::sync::atomic::Ordering::Relaxed);
    assert!(by_size > 0, "the 4 MiB ring wrapped");
    assert_eq!(h.handle.stats.bytes_deleted_by_time.load(std::sync::atomic::Ordering::Relaxed), 0);
    // Two days later every recording is past the retention time; the next pass deletes them.
    clocks.step_realtime_us(2 * 86_400_000_000);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while h.handle.stats.bytes_deleted_by_time.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        assert!(std::time::Instant::now() < deadline, "the retention pass did not delete by time");
        h.flush();
    }
    assert_eq!(h.handle.stats.bytes_deleted_by_size.load(std::sync::atomic::Ordering::Relaxed), by_size);
    drop(h.crash());
}

/// EL-3/EL-8: what an evidence lock over a range protects is whole chunks; the storage says their
/// size and extent, and nothing for another camera or a range without data.
#[test]
fn held_data_of_a_range_is_whole_chunks_of_that_camera() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 6);
    let mut h = Harness::open(tmp.path(), cfg);
    let mut walls = Vec::new();
    for i in 0..100 {
        walls.push(h.send(2000));
        if i % 10 == 9 {
            h.flush(); // one chunk per 10 frames
        }
    }
    let held = store::held_between(&h.cfg.path, "cam", walls[15], walls[25]).unwrap().expect("data held");
    assert_eq!(held.chunks, 2, "{held:?}");
    assert_eq!(held.start_wall_us, walls[10], "the chunk holding the start, whole");
    assert!(held.end_wall_us > walls[29] && held.end_wall_us <= walls[30], "{held:?}");
    assert!(held.bytes > 20 * 2000, "{held:?}");
    assert_eq!(store::held_between(&h.cfg.path, "other", walls[15], walls[25]).unwrap(), None);
    assert_eq!(store::held_between(&h.cfg.path, "cam", walls[0] - 10_000_000, walls[0] - 1).unwrap(), None);
    drop(h.crash());
}

/// Every permanent chunk of `cam` that one of `ranges` covers (S10), without its segment.
fn pinned_rows(cfg: &StorageConfig, ranges: &[(i64, i64)]) -> Vec<store::index::ChunkRow> {
    chunks_without_segment(cfg)
        .into_iter()
        .filter(|c| !c.temporary && ranges.iter().any(|&(s, e)| c.start_wall_us < e && c.end_wall_us > s))
        .collect()
}

/// The export of `cam` in [from, to), as bytes.
fn export_between(cfg: &StorageConfig, from_us: i64, to_us: i64) -> Vec<u8> {
    read_plan(&Arc::new(ExportPlan::plan(&cfg.path, "cam", from_us, to_us).unwrap()), 1 << 16)
}

fn stat(a: &std::sync::atomic::AtomicU64) -> u64 {
    a.load(std::sync::atomic::Ordering::Relaxed)
}

/// Issue 13 "Evidence lock" (EL-1, EL-4, S10): a pin in the middle of a ring that then wraps 5
/// times exports bit-identical afterwards; the ring passed over its segment and reclaimed
/// everything else oldest first, so the unpinned segments hold exactly the newest chunks.
#[test]
fn a_pin_in_a_ring_that_wraps_five_times_exports_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 6);
    let mut h = Harness::open(tmp.path(), cfg.clone());
    let mut walls = Vec::new();
    for i in 0..400 {
        walls.push(h.send(20_000));
        if i % 40 == 0 {
            h.flush();
        }
    }
    h.flush();
    let pin = (walls[250], walls[270]);
    let rows_before = pinned_rows(&cfg, &[pin]);
    let bytes_before = export_between(&cfg, pin.0, pin.1);
    assert!(!rows_before.is_empty() && !bytes_before.is_empty());
    h.pin(&[pin]);
    let reclaimed_before = stat(&h.handle.stats.segments_reclaimed);
    // 6 segments of 1 MiB hold about 300 frames of 20 kB: 1500 frames wrap the ring 5 times.
    fill(&mut h, 1500);
    assert!(stat(&h.handle.stats.segments_reclaimed) - reclaimed_before >= 25, "the ring wrapped 5 times");
    assert!(stat(&h.handle.stats.segments_skipped_pinned) > 0, "the ring passed over the pinned segment");
    assert!(stat(&h.handle.stats.pinned_segments) >= 1);
    assert_eq!(pinned_rows(&cfg, &[pin]), rows_before, "the pinned chunks are untouched");
    assert_eq!(export_between(&cfg, pin.0, pin.1), bytes_before, "the pinned range exports bit-identical");
    let (d, c, ..) = h.crash();
    store::check_invariants(&c, store::recorder_uuid(&d).unwrap()).unwrap();
    // Oldest first: the chunks outside pinned segments are one consecutive run of seqs ending
    // with the newest chunk (nothing newer was reclaimed while something older stayed).
    let index = store::index::Index::open(&c.path, false).unwrap().unwrap();
    let pins = [store::lock::Pin { camera: "cam".into(), start_wall_us: pin.0, end_wall_us: pin.1 }];
    let pinned = index.pinned_segments(&pins, index.meta().unwrap().segment_count).unwrap();
    let mut free_seqs = Vec::new();
    let mut newest = 0;
    index
        .for_each_chunk(|r| {
            newest = r.seq;
            if !pinned[r.segment_no as usize] {
                free_seqs.push(r.seq);
            }
            Ok(())
        })
        .unwrap();
    assert!(free_seqs.windows(2).all(|w| w[1] == w[0] + 1), "{free_seqs:?}");
    assert_eq!(free_seqs.last(), Some(&newest));
    assert!(free_seqs.len() >= 10, "the unpinned segments are in use: {}", free_seqs.len());
}

/// Issue 13 "Evidence lock" (EL-1, S10, ST-4): time retention never unindexes a pinned chunk
/// and expires every other chunk past the retention time; the granularity is the chunk.
#[test]
fn time_retention_keeps_pinned_chunks_and_expires_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = StorageConfig { retention: Duration::from_secs(86_400), ..storage_cfg(tmp.path(), 8) };
    let clocks = SimulatedClocks::following_system();
    let mut h = Harness::open_with_clocks(tmp.path(), cfg.clone(), Arc::new(clocks.clone()));
    // One run 3 h ago in chunks of 10 frames, one run now.
    h.base_wall_us = SystemClocks.realtime_us() - 3 * 3_600_000_000;
    let mut old = Vec::new();
    for i in 0..100 {
        old.push(h.send(2000));
        if i % 10 == 9 {
            h.flush();
        }
    }
    let now = SystemClocks.realtime_us();
    h.run += 1;
    h.base_wall_us = now - h.next_media * 1_000_000 / 90_000;
    let young_start = h.send(2000);
    for _ in 0..49 {
        h.send(2000);
    }
    h.flush();
    let pin = (old[45], old[55]);
    h.pin(&[pin]);
    let rows_before = pinned_rows(&cfg, &[pin]);
    assert_eq!(rows_before.len(), 2, "the chunks of frames 40..49 and 50..59");
    let bytes_before = export_between(&cfg, pin.0, pin.1);

    // A day minus 2 h later the old run is past the retention time, the young one is not.
    clocks.step_realtime_us(86_400_000_000 - 2 * 3_600_000_000);
    // Review finding 10: the retention pass runs at the first tick after its interval (10 s of
    // monotonic time), which the simulated clock steps instead of the test waiting for it.
    clocks.advance(Duration::from_secs(11));
    h.flush();
    // The pin keeps its range from the key frame it plays from (frame 25, in the chunk of
    // frames 20..29, EL-3); the chunks before that expire.
    assert_eq!(store::held_between(&cfg.path, "cam", old[0], old[19]).unwrap(), None, "before the pin: expired");
    assert_eq!(store::held_between(&cfg.path, "cam", old[61], old[99]).unwrap(), None, "after the pin: expired");
    assert_eq!(pinned_rows(&cfg, &[pin]), rows_before, "the pinned chunks stay");
    assert!(store::held_between(&cfg.path, "cam", old[25], old[26]).unwrap().is_some(), "and their key frame");
    assert_eq!(export_between(&cfg, pin.0, pin.1), bytes_before);
    let listed = store::recordings(&cfg.path, "cam", 0, i64::MAX).unwrap();
    assert_eq!(listed.len(), 2, "the pinned part of the old run and the young run: {listed:?}");
    assert_eq!(listed[1].start_wall_us, young_start);
    assert!(stat(&h.handle.stats.bytes_deleted_by_time) > 0);

    // Released, the pinned chunks expire at the next pass like the rest.
    h.pin(&[]);
    clocks.advance(Duration::from_secs(11));
    h.flush();
    assert_eq!(pinned_rows(&cfg, &[pin]), vec![], "released chunks expire at the next pass");
    drop(h.crash());
    store::check_invariants(&cfg, store::recorder_uuid(tmp.path()).unwrap()).unwrap();
}

/// Issue 13 "Evidence lock" (EL-4, FL-5): when every segment but the head is pinned and the head
/// is full, recording stops (frames dropped and counted, the storage says why), nothing pinned
/// is lost, and recording resumes by itself once the pin is released.
#[test]
fn a_storage_holding_only_pinned_data_stops_and_resumes_when_released() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 4);
    let mut h = Harness::open(tmp.path(), cfg.clone());
    let mut walls = Vec::new();
    for i in 0..170 {
        walls.push(h.send(20_000));
        if i % 10 == 9 {
            h.flush();
        }
    }
    h.flush();
    let pin = (walls[0], walls[169] + 1);
    h.pin(&[pin]);
    assert_eq!(stat(&h.handle.stats.pinned_segments), 4, "every used segment holds pinned data");
    let rows_before = pinned_rows(&cfg, &[pin]);
    let stats = h.handle.stats.clone();
    let mut last = 0;
    for i in 0..100 {
        last = h.send(20_000);
        if i % 10 == 9 {
            h.flush();
        }
    }
    h.flush();
    assert!(stats.full_of_locked_data.load(std::sync::atomic::Ordering::Acquire), "only locked data left");
    let dropped = stat(&stats.frames_dropped_locked);
    assert!(dropped > 0, "the frames that found no room are counted");
    assert_eq!(pinned_rows(&cfg, &[pin]), rows_before, "nothing pinned was reclaimed");
    assert!(h.newest_indexed_wall() < last, "the newest frames were not stored");

    // Released: the writer takes the new set and writes again without being asked.
    h.pin(&[]);
    assert!(!stats.full_of_locked_data.load(std::sync::atomic::Ordering::Acquire), "resumed");
    for i in 0..60 {
        last = h.send(20_000);
        if i % 10 == 9 {
            h.flush();
        }
    }
    h.flush();
    assert_eq!(stat(&stats.frames_dropped_locked), dropped, "nothing dropped after the release");
    assert!(h.newest_indexed_wall() >= last, "the newest frames are stored again");
    let (d, c, ..) = h.crash();
    store::check_invariants(&c, store::recorder_uuid(&d).unwrap()).unwrap();
}

/// Issue 13 "Evidence lock" (EL-4): a storage that holds only locked data and is unplugged and
/// plugged back is still full of locked data when it reopens (no false "resumed" followed by a new
/// "full"), and it resumes once the pin is released.
#[test]
fn a_storage_full_of_locked_data_stays_full_across_a_reopen() {
    use std::sync::atomic::Ordering::Acquire;
    let tmp = tempfile::tempdir().unwrap();
    // The writer retries an unavailable storage on its ticks: a short interval here.
    let cfg = StorageConfig { sync_interval: Duration::from_millis(50), ..storage_cfg(tmp.path(), 4) };
    let mut h = Harness::open(tmp.path(), cfg.clone());
    let mut walls = Vec::new();
    for _ in 0..170 {
        walls.push(h.send(20_000));
    }
    h.flush();
    h.pin(&[(walls[0], walls[169] + 1)]);
    let stats = h.handle.stats.clone();
    for _ in 0..100 {
        h.send(20_000);
    }
    h.flush();
    assert!(stats.full_of_locked_data.load(Acquire), "only locked data left");
    let moved = tmp.path().join("unplugged");
    std::fs::rename(&cfg.path, &moved).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stats.available.load(Acquire) {
        assert!(std::time::Instant::now() < deadline, "the unplug was not noticed");
        h.send(20_000);
        // Review-16 M5: false once the unplug is noticed.
        h.try_flush();
    }
    std::fs::rename(&moved, &cfg.path).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !stats.available.load(Acquire) {
        assert!(std::time::Instant::now() < deadline, "storage did not come back");
        h.try_flush();
    }
    assert!(stats.full_of_locked_data.load(Acquire), "still only locked data after the reopen");
    h.pin(&[]);
    assert!(!stats.full_of_locked_data.load(Acquire), "resumed once released");
    let (d, c, ..) = h.crash();
    store::check_invariants(&c, store::recorder_uuid(&d).unwrap()).unwrap();
}

/// Issue 13 "Evidence lock" (EL-1, S10): a pin set far larger than SQLite's bound-parameter
/// limit (32,766, three per pin) is honoured like a small one: the writer takes it, stays
/// available, and the ring still skips exactly the pinned segments.
#[test]
fn twenty_thousand_pins_are_honoured() {
    use std::sync::atomic::Ordering::Acquire;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 4);
    let mut h = Harness::open(tmp.path(), cfg.clone());
    let mut walls = Vec::new();
    for i in 0..170 {
        walls.push(h.send(20_000));
        if i % 10 == 9 {
            h.flush();
        }
    }
    h.flush();
    // The first chunk's frames, pinned one tiny range each, then 20,000 ranges before any data.
    let mut ranges: Vec<(i64, i64)> = walls[..10].iter().map(|&w| (w, w + 1)).collect();
    ranges.extend((0..20_000).map(|i| (1_000 + i * 10, 1_005 + i * 10)));
    h.pin(&ranges);
    assert!(h.handle.stats.available.load(Acquire), "{:?}", h.handle.stats.last_error.lock().unwrap());
    assert_eq!(stat(&h.handle.stats.pinned_segments), 1, "only the first segment holds pinned data");
    let pinned = pinned_rows(&cfg, &ranges[..10]);
    assert!(!pinned.is_empty());
    // The ring wraps twice: the pinned chunk stays, the storage keeps writing.
    for i in 0..400 {
        h.send(20_000);
        if i % 10 == 9 {
            h.flush();
        }
    }
    h.flush();
    assert!(h.handle.stats.available.load(Acquire), "{:?}", h.handle.stats.last_error.lock().unwrap());
    assert!(!h.handle.stats.full_of_locked_data.load(Acquire));
    assert_eq!(pinned_rows(&cfg, &ranges[..10]), pinned, "the pinned chunk survived the wraps");
    let (d, c, ..) = h.crash();
    store::check_invariants(&c, store::recorder_uuid(&d).unwrap()).unwrap();
}

/// Issue 13 "Evidence lock" (EL-1, ST-6, S10): a shrink at open keeps every pinned segment (the
/// pins persisted by the last run, before anything is published) and reclaims the oldest
/// unpinned data; a shrink that cannot keep the pinned segments and the head is refused, naming
/// the size it needs, and changes nothing.
#[test]
fn a_shrink_keeps_pinned_segments_or_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Harness::open(tmp.path(), storage_cfg(tmp.path(), 8));
    fill(&mut h, 700);
    let all = chunks_without_segment(&h.cfg);
    let everything = (all[0].start_wall_us, all.last().unwrap().end_wall_us);
    h.pin(&[everything]);
    let (d, big, next_media, n, base) = h.crash();
    let recorder = store::recorder_uuid(&d).unwrap();
    assert_eq!(store::segments_a_shrink_must_keep(&big.path).unwrap(), Some(8), "what a config check would ask");
    // The config check asks it: a shrink that would reclaim locked data is refused with file, line
    // and key before it is saved or applied (review finding 3: at the next open the storage
    // would refuse to open and record nothing).
    let text = format!(
        "version = 1\n[server]\ndata_dir = \"{}\"\n[[storage]]\nid = \"t\"\npath = \"{}\"\nsize = \"8MiB\"\n\
         segment_size = \"1MiB\"\n",
        d.display(),
        big.path.display()
    );
    let e = edgerec::config::Config::parse("test.toml", &text, None)
        .and_then(|c| c.check_storages_on_disk(None))
        .expect_err("a shrink below the locked data is refused");
    let e = e.to_string();
    assert!(e.contains("test.toml:") && e.contains("storage.size") && e.contains("evidence-locked"), "{e}");
    let e = store::open_for_write(&storage_cfg(&d, 4), &d, recorder).err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
    assert!(e.to_string().contains("evidence-locked") && e.to_string().contains("at least 8 segments"), "{e}");
    assert_eq!(segment_files(&big), 8, "nothing changed");
    assert_eq!(chunks_without_segment(&big), all);

    // Only the oldest chunk pinned: the shrink keeps its segment and the newest ones.
    let h = Harness::reopen(&d, big.clone(), next_media, n, base);
    let oldest = (all[0].start_wall_us, all[4].end_wall_us);
    h.pin(&[oldest]);
    let pinned_before = pinned_rows(&big, &[oldest]);
    let bytes_before = export_between(&big, oldest.0, oldest.1);
    let newest_before = chunks_without_segment(&big).last().cloned();
    let (d, big, next_media, n, base) = h.crash();
    // Review finding 11: exactly the pinned segment, the head and the 2 newest others remain.
    let keep = seqs_a_pinned_shrink_keeps(&big, &[oldest], 4);
    let expected: Vec<_> = chunks_without_segment(&big).into_iter().filter(|c| keep.contains(&c.seq)).collect();
    assert!(expected.len() < all.len(), "the shrink must reclaim something");
    let small = storage_cfg(&d, 4);
    let h = Harness::reopen(&d, small.clone(), next_media, n, base);
    assert_eq!(segment_files(&small), 4);
    assert_eq!(pinned_rows(&small, &[oldest]), pinned_before, "the pinned oldest chunk survived the shrink");
    assert_eq!(export_between(&small, oldest.0, oldest.1), bytes_before);
    assert_eq!(chunks_without_segment(&small).last().cloned(), newest_before, "the newest chunk is kept");
    assert_eq!(chunks_without_segment(&small), expected, "the pinned segment, the head and the newest others");
    drop(h.crash());
    store::check_invariants(&small, recorder).unwrap();
}

/// The seqs a shrink to `target` segments keeps (S10, ST-6): those in every segment holding a
/// chunk `pins` cover and in the head, then in the newest other segments up to `target`.
fn seqs_a_pinned_shrink_keeps(cfg: &StorageConfig, pins: &[(i64, i64)], target: usize) -> Vec<u64> {
    let index = store::index::Index::open(&cfg.path, false).unwrap().unwrap();
    let firsts = index.segment_first_seqs().unwrap();
    let pins: Vec<store::lock::Pin> = pins
        .iter()
        .map(|&(start_wall_us, end_wall_us)| store::lock::Pin { camera: "cam".into(), start_wall_us, end_wall_us })
        .collect();
    let pinned = index.pinned_segments(&pins, index.meta().unwrap().segment_count).unwrap();
    let mut used: Vec<usize> = (0..firsts.len()).filter(|&no| firsts[no].is_some()).collect();
    used.sort_by_key(|&no| std::cmp::Reverse(firsts[no]));
    let mut keep: Vec<u32> = used.iter().filter(|&&no| pinned[no] || no == used[0]).map(|&no| no as u32).collect();
    for &no in &used {
        if keep.len() < target && !keep.contains(&(no as u32)) {
            keep.push(no as u32);
        }
    }
    let mut seqs = Vec::new();
    index
        .for_each_chunk(|c| {
            if keep.contains(&c.segment_no) {
                seqs.push(c.seq);
            }
            Ok(())
        })
        .unwrap();
    seqs
}

/// Sends 20 frames of 20 kB and flushes until `done` holds for the storage's segment first_seqs.
fn fill_until(h: &mut Harness, done: impl Fn(&[Option<u64>]) -> bool) {
    for _ in 0..200 {
        let index = store::index::Index::open(&h.cfg.path, false).unwrap().unwrap();
        if done(&index.segment_first_seqs().unwrap()) {
            return;
        }
        for _ in 0..20 {
            h.send(20_000);
        }
        h.flush();
    }
    panic!("the ring never reached the wanted state");
}

/// Review finding 2 of the pins branch (S10, ST-6): once ring reuse passed over a pinned segment
/// the segments' ages are no longer in ring order (here segment 1 is pinned, 0 and then 2 were
/// reused: ages 1 < 3 < 4 < 5 < 0 < 2). A shrink to every smaller size still opens, and keeps
/// exactly the pinned segment, the head and the newest others (finding 11); the store checks
/// clean and writes on in the smaller ring.
#[test]
fn a_shrink_after_the_ring_skipped_a_pinned_segment_keeps_the_pinned_and_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let template = tmp.path().join("template");
    let mut h = Harness::open(&template, storage_cfg(&template, 6));
    fill_until(&mut h, |f| f.iter().all(Option::is_some));
    let index = store::index::Index::open(&h.cfg.path, false).unwrap().unwrap();
    let mut in_one = Vec::new();
    index
        .for_each_chunk(|c| {
            if c.segment_no == 1 {
                in_one.push((c.start_wall_us, c.end_wall_us));
            }
            Ok(())
        })
        .unwrap();
    drop(index);
    let pin = (in_one[1].0, in_one[in_one.len() - 1].1);
    h.pin(&[pin]);
    // Segment 0 reused, then 2 (1 skipped), and the head part filled.
    fill_until(&mut h, |f| f[2] > f[0] && f[0] > f[5]);
    fill(&mut h, 20);
    assert!(stat(&h.handle.stats.segments_skipped_pinned) > 0, "the ring passed over segment 1");
    let (_, six, next_media, n, base) = h.crash();
    let recorder = store::recorder_uuid(&template).unwrap();
    let before = chunks_without_segment(&six);
    let pinned_before = pinned_rows(&six, &[pin]);
    assert!(!pinned_before.is_empty());
    for target in 2..6usize {
        let case = format!("6 -> {target} segments");
        let keep = seqs_a_pinned_shrink_keeps(&six, &[pin], target);
        let dir = tmp.path().join(format!("t{target}"));
        assert!(std::process::Command::new("cp").arg("-a").arg(&template).arg(&dir).status().unwrap().success());
        let small = storage_cfg(&dir, target as u64);
        let h = Harness::reopen(&dir, small.clone(), next_media, n, base);
        let after = chunks_without_segment(&small);
        let expected: Vec<_> = before.iter().filter(|c| keep.contains(&c.seq)).cloned().collect();
        assert_eq!(after, expected, "{case}: exactly the pinned segment, the head and the newest others");
        assert!(after.len() < before.len(), "{case}: something was reclaimed");
        assert_eq!(pinned_rows(&small, &[pin]), pinned_before, "{case}: the pinned chunks survived");
        assert_eq!(segment_files(&small), target, "{case}");
        let (d, small, next_media, n, base) = h.crash();
        store::check_invariants(&small, recorder).unwrap_or_else(|e| panic!("{case}: {e}"));
        let mut h = Harness::reopen(&d, small.clone(), next_media, n, base);
        h.pin(&[pin]);
        fill(&mut h, 300);
        assert_eq!(pinned_rows(&small, &[pin]), pinned_before, "{case}, written on: the pin holds");
        drop(h.crash());
        store::check_invariants(&small, recorder).unwrap_or_else(|e| panic!("{case}, written on: {e}"));
    }
}

/// Review finding 4 of the pins branch (S10, EL-1): a pin set the writer takes while the chunk
/// it covers is placed (closed by a new ingest run) but not yet indexed still pins that chunk's
/// segment; the ring then wraps and passes over it, and the range exports bit-identical.
#[test]
fn a_pin_taken_while_its_chunk_waits_to_be_indexed_holds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 6);
    let mut h = Harness::open(tmp.path(), cfg.clone());
    let hb0 = stat(&h.handle.stats.heartbeat);
    let walls: Vec<i64> = (0..10).map(|_| h.send(20_000)).collect();
    // A new ingest run closes the first chunk into the writer's placed list (no flush yet).
    h.run += 1;
    h.n = 25;
    h.send(20_000);
    // The writer's loop turns once per message: wait until it took the 11 frames.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while stat(&h.handle.stats.heartbeat) < hb0 + 11 {
        assert!(std::time::Instant::now() < deadline, "the writer did not take the frames");
        std::thread::sleep(Duration::from_millis(1));
    }
    let pin = (walls[0], walls[9] + 1);
    let version =
        h.pins.publish(vec![store::lock::Pin { camera: "cam".into(), start_wall_us: pin.0, end_wall_us: pin.1 }]);
    // The next frame turns the loop, which takes the set while the chunk is still only placed.
    h.send(20_000);
    while stat(&h.handle.stats.pins_applied) < version {
        assert!(std::time::Instant::now() < deadline, "the writer did not take the pin set");
        std::thread::sleep(Duration::from_millis(1));
    }
    h.flush();
    let rows_before = pinned_rows(&cfg, &[pin]);
    assert_eq!(rows_before.len(), 1, "the 10 frames of the first run: {rows_before:?}");
    let bytes_before = export_between(&cfg, pin.0, pin.1);
    // 6 segments of 1 MiB hold about 300 frames of 20 kB: 900 frames wrap the ring 3 times.
    fill(&mut h, 900);
    assert!(stat(&h.handle.stats.segments_skipped_pinned) > 0, "the ring passed over the pinned segment");
    assert_eq!(pinned_rows(&cfg, &[pin]), rows_before, "the pinned chunk survived the wraps");
    assert_eq!(export_between(&cfg, pin.0, pin.1), bytes_before);
    let (d, c, ..) = h.crash();
    store::check_invariants(&c, store::recorder_uuid(&d).unwrap()).unwrap();
}

/// Review finding 1 of the pins branch (S10, ST-6): a shrink at open keeps what the board's pins
/// cover even when this storage never persisted them (a lock made while it was down, or a crash
/// before its writer took the set); the union is persisted before the shrink.
#[test]
fn a_shrink_at_open_keeps_what_the_boards_pins_cover() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Harness::open(tmp.path(), storage_cfg(tmp.path(), 8));
    fill(&mut h, 700);
    let all = chunks_without_segment(&h.cfg);
    let (d, big, next_media, n, base) = h.crash();
    let oldest = (all[0].start_wall_us, all[4].end_wall_us);
    let pinned_before = pinned_rows(&big, &[oldest]);
    let bytes_before = export_between(&big, oldest.0, oldest.1);
    assert!(!pinned_before.is_empty());
    let board = store::lock::PinBoard::default();
    board.publish(vec![store::lock::Pin { camera: "cam".into(), start_wall_us: oldest.0, end_wall_us: oldest.1 }]);
    let small = storage_cfg(&d, 4);
    let mut h = Harness::open_with_board(&d, small.clone(), Arc::new(SystemClocks), board);
    h.next_media = next_media + 90_000;
    h.n = n - n % 25 + 25;
    h.run += 1;
    h.base_wall_us = base;
    assert_eq!(segment_files(&small), 4);
    assert_eq!(pinned_rows(&small, &[oldest]), pinned_before, "the board's pin held through the shrink");
    assert_eq!(export_between(&small, oldest.0, oldest.1), bytes_before);
    assert!(chunks_without_segment(&small).len() < all.len(), "the shrink reclaimed unpinned data");
    fill(&mut h, 600);
    assert_eq!(pinned_rows(&small, &[oldest]), pinned_before, "and while the ring wraps");
    drop(h.crash());
    store::check_invariants(&small, store::recorder_uuid(&d).unwrap()).unwrap();
}

/// Review finding 6 of the pins branch (EL-4, S9): when a disk pre-buffer flip closes a chunk at
/// the moment only locked data is left, the flipping frame (not a key frame) is dropped and
/// counted with the others; it never starts a video run of its own in the head's last room.
#[test]
fn a_prebuffer_flip_as_the_store_fills_with_locked_data_drops_the_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 4);
    let mut h = Harness::open(tmp.path(), cfg.clone());
    let mut walls = Vec::new();
    for i in 0..170 {
        walls.push(h.send(20_000));
        if i % 10 == 9 {
            h.flush();
        }
    }
    h.flush();
    h.pin(&[(walls[0], walls[169] + 1)]);
    // Chunks of 10 frames (200 kB): 5 fill a 1 MiB segment, leaving about 40 kB in the head.
    for i in 0..30 {
        h.send(20_000);
        if i % 10 == 9 {
            h.flush();
        }
    }
    assert!(!h.handle.stats.full_of_locked_data.load(std::sync::atomic::Ordering::Acquire));
    let stored_before = chunks_without_segment(&cfg).len();
    // 9 permanent frames (180 kB, no room for them), then a non-key disk pre-buffer frame.
    for _ in 0..9 {
        h.send(20_000);
    }
    let flip = h.send_temporary(20_000, 60_000_000);
    h.flush();
    assert!(h.handle.stats.full_of_locked_data.load(std::sync::atomic::Ordering::Acquire), "only locked data left");
    assert_eq!(stat(&h.handle.stats.frames_dropped_locked), 10, "every frame that found no room is counted");
    let after = chunks_without_segment(&cfg);
    assert_eq!(after.len(), stored_before, "nothing was written after the stop");
    assert!(after.iter().all(|c| c.end_wall_us <= flip), "the flipping frame was not stored");
    let (d, c, ..) = h.crash();
    store::check_invariants(&c, store::recorder_uuid(&d).unwrap()).unwrap();
}

/// Issue 13 "Evidence lock" (S10 crash procedure): kill -9 again and again while pins change
/// and the ring wraps. After each reopen the store checks clean and every chunk the last
/// honoured pins cover is still there, and it stays there while the reopened writer, whose new
/// board has published nothing yet, goes on writing (the persisted pins hold).
#[test]
fn kill9_while_pins_change_and_the_ring_wraps_keeps_every_pinned_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_cfg(tmp.path(), 8);
    let recorder = store::recorder_uuid(tmp.path()).unwrap();
    let mut h = Harness::open(tmp.path(), cfg.clone());
    let mut pins: Vec<(i64, i64)> = Vec::new();
    let mut expected: Vec<store::index::ChunkRow> = Vec::new();
    for round in 0..10usize {
        let mut walls = Vec::new();
        for i in 0..(120 + round * 37 % 150) {
            walls.push(h.send(15_000));
            if i % 20 == 0 {
                h.flush();
            }
        }
        h.flush();
        let still: Vec<_> = pinned_rows(&cfg, &pins);
        assert_eq!(still, expected, "round {round}: the persisted pins held while the writer went on");
        if round % 2 == 0 {
            let n = walls.len();
            pins.push((walls[n - 30], walls[n - 25]));
        }
        if round % 3 == 2 && !pins.is_empty() {
            pins.remove(0);
        }
        h.pin(&pins);
        expected = pinned_rows(&cfg, &pins);
        assert!(!h.handle.stats.full_of_locked_data.load(std::sync::atomic::Ordering::Acquire), "round {round}");
        // Some frames in flight at the kill.
        for _ in 0..10 {
            h.send(15_000);
        }
        let (d, c, m, n, b) = h.crash();
        store::check_invariants(&c, recorder).unwrap_or_else(|e| panic!("round {round}: {e}"));
        h = Harness::reopen(&d, c, m, n, b);
        assert_eq!(pinned_rows(&cfg, &pins), expected, "round {round}: every pinned chunk survived the kill");
    }
    assert!(stat(&h.handle.stats.pinned_segments) > 0);
    let (d, c, ..) = h.crash();
    store::check_invariants(&c, store::recorder_uuid(&d).unwrap()).unwrap();
}

/// Issue 13 "Evidence lock" (S10, point 6): `check` reports the pinned data, and a rebuild of the
/// index from the segments keeps the pins the old index persisted.
#[test]
fn check_reports_pinned_data_and_a_rebuild_keeps_the_pins() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Harness::open(tmp.path(), storage_cfg(tmp.path(), 6));
    fill(&mut h, 300);
    let all = chunks_without_segment(&h.cfg);
    let pin = (all[3].start_wall_us, all[6].end_wall_us);
    h.pin(&[pin]);
    let rows = pinned_rows(&h.cfg, &[pin]);
    let (d, cfg, ..) = h.crash();
    let recorder = store::recorder_uuid(&d).unwrap();
    let report = store::check(&cfg, recorder).unwrap();
    assert_eq!(report.pins, 1);
    assert!(report.pinned_chunks >= rows.len() as u64, "{report:?}");
    assert!(report.pinned_bytes >= rows.iter().map(|r| r.len_bytes).sum::<u64>(), "{report:?}");
    assert!(report.pinned_segments >= 1, "{report:?}");
    store::rebuild_locked(&cfg.path, recorder).unwrap();
    let rebuilt = store::check(&cfg, recorder).unwrap();
    assert_eq!(
        (rebuilt.pins, rebuilt.pinned_chunks, rebuilt.pinned_segments),
        (report.pins, report.pinned_chunks, report.pinned_segments),
        "the pins survive the rebuild"
    );
}

/// Issue 13 review High 4 (AR-1): the archive round learns a ring's hours from
/// `permanent_hour_bytes`, one streamed aggregate without frame tables, instead of every chunk
/// row of the ring. Its sums per camera and UTC hour are those of the chunk rows, pre-buffer
/// chunks left out, across an hour boundary.
#[test]
fn permanent_hour_bytes_sums_each_hours_recorded_chunks_without_the_prebuffer() {
    const HOUR_US: i64 = 3_600_000_000;
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Harness::open(tmp.path(), storage_cfg(tmp.path(), 6));
    let boundary_us = SystemClocks.realtime_us().div_euclid(HOUR_US) * HOUR_US;
    h.base_wall_us = boundary_us - 2_000_000;
    for i in 0..100 {
        h.send(1500);
        if i % 10 == 9 {
            h.flush(); // one chunk per 10 frames (0.4 s): five before the hour boundary, five after
        }
    }
    for _ in 0..10 {
        h.send_temporary(1500, 3_600_000_000);
    }
    h.flush();
    let index = store::index::Index::open(&h.cfg.path, false).unwrap().unwrap();
    let mut expected: std::collections::BTreeMap<i64, u64> = std::collections::BTreeMap::new();
    let (mut temporary, mut permanent) = (0, 0);
    index
        .for_each_chunk(|c| {
            if c.temporary {
                temporary += 1;
            } else {
                permanent += 1;
                *expected.entry(c.start_wall_us.div_euclid(HOUR_US)).or_insert(0) += c.len_bytes;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!((permanent, temporary), (10, 1), "ten recorded chunks and one pre-buffer chunk");
    let got = index.permanent_hour_bytes().unwrap();
    let hour = boundary_us / HOUR_US;
    assert_eq!(got.iter().map(|(_, h, _)| *h).collect::<Vec<_>>(), vec![hour - 1, hour], "{got:?}");
    assert_eq!(got, expected.into_iter().map(|(h, b)| ("cam".to_owned(), h, b)).collect::<Vec<_>>());
    drop(index);
    let (d, c, ..) = h.crash();
    store::check_invariants(&c, store::recorder_uuid(&d).unwrap()).unwrap();
}

/// Issue 16 early writes: a storage whose segments hold chunks of several MiB (the writer's
/// early-write threshold is 2 MiB) and a stream of 50 kB frames, 2.1 MB per 42 frames: a
/// pull's back-fill rate, far above an ordinary camera's.
fn early_write_cfg(dir: &Path) -> StorageConfig {
    let seg = 32u64 << 20;
    StorageConfig { size_bytes: 4 * seg + (4 << 20), segment_bytes: seg, ..storage_cfg(dir, 4) }
}

const EARLY_FRAME: usize = 50_000;
/// Frames sent between two flushes: 7.5 MB, three times the threshold and some. Three batches fit
/// in the first segment, so no segment switch (which flushes) comes between.
const BATCH: u64 = 150;

/// The frames `from..to` as `Harness::send(EARLY_FRAME)` sends them.
fn early_payload(from: u64, to: u64) -> Vec<u8> {
    (from..to).flat_map(|i| Harness::payload(i, EARLY_FRAME).to_vec()).collect()
}

/// Waits (polling, with a deadline) until the writer has written early at least `n` times.
fn wait_early_writes(h: &Harness, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while h.handle.stats.early_writes.load(std::sync::atomic::Ordering::Relaxed) < n {
        assert!(std::time::Instant::now() < deadline, "the writer made fewer than {n} early writes");
        std::thread::yield_now();
    }
}

/// The export of `cam` over `from_wall..to_wall` holds exactly the frames `first..first + k` for
/// some k ≥ 1 (in order, each once); returns k.
fn exported_frames(cfg: &StorageConfig, from_wall: i64, to_wall: i64, first: u64) -> u64 {
    let plan = Arc::new(ExportPlan::plan(&cfg.path, "cam", from_wall, to_wall).unwrap());
    let k = plan.video_frames as u64;
    assert!(k >= 1, "nothing exported from {from_wall}");
    let all = read_plan(&plan, 1 << 20);
    assert!(all.ends_with(&early_payload(first, first + k)), "the export holds frames {first}..{} exactly", first + k);
    k
}

/// Issue 16 ("Benchmarks"), invariant 2 (S2), S6, P1: frames fast enough to cross the early-write
/// threshold several times between flushes are written before the flush, but indexed (and counted
/// in `bytes_written`) only after its fdatasync; (a) a flush and a reopen show every frame
/// exactly; (b) a crash (kill -9: the page cache survives) after early writes but before a flush
/// keeps everything flushed, and recovery indexes the early-written chunks as a prefix of what
/// was sent; (c) a power cut that lost part of the early-written tail leaves exactly what was
/// flushed.
#[test]
fn early_writes_are_indexed_only_after_the_flush_and_recover_like_any_unsynced_tail_p1() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = early_write_cfg(tmp.path());
    let recorder = store::recorder_uuid(tmp.path()).unwrap();
    let mut h = Harness::open(tmp.path(), cfg.clone());
    let stats = h.handle.stats.clone();
    // (a) 150 frames (7.5 MB): 3 early writes, then a flush.
    let first_wall = h.send(EARLY_FRAME);
    for _ in 1..BATCH {
        h.send(EARLY_FRAME);
    }
    wait_early_writes(&h, 3);
    assert_eq!(h.newest_indexed_wall(), 0, "invariant 2: nothing is indexed before its fdatasync");
    assert_eq!(stats.bytes_written.load(std::sync::atomic::Ordering::Relaxed), 0, "counted at the fdatasync");
    assert_eq!(stats.fsyncs.load(std::sync::atomic::Ordering::Relaxed), 0, "early writes do not fdatasync");
    h.flush();
    let early_a = stats.early_writes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(early_a >= 3, "several early writes between two flushes ({early_a})");
    // Review s31 W4: their time is measured too (a 2 MiB pwritev takes more than a microsecond).
    assert!(stats.max_early_write_us.load(std::sync::atomic::Ordering::Relaxed) > 0, "the early writes are timed");
    assert_eq!(stats.fsyncs.load(std::sync::atomic::Ordering::Relaxed), 1, "one fdatasync for the whole flush");
    assert!(stats.bytes_written.load(std::sync::atomic::Ordering::Relaxed) > BATCH * EARLY_FRAME as u64);
    assert!(h.newest_indexed_wall() >= h.last_wall.unwrap(), "every frame is indexed after the flush");
    // The frames are 40 ms apart; the next batch starts 1 s after a reopen.
    let end_a = first_wall + BATCH as i64 * 40_000;
    let (d, c, m, n, b) = h.crash();
    store::check_invariants(&c, recorder).unwrap();
    let mut h = Harness::reopen(&d, c.clone(), m, n, b);
    assert_eq!(exported_frames(&c, first_wall, end_a, 0), BATCH, "(a) every frame, exactly, after a reopen");

    // (b) BATCH more frames, written early but never flushed, then kill -9.
    let first_b = h.n;
    let wall_b = h.send(EARLY_FRAME);
    for _ in 1..BATCH {
        h.send(EARLY_FRAME);
    }
    wait_early_writes(&h, 3);
    let end_b = wall_b + BATCH as i64 * 40_000;
    let flushed_wall = h.newest_indexed_wall();
    let (d, c, m, n, b) = h.crash();
    store::check_invariants(&c, recorder).unwrap();
    let mut h = Harness::reopen(&d, c.clone(), m, n, b);
    assert_eq!(exported_frames(&c, first_wall, end_a, 0), BATCH, "(b) everything flushed survives");
    assert!(h.newest_indexed_wall() > flushed_wall, "S6: whole early-written chunks are recovered");
    let k = exported_frames(&c, wall_b, end_b, first_b);
    assert!(k < BATCH, "the frames after the last early write were never written ({k})");

    // (c) A flush, BATCH more frames written early, then a power cut that kept none of their
    // writeback whole: what the flush made durable is all there is, and the store checks clean.
    h.flush();
    let flushed_wall = h.newest_indexed_wall();
    let (_, flushed_tail) = tail_position(&c);
    for _ in 0..BATCH {
        h.send(EARLY_FRAME);
    }
    wait_early_writes(&h, 3);
    let (d, c, m, n, b) = h.crash();
    let (wall_c, end_c) = (b + (m - BATCH as i64 * 3600) * 1_000_000 / 90_000, b + m * 1_000_000 / 90_000);
    let (seg, tail) = tail_position(&c);
    assert!(tail > flushed_tail + (2 << 20), "chunks were written early past the flushed tail");
    // The first early-written chunk torn in its middle (the disk kept its first 100 kB only).
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.write_all_at(&vec![0u8; 1 << 20], flushed_tail + 100_000).unwrap();
    drop(f);
    store::check_invariants(&c, recorder).unwrap();
    let h = Harness::reopen(&d, c.clone(), m, n, b);
    assert_eq!(h.newest_indexed_wall(), flushed_wall, "(c) a torn early write is dropped (S6), the flushed data kept");
    assert_eq!(exported_frames(&c, first_wall, end_a, 0), BATCH);
    assert_eq!(exported_frames(&c, wall_b, end_b, first_b), k);

    // (d) Review s31 W2: the torn chunk's successors stayed whole on the disk. The writer starts
    // again where the torn chunk began, with a chunk of exactly its length (42 frames of 50 kB
    // cross 2 MiB), flushes it, and dies before its successor: the stale successor, where the new
    // successor would be, must not come back with the next recovery.
    let mut h = h;
    let first_d = h.n;
    let wall_d = h.send(EARLY_FRAME);
    for _ in 1..42 {
        h.send(EARLY_FRAME);
    }
    wait_early_writes(&h, 1);
    h.flush();
    let end_d = wall_d + 42 * 40_000;
    assert_eq!(h.newest_indexed_wall(), end_d, "(d) the new chunk is indexed");
    let (d, c, m, n, b) = h.crash();
    let h = Harness::reopen(&d, c.clone(), m, n, b);
    let back = store::recordings(&c.path, "cam", wall_c, end_c).unwrap();
    assert!(back.is_empty(), "(d) nothing of the torn batch comes back: {back:?}");
    assert_eq!(exported_frames(&c, wall_d, end_d, first_d), 42, "(d) the new chunk, exactly");
    assert_eq!(h.newest_indexed_wall(), end_d, "(d) nothing after it");
    drop(h.crash());
    store::check_invariants(&c, recorder).unwrap();
}

/// Review s31 W3 (review-16 M5): when the storage fails after early writes, what was not synced
/// (chunks written early, chunks in the buffer, the pending frames) is told lost frame for frame
/// with its times, not as one frame of unknown time (a mirror then re-fetched everything since
/// its last check).
#[test]
fn frames_lost_with_a_failed_storage_after_early_writes_are_told_with_their_times() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = early_write_cfg(tmp.path());
    let mut h = Harness::open(tmp.path(), cfg.clone());
    h.send(EARLY_FRAME);
    h.flush();
    let first = h.send(EARLY_FRAME);
    let last = (1..BATCH).map(|_| h.send(EARLY_FRAME)).last().unwrap();
    wait_early_writes(&h, 3);
    edgerec::fault::fail_flushes(&h.handle, true);
    assert!(!h.try_flush(), "the flush fails");
    let lost = h.handle.stats.take_losses("cam").expect("losses told");
    assert_eq!((lost.frames, lost.first_wall_us, lost.unknown), (BATCH, Some(first), false), "{lost:?}");
    // A chunk's end is its last frame's start plus a frame interval.
    let end = lost.last_wall_us.unwrap();
    assert!((last..=last + 40_000).contains(&end), "{lost:?}, last frame at {last}");
    drop(h.crash());
}

/// Review s32 R6 (S2): after a flush failed, chunks written early past the last durable flush
/// may be whole in the page cache only (their writeback failed, and an fdatasync through a new
/// descriptor does not report it). The writer's reopen indexes none of them: they were told
/// lost, and only what the last flush made durable is there.
#[test]
fn the_reopen_after_a_failed_flush_indexes_nothing_past_the_last_durable_flush() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = early_write_cfg(tmp.path());
    let recorder = store::recorder_uuid(tmp.path()).unwrap();
    // The writer retries a failed storage on its tick (hourly here): its clock is moved on.
    let clocks = SimulatedClocks::following_system();
    let mut h = Harness::open_with_clocks(tmp.path(), cfg.clone(), Arc::new(clocks.clone()));
    let first = h.send(EARLY_FRAME);
    h.send(EARLY_FRAME);
    h.flush();
    let durable = h.newest_indexed_wall();
    assert!(durable > first);
    edgerec::fault::fail_flushes(&h.handle, true);
    for _ in 0..BATCH {
        h.send(EARLY_FRAME);
    }
    wait_early_writes(&h, 3);
    assert!(!h.try_flush(), "the flush fails");
    edgerec::fault::fail_flushes(&h.handle, false);
    clocks.advance(Duration::from_secs(3601));
    // The writer's tick reopens it: at once if the writer looked at its clock after it moved,
    // else once the flush wakes it (that flush then finds it unavailable).
    if !h.try_flush() {
        assert!(h.try_flush(), "the writer reopened the storage");
    }
    assert_eq!(h.newest_indexed_wall(), durable, "nothing written after the last durable flush is indexed");
    let (d, c, m, n, b) = h.crash();
    store::check_invariants(&c, recorder).unwrap();
    // Nor after a restart: the voided tail is not found again.
    let h = Harness::reopen(&d, c.clone(), m, n, b);
    assert_eq!(h.newest_indexed_wall(), durable, "nor after a restart");
    drop(h.crash());
    store::check_invariants(&c, recorder).unwrap();
}
