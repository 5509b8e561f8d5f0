//! Issue 14 (DEV-1, DEV-14, DEV-16): V4L2 cameras that come and go, in a real kernel. The release
//! `edgerec` runs in a VM (the lab's vm-run) with two vivid devices, each recorded as its own
//! camera (YUYV 320x180@25, encoded in-process). While both record, vivid's `Disconnect` control
//! unplugs `/dev/video0` (an emulated USB disconnect: the node answers `ENODEV` until its last
//! handle closes) and keeps it away for `UNPLUGGED_MS`; then the device returns. From status,
//! events, recordings and the exports read in the guest, the test checks that:
//! - the unplugged camera goes to `retrying` with a `last_error` naming the device, with
//!   Communication Stopped and Communication Error events, and records again once the device is
//!   back, within `RESUME_LIMIT` of its return (the time is printed on every run);
//! - its export spans both sides of the gap and decodes with `ffmpeg -xerror`;
//! - the other camera is not disturbed: one recording without a gap, no reconnect, its frame
//!   count growing through the outage and at most 2 % of its frames dropped meanwhile (0
//!   measured; the counter cannot say what caused a drop), and its export decodes in full;
//! - `GET /api/v1/devices/v4l2` lists both nodes with their formats, sizes and rates (the same
//!   facts as `edgerec devices`), and the unplugged node with its `ENODEV` error.
//!
//! The guest presses the control with `tests/support/v4l2_ctl.rs` (the package's `v4l2_ctl`
//! binary, built with the `fault-injection` test feature this test requires). `rmmod vivid`
//! would unplug both devices at once (one module), so the per-device control is the unplug here.
//! Needs what tests/v4l2_vm.rs needs (../shared/tools/vm/vm-run, qemu, busybox, mkfs.ext4).

mod common;

use std::time::Duration;

use common::vm;
use serde_json::Value;

/// vivid's smallest webcam size at 25 fps: the unplug is the point here, not encoding (one guest
/// CPU under emulation encodes both cameras; at 640x480 it fell behind on a loaded host, and the
/// frames vivid then dropped on both cameras hid what the unplug does to the other one).
const WIDTH: u32 = 320;
const HEIGHT: u32 = 180;
const FPS: u32 = 25;
/// Frames the other camera may drop during the unplug, as a fraction of those it received
/// meanwhile: the 2 % the recording tests allow for what a loaded emulated CPU loses by itself.
const DROPPED_TOLERANCE: f64 = 0.02;
/// Recording before and after the unplug (wall time in the guest): both sides of the gap hold
/// several 2 s GOPs, and the session before the unplug streams long enough (≥ 5 s) to count as
/// healthy.
const PHASE_S: u32 = 12;
/// How long `/dev/video0` stays unplugged: the recorder's blind attempts come about 0.5, 1.5, 3.5,
/// 7.5 and 15.5 s after the unplug (backoff 0.5 s doubling), so a device back at 9 s meets no
/// attempt for 6.5 s: a recovery within `RESUME_LIMIT` shows the device probe, not a lucky retry
/// (review-c finding 1: at 6 s a blind attempt at 7.5 s would have passed without the probe).
const UNPLUGGED_MS: u32 = 9000;
/// The issue: "recording resumes within 2 s of the device returning". Measured from the moment
/// the guest's helper closed its handle (vivid registers the node again then) to the start of
/// the camera's next recording (its first frame's wall time). No emulation allowance is added:
/// the probe that notices the device runs every 250 ms and a session opens in well under a second.
const RESUME_LIMIT: Duration = Duration::from_secs(2);
const VM_TIMEOUT: Duration = Duration::from_secs(200);
const ADMIN_PASSWORD: &str = "V4l2-admin-1";

fn config() -> String {
    let camera = |id: &str, node: &str| {
        format!(
            "[[camera]]\nid = \"{id}\"\nsource = \"v4l2:{node}\"\n\
             [camera.v4l2]\nformat = \"YUYV\"\nwidth = {WIDTH}\nheight = {HEIGHT}\nfps = {FPS}\n\
             bitrate_kbps = 1000\nkeyframe_interval_s = 2\n\
             [camera.motion]\nenabled = false\n"
        )
    };
    format!(
        "version = 1\n\
         [server]\nlisten = \"127.0.0.1:8080\"\ndata_dir = \"/mnt/data\"\n\
         [[storage]]\nid = \"main\"\npath = \"/mnt/data/storage-main\"\nsize = \"64MiB\"\nsegment_size = \"4MiB\"\n{}{}",
        camera("vivid0", "/dev/video0"),
        camera("vivid1", "/dev/video1")
    )
}

/// The guest side (busybox sh, cwd /payload). Every wait for a state is a poll of the status
/// API (up to 30 s); the sleeps are the scenario's recording phases.
fn run_sh() -> String {
    format!(
        r#"#!/bin/sh
ip link set lo up
mkdir -p /mnt/data /out
mount -t ext4 /dev/disk/d0 /mnt/data || {{ echo MOUNT_FAILED; exit 10; }}
ls /dev/video*
echo "{ADMIN_PASSWORD}" | ./edgerec user add --config ./edgerec.toml --admin admin > /dev/null 2>&1
API="http://admin:{ADMIN_PASSWORD}@127.0.0.1:8080/api/v1"
get() {{ wget -q -O "$2" "$API/$1"; }}
# The state of camera $1 in the status document $2 (pretty JSON: a camera lists id, name,
# storage and state first, one per line).
state() {{ awk -v id="\"$1\"," '/"id":/ {{ cur = ($2 == id) }} cur && /"state":/ {{ gsub(/[",]/, "", $2); print $2; exit }}' "$2"; }}
wait_state() {{
  until=$(($(date +%s) + 30))
  while [ $(date +%s) -le $until ]; do
    get status /tmp/status.json 2>/dev/null && [ "$(state $1 /tmp/status.json)" = "$2" ] && {{ echo "STATE $1 $2"; return 0; }}
    sleep 0.2
  done
  echo "TIMEOUT waiting for $1 to be $2"; cat /tmp/status.json; return 1
}}
start=$(date -u +%s)
./edgerec run --config ./edgerec.toml > /out/edgerec.log 2>&1 &
pid=$!
wait_state vivid0 recording && wait_state vivid1 recording || exit 11
sleep {PHASE_S}
get status /out/status-before.json
./v4l2_ctl /dev/video0 press Disconnect {UNPLUGGED_MS} > /out/ctl.txt 2>&1 &
ctl=$!
wait_state vivid0 retrying || exit 12
cp /tmp/status.json /out/status-unplugged.json
get devices/v4l2 /out/devices-unplugged.json || echo DEVICES_API_FAILED
wait $ctl
echo "CTL rc=$?"
cat /out/ctl.txt
wait_state vivid0 recording || exit 13
get status /out/status-back.json
sleep {PHASE_S}
get status /out/status-after.json
get devices/v4l2 /out/devices.json || echo DEVICES_API_FAILED
./edgerec devices > /out/devices.txt 2>&1
get "events?after=0&limit=1000" /out/events.json || echo EVENTS_FAILED
for c in vivid0 vivid1; do
  get "cameras/$c/recordings?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z" /out/recordings-$c.json || echo RECORDINGS_FAILED
done
kill -TERM $pid
wait $pid
echo "EDGEREC_STOPPED rc=$?"
from=$(date -u -d "@$((start - 60))" +%Y-%m-%dT%H:%M:%SZ)
to=$(date -u -d "@$(($(date -u +%s) + 60))" +%Y-%m-%dT%H:%M:%SZ)
for c in vivid0 vivid1; do
  ./edgerec export --config ./edgerec.toml --camera $c --from "$from" --to "$to" -o /out/export-$c.mp4 2> /out/export-$c.txt
  echo "EXPORT $c rc=$?"
done
grep -i -E "v4l2|error|warn" /out/edgerec.log | head -n 30 | sed 's/^/edgerec| /'
sync
umount /mnt/data
exit 0
"#
    )
}

fn read_json(out: &std::path::Path, name: &str, console: &str) -> Value {
    let bytes = std::fs::read(out.join(name)).unwrap_or_else(|e| panic!("the guest's {name}: {e}\n{console}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}: {}", String::from_utf8_lossy(&bytes)))
}

fn rfc3339_us(v: &Value) -> i64 {
    v.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok()).map(|t| t.as_microsecond()).expect("an RFC 3339 time")
}

/// The `KEY wall_us=N` value the helper printed.
fn ctl_time(ctl: &str, key: &str) -> i64 {
    ctl.lines()
        .find_map(|l| l.strip_prefix(key)?.trim().strip_prefix("wall_us=")?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} line from v4l2_ctl: {ctl}"))
}

// Issue 14 (DEV-16, DEV-1): unplugging one of two V4L2 cameras is reported like a camera going
// down (retrying, last_error naming the device, Communication Stopped/Error), recording resumes
// within 2 s of the device returning, the export spans the gap and decodes, and the other camera
// records on undisturbed; the devices API (DEV-14) lists both nodes in the guest.
#[test]
fn unplugging_one_v4l2_camera_resumes_within_2s_and_leaves_the_other_undisturbed() {
    let vm_run = vm::vm_run_path();
    let dir = common::temp_dir();
    let payload = dir.path().join("payload");
    std::fs::create_dir(&payload).unwrap();
    std::fs::copy(common::edgerec_bin(), payload.join("edgerec")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_v4l2_ctl"), payload.join("v4l2_ctl")).unwrap();
    std::fs::write(payload.join("edgerec.toml"), config()).unwrap();
    vm::write_executable(&payload.join("run.sh"), &run_sh());
    let disk = dir.path().join("disk.img");
    vm::ext4_image(&disk, 448);
    let out = dir.path().join("out");
    let disk_arg = format!("{},cache=unsafe", disk.display());
    let timeout = VM_TIMEOUT.as_secs().to_string();
    let outcome = vm::boot(
        &[
            "--quiet-boot",
            "--timeout",
            &timeout,
            "--mem",
            "768",
            "--vivid-opts",
            "n_devs=2 node_types=0x1,0x1",
            "--disk",
            &disk_arg,
            "--out",
            out.to_str().unwrap(),
        ],
        &payload,
    );
    let console = &outcome.console;
    assert_eq!(outcome.code, Some(0), "{} failed:\n{console}", vm_run.display());
    assert!(console.contains("CTL rc=0"), "v4l2_ctl failed:\n{console}");
    assert!(console.contains("EDGEREC_STOPPED rc=0"), "edgerec did not stop cleanly:\n{console}");
    let ctl = std::fs::read_to_string(out.join("ctl.txt")).unwrap();
    let pressed_us = ctl_time(&ctl, "PRESSED");
    let released_us = ctl_time(&ctl, "RELEASED");

    // Unplugged: retrying, with the device named in last_error; the other camera streams.
    let unplugged = read_json(&out, "status-unplugged.json", console);
    let cam0 = vm::find_by_id(&unplugged, "vivid0").expect("vivid0 in status");
    assert_eq!(cam0["state"], "retrying", "{cam0}");
    let last_error = cam0["last_error"].as_str().unwrap_or_else(|| panic!("no last_error: {cam0}"));
    assert!(last_error.contains("/dev/video0") && last_error.contains("ENODEV"), "{last_error}");
    assert_eq!(vm::find_by_id(&unplugged, "vivid1").expect("vivid1")["state"], "recording", "{unplugged}");

    // Events: Communication Stopped and Error for vivid0 after the press, Started after the return.
    let events = read_json(&out, "events.json", console);
    let of_vivid0: Vec<(&str, i64)> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["camera"] == "vivid0")
        .map(|e| (e["kind"].as_str().unwrap_or(""), rfc3339_us(&e["time"])))
        .collect();
    let after_press = |kind: &str| of_vivid0.iter().any(|(k, t)| *k == kind && *t >= pressed_us - 1_000_000);
    assert!(after_press("communication_stopped"), "{of_vivid0:?}");
    assert!(after_press("communication_error"), "{of_vivid0:?}");
    assert!(of_vivid0.iter().any(|(k, t)| *k == "communication_started" && *t >= released_us), "{of_vivid0:?}");
    assert!(
        !events["events"].as_array().unwrap().iter().any(|e| e["camera"] == "vivid1"
            && matches!(e["kind"].as_str(), Some("communication_stopped" | "communication_error"))),
        "vivid1 was disturbed: {events}"
    );

    // Recording resumed within RESUME_LIMIT of the device's return: the first recording of vivid0
    // that starts after the release.
    let runs = |id: &str| -> Vec<(i64, i64)> {
        read_json(&out, &format!("recordings-{id}.json"), console)["recordings"]
            .as_array()
            .expect("recordings")
            .iter()
            .map(|r| (rfc3339_us(&r["start"]), rfc3339_us(&r["end"])))
            .collect()
    };
    let runs0 = runs("vivid0");
    let resumed_us = runs0
        .iter()
        .map(|(start, _)| *start)
        .find(|start| *start >= released_us)
        .unwrap_or_else(|| panic!("no recording of vivid0 after the device returned at {released_us}: {runs0:?}"));
    let resume = Duration::from_micros((resumed_us - released_us) as u64);
    let before_end = runs0.iter().filter(|(s, _)| *s < pressed_us).map(|(_, e)| *e).max().expect("a run before");
    println!(
        "vivid0: recording ended {:.2} s after the unplug; the device was away {:.2} s; recording resumed {:.3} s \
         after the device returned (limit {RESUME_LIMIT:?}); runs {runs0:?}",
        (before_end - pressed_us) as f64 / 1e6,
        (released_us - pressed_us) as f64 / 1e6,
        resume.as_secs_f64()
    );
    assert!(resume <= RESUME_LIMIT, "recording resumed {resume:?} after the device returned\n{console}");

    // The other camera: one recording without a gap, no reconnect, frames growing through the
    // outage, and none dropped meanwhile.
    let runs1 = runs("vivid1");
    assert_eq!(runs1.len(), 1, "vivid1's recording has a gap: {runs1:?}");
    let cam1 = |name: &str| vm::find_by_id(&read_json(&out, name, console), "vivid1").expect("vivid1").clone();
    let (before, during, back, after) = (
        cam1("status-before.json"),
        cam1("status-unplugged.json"),
        cam1("status-back.json"),
        cam1("status-after.json"),
    );
    let n = |c: &Value, k: &str| c[k].as_u64().unwrap_or_else(|| panic!("{k}: {c}"));
    assert!(
        n(&before, "frames_received") < n(&during, "frames_received")
            && n(&during, "frames_received") < n(&back, "frames_received")
            && n(&back, "frames_received") < n(&after, "frames_received"),
        "vivid1's frames did not keep growing: {before}\n{during}\n{back}\n{after}"
    );
    assert_eq!(n(&after, "reconnects"), 0, "{after}");
    let received_meanwhile = n(&back, "frames_received") - n(&before, "frames_received");
    let dropped_meanwhile = n(&back, "frames_dropped") - n(&before, "frames_dropped");
    println!(
        "vivid1 through the unplug: {received_meanwhile} frames received, {dropped_meanwhile} dropped; before it \
         {before}; at the end {after}"
    );
    assert!(
        dropped_meanwhile as f64 <= received_meanwhile as f64 * DROPPED_TOLERANCE,
        "vivid1 dropped {dropped_meanwhile} of {received_meanwhile} frames during the unplug:\n{before}\n{back}"
    );

    // vivid0's export holds both sides of the gap: the MP4 timeline hides gaps (its frames follow
    // each other), so the export's summary names what it covers and the gap, and its frames are
    // every frame the camera received (± 2 %, the status was read a little before the stop).
    let summary = std::fs::read_to_string(out.join("export-vivid0.txt")).unwrap();
    let ranges = |prefix: &str| -> Vec<(i64, i64)> {
        summary
            .lines()
            .filter_map(|l| l.trim().strip_prefix(prefix))
            .map(|r| {
                let mut t = r.split_whitespace();
                let a = t.next().and_then(|a| a.parse::<jiff::Timestamp>().ok());
                let b = t.nth(1).and_then(|b| b.parse::<jiff::Timestamp>().ok());
                match (a, b) {
                    (Some(a), Some(b)) => (a.as_microsecond(), b.as_microsecond()),
                    _ => panic!("export summary line {r:?}"),
                }
            })
            .collect()
    };
    let (covered, gaps) = (ranges("covered:"), ranges("gap:"));
    assert!(covered.iter().any(|(_, end)| *end <= pressed_us + 1_000_000), "{summary}");
    assert!(covered.iter().any(|(start, _)| *start >= released_us), "{summary}");
    assert!(
        gaps.iter().any(|(a, b)| *a <= pressed_us + 1_000_000 && *b >= released_us),
        "no gap over the unplug in the export's summary: {summary}"
    );
    // Both exports decode in full (review-c finding 2): the resumed run starts with its own
    // parameter sets and a key frame; the other camera's export is whole.
    for c in ["vivid0", "vivid1"] {
        assert!(console.contains(&format!("EXPORT {c} rc=0")), "export of {c} failed:\n{console}");
        common::ffmpeg_decode_ok(out.join(format!("export-{c}.mp4"))).unwrap_or_else(|e| panic!("{c}: {e}"));
    }
    let other = std::fs::read_to_string(out.join("export-vivid1.txt")).unwrap();
    assert!(!other.lines().any(|l| l.trim().starts_with("gap:")), "vivid1's export has a gap: {other}");
    let export_frames = vm::video_pts(&out.join("export-vivid0.mp4")).len() as f64;
    let received = n(
        &vm::find_by_id(&read_json(&out, "status-after.json", console), "vivid0").unwrap().clone(),
        "frames_received",
    ) as f64;
    println!("vivid0's export: {export_frames} frames ({received} received before the stop)\n{summary}");
    assert!(export_frames >= received * 0.98, "{export_frames} frames exported, {received} received");

    // The devices API (DEV-14) in the guest: both vivid nodes, the facts `edgerec devices` prints.
    let devices = read_json(&out, "devices.json", console);
    let list = devices["devices"].as_array().expect("devices");
    let text = std::fs::read_to_string(out.join("devices.txt")).unwrap();
    for node in ["/dev/video0", "/dev/video1"] {
        let d = list.iter().find(|d| d["path"] == node).unwrap_or_else(|| panic!("no {node}: {devices}"));
        assert_eq!(
            (d["driver"].as_str(), d["capture"].as_bool(), &d["error"]),
            (Some("vivid"), Some(true), &Value::Null)
        );
        let caps: Vec<&str> = d["capabilities"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(caps.contains(&"video_capture") && caps.contains(&"streaming"), "{caps:?}");
        let yuyv = d["formats"].as_array().unwrap().iter().find(|f| f["fourcc"] == "YUYV").expect("YUYV");
        assert_eq!(yuyv["recorded"], true);
        for (w, h) in [(WIDTH, HEIGHT), (640, 480)] {
            let size = yuyv["sizes"].as_array().unwrap().iter().find(|s| s["width"] == w && s["height"] == h);
            let rates: Vec<f64> =
                size.expect("the size")["fps"].as_array().unwrap().iter().filter_map(Value::as_f64).collect();
            assert!(rates.contains(&f64::from(FPS)), "{w}x{h}: {rates:?}");
        }
        assert!(text.contains(node) && text.contains(d["card"].as_str().unwrap()), "{text}");
    }
    assert!(text.contains("640x480@1,2,4,5,10,12.5,15,25"), "{text}");
    // While unplugged, the node is listed with its error, and the other node in full.
    let gone = read_json(&out, "devices-unplugged.json", console);
    let d0 = gone["devices"].as_array().unwrap().iter().find(|d| d["path"] == "/dev/video0").expect("video0");
    assert!(d0["error"].as_str().is_some_and(|e| e.contains("ENODEV")), "{d0}");
    let d1 = gone["devices"].as_array().unwrap().iter().find(|d| d["path"] == "/dev/video1").expect("video1");
    assert_eq!(d1["error"], Value::Null, "{d1}");
}
