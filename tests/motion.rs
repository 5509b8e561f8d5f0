//! Motion detection end to end (MD-2..MD-7) on clips made by ffmpeg whose motion is known: a still
//! scene with sensor-like noise, a white square that moves from 3 s to 6 s, and a box that
//! flickers at every key frame in a region that is excluded. Frames go through
//! `MotionHandle::offer` exactly as ingest offers them, with wall time = base + presentation time.
//!
//! Clips: 640x360, 25 fps, H.264 with a key frame every 12 frames (0.48 s), no B-frames, SMPTE bars
//! with temporal noise (`noise=alls=6`) as the background.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edgerec::clocks::{SimulatedClocks, SystemClocks};
use edgerec::events::{EventKind, EventLog, Retention};
use edgerec::media::{Frame, SampleEntry, StreamKind, VIDEO_TIMESCALE_HZ};
use edgerec::motion::{
    FrameSelection, Grid16, MotionConfig, MotionHandle, MotionOptions, MotionReader, MotionService, MOTION_FILE,
};

/// Wall time of each clip's first frame (2025-06-15T16:00:00Z), µs since the epoch.
const BASE_US: i64 = 1_750_003_200_000_000;
const SEC_US: i64 = 1_000_000;
/// MD acceptance: spans match the known motion within ±0.5 s.
const TOLERANCE_US: i64 = 500_000;
/// The moving square is visible (and moving) from 3 s to 6 s.
const MOTION_FROM_US: i64 = 3 * SEC_US;
const MOTION_TO_US: i64 = 6 * SEC_US;
/// How long feeding waits for the motion thread after each frame.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The background of every clip: static SMPTE bars with temporal noise of ±6 levels, 8 s.
const BACKGROUND: &str = "smptebars=size=640x360:rate=25:duration=8,noise=alls=6:allf=t";
/// A 60×60 white square moving right at 100 px/s along y = 150..210, visible from 3 s to 6 s: it
/// crosses grid columns 2 to 11 (40 px each) and rows 6 to 9 (22.5 px each).
const MOVING_SQUARE: &str = "overlay=x='100+(t-3)*100':y=150:enable='between(t,3,6)':shortest=1";
/// A 60×60 white box at (520, 20) shown in every other 12-frame GOP, so consecutive key frames
/// differ there: cells of columns 13-14, rows 0-3.
const FLICKER: &str = "overlay=x=520:y=20:enable='lt(mod(n,24),12)':shortest=1";
/// The flicker's region, as configuration would write it.
const FLICKER_REGION: &str = "12-15,0-4";
/// The square's path, and a region the square never enters (the bars' top, left half).
const SQUARE_PATH: &str = "2-11,6-9";
const ELSEWHERE: &str = "0-7,0-4";
/// Smart search level: 20 % of a cell's sampled pixels changed. The noise of the background
/// reaches level 17 (a few pixels) in some cells, never 34.
const MIN_LEVEL: u8 = 51;

/// Makes an 8 s clip: the background with `overlays` applied in order, each putting one white
/// 60×60 input on top.
fn make_motion_clip(dir: &Path, name: &str, overlays: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", BACKGROUND]);
    let mut graph = Vec::new();
    for (i, overlay) in overlays.iter().enumerate() {
        cmd.args(["-f", "lavfi", "-i", "color=c=white:size=60x60:rate=25"]);
        let input = if i == 0 { "[0:v]".to_owned() } else { format!("[v{i}]") };
        graph.push(format!("{input}[{}:v]{overlay}[v{}]", i + 1, i + 1));
    }
    if overlays.is_empty() {
        cmd.args(["-map", "0:v"]);
    } else {
        cmd.args(["-filter_complex", &graph.join(";"), "-map", &format!("[v{}]", overlays.len())]);
    }
    cmd.args(["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]);
    cmd.args(["-g", "12", "-keyint_min", "12", "-sc_threshold", "0", "-bf", "0", "-t", "8"]);
    cmd.arg(&out);
    let output = cmd.stdin(Stdio::null()).output().expect("ffmpeg is installed (bash .ci/install-test-peers.sh)");
    assert!(output.status.success(), "ffmpeg failed for {name}: {}", String::from_utf8_lossy(&output.stderr));
    out
}

/// The video track of an MP4 file: its sample entry and its frames with presentation times (µs).
fn read_video(path: &Path) -> (Arc<SampleEntry>, Vec<(Frame, i64)>) {
    let bytes = std::fs::read(path).unwrap();
    let entry_box = first_video_sample_entry(&bytes);
    let entry = Arc::new(SampleEntry::new(entry_box, VIDEO_TIMESCALE_HZ).unwrap());
    let mut reader = mp4::Mp4Reader::read_header(std::io::Cursor::new(&bytes), bytes.len() as u64).unwrap();
    let (track_id, timescale, count) = reader
        .tracks()
        .values()
        .find(|t| t.track_type().ok() == Some(mp4::TrackType::Video))
        .map(|t| (t.track_id(), i64::from(t.timescale()), t.sample_count()))
        .expect("a video track");
    let mut frames = Vec::new();
    for id in 1..=count {
        let s = reader.read_sample(track_id, id).unwrap().expect("sample");
        let pts_us = s.start_time as i64 * SEC_US / timescale;
        let frame = Frame {
            kind: StreamKind::Video,
            media_time: pts_us * i64::from(VIDEO_TIMESCALE_HZ) / SEC_US,
            key: s.is_sync,
            data: Bytes::copy_from_slice(&s.bytes),
        };
        frames.push((frame, pts_us));
    }
    (entry, frames)
}

/// The first sample entry box of the first video track (`moov/trak/mdia/minf/stbl/stsd`).
fn first_video_sample_entry(file: &[u8]) -> Vec<u8> {
    fn children(buf: &[u8]) -> Vec<(&[u8], &[u8])> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 8 <= buf.len() {
            let size = u32::from_be_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
            assert!(size >= 8 && at + size <= buf.len(), "bad box at {at}");
            out.push((&buf[at + 4..at + 8], &buf[at + 8..at + size]));
            at += size;
        }
        out
    }
    fn child<'a>(buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        children(buf).into_iter().find(|(n, _)| *n == name).map(|(_, b)| b)
    }
    let moov = child(file, b"moov").expect("moov");
    for (name, trak) in children(moov) {
        if name != b"trak" {
            continue;
        }
        let stsd = ["mdia", "minf", "stbl", "stsd"].iter().try_fold(trak, |b, n| child(b, n.as_bytes())).unwrap();
        // FullBox header and entry_count, then the first entry.
        let entry = &stsd[8..];
        let size = u32::from_be_bytes(entry[..4].try_into().unwrap()) as usize;
        if matches!(&entry[4..8], b"avc1" | b"avc3" | b"hvc1" | b"hev1") {
            return entry[..size].to_vec();
        }
    }
    panic!("no video track");
}

/// What one run of the motion service over a clip produced.
struct Run {
    /// Motion sequences read back from the file, relative to the clip's start (µs).
    spans: Vec<(i64, i64)>,
    /// Motion Started/Stopped events in order, with wall times relative to the clip's start.
    events: Vec<(EventKind, i64)>,
    reader: MotionReader,
    stats: edgerec::motion::MotionStats,
    _dir: tempfile::TempDir,
}

impl Run {
    /// Smart search on this run's camera over the whole clip, relative times.
    fn search(&self, region: &str, min_level: u8) -> Vec<(i64, i64)> {
        let region = Grid16::from_rects(&[region]).unwrap();
        let hits = self.reader.search(&["cam".to_owned()], BASE_US, BASE_US + 10 * SEC_US, &region, min_level).unwrap();
        hits.into_iter()
            .map(|(c, s, e)| {
                assert_eq!(c, "cam");
                (s - BASE_US, e - BASE_US)
            })
            .collect()
    }
}

/// Feeds every frame of `clip` to a motion service with `config`, waiting for the motion thread
/// after each one (so nothing is skipped), then shuts it down and reads back what it stored.
fn run_clip(clip: &Path, config: MotionConfig) -> Run {
    let dir = common::temp_dir();
    let (log, sink, _events_reader) =
        EventLog::spawn(&dir.path().join("events.sqlite3"), Retention::default(), Arc::new(SystemClocks));
    let subscription = sink.subscribe("test", 1024);
    let db_path = dir.path().join(MOTION_FILE);
    let camera: Arc<str> = "cam".into();
    let (service, handle) = MotionService::spawn(
        vec![(camera.clone(), config)],
        MotionOptions::new(db_path.clone()),
        sink,
        Arc::new(SystemClocks),
    )
    .unwrap();
    let (entry, frames) = read_video(clip);
    feed(&handle, &camera, &entry, &frames);
    let stats = handle.stats();
    service.shutdown();
    log.shutdown(Duration::from_secs(10)).unwrap();
    let events = subscription
        .receiver()
        .try_iter()
        .filter(|e| e.camera() == Some("cam"))
        .map(|e| (e.kind().clone(), e.wall_us() - BASE_US))
        .collect();
    let reader = MotionReader::new(&db_path);
    let spans = reader
        .spans("cam", BASE_US, BASE_US + 10 * SEC_US)
        .unwrap()
        .into_iter()
        .map(|(s, e)| (s - BASE_US, e - BASE_US))
        .collect();
    Run { spans, events, reader, stats, _dir: dir }
}

fn feed(handle: &MotionHandle, camera: &Arc<str>, entry: &Arc<SampleEntry>, frames: &[(Frame, i64)]) {
    for (frame, pts_us) in frames {
        handle.offer(camera, entry, frame, BASE_US + pts_us);
        assert!(handle.wait_idle(IDLE_TIMEOUT), "the motion thread did not finish a frame within {IDLE_TIMEOUT:?}");
    }
}

fn near(actual_us: i64, expected_us: i64) -> bool {
    (actual_us - expected_us).abs() <= TOLERANCE_US
}

fn excluding_flicker() -> MotionConfig {
    MotionConfig { exclude: Grid16::from_rects(&[FLICKER_REGION]).unwrap(), ..MotionConfig::default() }
}

#[test]
fn still_noisy_scene_has_no_motion_and_no_search_hit() {
    let dir = common::temp_dir();
    let clip = make_motion_clip(dir.path(), "still.mp4", &[]);
    let run = run_clip(&clip, MotionConfig::default());
    assert_eq!(run.spans, vec![], "spans in a still scene");
    assert_eq!(run.events, vec![], "events in a still scene");
    let cam = &run.stats.cameras[0];
    // Key frames every 0.48 s over 8 s at one slot per 500 ms: about 16 analyses, none skipped.
    assert!((14..=18).contains(&cam.analysed), "{cam:?}");
    assert_eq!(cam.skipped_behind, 0);
    assert_eq!(cam.decode_errors, 0, "{:?}", cam.last_error);
    assert_eq!(run.search("0-15,0-15", 34), vec![], "noise must stay below two level steps");
}

#[test]
fn square_moving_from_3_to_6_s_is_one_sequence_found_by_smart_search_in_its_region_only() {
    let dir = common::temp_dir();
    let clip = make_motion_clip(dir.path(), "square_and_flicker.mp4", &[MOVING_SQUARE, FLICKER]);
    let run = run_clip(&clip, excluding_flicker());

    assert_eq!(run.spans.len(), 1, "one motion sequence expected: {:?}", run.spans);
    let (start, end) = run.spans[0];
    assert!(near(start, MOTION_FROM_US) && near(end, MOTION_TO_US), "span {start}..{end} µs, expected 3 s..6 s");
    // MD-7: Started at the span's start, Stopped after it (hold 1 s), and nothing else.
    assert_eq!(run.events.len(), 2, "{:?}", run.events);
    assert_eq!(run.events[0], (EventKind::MotionStarted, start));
    assert_eq!(run.events[1].0, EventKind::MotionStopped);
    assert!(run.events[1].1 >= end + 1_000_000 && run.events[1].1 <= end + 2_000_000, "{:?}", run.events);

    // MD-5: search finds the square on its path, within the tolerance...
    let hits = run.search(SQUARE_PATH, MIN_LEVEL);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(near(hits[0].0, MOTION_FROM_US) && near(hits[0].1, MOTION_TO_US), "{hits:?}");
    // ...nothing where nothing moved...
    assert_eq!(run.search(ELSEWHERE, MIN_LEVEL), vec![]);
    // ...and the flicker too, in its own region: levels do not depend on exclude regions. It
    // differs at every key frame from 0.96 s to 6.72 s, so its intervals touch and merge into one.
    let flicker = run.search(FLICKER_REGION, MIN_LEVEL);
    assert_eq!(flicker.len(), 1, "{flicker:?}");
    assert!(flicker[0].0 <= 2 * SEC_US && flicker[0].1 >= 6 * SEC_US, "{flicker:?}");
    let cam = &run.stats.cameras[0];
    assert!(!cam.motion && cam.skipped_behind == 0 && cam.decode_errors == 0, "{cam:?}");
}

#[test]
fn flicker_counts_as_motion_unless_its_region_is_excluded() {
    let dir = common::temp_dir();
    let clip = make_motion_clip(dir.path(), "flicker.mp4", &[FLICKER]);
    // Control: the flicker is visible to the detector...
    let seen = run_clip(&clip, MotionConfig::default());
    assert!(!seen.spans.is_empty(), "the flicker should be motion when not excluded");
    // ...and excluding its cells (MD-4) silences it.
    let excluded = run_clip(&clip, excluding_flicker());
    assert_eq!(excluded.spans, vec![]);
    assert_eq!(excluded.events, vec![]);
}

#[test]
fn h265_is_recorded_but_counted_as_unsupported_for_motion() {
    let dir = common::temp_dir();
    let spec = common::ClipSpec {
        video: common::ClipVideo::H265Idr,
        gop_frames: 12,
        duration_sec: 4.0,
        aac: false,
        ..Default::default()
    };
    let clip = common::make_clip(dir.path(), "h265.mp4", &spec);
    let run = run_clip(&clip, MotionConfig::default());
    let cam = &run.stats.cameras[0];
    assert_eq!(cam.analysed, 0);
    // Key frames every 0.48 s for 4 s: about 8 analysis slots.
    assert!(cam.unsupported_codec >= 6, "{cam:?}");
    assert_eq!(run.spans, vec![]);
}

#[test]
fn a_motion_thread_that_falls_behind_skips_and_counts_without_blocking_the_caller() {
    let dir = common::temp_dir();
    let clip = make_motion_clip(dir.path(), "square.mp4", &[MOVING_SQUARE]);
    let (entry, frames) = read_video(&clip);
    let (log, sink, _r) =
        EventLog::spawn(&dir.path().join("events.sqlite3"), Retention::default(), Arc::new(SystemClocks));
    let camera: Arc<str> = "cam".into();
    // Interval 0: every key frame is due, so offering the clip at once overruns the 2-frame share.
    let config = MotionConfig { interval_ms: 0, ..MotionConfig::default() };
    let options = MotionOptions::new(dir.path().join(MOTION_FILE));
    let (service, handle) =
        MotionService::spawn(vec![(camera.clone(), config)], options, sink, Arc::new(SystemClocks)).unwrap();
    let keys: Vec<_> = frames.iter().filter(|(f, _)| f.key).collect();
    let started = std::time::Instant::now();
    for round in 0..4i64 {
        for (frame, pts_us) in &keys {
            handle.offer(&camera, &entry, frame, BASE_US + round * 8 * SEC_US + pts_us);
        }
    }
    let offering = started.elapsed();
    assert!(handle.wait_idle(IDLE_TIMEOUT));
    let cam = handle.stats().cameras[0].clone();
    service.shutdown();
    log.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(cam.analysed + cam.skipped_behind, 4 * keys.len() as u64, "{cam:?}");
    assert!(cam.skipped_behind > 0, "{cam:?}");
    // 68 offers must not wait for decoding (about 1 ms per frame here).
    assert!(offering < Duration::from_millis(50), "offering took {offering:?}");
}

#[test]
fn decoding_every_frame_finds_the_same_sequence() {
    let dir = common::temp_dir();
    let clip = make_motion_clip(dir.path(), "square.mp4", &[MOVING_SQUARE]);
    let config = MotionConfig { frames: FrameSelection::AllFrames, ..MotionConfig::default() };
    let run = run_clip(&clip, config);
    assert_eq!(run.spans.len(), 1, "{:?}", run.spans);
    // Analyses fall on the first frame at or after each 500 ms slot, 480 or 520 ms apart. The
    // square disappears between the analyses at 6.00 and 6.52 s, so the span ends at 6.52 s: one
    // analysis interval after the motion, which MD acceptance allows instead of ±0.5 s.
    let (start, end) = run.spans[0];
    let within = |a: i64, b: i64| (a - b).abs() <= 520_000;
    assert!(within(start, MOTION_FROM_US) && within(end, MOTION_TO_US), "span {start}..{end} µs, expected 3 s..6 s");
    let cam = &run.stats.cameras[0];
    // One slot per 500 ms over 8 s, now on any frame rather than on key frames only.
    assert!((15..=17).contains(&cam.analysed), "{cam:?}");
    assert!(cam.skipped_behind == 0 && cam.decode_errors == 0, "{cam:?}");
}

#[test]
fn a_stream_that_stalls_in_motion_gets_motion_stopped_at_its_last_analysed_frame() {
    let dir = common::temp_dir();
    let clip = make_motion_clip(dir.path(), "square.mp4", &[MOVING_SQUARE]);
    let (entry, frames) = read_video(&clip);
    let (log, sink, _r) =
        EventLog::spawn(&dir.path().join("events.sqlite3"), Retention::default(), Arc::new(SystemClocks));
    let events = sink.subscribe("test", 64);
    // Realtime and monotonic time that the test moves forward while the service's threads run.
    let clocks = SimulatedClocks::following_system();
    let camera: Arc<str> = "cam".into();
    let db_path = dir.path().join(MOTION_FILE);
    let (service, handle) = MotionService::spawn(
        vec![(camera.clone(), MotionConfig::default())],
        MotionOptions::new(db_path.clone()),
        sink,
        Arc::new(clocks.clone()),
    )
    .unwrap();
    // The stream stops at 4.5 s, in the middle of the motion.
    let until: Vec<_> = frames.into_iter().filter(|(_, pts)| *pts <= 4_500_000).collect();
    feed(&handle, &camera, &entry, &until);
    let started = events.receiver().recv_timeout(IDLE_TIMEOUT).expect("Motion Started");
    assert_eq!(*started.kind(), EventKind::MotionStarted);
    let last_analysed = handle.stats().cameras[0].last_analysis_wall_us;
    clocks.advance(Duration::from_micros(11 * SEC_US as u64));
    let stopped = events.receiver().recv_timeout(IDLE_TIMEOUT).expect("Motion Stopped after the stall");
    assert_eq!(*stopped.kind(), EventKind::MotionStopped);
    assert_eq!(stopped.wall_us(), last_analysed);
    assert!(!handle.stats().cameras[0].motion);
    service.shutdown();
    log.shutdown(Duration::from_secs(10)).unwrap();
    let spans = MotionReader::new(&db_path).spans("cam", BASE_US, BASE_US + 10 * SEC_US).unwrap();
    assert_eq!(spans, [(started.wall_us(), last_analysed)]);
}

#[test]
fn a_permanent_privacy_mask_hides_motion_and_its_levels() {
    let dir = common::temp_dir();
    let clip = make_motion_clip(dir.path(), "square.mp4", &[MOVING_SQUARE]);
    // The square's path with a one-cell margin for the encoder's blocks around its edges.
    let config =
        MotionConfig { permanent_mask: Grid16::from_rects(&["1-12,5-10"]).unwrap(), ..MotionConfig::default() };
    let run = run_clip(&clip, config);
    assert_eq!(run.spans, vec![]);
    assert_eq!(run.events, vec![]);
    assert_eq!(run.search("0-15,0-15", MIN_LEVEL), vec![], "no motion data inside a permanent mask (MD-5)");
}

#[test]
fn the_motion_thread_runs_at_nice_10() {
    let dir = common::temp_dir();
    let clip = make_motion_clip(dir.path(), "still.mp4", &[]);
    let (entry, frames) = read_video(&clip);
    let (log, sink, _r) =
        EventLog::spawn(&dir.path().join("events.sqlite3"), Retention::default(), Arc::new(SystemClocks));
    let camera: Arc<str> = "cam".into();
    let options = MotionOptions::new(dir.path().join(MOTION_FILE));
    let (service, handle) =
        MotionService::spawn(vec![(camera.clone(), MotionConfig::default())], options, sink, Arc::new(SystemClocks))
            .unwrap();
    // Once it has analysed a frame, the thread has set its priority.
    feed(&handle, &camera, &entry, &frames[..1]);
    // Other tests of this file may run motion threads at the same time (some not yet lowered): ours
    // is one of them, so at least one must be at nice 10.
    let nices: Vec<i32> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .map(|t| t.unwrap().path())
        .filter(|t| std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() == "motion"))
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.join("stat")).ok()?;
            // After the parenthesised name come the state (field 3) ... and the nice value (19).
            let after_name = &stat[stat.rfind(')')? + 2..];
            after_name.split(' ').nth(16)?.parse().ok()
        })
        .collect();
    service.shutdown();
    log.shutdown(Duration::from_secs(10)).unwrap();
    assert!(nices.contains(&10), "nice values of the motion threads: {nices:?}");
}

/// A still, noisy 320x180 clip: a second camera of another size for the shared decoder.
fn make_small_still_clip(dir: &Path) -> PathBuf {
    let out = dir.join("small_still.mp4");
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i"])
        .arg("smptebars=size=320x180:rate=25:duration=8,noise=alls=6:allf=t")
        .args(["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"])
        .args(["-g", "12", "-keyint_min", "12", "-sc_threshold", "0", "-bf", "0", "-t", "8"])
        .arg(&out)
        .stdin(Stdio::null())
        .output()
        .expect("ffmpeg is installed (bash .ci/install-test-peers.sh)");
    assert!(output.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&output.stderr));
    out
}

/// Motion Started/Stopped of one camera, relative to the clips' start.
fn camera_events(events: &[Arc<edgerec::events::Event>], camera: &str) -> Vec<(EventKind, i64)> {
    events.iter().filter(|e| e.camera() == Some(camera)).map(|e| (e.kind().clone(), e.wall_us() - BASE_US)).collect()
}

/// Issue 10 point 14: key-frames-only cameras take turns on one decoder (so an analysed camera
/// costs no decoder of its own). Frame by frame interleaving of a 640x360 camera with motion, a
/// 320x180 still camera and an all-frames camera (which keeps its own decoder and references)
/// must give each exactly the result it gets alone.
#[test]
fn cameras_of_different_sizes_take_turns_on_one_decoder_and_each_finds_its_own_motion() {
    let dir = common::temp_dir();
    let square = make_motion_clip(dir.path(), "square.mp4", &[MOVING_SQUARE]);
    let small = make_small_still_clip(dir.path());
    let (square_entry, square_frames) = read_video(&square);
    let (small_entry, small_frames) = read_video(&small);
    let (log, sink, _r) =
        EventLog::spawn(&dir.path().join("events.sqlite3"), Retention::default(), Arc::new(SystemClocks));
    let subscription = sink.subscribe("test", 1024);
    let (moving, still, every): (Arc<str>, Arc<str>, Arc<str>) = ("moving".into(), "still".into(), "every".into());
    let all_frames = MotionConfig { frames: FrameSelection::AllFrames, ..MotionConfig::default() };
    let db_path = dir.path().join(MOTION_FILE);
    let (service, handle) = MotionService::spawn(
        vec![
            (moving.clone(), MotionConfig::default()),
            (still.clone(), MotionConfig::default()),
            (every.clone(), all_frames),
        ],
        MotionOptions::new(db_path.clone()),
        sink,
        Arc::new(SystemClocks),
    )
    .unwrap();
    for (i, (frame, pts_us)) in square_frames.iter().enumerate() {
        handle.offer(&moving, &square_entry, frame, BASE_US + pts_us);
        assert!(handle.wait_idle(IDLE_TIMEOUT));
        if let Some((small_frame, small_pts_us)) = small_frames.get(i) {
            handle.offer(&still, &small_entry, small_frame, BASE_US + small_pts_us);
            assert!(handle.wait_idle(IDLE_TIMEOUT));
        }
        handle.offer(&every, &square_entry, frame, BASE_US + pts_us);
        assert!(handle.wait_idle(IDLE_TIMEOUT));
    }
    let stats = handle.stats();
    service.shutdown();
    log.shutdown(Duration::from_secs(10)).unwrap();
    for cam in &stats.cameras {
        assert_eq!(cam.decode_errors, 0, "{cam:?}");
        assert_eq!(cam.skipped_behind, 0, "{cam:?}");
        assert!(cam.analysed >= 14, "{cam:?}");
    }
    let events: Vec<_> = subscription.receiver().try_iter().collect();
    let reader = MotionReader::new(&db_path);
    // Key frames come every 480 ms; all-frames analyses fall 480 or 520 ms apart, so that camera
    // gets the tolerance of `decoding_every_frame_finds_the_same_sequence`.
    for (camera, tolerance_us) in [("moving", TOLERANCE_US), ("every", 520_000)] {
        let spans = reader.spans(camera, BASE_US, BASE_US + 10 * SEC_US).unwrap();
        assert_eq!(spans.len(), 1, "{camera}: {spans:?}");
        let (start, end) = (spans[0].0 - BASE_US, spans[0].1 - BASE_US);
        let within = |a: i64, b: i64| (a - b).abs() <= tolerance_us;
        assert!(within(start, MOTION_FROM_US) && within(end, MOTION_TO_US), "{camera}: {start}..{end} µs");
        let kinds: Vec<_> = camera_events(&events, camera).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [EventKind::MotionStarted, EventKind::MotionStopped], "{camera}");
    }
    assert_eq!(reader.spans("still", BASE_US, BASE_US + 10 * SEC_US).unwrap(), vec![]);
    assert_eq!(camera_events(&events, "still"), vec![]);
}

/// Issue 10 point 17: adding a camera (or changing another one) leaves a camera's analysis alone:
/// its open motion sequence goes on, its counters continue. Only a changed camera starts afresh,
/// ending its open sequence with Motion Stopped.
#[test]
fn reconfiguring_restarts_only_the_cameras_whose_settings_changed() {
    let dir = common::temp_dir();
    let clip = make_motion_clip(dir.path(), "square.mp4", &[MOVING_SQUARE]);
    let (entry, frames) = read_video(&clip);
    let (log, sink, _r) =
        EventLog::spawn(&dir.path().join("events.sqlite3"), Retention::default(), Arc::new(SystemClocks));
    let subscription = sink.subscribe("test", 1024);
    let (cam, other): (Arc<str>, Arc<str>) = ("cam".into(), "other".into());
    let db_path = dir.path().join(MOTION_FILE);
    let (service, handle) = MotionService::spawn(
        vec![(cam.clone(), MotionConfig::default())],
        MotionOptions::new(db_path.clone()),
        sink,
        Arc::new(SystemClocks),
    )
    .unwrap();
    let (first, rest): (Vec<_>, Vec<_>) = frames.into_iter().partition(|(_, pts)| *pts <= 4_500_000);
    feed(&handle, &cam, &entry, &first);
    let before = handle.stats().cameras[0].clone();
    assert!(before.motion, "the square moves at 4.5 s: {before:?}");

    // A camera is added: `cam` is unchanged and keeps its slot, reference and open sequence.
    service
        .reconfigure(vec![(cam.clone(), MotionConfig::default()), (other.clone(), MotionConfig::default())])
        .unwrap();
    feed(&handle, &cam, &entry, &rest);
    let after = handle.stats();
    assert_eq!(after.cameras.len(), 2);
    let kept = after.cameras.iter().find(|c| c.camera == "cam").unwrap();
    assert!(kept.analysed > before.analysed, "counters go on: {before:?} then {kept:?}");
    assert!(!kept.motion, "the square is gone at 8 s: {kept:?}");

    // `cam`'s sensitivity changes while it is in motion again (its clip replayed 10 s later): it
    // starts afresh, and its open sequence ends at once with Motion Stopped.
    let replay: Vec<_> = first.iter().map(|(f, pts)| (f.clone(), pts + 10 * SEC_US)).collect();
    feed(&handle, &cam, &entry, &replay);
    assert!(handle.stats().cameras[0].motion);
    let changed = MotionConfig { sensitivity: 40, ..MotionConfig::default() };
    service.reconfigure(vec![(cam.clone(), changed), (other.clone(), MotionConfig::default())]).unwrap();
    let deadline = std::time::Instant::now() + IDLE_TIMEOUT;
    let mut seen = Vec::new();
    while !seen.iter().any(|(k, at)| *k == EventKind::MotionStopped && *at > 10 * SEC_US) {
        assert!(std::time::Instant::now() < deadline, "no Motion Stopped after the change: {seen:?}");
        if let Ok(e) = subscription.receiver().recv_timeout(Duration::from_millis(100)) {
            seen.push((e.kind().clone(), e.wall_us() - BASE_US));
        }
    }
    let restarted = handle.stats().cameras.into_iter().find(|c| c.camera == "cam").unwrap();
    assert_eq!(restarted.analysed, 0, "a changed camera starts afresh: {restarted:?}");
    assert!(!restarted.motion);
    service.shutdown();
    log.shutdown(Duration::from_secs(10)).unwrap();
    // The first sequence went on across the camera added at 4.5 s: one span, 3 s to 6 s. The
    // second, open when `cam` changed, ended at its last analysed frame.
    let spans: Vec<(i64, i64)> = MotionReader::new(&db_path)
        .spans("cam", BASE_US, BASE_US + 20 * SEC_US)
        .unwrap()
        .into_iter()
        .map(|(s, e)| (s - BASE_US, e - BASE_US))
        .collect();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert!(near(spans[0].0, MOTION_FROM_US) && near(spans[0].1, MOTION_TO_US), "{spans:?}");
    assert!(near(spans[1].0, 10 * SEC_US + MOTION_FROM_US) && spans[1].1 <= 10 * SEC_US + 4_500_000, "{spans:?}");
    let kinds: Vec<_> = seen.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        kinds,
        [EventKind::MotionStarted, EventKind::MotionStopped, EventKind::MotionStarted, EventKind::MotionStopped],
        "{seen:?}"
    );
}
