//! Issue 13 point 3 (AR-8; ARCHITECTURE "Archives", procedure "create stage"), with the real
//! binary, a real RTSP camera and a stage on a loop-mounted ext4: a stage created once whose
//! share is unmounted is unavailable (status and one `archive_unavailable` event), is not created
//! again on the bare mount point, and recording goes on without a dropped frame; mounted again it
//! raises `archive_available` and a round copies into it at once.
//!
//! Issue 13 point 4 (AR-11): through the config API, only the last stage of a chain may be
//! removed; removing an earlier one is refused with file, line, key and reason, and writes nothing.
//!
//! The hours a round copies must be finished, and a live camera finishes none within a test, so
//! the finished hours are written into the ring by `store::writer` with past wall times between
//! two runs of the recorder (as tests/archive_kill9.rs does); the recorder process is used for
//! stage creation, availability, events, status and the live camera.

mod common;

use std::path::Path;
use std::time::Duration;

use common::archive::{storage_events, write_finished_hours};
use common::mount::LoopMount;
use common::recorder::RecorderProc;
use common::{http_request, wait_for, RtspServer};
use serde_json::Value;

/// Finished hours written into the ring for the stage to copy.
const HOURS: i64 = 3;

/// The configuration: the ring, one stage `nas` at `stage_root` and, when given, a camera.
fn body(ring_dir: &Path, stage_root: &Path, camera_url: Option<&str>) -> String {
    let mut b = format!(
        "[[storage]]\nid = \"main\"\npath = \"{}\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 1000\n\
         retention_days = 7\n[[storage.archive]]\nname = \"nas\"\npath = \"{}\"\nretention_days = 30\n\
         max_size = \"200MiB\"\nschedule = \"hourly\"\n",
        ring_dir.display(),
        stage_root.display()
    );
    if let Some(url) = camera_url {
        b.push_str(&format!("[[camera]]\nid = \"cam\"\nsource = \"{url}\"\n[camera.motion]\nenabled = false\n"));
    }
    b
}

/// Every stored event of `kind` about storage `main`.
fn events(rec: &RecorderProc, kind: &str) -> Vec<Value> {
    storage_events(rec, kind)
}

/// Stage `nas` as status shows it.
fn nas(rec: &RecorderProc) -> Value {
    rec.status()["storages"][0]["archives"][0].clone()
}

#[test]
fn an_unmounted_stage_is_unavailable_recording_goes_on_and_it_copies_again_when_back() {
    let tmp = common::temp_dir();
    let data_dir = tmp.path().join("data");
    let ring_dir = data_dir.join("ring");
    // Room for the ST-5 reserve (250 MB) the round keeps free on a stage's filesystem.
    let mount = LoopMount::new(&tmp.path().join("nas.img"), &tmp.path().join("nas"), 320 << 20);

    // Run 1 creates the ring and the stage (STAGE, index, data_dir uuid file).
    let rec = RecorderProc::start(&data_dir, &body(&ring_dir, &mount.dir, None));
    let created = wait_for(Duration::from_secs(60), || Some(nas(&rec)).filter(|s| s["last_round"].is_object()))
        .unwrap_or_else(|| panic!("no round into the stage: {}\n{}", nas(&rec), rec.log_text()));
    assert_eq!(created["available"], true, "{created}");
    assert_eq!(created["path"], mount.dir.join("main").display().to_string(), "{created}");
    assert_eq!(created["slices"], 0, "{created}");
    assert!(mount.dir.join("main").join("STAGE").is_file());
    assert!(data_dir.join("archive-main-nas.uuid").is_file());
    assert!(rec.stop());

    // Finished hours the stage does not hold yet; then the share goes away.
    write_finished_hours(&data_dir, &ring_dir, HOURS);
    mount.unmount();
    assert!(!mount.dir.join("main").exists(), "the mount point is bare");

    // Run 2 with a live camera: the stage is unavailable and said so once; nothing is created on
    // the bare mount point; the camera records without a dropped frame.
    let rtsp = RtspServer::start(&[("/cam", "live:h264:320x240@15")]);
    let rec = RecorderProc::start(&data_dir, &body(&ring_dir, &mount.dir, Some(&rtsp.url("/cam"))));
    let away = wait_for(Duration::from_secs(60), || Some(nas(&rec)).filter(|s| s["available"] == false))
        .unwrap_or_else(|| panic!("the stage never showed unavailable: {}\n{}", nas(&rec), rec.log_text()));
    let reason = away["unavailable_reason"].as_str().unwrap_or_default();
    // Issue 13 review High 1: the stage's path must be a mount point (`mount` defaults to true).
    assert!(reason.contains("not a mount point"), "{away}");
    wait_for(Duration::from_secs(30), || (events(&rec, "archive_unavailable").len() == 1).then_some(()))
        .unwrap_or_else(|| panic!("no archive_unavailable event: {:?}", events(&rec, "archive_unavailable")));
    rec.wait_frames("cam", 60, Duration::from_secs(60));
    assert!(!mount.dir.join("main").exists(), "the stage is never created again on the bare mount point");
    let cam = rec.camera("cam");
    assert_eq!(cam["frames_dropped"], 0, "recording goes on without a dropped frame: {cam}");

    // The share is back: available, and a round copies the finished hours at once.
    mount.mount();
    let back = wait_for(Duration::from_secs(60), || {
        Some(nas(&rec)).filter(|s| s["available"] == true && s["slices"] == HOURS)
    })
    .unwrap_or_else(|| panic!("the stage did not come back and copy: {}\n{}", nas(&rec), rec.log_text()));
    assert_eq!(back["last_round"]["copied"], HOURS, "{back}");
    assert_eq!(back["last_round"]["error"], Value::Null, "{back}");
    assert!(back["bytes"].as_u64().unwrap_or(0) > 0, "{back}");
    assert!(back["oldest_record"].is_string() && back["newest_record"].is_string(), "{back}");
    wait_for(Duration::from_secs(30), || (events(&rec, "archive_available").len() == 1).then_some(()))
        .unwrap_or_else(|| panic!("no archive_available event: {:?}", events(&rec, "archive_available")));
    assert_eq!(events(&rec, "archive_unavailable").len(), 1, "raised once");
    // Issue 13 point 5 (ST-7): with the camera writing, status forecasts the days the stage
    // holds, at most its 30-day retention.
    let days = wait_for(Duration::from_secs(30), || nas(&rec)["days_at_current_rate"].as_f64())
        .unwrap_or_else(|| panic!("no forecast: {}", nas(&rec)));
    assert!(days > 0.0 && days <= 30.0, "{days}");
    let cam = rec.camera("cam");
    assert_eq!(cam["frames_dropped"], 0, "no frame dropped for archiving: {cam}");
    assert!(rec.stop());
}

/// One `[[storage.archive]]` block of the configuration.
fn stage_block(name: &str, path: &Path, days: u32) -> String {
    format!(
        "[[storage.archive]]\nname = \"{name}\"\npath = \"{}\"\nretention_days = {days}\nmax_size = \"1GiB\"\n\
         schedule = \"hourly\"\n",
        path.display()
    )
}

/// Issue 13 point 4 (AR-11): a config change through the API that removes the first of two
/// stages is refused (400, file, line, key, reason; the file stays as it was), and one that
/// removes the last stage is applied.
#[test]
fn only_the_last_stage_of_a_chain_may_be_removed_through_the_config_api() {
    let tmp = common::temp_dir();
    let data_dir = tmp.path().join("data");
    let (nas, cold) =
        (stage_block("nas", &tmp.path().join("nas"), 30), stage_block("cold", &tmp.path().join("cold"), 90));
    let storage = format!(
        "[[storage]]\nid = \"main\"\npath = \"{}\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nretention_days = 7\n",
        data_dir.join("ring").display()
    );
    let rec = RecorderProc::start(&data_dir, &format!("{storage}{nas}{cold}"));
    let put = |text: &str| {
        let r =
            http_request("PUT", &rec.url("/api/v1/config"), &[("Content-Type", "application/toml")], text.as_bytes())
                .expect("PUT answers");
        (r.status, r.json())
    };
    let before = std::fs::read_to_string(&rec.config).expect("config file");
    let (status, v) = put(&before.replace(&nas, ""));
    assert_eq!(status, 400, "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("key `storage.archive`") && message.contains("AR-11"), "{message}");
    assert!(message.contains("removing archive stage \"nas\""), "{message}");
    let file_line = message.split(": key").next().unwrap_or_default();
    assert!(file_line.rsplit(':').next().is_some_and(|l| l.parse::<usize>().is_ok()), "file:line first: {message}");
    assert_eq!(std::fs::read_to_string(&rec.config).expect("config file"), before, "nothing written");

    let (status, v) = put(&before.replace(&cold, ""));
    assert_eq!(status, 200, "{v}");
    assert!(!std::fs::read_to_string(&rec.config).expect("config file").contains("name = \"cold\""));
    assert!(rec.stop());
}
