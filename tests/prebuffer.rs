//! Pre-buffer and manual recording (REC-2..REC-5, REC-7): a camera that does not record keeps the
//! last seconds in memory; a start includes them from the key frame at or before the pre-roll; a
//! stop ends the recording; a memory pre-buffer is clamped to 15 s.

mod common;

use std::time::Duration;

use common::recorder::{now_us, post, RecorderProc};
use common::wait_until;

const STORAGE: &str = "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 200\n";

#[test]
fn manual_recording_includes_the_prebuffer_and_stops_on_request() {
    let tmp = common::temp_dir();
    let body = format!(
        "{STORAGE}[[camera]]\nid = \"demo\"\nsource = \"demo:\"\nrecord = \"never\"\nprebuffer_seconds = 3\n\
         [[camera]]\nid = \"long\"\nsource = \"demo:\"\nrecord = \"never\"\nprebuffer_seconds = 30\n"
    );
    let rec = RecorderProc::start(tmp.path(), &body);
    // REC-3: 30 s in memory is clamped to 15 s.
    assert_eq!(rec.camera("long")["prebuffer_seconds"], 15.0);
    assert!(rec.log_text().contains("clamped to 15 s"), "{}", rec.log_text());
    // frames_received counts video (25/s) and audio (~47/s): ~7 s of streaming.
    rec.wait_frames_streaming("demo", 500);
    let c = rec.camera("demo");
    assert_eq!((c["state"].as_str(), c["recording"].as_bool()), (Some("streaming"), Some(false)), "{c}");
    assert!(rec.recordings("demo").is_empty(), "nothing recorded before the request");

    let t_start = now_us();
    let r = post(&rec, "/api/v1/cameras/demo/record/start");
    assert_eq!(r["manual"], true);
    assert!(wait_until(Duration::from_secs(10), || rec.camera("demo")["recording"] == true));
    std::thread::sleep(Duration::from_millis(2500));
    let t_stop = now_us();
    post(&rec, "/api/v1/cameras/demo/record/stop");
    assert!(wait_until(Duration::from_secs(10), || rec.camera("demo")["recording"] == false));
    assert!(wait_until(Duration::from_secs(10), || rec
        .recordings("demo")
        .first()
        .is_some_and(|(_, e)| *e >= t_stop - 300_000)));
    let seqs = rec.recordings("demo");
    assert_eq!(seqs.len(), 1, "{seqs:?}");
    let (start, end) = seqs[0];
    // From the key frame at or before start - 3 s; the demo clip has a key frame every second.
    assert!(start <= t_start - 3_000_000 + 50_000, "pre-roll reaches 3 s back: {} ms", (t_start - start) / 1000);
    assert!(start >= t_start - 4_200_000, "no more than one GOP more: {} ms", (t_start - start) / 1000);
    assert!(end >= t_stop - 300_000 && end <= t_stop + 1_000_000, "ends at the stop: {} ms", (end - t_stop) / 1000);
    let out = tmp.path().join("manual.mp4");
    common::recorder::export_http(&rec, "demo", start, end, &out);
    common::ffmpeg_decode_ok(&out).unwrap();
    // Stopping manual recording on a continuously recording camera changes nothing (REC-7).
    assert!(rec.camera("long")["recording"] == false);
}

/// REC-3 disk mode: the pre-buffer is temporary data in the store, invisible to readers and
/// expired after its length, and it survives a restart: 60 s of disk pre-buffer taken before a
/// restart become part of a recording started after it.
#[test]
fn disk_prebuffer_of_60_s_works_across_a_restart() {
    let tmp = common::temp_dir();
    let port = common::free_local_port();
    let body = format!(
        "{STORAGE}[[camera]]\nid = \"demo\"\nsource = \"demo:\"\nrecord = \"never\"\nprebuffer = \"disk\"\nprebuffer_seconds = 60\n\
         [[camera]]\nid = \"short\"\nsource = \"demo:\"\nrecord = \"never\"\nprebuffer = \"disk\"\nprebuffer_seconds = 2\n"
    );
    let rec = RecorderProc::start_on(tmp.path(), &body, port);
    let first_frames = now_us();
    // ~10 s of streaming: about 72 frames/s (video and audio).
    rec.wait_frames_streaming("demo", 720);
    assert!(rec.recordings("demo").is_empty(), "temporary data is not a recording");
    assert!(rec.stop(), "SIGTERM");
    let t_restart = now_us();
    let rec = RecorderProc::start_on(tmp.path(), &body, port);
    rec.wait_frames_streaming("demo", 150);
    let t_start = now_us();
    post(&rec, "/api/v1/cameras/demo/record/start");
    assert!(wait_until(Duration::from_secs(10), || rec.camera("demo")["recording"] == true));
    std::thread::sleep(Duration::from_millis(1500));
    post(&rec, "/api/v1/cameras/demo/record/stop");
    assert!(wait_until(Duration::from_secs(10), || rec.camera("demo")["recording"] == false));
    assert!(wait_until(Duration::from_secs(10), || rec.recordings("demo").last().is_some_and(|(_, e)| *e > t_start)));
    let seqs = rec.recordings("demo");
    assert_eq!(seqs.len(), 2, "one run before the restart, one after: {seqs:?}");
    assert!(seqs[0].0 <= first_frames + 2_000_000, "the pre-restart data became a recording: {seqs:?}");
    assert!(seqs[0].1 <= t_restart && seqs[1].0 > seqs[0].1);
    let out = tmp.path().join("disk.mp4");
    common::recorder::export_http(&rec, "demo", seqs[0].0, seqs[1].1, &out);
    common::ffmpeg_decode_ok(&out).unwrap();
    // The short camera's temporary data expired and nothing of it is a recording, also after the
    // restart's recovery (which once re-indexed expired tail chunks as permanent).
    assert!(rec.recordings("short").is_empty(), "{:?}", rec.recordings("short"));
    let config = rec.config.clone();
    assert!(rec.stop());
    let o =
        std::process::Command::new(common::edgerec_bin()).args(["check", "--config"]).arg(&config).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}
