//! Rules, events and schedules end to end with the demo camera (RU-1..RU-5, RU-13, RU-14, REC-5,
//! REC-10, REC-14, IC-8): pre/post roll around a user-defined event, the durable event stream a
//! client resumes by cursor (also across a restart), the default Record on Request rule, a schedule,
//! and the REC-5 warning for a pre-roll longer than the pre-buffer.

mod common;

use std::time::Duration;

use common::recorder::{now_us, post, RecorderProc};
use common::{http_get, wait_until};

fn events_after(rec: &RecorderProc, after: u64, wait: u64) -> serde_json::Value {
    let r = http_get(&rec.url(&format!("/api/v1/events?after={after}&wait={wait}&limit=1000"))).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn kinds(v: &serde_json::Value) -> Vec<String> {
    v["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
}

fn body(extra: &str) -> String {
    format!(
        "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 200\n\
         [[camera]]\nid = \"demo\"\nsource = \"demo:\"\nrecord = \"never\"\nprebuffer_seconds = 5\n\
         [camera.motion]\nenabled = false\n{extra}"
    )
}

#[test]
fn a_user_defined_event_records_with_pre_and_post_roll_and_the_event_stream_resumes() {
    let tmp = common::temp_dir();
    let rule = "[[rule]]\nname = \"Doorbell\"\ntrigger = \"user_defined:doorbell\"\ncameras = [\"demo\"]\n\
                pre_roll_seconds = 4\nstop = \"delay:2\"\npost_roll_seconds = 2\n";
    let rec = RecorderProc::start(tmp.path(), &body(rule));
    rec.wait_frames_streaming("demo", 600);
    let t = now_us();
    let r = post(&rec, "/api/v1/events/doorbell?cameras=demo");
    assert!(r["cursor"].as_u64().unwrap() > 0);
    assert!(wait_until(Duration::from_secs(10), || rec.camera("demo")["recording"] == true));
    assert!(
        wait_until(Duration::from_secs(15), || rec.camera("demo")["recording"] == false),
        "stops after delay + post-roll"
    );
    assert!(wait_until(Duration::from_secs(5), || rec
        .recordings("demo")
        .first()
        .is_some_and(|(_, e)| *e > t + 3_500_000)));
    let seqs = rec.recordings("demo");
    assert_eq!(seqs.len(), 1, "{seqs:?}");
    let (start, end) = seqs[0];
    assert!(start <= t - 4_000_000 + 50_000, "pre-roll 4 s: starts {} ms before", (t - start) / 1000);
    assert!(start >= t - 5_200_000, "at most one GOP more: {} ms", (t - start) / 1000);
    assert!(end >= t + 4_000_000 - 300_000, "delay 2 s + post-roll 2 s: ends {} ms after", (end - t) / 1000);
    assert!(end <= t + 5_500_000, "not much longer: ends {} ms after", (end - t) / 1000);

    // The event stream: everything in order, each once (the log commits in batches of ≤ 100 ms).
    assert!(wait_until(Duration::from_secs(5), || kinds(&events_after(&rec, 0, 0))
        .contains(&"recording_stopped".to_owned())));
    let all = events_after(&rec, 0, 0);
    let k = kinds(&all);
    for want in ["recorder_started", "communication_started", "user_defined", "recording_started", "recording_stopped"]
    {
        assert!(k.contains(&want.to_owned()), "{want} in {k:?}");
    }
    let doorbell = all["events"].as_array().unwrap().iter().find(|e| e["kind"] == "user_defined").unwrap();
    assert_eq!(doorbell["name"], "doorbell");
    assert_eq!(doorbell["data"]["cameras"][0], "demo");
    let last = all["next_after"].as_u64().unwrap();
    let cursors: Vec<u64> = all["events"].as_array().unwrap().iter().map(|e| e["cursor"].as_u64().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "strictly increasing: {cursors:?}");

    // A long poll returns as soon as an event arrives.
    let url = rec.url(&format!("/api/v1/events?after={last}&wait=30"));
    let poller = std::thread::spawn(move || http_get(&url).unwrap().json());
    std::thread::sleep(Duration::from_millis(300));
    post(&rec, "/api/v1/events/ping");
    let polled = poller.join().unwrap();
    assert_eq!(kinds(&polled), vec!["user_defined".to_owned()], "{polled}");
    let resume = polled["next_after"].as_u64().unwrap();

    // Across a restart, a client resuming at its cursor misses nothing and sees nothing twice.
    let log_id = all["log_id"].as_str().unwrap().to_owned();
    let port = rec.port;
    assert!(rec.stop());
    let rec = RecorderProc::start_on(tmp.path(), &body(rule), port);
    rec.wait_frames_streaming("demo", 50);
    let after_restart = events_after(&rec, resume, 0);
    assert_eq!(after_restart["log_id"], log_id.as_str(), "the same log");
    assert_eq!(after_restart["truncated"], false);
    let k = kinds(&after_restart);
    let stopping = k.iter().position(|x| x == "recorder_stopping").unwrap_or_else(|| panic!("{k:?}"));
    let started = k.iter().position(|x| x == "recorder_started").unwrap_or_else(|| panic!("{k:?}"));
    assert!(stopping < started, "the stop of the old process, then the start of the new one: {k:?}");
    let cs: Vec<u64> =
        after_restart["events"].as_array().unwrap().iter().map(|e| e["cursor"].as_u64().unwrap()).collect();
    assert!(cs.iter().all(|c| *c > resume));
}

#[test]
fn record_on_request_default_rule_and_a_schedule() {
    let tmp = common::temp_dir();
    // A single period that begins 3 s from now, in the system zone (the recorder's default zone).
    let tz = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
    let begin = jiff::Timestamp::from_microsecond(now_us() + 3_000_000).unwrap().to_zoned(tz);
    let end = begin.checked_add(jiff::SignedDuration::from_secs(3600)).unwrap();
    let fmt = |z: &jiff::Zoned| z.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let extra = format!(
        "[[camera]]\nid = \"req\"\nsource = \"demo:\"\nrecord = \"event\"\n\
         [[camera]]\nid = \"sched\"\nsource = \"demo:\"\nrecord = \"schedule\"\nschedule = \"Soon\"\n\
         [[time_profile]]\nname = \"Soon\"\n[[time_profile.period]]\nstart = \"{}\"\nend = \"{}\"\n",
        fmt(&begin),
        fmt(&end)
    );
    let rec = RecorderProc::start(tmp.path(), &body(&extra));
    rec.wait_frames_streaming("req", 100);
    assert_eq!(rec.camera("req")["recording"], false);
    post(&rec, "/api/v1/events/request_start_recording?cameras=req");
    assert!(wait_until(Duration::from_secs(10), || rec.camera("req")["recording"] == true), "Record on Request");
    assert_eq!(rec.camera("demo")["recording"], false, "only the named camera");
    post(&rec, "/api/v1/events/request_stop_recording?cameras=req");
    assert!(wait_until(Duration::from_secs(10), || rec.camera("req")["recording"] == false));
    assert!(wait_until(Duration::from_secs(15), || rec.camera("sched")["recording"] == true), "the schedule began");
    let reasons = rec.camera("sched")["recording_reasons"].clone();
    assert_eq!(reasons[0], "rule:Record on Schedule (sched)", "{reasons}");
}

#[test]
fn rules_are_validated_when_the_config_is_loaded() {
    let tmp = common::temp_dir();
    let cases = [
        (
            "[[rule]]\nname = \"x\"\ntrigger = \"motion_started\"\nstop = \"motion_stopped\"\nstop_actions = []\n",
            "needs the stop action \"stop_recording\" (RU-2)",
        ),
        (
            "[[rule]]\nname = \"x\"\ntrigger = \"profile:Nope\"\nstop = \"end_of_interval\"\n",
            "no time profile \"Nope\"",
        ),
        ("[[rule]]\nname = \"x\"\ntrigger = \"sunrise\"\nstop = \"delay:3\"\n", "key `rule.trigger`"),
        (
            "[[rule]]\nname = \"x\"\ntrigger = \"motion_started\"\nstop = \"end_of_interval\"\n",
            "needs a \"profile:\" trigger",
        ),
    ];
    for (i, (rule, want)) in cases.iter().enumerate() {
        let path = tmp.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, format!("version = 1\n{}", body(rule))).unwrap();
        let o =
            std::process::Command::new(common::edgerec_bin()).args(["check", "--config"]).arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "case {i}: {err}");
        assert!(err.contains(&format!("{}:", path.display())), "names the file: {err}");
    }
}

/// The same pre/post roll with a real RTSP camera (GStreamer's server replaying the demo clip):
/// a user-defined event at a known moment records from the key frame at or before 3 s earlier
/// until the delay and post-roll after it, and the export decodes.
#[test]
fn rtsp_camera_event_recording_has_pre_and_post_roll() {
    let server = common::RtspServer::start(&[("/cam", &format!("file:{}", common::demo_clip_path().display()))]);
    let tmp = common::temp_dir();
    let body = format!(
        "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\nsync_interval_ms = 200\n\
         [[camera]]\nid = \"cam\"\nsource = \"{}\"\nrecord = \"never\"\nprebuffer_seconds = 5\n\
         [[rule]]\nname = \"Alarm\"\ntrigger = \"user_defined:alarm\"\ncameras = [\"cam\"]\npre_roll_seconds = 3\n\
         stop = \"delay:2\"\npost_roll_seconds = 1\n",
        server.url("/cam")
    );
    let rec = RecorderProc::start(tmp.path(), &body);
    rec.wait_frames_streaming("cam", 500);
    let t = now_us();
    post(&rec, "/api/v1/events/alarm");
    assert!(wait_until(Duration::from_secs(10), || rec.camera("cam")["recording"] == true));
    assert!(wait_until(Duration::from_secs(15), || rec.camera("cam")["recording"] == false));
    assert!(wait_until(Duration::from_secs(5), || rec
        .recordings("cam")
        .first()
        .is_some_and(|(_, e)| *e > t + 2_500_000)));
    let seqs = rec.recordings("cam");
    assert_eq!(seqs.len(), 1, "{seqs:?}");
    let (start, end) = seqs[0];
    assert!(start <= t - 3_000_000 + 50_000 && start >= t - 4_200_000, "pre-roll: {} ms", (t - start) / 1000);
    assert!(end >= t + 3_000_000 - 300_000 && end <= t + 4_500_000, "delay + post-roll: {} ms", (end - t) / 1000);
    let out = tmp.path().join("alarm.mp4");
    common::recorder::export_http(&rec, "cam", start, end, &out);
    common::ffmpeg_decode_ok(&out).unwrap();
}

/// REC-5: a rule that starts recording further back than a camera's pre-buffer reaches is
/// accepted (the recording then starts where the buffer does) but the recorder warns at start,
/// naming the file, the line, the rule, the camera and both lengths; a rule within the
/// pre-buffer is not warned about.
#[test]
fn a_pre_roll_longer_than_the_pre_buffer_is_warned_about() {
    let tmp = common::temp_dir();
    let rules = "[[rule]]\nname = \"Door\"\ntrigger = \"user_defined:door\"\ncameras = [\"demo\"]\n\
                 pre_roll_seconds = 8\nstop = \"delay:2\"\n\
                 [[rule]]\nname = \"Bell\"\ntrigger = \"user_defined:bell\"\ncameras = [\"demo\"]\n\
                 pre_roll_seconds = 5\nstop = \"delay:2\"\n";
    let rec = RecorderProc::start(tmp.path(), &body(rules));
    let text = std::fs::read_to_string(&rec.config).unwrap();
    let line = 1 + text.lines().position(|l| l == "pre_roll_seconds = 8").unwrap();
    let want = format!(
        "{}:{line}: rule \"Door\" starts recording 8 s before its trigger but camera \"demo\" pre-buffers only 5 s (REC-5)",
        rec.config.display()
    );
    let log = rec.log_text();
    assert!(log.contains(&want), "{want}\nin\n{log}");
    assert!(!log.contains("rule \"Bell\" starts recording"), "no warning within the pre-buffer: {log}");
}
