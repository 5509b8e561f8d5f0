//! Issue 10 points 15 and 17, tried as a new user would with the real binary: a camera's
//! `last_error` in status is one readable line while the log keeps the RTSP library's full text;
//! a year-9999 time names the parameter and the accepted range; an `rtsps://` camera is refused
//! at validation with file, line and key; the audio codec has one name for RTSP and the demo.

mod common;

use std::time::Duration;

use common::recorder::RecorderProc;
use common::{demo_clip_path, http_get, wait_for, RtspServer};

#[test]
fn status_errors_times_and_codec_names_read_well() {
    let server = RtspServer::start(&[("/cam", &format!("file:{}", demo_clip_path().display()))]);
    let tmp = common::temp_dir();
    let body = format!(
        "[[storage]]\nid = \"main\"\nsize = \"64MiB\"\nsegment_size = \"2MiB\"\n\
         [[camera]]\nid = \"cam\"\nsource = \"{}\"\n[camera.motion]\nenabled = false\n\
         [[camera]]\nid = \"demo\"\nsource = \"demo:\"\n[camera.motion]\nenabled = false\n\
         [[camera]]\nid = \"missing\"\nsource = \"{}\"\n",
        server.url("/cam"),
        server.url("/no-such-mount")
    );
    let rec = RecorderProc::start(tmp.path(), &body);

    // The RTSP library's 404 answer is several lines (message, connection, request context).
    let err = wait_for(Duration::from_secs(30), || rec.camera("missing")["last_error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no error for a missing mount: {}", rec.camera("missing")));
    assert!(!err.contains('\n') && err == err.trim() && !err.is_empty(), "one trimmed line: {err:?}");
    assert!(err.chars().count() <= 201, "capped: {err:?}");
    assert!(err.contains("404"), "says what happened: {err:?}");
    let log = rec.log_text();
    assert!(log.contains(&err) && log.contains("conn:"), "the full text is in the log: {log}");

    // One codec name for AAC, whichever source delivers it.
    rec.wait_frames("cam", 50, Duration::from_secs(30));
    rec.wait_frames("demo", 50, Duration::from_secs(30));
    assert_eq!(rec.camera("cam")["audio_codec"], "aac", "{}", rec.camera("cam"));
    assert_eq!(rec.camera("demo")["audio_codec"], "aac", "{}", rec.camera("demo"));

    // A year-9999 time: the parameter and the accepted range, no library internals.
    let r = http_get(&rec.url("/api/v1/cameras/demo/export.mp4?from=2026-01-01T00:00:00Z&to=9999-12-31T23:59:59Z"))
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.starts_with("`to`: \"9999-12-31T23:59:59Z\" is not an RFC 3339 time"), "{msg}");
    assert!(msg.contains("between 1970-01-01T00:00:00Z and 9999-01-01T00:00:00Z"), "{msg}");
    let o = std::process::Command::new(common::edgerec_bin())
        .args(["export", "--config"])
        .arg(&rec.config)
        .args(["--camera", "demo", "--from", "2026-01-01T00:00:00Z", "--to", "9999-12-31T23:59:59Z", "-o"])
        .arg(tmp.path().join("never.mp4"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && said.contains("`--to`: \"9999-12-31T23:59:59Z\""), "{said}");

    // rtsps:// is refused when the config is read, with file, line, key and the reason.
    let bad = tmp.path().join("rtsps.toml");
    std::fs::write(
        &bad,
        "version = 1\n[[storage]]\nid = \"main\"\nsize = \"64MiB\"\n[[camera]]\nid = \"tls\"\nsource = \"rtsps://cam.example/live\"\n",
    )
    .unwrap();
    let o = std::process::Command::new(common::edgerec_bin()).args(["check", "--config"]).arg(&bad).output().unwrap();
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{said}");
    assert!(said.contains(&format!("{}:7: key `camera.source`: rtsps://", bad.display())), "{said}");
    assert!(said.contains("retina"), "{said}");
}

/// Issue 10 point 17: every option of `export --help` is described, and the times say they need
/// a UTC offset.
#[test]
fn export_help_describes_every_option() {
    let o = std::process::Command::new(common::edgerec_bin()).args(["export", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{help}");
    for option in ["--config", "--camera", "--from", "--to", "--output", "--force"] {
        let line = help.lines().find(|l| l.trim_start().starts_with(option) || l.contains(&format!(", {option}")));
        let line = line.unwrap_or_else(|| panic!("{option} in {help}"));
        let described = line.split_once("  ").is_some_and(|(_, d)| !d.trim().is_empty());
        assert!(described, "{option} has a description: {line:?}");
    }
    assert!(help.contains("UTC offset"), "{help}");
}
