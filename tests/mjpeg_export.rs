//! Issue 14 (DEV-1): MJPEG frames (real JPEGs of a moving square, as a V4L2 MJPEG camera hands
//! them over) through the real store writer and the export's progressive MP4, and through the live
//! view's fMP4 (init segment + one-sample fragments); ffprobe must name MJPEG with the camera's
//! size and frame count, and `ffmpeg -xerror` must decode every frame. No VM: the store is fed
//! directly (tests/v4l2_vm.rs covers the device side).

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edgerec::clocks::{Clocks, SystemClocks};
use edgerec::media::{mjpeg_sample_entry, Frame, IngestFrame, SampleEntry, StreamKind};
use edgerec::mp4::{build_fragment_head, build_init_segment, rfc6381_codec, Sample};
use edgerec::store::export::ExportPlan;
use edgerec::store::{self, writer, StorageConfig};

const WIDTH: u16 = 320;
const HEIGHT: u16 = 240;
/// 25 fps in the 90 kHz media clock.
const FRAME_90K: i64 = 3600;
/// Four seconds at 25 fps.
const FRAMES: u64 = 100;

/// A JPEG of a grey scene with a white 40-pixel square at column `x`.
fn square_jpeg(x: u16) -> Vec<u8> {
    let (w, h) = (usize::from(WIDTH), usize::from(HEIGHT));
    let mut rgb = vec![90u8; w * h * 3];
    for row in 100..140 {
        for col in usize::from(x)..(usize::from(x) + 40).min(w) {
            rgb[(row * w + col) * 3..(row * w + col) * 3 + 3].copy_from_slice(&[240, 240, 240]);
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 80).encode(&rgb, WIDTH, HEIGHT, jpeg_encoder::ColorType::Rgb).unwrap();
    out
}

fn storage_cfg(dir: &std::path::Path) -> StorageConfig {
    StorageConfig {
        id: "t".to_owned(),
        path: dir.join("storage"),
        size_bytes: 8 * (1 << 20) + (4 << 20),
        segment_bytes: 1 << 20,
        retention: Duration::from_secs(7 * 86_400),
        sync_interval: Duration::from_secs(3600),
        default: true,
    }
}

/// Issue 14, DEV-1: recorded MJPEG exports as an MP4 that ffprobe reports as MJPEG of the camera's
/// size with every frame, every frame a key frame, and that `ffmpeg -xerror` decodes fully.
#[test]
fn dev1_mjpeg_frames_export_as_mp4_that_ffmpeg_decodes() {
    let tmp = common::temp_dir();
    let cfg = storage_cfg(tmp.path());
    let recorder = store::recorder_uuid(tmp.path()).unwrap();
    let (handle, join, ready) = writer::spawn(cfg.clone(), tmp.path().to_owned(), recorder, Arc::new(SystemClocks));
    ready.recv().unwrap().unwrap();
    let entry = Arc::new(SampleEntry::new(mjpeg_sample_entry(WIDTH, HEIGHT), 90_000).unwrap());
    let base_wall_us = SystemClocks.realtime_us() - 3_600_000_000;
    let mut frames = Vec::new();
    for n in 0..FRAMES {
        let jpeg = Bytes::from(square_jpeg((n * 2) as u16));
        frames.push(jpeg.clone());
        let media = n as i64 * FRAME_90K;
        let f = IngestFrame {
            camera: "cam".into(),
            ingest_run: 1,
            sample_entry: entry.clone(),
            wall_us: base_wall_us + media * 1_000_000 / 90_000,
            frame: Frame { kind: StreamKind::Video, media_time: media, key: true, data: jpeg },
            temporary_keep_us: None,
        };
        handle.try_send(f).expect("the queue has room for 100 frames");
    }
    assert!(handle.flush(Duration::from_secs(30)), "writer flushed");
    let plan = Arc::new(ExportPlan::plan(&cfg.path, "cam", base_wall_us, i64::MAX).unwrap());
    assert_eq!(plan.video_frames as u64, FRAMES);
    let mut mp4 = Vec::new();
    let mut r = plan.reader();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read_at(mp4.len() as u64, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        mp4.extend_from_slice(&buf[..n]);
    }
    let expected: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
    assert!(mp4.ends_with(&expected), "mdat holds the JPEGs unchanged, in order");
    let path = tmp.path().join("export.mp4");
    std::fs::write(&path, &mp4).unwrap();
    let probe = common::ffprobe_json_with(&path, &["-count_frames", "-show_streams"]);
    let s = &probe["streams"][0];
    assert_eq!(
        (s["codec_name"].as_str(), s["width"].as_u64(), s["height"].as_u64()),
        (Some("mjpeg"), Some(u64::from(WIDTH)), Some(u64::from(HEIGHT))),
        "{probe}"
    );
    assert_eq!(s["nb_read_frames"].as_str(), Some(FRAMES.to_string().as_str()), "{probe}");
    assert_eq!(s["avg_frame_rate"].as_str(), Some("25/1"), "{probe}");
    let packets = common::ffprobe_json_with(&path, &["-show_packets"]);
    let keys = packets["packets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["flags"].as_str().is_some_and(|f| f.starts_with('K')))
        .count();
    assert_eq!(keys as u64, FRAMES, "every MJPEG frame is a key frame");
    common::ffmpeg_decode_ok(&path).unwrap_or_else(|e| panic!("ffmpeg -xerror on the export: {e}"));
    drop(handle);
    join.join().unwrap();
}

/// Issue 14, DEV-1: the live view's fMP4 of an MJPEG camera (what `live.mp4` serves) is valid, with
/// the `mp4v.6c` codec string a browser is asked about, and ffmpeg decodes it.
#[test]
fn dev1_mjpeg_fmp4_decodes_and_names_its_codec() {
    let tmp = common::temp_dir();
    let entry = SampleEntry::new(mjpeg_sample_entry(WIDTH, HEIGHT), 90_000).unwrap();
    assert_eq!(rfc6381_codec(&entry), "mp4v.6c");
    let mut fmp4 = build_init_segment(&[&entry]).unwrap();
    for n in 0..25u32 {
        let jpeg = square_jpeg((n * 4) as u16);
        let sample = Sample { size_bytes: jpeg.len() as u32, duration: FRAME_90K as u32, key: true };
        fmp4.extend_from_slice(&build_fragment_head(n + 1, 1, u64::from(n) * FRAME_90K as u64, &sample).unwrap());
        fmp4.extend_from_slice(&jpeg);
    }
    let path = tmp.path().join("live.mp4");
    std::fs::write(&path, &fmp4).unwrap();
    let probe = common::ffprobe_json_with(&path, &["-count_frames", "-show_streams"]);
    let s = &probe["streams"][0];
    assert_eq!((s["codec_name"].as_str(), s["nb_read_frames"].as_str()), (Some("mjpeg"), Some("25")), "{probe}");
    common::ffmpeg_decode_ok(&path).unwrap_or_else(|e| panic!("ffmpeg -xerror on the fMP4: {e}"));
}
