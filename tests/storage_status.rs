//! Status that never lies about recording (issue 10), with the real binary: a camera on a storage
//! that cannot open is not recording and says why, in status, metrics and events (point 1, FL-1,
//! REC-14); a storage unavailable at boot raises Storage Unavailable once, and Storage Available
//! when it comes (point 4, ST-7); a stalled writer shows as `stalled` and a full queue drops and
//! counts frames with Feed Overflow events (REC-13); manual recording of a disabled camera is
//! refused (point 15); a taken HTTP port stops the start before anything records.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::mount::{run_tool, LoopMount};
use common::recorder::RecorderProc;
use common::{http_get, http_request, wait_for, wait_until};
use serde_json::Value;

/// Every stored event, oldest first.
fn events(rec: &RecorderProc) -> Vec<Value> {
    let r = http_get(&rec.url("/api/v1/events?after=0&limit=1000")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["events"].as_array().unwrap().clone()
}

/// The events of `kind` about camera or storage `about`.
fn of_kind(list: &[Value], kind: &str, about: &str) -> Vec<Value> {
    list.iter().filter(|e| e["kind"] == kind && (e["camera"] == about || e["storage"] == about)).cloned().collect()
}

fn metrics(rec: &RecorderProc) -> String {
    let r = http_get(&rec.url("/metrics")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

/// Whether the exposition has the sample `line` (name, labels and value) exactly.
fn has_sample(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

/// One storage `main` at `path` (sync 200 ms) and a continuously recording demo camera on it.
fn body(path: &Path) -> String {
    body_synced(path, 200)
}

fn body_synced(path: &Path, sync_ms: u32) -> String {
    format!(
        "[[storage]]\nid = \"main\"\npath = \"{}\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = {sync_ms}\n\
         [[camera]]\nid = \"demo\"\nsource = \"demo:\"\n[camera.motion]\nenabled = false\n",
        path.display()
    )
}

// Issue 10 points 1 and 4 (FL-1, ST-7, REC-14): the storage's path lies under a regular file, so
// it cannot open at boot. The camera streams but every frame is dropped: status says
// `storage_unavailable` with a reason and `recording: false`, metrics say recording 0 and why,
// Storage Unavailable is raised once at boot and Recording Stopped says why. Once the file is
// gone the storage is created, and Storage Available and Recording Started follow.
#[test]
fn a_camera_on_a_storage_that_cannot_open_is_not_recording_and_says_why() {
    let tmp = common::temp_dir();
    let blocker = tmp.path().join("not-a-directory");
    std::fs::write(&blocker, b"a file where the storage's parent directory should be").unwrap();
    let rec = RecorderProc::start(tmp.path(), &body(&blocker.join("storage")));

    let cam = wait_for(Duration::from_secs(30), || {
        let c = rec.camera("demo");
        (c["frames_received"].as_u64() >= Some(50) && c["state"] == "storage_unavailable").then_some(c)
    })
    .unwrap_or_else(|| panic!("camera never showed storage_unavailable: {}\n{}", rec.camera("demo"), rec.log_text()));
    assert_eq!(cam["recording"], false, "{cam}");
    let reason = cam["not_recording_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("storage main is unavailable"), "{cam}");
    let (received, dropped) = (cam["frames_received"].as_u64().unwrap(), cam["frames_dropped"].as_u64().unwrap());
    assert!(received - dropped <= 2, "every frame is dropped: {cam}");
    assert_eq!(cam["frames_dropped_overflow"], 0, "an unavailable storage is not a feed overflow: {cam}");
    let m = metrics(&rec);
    assert!(has_sample(&m, "edgerec_camera_recording{camera=\"demo\"} 0"), "{m}");
    assert!(has_sample(&m, "edgerec_camera_frames_dropping{camera=\"demo\",reason=\"storage_unavailable\"} 1"), "{m}");
    assert!(has_sample(&m, "edgerec_camera_frames_dropping{camera=\"demo\",reason=\"feed_overflow\"} 0"), "{m}");
    assert!(has_sample(&m, "edgerec_storage_available{storage=\"main\"} 0"), "{m}");

    let boot_events = wait_for(Duration::from_secs(10), || {
        let list = events(&rec);
        (!of_kind(&list, "storage_unavailable", "main").is_empty()
            && !of_kind(&list, "recording_stopped", "demo").is_empty())
        .then_some(list)
    })
    .unwrap_or_else(|| panic!("no storage_unavailable and recording_stopped events: {:?}", events(&rec)));
    let unavailable = of_kind(&boot_events, "storage_unavailable", "main");
    assert_eq!(unavailable.len(), 1, "raised once at boot: {unavailable:?}");
    assert!(unavailable[0]["message"].as_str().is_some_and(|m| !m.is_empty()), "{unavailable:?}");
    let stopped = of_kind(&boot_events, "recording_stopped", "demo");
    assert!(stopped[0]["message"].as_str().unwrap_or_default().contains("storage main is unavailable"), "{stopped:?}");
    assert!(of_kind(&boot_events, "recording_started", "demo").is_empty(), "{boot_events:?}");
    assert!(of_kind(&boot_events, "feed_overflow_started", "demo").is_empty(), "{boot_events:?}");

    // The disk "comes back": the writer retries, creates the storage and recording resumes.
    std::fs::remove_file(&blocker).unwrap();
    let cam = wait_for(Duration::from_secs(30), || {
        let c = rec.camera("demo");
        (c["state"] == "recording").then_some(c)
    })
    .unwrap_or_else(|| panic!("recording did not resume: {}\n{}", rec.camera("demo"), rec.log_text()));
    assert_eq!(cam["recording"], true, "{cam}");
    assert_eq!(cam["not_recording_reason"], Value::Null, "{cam}");
    assert!(wait_until(Duration::from_secs(10), || !rec.recordings("demo").is_empty()), "frames reach the store");
    let m = metrics(&rec);
    assert!(has_sample(&m, "edgerec_camera_recording{camera=\"demo\"} 1"), "{m}");
    assert!(has_sample(&m, "edgerec_camera_frames_dropping{camera=\"demo\",reason=\"storage_unavailable\"} 0"), "{m}");
    let list = wait_for(Duration::from_secs(10), || {
        let list = events(&rec);
        (!of_kind(&list, "storage_available", "main").is_empty()).then_some(list)
    })
    .unwrap_or_else(|| panic!("no storage_available event: {:?}", events(&rec)));
    let started = of_kind(&list, "recording_started", "demo");
    assert_eq!(started.len(), 1, "{list:?}");
    assert!(started[0]["message"].as_str().unwrap_or_default().contains("resumed"), "{started:?}");
    assert_eq!(of_kind(&list, "storage_unavailable", "main").len(), 1, "{list:?}");
    assert!(rec.stop());
}

// Issue 10 "smaller" item and REC-13, through the writer's stall hook (a test hook, because only
// a hook can also cap the queue so that a demo camera overflows it in seconds; a really frozen
// filesystem is the next test): the writer hangs for 8 s with its queue capped at 256 KiB. Status shows the storage `stalled` (still open) with the age of the
// operation; the camera's frames overflow the queue, are counted, and status, metrics and events
// say it does not record (Feed Overflow Started, Recording Stopped). When the writer returns,
// the stall clears, Feed Overflow Stopped and Recording Started follow, and writes go on.
#[test]
fn a_stalled_writer_shows_in_status_and_a_full_queue_stops_recording() {
    let tmp = common::temp_dir();
    let rec = RecorderProc::start_with_env(
        tmp.path(),
        &body(&tmp.path().join("main")),
        &[("EDGEREC_FAULT_STALL_WRITER_SECS", "8"), ("EDGEREC_FAULT_QUEUE_BYTES", "262144")],
    );
    let storage = |rec: &RecorderProc| rec.status()["storages"][0].clone();
    let stalled = wait_for(Duration::from_secs(10), || Some(storage(&rec)).filter(|s| s["stalled"] == true))
        .unwrap_or_else(|| panic!("the storage never showed stalled: {}", storage(&rec)));
    assert_eq!(stalled["state"], "stalled", "{stalled}");
    assert_eq!(stalled["available"], true, "{stalled}");
    assert!(stalled["write_in_progress_ms"].as_f64().unwrap() > 600.0, "3 × the sync interval: {stalled}");
    assert!(has_sample(&metrics(&rec), "edgerec_storage_stalled{storage=\"main\"} 1"));

    let cam = wait_for(Duration::from_secs(10), || Some(rec.camera("demo")).filter(|c| c["state"] == "feed_overflow"))
        .unwrap_or_else(|| panic!("the camera never showed feed_overflow: {}\n{}", rec.camera("demo"), rec.log_text()));
    assert_eq!(cam["recording"], false, "{cam}");
    assert!(cam["not_recording_reason"].as_str().unwrap_or_default().contains("feed overflow"), "{cam}");
    assert!(cam["frames_dropped_overflow"].as_u64() > Some(0), "{cam}");
    let m = metrics(&rec);
    assert!(has_sample(&m, "edgerec_camera_recording{camera=\"demo\"} 0"), "{m}");
    assert!(has_sample(&m, "edgerec_camera_frames_dropping{camera=\"demo\",reason=\"feed_overflow\"} 1"), "{m}");
    let list = wait_for(Duration::from_secs(5), || {
        let list = events(&rec);
        (!of_kind(&list, "feed_overflow_started", "demo").is_empty()).then_some(list)
    })
    .unwrap_or_else(|| panic!("no feed_overflow_started: {:?}", events(&rec)));
    let stopped = of_kind(&list, "recording_stopped", "demo");
    assert_eq!(stopped.len(), 1, "{list:?}");
    assert!(stopped[0]["message"].as_str().unwrap_or_default().contains("feed overflow"), "{stopped:?}");

    // The writer returns: the stall clears and recording resumes after 2 s without a drop.
    let cam = wait_for(Duration::from_secs(20), || Some(rec.camera("demo")).filter(|c| c["state"] == "recording"))
        .unwrap_or_else(|| panic!("recording did not resume: {}", rec.camera("demo")));
    assert_eq!(cam["recording"], true, "{cam}");
    let s = storage(&rec);
    assert_eq!(s["stalled"], false, "{s}");
    assert_eq!(s["state"], "available", "{s}");
    assert!(s["last_write"].is_string(), "{s}");
    assert!(s["frames_dropped_overflow"].as_u64() > Some(0), "the storage counts them too: {s}");
    let list = wait_for(Duration::from_secs(10), || {
        let list = events(&rec);
        (!of_kind(&list, "feed_overflow_stopped", "demo").is_empty()).then_some(list)
    })
    .unwrap_or_else(|| panic!("no feed_overflow_stopped: {:?}", events(&rec)));
    let started = of_kind(&list, "recording_started", "demo");
    assert!(started.last().unwrap()["message"].as_str().unwrap_or_default().contains("resumed"), "{started:?}");
    let written = storage(&rec)["bytes_written"].as_u64().unwrap();
    assert!(wait_until(Duration::from_secs(10), || storage(&rec)["bytes_written"].as_u64().unwrap() > written));
    assert!(rec.stop());
}

// Issue 10 point 15: a manual recording of a disabled camera would record nothing; it is refused
// with 409 and a message saying why.
#[test]
fn manual_recording_of_a_disabled_camera_is_refused() {
    let tmp = common::temp_dir();
    let body =
        format!("{}[[camera]]\nid = \"off\"\nsource = \"demo:\"\nenabled = false\n", body(&tmp.path().join("main")));
    let rec = RecorderProc::start(tmp.path(), &body);
    let r = http_request("POST", &rec.url("/api/v1/cameras/off/record/start"), &[], &[]).unwrap();
    assert_eq!(r.status, 409, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], "failed_precondition", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("disabled"), "{v}");
    let reasons = rec.camera("off")["recording_reasons"].clone();
    assert!(!reasons.to_string().contains("manual"), "no manual reason was started: {reasons}");
    let ok = http_request("POST", &rec.url("/api/v1/cameras/demo/record/start"), &[], &[]).unwrap();
    assert_eq!(ok.status, 200, "an enabled camera still starts: {}", ok.text());
}

// Issue 10 "smaller" item: with its HTTP port taken, `edgerec run` exits non-zero at once with the
// address and the reason, before any storage is created or camera started.
#[test]
fn a_taken_http_port_stops_the_start_before_anything_records() {
    let tmp = common::temp_dir();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let config = tmp.path().join("edgerec.toml");
    let storage = tmp.path().join("main");
    std::fs::write(
        &config,
        format!(
            "version = 1\n[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{}",
            tmp.path().display(),
            body(&storage)
        ),
    )
    .unwrap();
    let mut child = common::KillOnDrop(
        Command::new(common::edgerec_bin())
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = wait_for(Duration::from_secs(30), || child.try_wait().unwrap())
        .unwrap_or_else(|| panic!("edgerec kept running with its port taken"));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")) && err.contains("in use"), "{err}");
    assert!(!storage.exists(), "no storage was opened or created: {err}");
    drop(held);
}

/// A filesystem frozen with `fsfreeze -f`, thawed on drop, so that a failing test never leaves the
/// recorder blocked in the kernel (it could not even be killed).
struct Frozen<'a>(&'a Path);

impl<'a> Frozen<'a> {
    fn new(dir: &'a Path) -> Frozen<'a> {
        run_tool("fsfreeze", &["-f".as_ref(), dir.as_os_str()]);
        Frozen(dir)
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(self.0).status();
    }
}

// Issue 10 "smaller" item, on a real frozen filesystem: `fsfreeze -f` on the loop-mounted ext4
// under the storage. The writer blocks in its next write; status shows the storage `stalled`
// (still open) with the age of the write and the unchanged time of the last write, and metrics
// say stalled 1. After `fsfreeze -u` the stall clears and writes go on. Needs root and a loop
// device, like `fsfreeze` itself.
#[test]
fn a_frozen_filesystem_shows_the_storage_stalled() {
    let tmp = common::temp_dir();
    // 400 MiB: the 64 MiB storage plus the free-space reserve (at least ST-5's 250 MB, issue 13
    // point 1) with room for ext4's own metadata.
    let mount = LoopMount::new(&tmp.path().join("fs.img"), &tmp.path().join("mnt"), 400 << 20);
    let rec = RecorderProc::start(&tmp.path().join("data"), &body_synced(&mount.dir.join("main"), 500));
    let storage = |rec: &RecorderProc| rec.status()["storages"][0].clone();
    let before = wait_for(Duration::from_secs(20), || Some(storage(&rec)).filter(|s| s["last_write"].is_string()))
        .unwrap_or_else(|| panic!("the storage never wrote: {}", storage(&rec)));
    assert_eq!(before["stalled"], false, "{before}");
    let frozen = Frozen::new(&mount.dir);
    let stalled = wait_for(Duration::from_secs(20), || Some(storage(&rec)).filter(|s| s["stalled"] == true))
        .unwrap_or_else(|| panic!("the frozen storage never showed stalled: {}", storage(&rec)));
    assert_eq!(stalled["state"], "stalled", "{stalled}");
    assert_eq!(stalled["available"], true, "{stalled}");
    assert!(stalled["write_in_progress_ms"].as_f64().unwrap() > 1500.0, "3 × the sync interval: {stalled}");
    assert!(has_sample(&metrics(&rec), "edgerec_storage_stalled{storage=\"main\"} 1"));
    let frozen_write = stalled["last_write"].clone();
    drop(frozen);
    let thawed = wait_for(Duration::from_secs(20), || {
        Some(storage(&rec)).filter(|s| s["stalled"] == false && s["last_write"] != frozen_write)
    })
    .unwrap_or_else(|| panic!("the storage did not recover after the thaw: {}", storage(&rec)));
    assert_eq!(thawed["state"], "available", "{thawed}");
    assert!(rec.stop());
}
