//! Pre-buffer and manual recording (REC-2..REC-5, REC-7): a camera that does not record keeps the
//! last seconds in memory; a start includes them from the key frame at or before the pre-roll; a
//! stop ends the recording; a memory pre-buffer is clamped to 15 s; manual recording raises its
//! own events, stops by itself, and never ends a continuous recording.

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
}

fn events_of(rec: &RecorderProc, camera: &str) -> Vec<String> {
    let r = common::http_get(&rec.url("/api/v1/events?after=0&limit=1000")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["camera"] == camera)
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// REC-7 on a camera that records continuously: Manual Recording Started and Stopped fire even
/// though the camera already records, and stopping the manual recording does not stop the
/// continuous recording (no Recording Stopped, the recording keeps growing).
#[test]
fn stopping_manual_recording_on_a_continuously_recording_camera_keeps_it_recording() {
    let tmp = common::temp_dir();
    let body = format!("{STORAGE}[[camera]]\nid = \"cont\"\nsource = \"demo:\"\n[camera.motion]\nenabled = false\n");
    let rec = RecorderProc::start(tmp.path(), &body);
    assert!(wait_until(Duration::from_secs(20), || !rec.recordings("cont").is_empty()), "it records");
    assert_eq!(rec.camera("cont")["recording_reasons"], serde_json::json!(["continuous"]));

    let r = post(&rec, "/api/v1/cameras/cont/record/start");
    assert_eq!(r["manual"], true);
    assert_eq!(r["recording_reasons"], serde_json::json!(["continuous", "manual"]));
    let r = post(&rec, "/api/v1/cameras/cont/record/stop");
    assert_eq!(r["manual"], false);
    assert_eq!(r["recording_reasons"], serde_json::json!(["continuous"]), "the continuous reason stays");
    let t_stop = now_us();
    assert!(
        wait_until(Duration::from_secs(10), || events_of(&rec, "cont")
            .contains(&"manual_recording_stopped".to_owned())),
        "{:?}",
        events_of(&rec, "cont")
    );
    // Still recording after the stop: the one recording grows past it, without a cut.
    assert!(wait_until(Duration::from_secs(10), || rec
        .recordings("cont")
        .last()
        .is_some_and(|(_, e)| *e > t_stop + 1_500_000)));
    assert_eq!(rec.recordings("cont").len(), 1, "no cut: {:?}", rec.recordings("cont"));
    assert_eq!(rec.camera("cont")["recording"], true);
    let kinds = events_of(&rec, "cont");
    let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
    assert_eq!(count("manual_recording_started"), 1, "{kinds:?}");
    assert_eq!(count("manual_recording_stopped"), 1, "{kinds:?}");
    assert_eq!(count("recording_stopped"), 0, "the camera never stopped recording: {kinds:?}");
}

/// REC-7's auto-stop (5 minutes by default; `max_seconds` here so the test does not wait 5
/// minutes): a manual recording ends by itself with Recording Stopped (REC-14).
#[test]
fn manual_recording_stops_by_itself_after_max_seconds() {
    let tmp = common::temp_dir();
    let body = format!(
        "{STORAGE}[[camera]]\nid = \"demo\"\nsource = \"demo:\"\nrecord = \"never\"\n[camera.motion]\nenabled = false\n"
    );
    let rec = RecorderProc::start(tmp.path(), &body);
    rec.wait_frames_streaming("demo", 100);
    let t_start = now_us();
    post(&rec, "/api/v1/cameras/demo/record/start?max_seconds=2");
    assert!(wait_until(Duration::from_secs(10), || rec.camera("demo")["recording"] == true));
    assert!(wait_until(Duration::from_secs(10), || rec.camera("demo")["recording"] == false), "stopped by itself");
    let t_off = now_us();
    assert!(t_off - t_start >= 2_000_000, "not before max_seconds: {} ms", (t_off - t_start) / 1000);
    assert!(wait_until(Duration::from_secs(10), || rec.recordings("demo").len() == 1));
    let (_, end) = rec.recordings("demo")[0];
    assert!(end <= t_start + 2_000_000 + 500_000, "ends at max_seconds: {} ms after the start", (end - t_start) / 1000);
    assert!(wait_until(Duration::from_secs(10), || {
        let k = events_of(&rec, "demo");
        ["manual_recording_started", "recording_started", "recording_stopped", "manual_recording_stopped"]
            .iter()
            .all(|w| k.contains(&w.to_string()))
    }));
    assert_eq!(rec.camera("demo")["recording_reasons"], serde_json::json!([]));
    // REC-7: the manual recording that ran out ends with exactly one Manual Recording Stopped.
    let stops = events_of(&rec, "demo").iter().filter(|k| *k == "manual_recording_stopped").count();
    assert_eq!(stops, 1);
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
