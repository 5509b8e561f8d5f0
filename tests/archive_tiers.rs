//! Issue 13, ST-17 "seamless reading": the recordings list and the export span the ring and every
//! archive stage in one request, and an export crossing the tiers plays as one file. The ring
//! holds real H.264 + AAC (the demo clip) written by the real store writer; stages are written by
//! the archive round's own steps (`write_slice`, `scan_slice`, `insert_slice`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::recorder::{export_http, now_us, rfc3339, RecorderProc};
use edgerec::archive::index::{scan_slice, StageIndex};
use edgerec::archive::layout::{hour_of, write_slice, ChunkFrom, SliceSource, HOUR_US};
use edgerec::archive::schedule::Schedule;
use edgerec::archive::tier::readable_stages;
use edgerec::archive::{ArchiveChain, StageConfig};
use edgerec::clocks::SystemClocks;
use edgerec::error::ErrorKind;
use edgerec::media::IngestFrame;
use edgerec::source::demo::DemoSource;
use edgerec::store::export::ExportPlan;
use edgerec::store::lock::PinSet;
use edgerec::store::tier::StorageTiers;
use edgerec::store::{self, StorageConfig};

/// Video frames of one lap of the demo clip (8 s at 25 fps, a key frame each second).
const LAP_VIDEO_FRAMES: usize = 200;
/// Key frames of one lap: what a grooming stage keeps of it (A6).
const LAP_KEY_FRAMES: usize = 8;

/// The ring of storage "main" under `data_dir/ring`.
fn ring_config(data_dir: &Path) -> StorageConfig {
    let segment_bytes: u64 = 2 << 20;
    StorageConfig {
        id: "main".to_owned(),
        path: data_dir.join("ring"),
        size_bytes: 16 * segment_bytes + (4 << 20),
        segment_bytes,
        retention: Duration::from_secs(7 * 86_400),
        // Long, so only the flushes below end chunks (one chunk per stream and second).
        sync_interval: Duration::from_secs(3600),
        default: true,
    }
}

/// Writes one lap of the demo clip per `(ingest run, wall time of its first frame)` into the ring
/// of `cfg` through the real writer, a chunk per stream and second (a flush before each second).
fn record_laps(cfg: &StorageConfig, data_dir: &Path, laps: &[(u64, i64)]) -> u128 {
    record_clip(cfg, data_dir, laps, 1, 1_000_000)
}

/// `record_laps` with `clip_laps` laps of the clip per run (continuous media time) and a flush
/// every `flush_every_us` of clip time (700 ms makes chunks that start mid-GOP).
fn record_clip(cfg: &StorageConfig, data_dir: &Path, laps: &[(u64, i64)], clip_laps: i64, flush_every_us: i64) -> u128 {
    let recorder = store::recorder_uuid(data_dir).expect("recorder id");
    let (handle, join, ready) =
        store::writer::spawn(cfg.clone(), data_dir.to_owned(), recorder, Arc::new(SystemClocks));
    ready.recv().expect("writer reports").expect("storage opens");
    let clip = DemoSource::new().expect("the bundled clip loads").frames(clip_laps);
    for &(run, base_us) in laps {
        let mut next_flush_us = flush_every_us;
        for (entry, frame, at_us) in &clip {
            if *at_us >= next_flush_us {
                assert!(handle.flush(Duration::from_secs(30)), "writer flushed");
                next_flush_us += flush_every_us;
            }
            let f = IngestFrame {
                camera: "cam".into(),
                ingest_run: run,
                sample_entry: entry.clone(),
                wall_us: base_us + at_us,
                frame: frame.clone(),
                temporary_keep_us: None,
            };
            handle.try_send(f).expect("queue has room");
        }
        assert!(handle.flush(Duration::from_secs(30)), "writer flushed");
    }
    assert!(handle.stop(Duration::from_secs(30)), "writer stops");
    join.join().expect("writer thread");
    recorder
}

/// Steps 1–4 of the archive round for one camera hour: the slice written from the ring into
/// `stage_dir` (groomed to key frames with `reduce_fps`) and indexed.
fn archive_hour(ring_dir: &Path, stage_dir: &Path, recorder: u128, hour: i64, reduce_fps: Option<f64>) {
    std::fs::create_dir_all(stage_dir).expect("stage dir");
    let no_pins = PinSet::default();
    let src = SliceSource {
        from: ChunkFrom::Ring(ring_dir),
        camera_id: "cam",
        camera_name: "Gate",
        hour,
        recorder_uuid: recorder,
        reduce_fps,
        pins: &no_pins,
        motion: None,
    };
    let tz = jiff::tz::TimeZone::UTC;
    let written = write_slice(stage_dir, &src, &tz).expect("slice written").expect("the hour has chunks");
    let mut index = StageIndex::open(stage_dir).expect("stage index");
    assert!(index.insert_slice(&scan_slice(&written.dir).expect("scanned")).expect("indexed"));
}

/// The time retention of the ring (the writer's `expire_before`, ST-4) run at `cutoff_us`: what
/// ended before it leaves the ring, as it does when the ring's retention runs out.
fn ring_forgets_before(ring_dir: &Path, cutoff_us: i64) {
    let mut index = store::index::Index::open(ring_dir, true).expect("ring index").expect("exists");
    assert!(index.expire_before(cutoff_us, &[]).expect("expired") > 0, "the ring let something go");
}

fn stage(name: &str, path: &Path, reduce_fps: Option<f64>) -> StageConfig {
    StageConfig {
        name: name.to_owned(),
        path: path.to_owned(),
        retention: Duration::from_secs(30 * 86_400),
        max_size_bytes: 1 << 30,
        schedule: Schedule::parse("hourly").expect("schedule"),
        reduce_fps,
        mount: false,
    }
}

/// Writes the whole export to `path` with the plan's reader.
fn write_export(plan: &Arc<ExportPlan>, path: &Path) -> Result<(), edgerec::error::Error> {
    let mut reader = plan.reader();
    let mut out = Vec::with_capacity(plan.len() as usize);
    let mut buf = vec![0u8; 1 << 20];
    while (out.len() as u64) < plan.len() {
        let n = reader.read_at(out.len() as u64, &mut buf)?;
        assert!(n > 0, "the reader moves on");
        out.extend_from_slice(&buf[..n]);
    }
    std::fs::write(path, &out).expect("write the export");
    Ok(())
}

/// (codec, frames decoded) per stream, as `ffprobe -count_frames` reads them.
fn frames_per_stream(path: &Path) -> Vec<(String, u64)> {
    let v = common::ffprobe_json_with(path, &["-count_frames", "-show_streams"]);
    v["streams"]
        .as_array()
        .expect("ffprobe streams")
        .iter()
        .map(|s| {
            let frames = s["nb_read_frames"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0);
            (s["codec_name"].as_str().unwrap_or("?").to_owned(), frames)
        })
        .collect()
}

/// The key flags of the video packets, in file order.
fn video_key_flags(path: &Path) -> Vec<bool> {
    let v = common::ffprobe_json_with(path, &["-select_streams", "v", "-show_packets"]);
    v["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .map(|p| p["flags"].as_str().is_some_and(|f| f.starts_with('K')))
        .collect()
}

/// A ring and two stages over three past hours H0 < H1 < H2:
/// - run A (8 s) in H0, archived groomed into stage 2 only;
/// - run B (8 s) straddling H1/H2: its H1 half archived into stage 1 (full) and stage 2 (groomed),
///   its H2 half in the ring only, and its chunk ending exactly at H2 in all three (the ring's
///   retention keeps what ends at the cutoff);
/// - run C (8 s) in H2, in the ring only.
///
/// The ring then forgets everything that ended before H2 (its retention).
struct Tiers {
    _tmp: tempfile::TempDir,
    data_dir: PathBuf,
    ring_dir: PathBuf,
    stage1_root: PathBuf,
    stage2_root: PathBuf,
    /// H0 (hours since the epoch).
    h0: i64,
    /// Wall times of the first frames of runs A, B and C.
    starts_us: [i64; 3],
}

fn build_tiers() -> Tiers {
    let tmp = common::temp_dir();
    let data_dir = tmp.path().to_owned();
    let cfg = ring_config(&data_dir);
    let h0 = hour_of(now_us()) - 3;
    let (h1, h2) = (h0 + 1, h0 + 2);
    let starts_us = [h0 * HOUR_US + 600_000_000, h2 * HOUR_US - 4_000_000, h2 * HOUR_US + 600_000_000];
    let recorder = record_laps(&cfg, &data_dir, &[(1, starts_us[0]), (2, starts_us[1]), (3, starts_us[2])]);
    let stage1_root = data_dir.join("nas");
    let stage2_root = data_dir.join("cold");
    archive_hour(&cfg.path, &stage1_root.join("main"), recorder, h1, None);
    archive_hour(&cfg.path, &stage2_root.join("main"), recorder, h0, Some(1.0));
    archive_hour(&cfg.path, &stage2_root.join("main"), recorder, h1, Some(1.0));
    ring_forgets_before(&cfg.path, h2 * HOUR_US);
    Tiers { ring_dir: cfg.path, _tmp: tmp, data_dir, stage1_root, stage2_root, h0, starts_us }
}

impl Tiers {
    fn chain(&self) -> ArchiveChain {
        ArchiveChain {
            storage_id: "main".to_owned(),
            stages: vec![stage("nas", &self.stage1_root, None), stage("cold", &self.stage2_root, Some(1.0))],
        }
    }

    fn storages(&self) -> Vec<StorageTiers> {
        vec![StorageTiers { ring_dir: self.ring_dir.clone(), stages: readable_stages(&self.chain()) }]
    }

    fn range(&self) -> (i64, i64) {
        (self.h0 * HOUR_US, (self.h0 + 3) * HOUR_US)
    }
}

/// Issue 13, ST-17: an export spanning H0..H2 over the ring and two stages is one MP4 that ffprobe
/// reads and `ffmpeg -xerror` decodes whole, with exactly the frames each chunk's first tier
/// holds: the ring's where it still has them, stage 1's full copy before stage 2's groomed one,
/// and only key frames where the groomed stage is the only tier left (A6). Each seq is read once.
#[test]
fn an_export_across_ring_and_two_stages_plays_as_one_file() {
    let t = build_tiers();
    let (from, to) = t.range();
    let plan = Arc::new(ExportPlan::plan_across(t.storages(), "cam", from, to).expect("planned across the tiers"));
    // Run A: key frames only (stage 2 alone holds H0); run B: every frame (stage 1 for H1, the
    // ring for H2); run C: every frame (the ring).
    let expected_video = LAP_KEY_FRAMES + 2 * LAP_VIDEO_FRAMES;
    assert_eq!(plan.video_frames, expected_video);
    // One covered range per run: run B is one range although two tiers hold it.
    assert_eq!(plan.covered_us.len(), 3, "{:?}", plan.covered_us);
    assert_eq!(plan.covered_us[1].0, t.starts_us[1], "run B starts in stage 1");
    assert!(plan.covered_us[1].1 >= t.starts_us[1] + 7_900_000, "and ends in the ring: {:?}", plan.covered_us[1]);
    assert!(plan.covered_us[0].0 == t.starts_us[0], "run A comes from stage 2: {:?}", plan.covered_us[0]);

    let path = t.data_dir.join("across.mp4");
    write_export(&plan, &path).expect("every byte reads and verifies");
    common::ffmpeg_decode_ok(&path).unwrap_or_else(|e| panic!("ffmpeg -xerror on the export across tiers: {e}"));
    let streams = frames_per_stream(&path);
    assert_eq!(streams[0], ("h264".to_owned(), expected_video as u64), "{streams:?}");
    assert_eq!(streams[1].0, "aac", "{streams:?}");
    assert_eq!(streams[1].1, plan.audio_frames as u64, "{streams:?}");
    let keys = video_key_flags(&path);
    assert_eq!(keys.len(), expected_video);
    assert!(keys[..LAP_KEY_FRAMES].iter().all(|k| *k), "the groomed hour holds key frames only");
    assert_eq!(keys.iter().filter(|k| **k).count(), 3 * LAP_KEY_FRAMES, "runs B and C keep their P frames");

    // The recordings list spans the tiers too: run B lies in stage 1 and in the ring, and is ONE
    // recording from its first to its last chunk.
    let recs = store::recordings_across(t.storages(), "cam", from, to).expect("listed");
    assert_eq!(recs.len(), 3, "{recs:?}");
    assert_eq!(recs.iter().map(|r| r.start_wall_us).collect::<Vec<_>>(), t.starts_us.to_vec());
    assert!(recs[1].end_wall_us >= t.starts_us[1] + 7_900_000, "{recs:?}");
    // The ring alone has only the end of run B (from its chunk that ends exactly at H2, which the
    // retention keeps) and run C.
    let ring_only =
        store::recordings_across(vec![StorageTiers::ring_only(&t.ring_dir)], "cam", from, to).expect("ring");
    assert_eq!(ring_only.len(), 2, "{ring_only:?}");
    assert_eq!(ring_only[0].start_wall_us, t.starts_us[1] + 3_000_000, "{ring_only:?}");
}

/// Issue 13, ST-17 with S7/A5: a slice deleted by its stage under a reader is `Gone`, never other
/// data; and a stage that is not mounted is left out, so the next tier that holds the hour (the
/// groomed stage 2) serves it and the export still plays.
#[test]
fn a_deleted_slice_is_gone_and_an_unmounted_stage_is_left_out() {
    let t = build_tiers();
    let (from, to) = t.range();
    let plan = Arc::new(ExportPlan::plan_across(t.storages(), "cam", from, to).expect("planned"));
    // Procedure "delete slice" step 1 in stage 1 after planning: the H1 slice leaves.
    let stage1 = t.stage1_root.join("main");
    let slice = StageIndex::open(&stage1).expect("index").slices().expect("slices").remove(0);
    std::fs::rename(stage1.join(&slice.dir_name), stage1.join(format!(".trash-{}", slice.id))).expect("trashed");
    let e = write_export(&plan, &t.data_dir.join("gone.mp4")).expect_err("a deleted slice cannot be read");
    assert_eq!(e.kind(), ErrorKind::Gone, "{e}");

    // Stage 1 unmounted (its directory is empty): planned without it, H1 comes from stage 2
    // (groomed: a key frame per second) except its last second, which the ring still holds.
    let unmounted = t.stage1_root.with_extension("unmounted");
    std::fs::rename(&t.stage1_root, &unmounted).expect("unmount");
    std::fs::create_dir_all(&t.stage1_root).expect("bare mount point");
    let plan = Arc::new(ExportPlan::plan_across(t.storages(), "cam", from, to).expect("planned without stage 1"));
    let expected_video = LAP_KEY_FRAMES + 3 + (25 + LAP_VIDEO_FRAMES / 2) + LAP_VIDEO_FRAMES;
    assert_eq!(plan.video_frames, expected_video);
    let path = t.data_dir.join("without-stage1.mp4");
    write_export(&plan, &path).expect("reads");
    common::ffmpeg_decode_ok(&path).unwrap_or_else(|e| panic!("ffmpeg -xerror without stage 1: {e}"));
    assert_eq!(frames_per_stream(&path)[0].1, expected_video as u64);
}

/// Issue 13, ST-17 through HTTP on the real recorder: a storage whose stage "nas" holds H0 and H1
/// (the ring lost them to its retention) and whose ring holds H2. The recordings list answers
/// run B (half in the stage, half in the ring) as one recording, and `export.mp4` over H0..H2 is
/// one MP4 with every frame of the three runs that ffmpeg decodes whole; an evidence lock over
/// the runs lists what each tier holds (EL-8); `edgerec export` writes the same bytes.
#[test]
fn http_recordings_and_export_span_ring_and_stage() {
    let tmp = common::temp_dir();
    let data_dir = tmp.path().to_owned();
    let cfg = ring_config(&data_dir);
    let h0 = hour_of(now_us()) - 3;
    let (h1, h2) = (h0 + 1, h0 + 2);
    let starts_us = [h0 * HOUR_US + 600_000_000, h2 * HOUR_US - 4_000_000, h2 * HOUR_US + 600_000_000];
    let recorder = record_laps(&cfg, &data_dir, &[(1, starts_us[0]), (2, starts_us[1]), (3, starts_us[2])]);
    let stage_root = data_dir.join("nas");
    archive_hour(&cfg.path, &stage_root.join("main"), recorder, h0, None);
    archive_hour(&cfg.path, &stage_root.join("main"), recorder, h1, None);
    ring_forgets_before(&cfg.path, h2 * HOUR_US);

    // The same ring (size and segment size unchanged) with the stage as its archive chain, and
    // the camera "cam" the data belongs to (recording now, outside the range asked for).
    let body = format!(
        "[[storage]]\nid = \"main\"\npath = \"{}\"\nsize = \"36MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 1000\n\
         retention_days = 7\n[[storage.archive]]\nname = \"nas\"\npath = \"{}\"\nretention_days = 30\n\
         max_size = \"1GiB\"\nschedule = \"hourly\"\nmount = false\n[[camera]]\nid = \"cam\"\nsource = \"demo:\"\n\
         [camera.motion]\nenabled = false\n",
        cfg.path.display(),
        stage_root.display()
    );
    let rec = RecorderProc::start(&data_dir, &body);
    let (from, to) = (rfc3339(h0 * HOUR_US), rfc3339((h0 + 3) * HOUR_US));

    let r = common::http_get(&rec.url(&format!("/api/v1/cameras/cam/recordings?from={from}&to={to}"))).expect("GET");
    assert_eq!(r.status, 200, "{}", r.text());
    let listed: Vec<(i64, i64)> = r.json()["recordings"]
        .as_array()
        .expect("recordings")
        .iter()
        .map(|x| {
            let at = |k: &str| x[k].as_str().expect(k).parse::<jiff::Timestamp>().expect("RFC 3339").as_microsecond();
            (at("start"), at("end"))
        })
        .collect();
    assert_eq!(listed.iter().map(|r| r.0).collect::<Vec<_>>(), starts_us.to_vec(), "{listed:?}");
    assert!(listed[1].1 >= starts_us[1] + 7_900_000, "run B is one recording over stage and ring: {listed:?}");

    let path = data_dir.join("http-across.mp4");
    let r = export_http(&rec, "cam", h0 * HOUR_US, (h0 + 3) * HOUR_US, &path);
    assert_eq!(r.header("X-Edgerec-Covered-Count"), Some("3"), "one range per run: {:?}", r.headers);
    common::ffmpeg_decode_ok(&path).unwrap_or_else(|e| panic!("ffmpeg -xerror on export.mp4 across tiers: {e}"));
    let streams = frames_per_stream(&path);
    assert_eq!(streams[0], ("h264".to_owned(), 3 * LAP_VIDEO_FRAMES as u64), "{streams:?}");

    // EL-8 with ST-17: an evidence lock over the three runs lists what the ring holds (from run
    // B's last chunk before H2 on) and what the stage holds (from run A on), each as its tier.
    let lock = serde_json::json!({"cameras": ["cam"], "start_wall_us": starts_us[0], "end_wall_us": starts_us[2] + 8_000_000,
        "expires_wall_us": now_us() + 86_400_000_000i64, "description": "across tiers"});
    let r = common::http_request(
        "POST",
        &rec.url("/api/v1/evidence-locks"),
        &[("Content-Type", "application/json")],
        lock.to_string().as_bytes(),
    )
    .expect("POST");
    assert_eq!(r.status, 201, "{}", r.text());
    let held = r.json()["held"].as_array().expect("held").clone();
    let tier =
        |name: &str| held.iter().find(|h| h["tier"] == name).unwrap_or_else(|| panic!("{name} in {held:?}")).clone();
    let (ring, stage) = (tier("ring"), tier("stage:nas"));
    assert_eq!(ring["start_wall_us"].as_i64(), Some(starts_us[1] + 3_000_000), "{held:?}");
    assert_eq!(stage["start_wall_us"].as_i64(), Some(starts_us[0]), "{held:?}");
    assert!(stage["bytes"].as_u64().unwrap_or(0) > 0, "{held:?}");
    let config = rec.config.clone();
    assert!(rec.stop(), "the recorder stopped cleanly");

    // `edgerec export` reads the same tiers from the same config: the very bytes of export.mp4.
    let cli_path = data_dir.join("cli-across.mp4");
    let out = std::process::Command::new(common::edgerec_bin())
        .args(["export", "--camera", "cam", "--from", &from, "--to", &to, "--config"])
        .arg(&config)
        .arg("-o")
        .arg(&cli_path)
        .output()
        .expect("edgerec export runs");
    assert!(out.status.success(), "edgerec export: {}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(&cli_path).expect("written") == std::fs::read(&path).expect("read"), "CLI equals HTTP");
}

/// Issue 13 review findings 2 and 3 (ST-17, A6, issue 10 point 7): one run of 32 s (four laps of
/// the clip, a key frame each second) straddles H2, flushed every 700 ms so that chunks start
/// mid-GOP.
/// - A groomed stage holds its H1 part and the ring lost what ended before H2: after the last
///   thinned chunk, the ring's first full chunk starts mid-GOP and its P frames up to the next key
///   frame are dropped (their references were groomed away); still one recording, one range.
/// - A full stage holds its H1 part and the ring lost what ended before H2 + 13 s: no tier holds
///   the 12 s between (a hole longer than the writer's run break). The export breaks there: two
///   covered ranges and a gap, the frames after the hole up to the first key frame dropped, two
///   recordings. Both exports decode whole with `ffmpeg -xerror`, with the exact frame counts.
#[test]
fn a_hole_or_a_groomed_copy_inside_a_run_breaks_it_at_a_key_frame() {
    const FLUSH_US: i64 = 700_000;
    let tmp = common::temp_dir();
    let data_dir = tmp.path().to_owned();
    let cfg = ring_config(&data_dir);
    let h0 = hour_of(now_us()) - 3;
    let (h1, h2) = (h0 + 1, h0 + 2);
    // 16.2 s before H2: the groomed copy of the chunk before H2 keeps its key frame inside H1.
    let run_start_us = h2 * HOUR_US - 16_200_000;
    let recorder = record_clip(&cfg, &data_dir, &[(1, run_start_us)], 4, FLUSH_US);
    let (nas_root, cold_root) = (data_dir.join("nas"), data_dir.join("cold"));
    archive_hour(&cfg.path, &nas_root.join("main"), recorder, h1, None);
    archive_hour(&cfg.path, &cold_root.join("main"), recorder, h1, Some(1.0));
    let chain = |name: &str, root: &Path, reduce_fps| ArchiveChain {
        storage_id: "main".to_owned(),
        stages: vec![stage(name, root, reduce_fps)],
    };
    let storages = |c: &ArchiveChain| vec![StorageTiers { ring_dir: cfg.path.clone(), stages: readable_stages(c) }];
    let (from, to) = (h0 * HOUR_US, (h0 + 3) * HOUR_US);
    // The clip's video frames: (µs since the run started, key).
    let video: Vec<(i64, bool)> = DemoSource::new()
        .expect("clip")
        .frames(4)
        .iter()
        .filter(|(_, f, _)| f.kind == edgerec::media::StreamKind::Video)
        .map(|(_, f, at)| (*at, f.key))
        .collect();
    // Where the chunk holding `at_us` starts (a flush every 700 ms), and the first key frame there or later.
    let chunk_start = |at_us: i64| at_us / FLUSH_US * FLUSH_US;
    let key_from = |at_us: i64| video.iter().find(|(t, k)| *k && *t >= at_us).expect("a key frame").0;

    // Groomed stage, ring from the chunk holding H2 on.
    ring_forgets_before(&cfg.path, h2 * HOUR_US);
    let ring_from = chunk_start(16_200_000);
    assert_ne!(ring_from, key_from(ring_from), "the ring's first chunk starts mid-GOP");
    let expected = video.iter().filter(|(t, k)| *k && *t < ring_from).count()
        + video.iter().filter(|(t, _)| *t >= key_from(ring_from)).count();
    let cold = chain("cold", &cold_root, Some(1.0));
    let plan = Arc::new(ExportPlan::plan_across(storages(&cold), "cam", from, to).expect("planned"));
    assert_eq!(plan.video_frames, expected, "P frames after the groomed copy are dropped");
    assert_eq!(plan.covered_us.len(), 1, "{:?}", plan.covered_us);
    let path = data_dir.join("groomed-then-full.mp4");
    write_export(&plan, &path).expect("reads");
    common::ffmpeg_decode_ok(&path).unwrap_or_else(|e| panic!("ffmpeg -xerror after a groomed copy: {e}"));
    assert_eq!(frames_per_stream(&path)[0].1, expected as u64);
    let recs = store::recordings_across(storages(&cold), "cam", from, to).expect("listed");
    assert_eq!(recs.len(), 1, "{recs:?}");

    // Full stage, and a hole of 11 s no tier holds after H2.
    ring_forgets_before(&cfg.path, h2 * HOUR_US + 13_000_000);
    let stage_to = chunk_start(16_200_000) + FLUSH_US;
    let ring_from = chunk_start(29_200_000);
    assert_ne!(ring_from, key_from(ring_from), "the ring's first chunk starts mid-GOP");
    let expected = video.iter().filter(|(t, _)| *t < stage_to).count()
        + video.iter().filter(|(t, _)| *t >= key_from(ring_from)).count();
    let nas = chain("nas", &nas_root, None);
    let plan = Arc::new(ExportPlan::plan_across(storages(&nas), "cam", from, to).expect("planned"));
    assert_eq!(plan.video_frames, expected, "frames after the hole up to a key frame are dropped");
    assert_eq!(plan.covered_us.len(), 2, "{:?}", plan.covered_us);
    let gaps = plan.gaps_us();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(gaps[0].0 <= run_start_us + stage_to + 40_000, "{gaps:?}");
    assert_eq!(gaps[0].1, run_start_us + key_from(ring_from), "{gaps:?}");
    let path = data_dir.join("hole.mp4");
    write_export(&plan, &path).expect("reads");
    common::ffmpeg_decode_ok(&path).unwrap_or_else(|e| panic!("ffmpeg -xerror across a hole: {e}"));
    let streams = frames_per_stream(&path);
    assert_eq!(streams[0].1, expected as u64, "{streams:?}");
    assert_eq!(streams[1].1, plan.audio_frames as u64, "{streams:?}");
    let recs = store::recordings_across(storages(&nas), "cam", from, to).expect("listed");
    assert_eq!(recs.len(), 2, "split at the hole: {recs:?}");
    assert_eq!(recs[0].start_wall_us, run_start_us, "{recs:?}");
    assert!(recs[1].start_wall_us >= run_start_us + ring_from, "{recs:?}");
}

/// Issue 13 review finding 5 (S7, A5, STYLE rule 5): the stage index is untrusted. A row whose
/// length cannot describe a chunk (2^40 bytes) is left out at planning, so its hour is read from
/// the next tier (the groomed stage 2 copy) instead of aborting the process on an allocation; a
/// row that is sane but frames its chunk otherwise than the chunk itself (two frame-table entries
/// swapped) is planned, and reading it is `Gone`, never misframed bytes.
#[test]
fn damaged_stage_rows_are_left_out_or_gone_never_misread() {
    let t = build_tiers();
    let (from, to) = t.range();
    let index = t.stage1_root.join("main").join(edgerec::archive::index::STAGE_INDEX_FILE);
    let db = rusqlite::Connection::open(&index).expect("stage 1 index");
    // Run B's second video chunk in stage 1 (H1 holds its first four seconds, a chunk each).
    let second = "(SELECT seq FROM chunk WHERE kind = 'video' ORDER BY seq LIMIT 1 OFFSET 1)";
    db.execute(&format!("UPDATE chunk SET len_bytes = 1099511627776 WHERE seq = {second}"), []).expect("damaged");
    let plan = Arc::new(ExportPlan::plan_across(t.storages(), "cam", from, to).expect("planned without the row"));
    // That second of run B comes from the groomed stage 2: its key frame instead of 25 frames.
    let expected_video = LAP_KEY_FRAMES + 2 * LAP_VIDEO_FRAMES - 24;
    assert_eq!(plan.video_frames, expected_video);
    let path = t.data_dir.join("damaged-row.mp4");
    write_export(&plan, &path).expect("reads");
    common::ffmpeg_decode_ok(&path).unwrap_or_else(|e| panic!("ffmpeg -xerror without the damaged row: {e}"));
    assert_eq!(frames_per_stream(&path)[0].1, expected_video as u64);

    // Run B's third video chunk: its first two frame-table entries swapped (sizes still add up).
    let third = "(SELECT seq FROM chunk WHERE kind = 'video' ORDER BY seq LIMIT 1 OFFSET 2)";
    db.execute(
        &format!(
            "UPDATE chunk SET frame_index = CAST(substr(frame_index, 10, 9) || substr(frame_index, 1, 9) || \
             substr(frame_index, 19) AS BLOB) WHERE seq = {third}"
        ),
        [],
    )
    .expect("swapped");
    drop(db);
    let plan = Arc::new(ExportPlan::plan_across(t.storages(), "cam", from, to).expect("planned"));
    let e = write_export(&plan, &t.data_dir.join("misframed.mp4")).expect_err("a misframed chunk is not served");
    assert_eq!(e.kind(), ErrorKind::Gone, "{e}");
}

/// Issue 13 review finding 4 (ST-17, A5): a slice whose directory vanished while the stage index
/// still lists it loses only its own rows: the export plans that hour from the next tier (the
/// groomed stage 2) and plays, also where the planner asks the tiers for the chunk after the
/// range's last one (the neighbour path used to fail the whole export).
#[test]
fn a_vanished_slice_falls_through_to_the_next_tier() {
    let t = build_tiers();
    let stage1 = t.stage1_root.join("main");
    let slice = StageIndex::open(&stage1).expect("index").slices().expect("slices").remove(0);
    std::fs::rename(stage1.join(&slice.dir_name), stage1.join(format!(".gone-{}", slice.id))).expect("removed");
    // From H0 to 2.5 s into run B: run A's key frames and run B's first three (stage 2 only).
    let (from, to) = (t.range().0, t.starts_us[1] + 2_500_000);
    let plan = Arc::new(ExportPlan::plan_across(t.storages(), "cam", from, to).expect("planned from stage 2"));
    let expected_video = LAP_KEY_FRAMES + 3;
    assert_eq!(plan.video_frames, expected_video);
    let path = t.data_dir.join("vanished-slice.mp4");
    write_export(&plan, &path).expect("reads");
    common::ffmpeg_decode_ok(&path).unwrap_or_else(|e| panic!("ffmpeg -xerror without the vanished slice: {e}"));
    assert_eq!(frames_per_stream(&path)[0].1, expected_video as u64);
    let recs = store::recordings_across(t.storages(), "cam", from, to).expect("listed");
    assert_eq!(recs.len(), 2, "{recs:?}");
}
