//! Issue 13 (AR-8, ST-5, ST-17; ARCHITECTURE "Archives" and "Decisions where the issues were
//! silent"): archive stages that cannot hurt the box or hang the recorder, with the real binary,
//! a real RTSP camera and stages on loop-mounted ext4 filesystems.
//!
//! The hours a round copies must be finished, and a live camera finishes none within a test, so
//! the finished hours are written into the ring by the store's own writer before the recorder
//! starts (`common::archive::write_finished_hours`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::archive::{storage_events, write_finished_hours};
use common::mount::LoopMount;
use common::recorder::{export_http, RecorderProc};
use common::{http_request, wait_for, RtspServer};
use edgerec::clocks::{Clocks, SystemClocks};
use serde_json::Value;

/// Finished hours written into the ring for the stage to copy.
const HOURS: i64 = 2;

/// The configuration: the ring (as `common::archive::ring_config`), one stage `nas` at
/// `stage_root` with `extra` stage keys, and a camera at `camera_url`.
fn body(ring_dir: &Path, stage_root: &Path, extra: &str, camera_url: &str) -> String {
    format!(
        "[[storage]]\nid = \"main\"\npath = \"{}\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 1000\n\
         retention_days = 7\n[[storage.archive]]\nname = \"nas\"\npath = \"{}\"\nretention_days = 30\n\
         max_size = \"200MiB\"\nschedule = \"hourly\"\n{extra}[[camera]]\nid = \"cam\"\nsource = \"{camera_url}\"\n\
         [camera.motion]\nenabled = false\n",
        ring_dir.display(),
        stage_root.display()
    )
}

/// Stage `nas` as status shows it.
fn nas(rec: &RecorderProc) -> Value {
    rec.status()["storages"][0]["archives"][0].clone()
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Issue 13 point 1 of stop 23 (review-life High 1, #15; AR-8): a stage configured on a mount
/// point whose share is not mounted at the recorder's first start is unavailable with a reason
/// saying so, and nothing at all is created on the root filesystem under the mount point (before
/// the fix the round ran `mkdir -p` there and copied the ring onto the root filesystem);
/// recording goes on. Once the share is mounted the stage is created on it and a round copies
/// the finished hours there.
#[test]
fn a_stage_whose_share_is_not_mounted_at_first_start_is_never_created_on_the_root_filesystem() {
    let tmp = common::temp_dir();
    let data_dir = tmp.path().join("data");
    let ring_dir = data_dir.join("ring");
    write_finished_hours(&data_dir, &ring_dir, HOURS);
    // Room for the ST-5 reserve (250 MB) the round keeps free on a stage's filesystem.
    let mount = LoopMount::new(&tmp.path().join("nas.img"), &tmp.path().join("nas"), 320 << 20);
    mount.unmount();
    assert!(names_in(&mount.dir).is_empty(), "the mount point is bare");

    let rtsp = RtspServer::start(&[("/cam", "live:h264:320x240@15")]);
    let rec = RecorderProc::start(&data_dir, &body(&ring_dir, &mount.dir, "", &rtsp.url("/cam")));
    let away = wait_for(Duration::from_secs(60), || Some(nas(&rec)).filter(|s| s["unavailable_reason"].is_string()))
        .unwrap_or_else(|| panic!("the stage never showed unavailable: {}\n{}", nas(&rec), rec.log_text()));
    let reason = away["unavailable_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("not a mount point"), "{away}");
    wait_for(Duration::from_secs(30), || (storage_events(&rec, "archive_unavailable").len() == 1).then_some(()))
        .unwrap_or_else(|| panic!("no archive_unavailable event: {:?}", storage_events(&rec, "archive_unavailable")));
    rec.wait_frames("cam", 60, Duration::from_secs(60));
    assert!(
        names_in(&mount.dir).is_empty(),
        "nothing is created under the bare mount point: {:?}",
        names_in(&mount.dir)
    );
    assert!(!data_dir.join("archive-main-nas.uuid").exists(), "the stage is not recorded as created");
    assert_eq!(nas(&rec)["last_round"], Value::Null, "no round into an unavailable stage");
    let cam = rec.camera("cam");
    assert_eq!(cam["frames_dropped"], 0, "recording goes on: {cam}");

    // The share is mounted: the stage is created on it and the round copies the finished hours.
    mount.mount();
    let back = wait_for(Duration::from_secs(60), || {
        Some(nas(&rec)).filter(|s| s["available"] == true && s["slices"] == HOURS)
    })
    .unwrap_or_else(|| panic!("the stage was not created and filled: {}\n{}", nas(&rec), rec.log_text()));
    assert_eq!(back["last_round"]["copied"], HOURS, "{back}");
    assert!(mount.dir.join("main").join("STAGE").is_file());
    assert!(data_dir.join("archive-main-nas.uuid").is_file());

    // Stop 23 point 2 (review-life High 2, ST-5): a `max_size` above the size of the mounted
    // share is refused through the config API with file, line, key and reason; nothing is written.
    let before = std::fs::read_to_string(&rec.config).expect("config file");
    let bigger = before.replace("200MiB", "1GiB");
    assert_ne!(bigger, before);
    let r = http_request("PUT", &rec.url("/api/v1/config"), &[("Content-Type", "application/toml")], bigger.as_bytes())
        .expect("PUT answers");
    assert_eq!(r.status, 400, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("key `storage.archive.max_size`") && message.contains("ST-5"), "{message}");
    let file_line = message.split(": key").next().unwrap_or_default();
    assert!(file_line.rsplit(':').next().is_some_and(|l| l.parse::<usize>().is_ok()), "file:line first: {message}");
    assert_eq!(std::fs::read_to_string(&rec.config).expect("config file"), before, "nothing written");
    assert!(rec.stop());

    // Everything the stage wrote is on the share: the mount point under it is still bare.
    mount.unmount();
    assert!(names_in(&mount.dir).is_empty(), "the root filesystem holds nothing: {:?}", names_in(&mount.dir));
}

/// Stop 23 point 3 (review-life #8, #23; review-tiers High 1; AR-8, ST-17): a stage whose share
/// stops answering (its probes and reads block, through the `fault-injection` hook
/// `EDGEREC_FAULT_HANG_STAGES_WHILE`, as a hung NFS `hard` mount does) is shown unavailable as
/// "not answering" with one `archive_unavailable` event, while status, the recordings list and
/// an export from the ring still answer at once (readers skip a stage the probe thread found
/// unavailable instead of opening it per request). When it answers again it is available again.
/// Before the fix the availability check ran on the archive thread itself and hung with it:
/// status kept `available: true`, no event came, and every reader opened the stage and hung.
#[test]
fn a_hung_share_is_shown_not_answering_and_readers_answer_from_the_ring() {
    let tmp = common::temp_dir();
    let data_dir = tmp.path().join("data");
    let share = tmp.path().join("share");
    std::fs::create_dir_all(&share).expect("stage path");
    let hang = tmp.path().join("hang");
    let hang_env = hang.display().to_string();
    let rec = RecorderProc::start_with_env(
        &data_dir,
        &body(&data_dir.join("ring"), &share, "mount = false\n", "demo:"),
        &[("EDGEREC_FAULT_HANG_STAGES_WHILE", hang_env.as_str())],
    );
    wait_for(Duration::from_secs(60), || Some(nas(&rec)).filter(|s| s["last_round"].is_object()))
        .unwrap_or_else(|| panic!("no round into the stage: {}\n{}", nas(&rec), rec.log_text()));
    assert_eq!(nas(&rec)["available"], true, "{}", nas(&rec));
    rec.wait_frames("cam", 30, Duration::from_secs(60));

    // The share hangs: probes and stage opens block until the file goes.
    std::fs::write(&hang, b"").expect("hang flag");
    let hung = wait_for(Duration::from_secs(60), || {
        Some(nas(&rec)).filter(|s| s["unavailable_reason"].as_str().is_some_and(|r| r.contains("not answering")))
    })
    .unwrap_or_else(|| panic!("the hung stage was never shown as not answering: {}\n{}", nas(&rec), rec.log_text()));
    assert_eq!(hung["available"], false, "{hung}");
    let unavailable = wait_for(Duration::from_secs(30), || {
        Some(storage_events(&rec, "archive_unavailable")).filter(|e| e.len() == 1)
    })
    .unwrap_or_else(|| panic!("no archive_unavailable event: {:?}", storage_events(&rec, "archive_unavailable")));
    assert!(unavailable[0]["message"].as_str().is_some_and(|m| m.contains("not answering")), "{unavailable:?}");

    // Readers answer from the ring at once: the recordings list and an export of its last seconds.
    let clocks = SystemClocks;
    let asked = clocks.monotonic();
    let recordings = rec.recordings("cam");
    assert!(!recordings.is_empty(), "the ring's recordings are listed");
    let newest_us = recordings.iter().map(|r| r.1).max().expect("a recording");
    let r = export_http(&rec, "cam", newest_us - 3_000_000, newest_us, &tmp.path().join("x.mp4"));
    assert!(!r.body.is_empty());
    let _ = rec.status();
    let took = clocks.monotonic() - asked;
    assert!(took < Duration::from_secs(5), "readers waited on the hung stage: {took:?}");
    assert_eq!(nas(&rec)["available"], false, "status does not lie: {}", nas(&rec));

    // The share answers again.
    std::fs::remove_file(&hang).expect("unhang");
    wait_for(Duration::from_secs(60), || Some(nas(&rec)).filter(|s| s["available"] == true))
        .unwrap_or_else(|| panic!("the stage did not come back: {}\n{}", nas(&rec), rec.log_text()));
    wait_for(Duration::from_secs(30), || (storage_events(&rec, "archive_available").len() == 1).then_some(()))
        .unwrap_or_else(|| panic!("no archive_available event: {:?}", storage_events(&rec, "archive_available")));
    assert_eq!(rec.camera("cam")["frames_dropped"], 0, "recording went on");
    assert!(rec.stop());
}
